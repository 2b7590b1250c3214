package ipcdiff

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// RemoveResult is what became of an object Remove was asked to remove.
type RemoveResult uint8

const (
	// Removed: IPC_RMID succeeded and the object is destroyed.
	Removed RemoveResult = iota + 1
	// RemovedDeferred: IPC_RMID succeeded on a segment that is still
	// attached; the kernel marked it (SHM_DEST, key cleared) and destroys it
	// at the last detach.
	RemovedDeferred
	// AlreadyGone: the object no longer existed (or a segment was already
	// marked for destruction). Not an error.
	AlreadyGone
	// Changed: the id now names a different object (another key or
	// creator): Remove refused to touch it.
	Changed
	// Failed: the re-check or IPC_RMID failed (EPERM, EACCES, ...); see Err.
	Failed
	// Touched: the same object, but the evidence the decision rested on
	// changed since (someone attached, operated on it, sent or received):
	// Remove left it alone; see Why.
	Touched
	// InUse: RemoveUnused refused an object that is in use (or may be);
	// see Why.
	InUse
)

var resultNames = [...]string{
	Removed: "removed", RemovedDeferred: "removed (destroyed at last detach)",
	AlreadyGone: "already gone", Changed: "identity changed, kept", Failed: "failed",
	Touched: "changed since the decision, kept", InUse: "in use, kept",
}

func (r RemoveResult) String() string {
	if int(r) < len(resultNames) && resultNames[r] != "" {
		return resultNames[r]
	}
	return fmt.Sprintf("RemoveResult(%d)", uint8(r))
}

// RemoveOutcome reports one removal.
type RemoveOutcome struct {
	Result RemoveResult
	// Found is the identity now at the object's id when Result is Changed.
	Found Ident
	// Err is why a removal failed (Result Failed); it wraps the errno, so
	// errors.Is(o.Err, unix.EPERM) works.
	Err error
	// Why says what changed when Result is Touched.
	Why string
}

// Remove removes object o with IPC_RMID, but only if its id still names the
// same object and nothing the decision rested on changed (docs/evidence.md):
// right before removing, it reads the object again with IPC_STAT, which
// costs one syscall (plus GETPID, GETNCNT and GETZCNT of each semaphore of
// a set), and compares its identity (type, id, key, cuid), its attach
// count, and the pids and times of its last operations with o's; an object
// that changed is kept (Touched);
// when the caller may not read the object (EACCES), with *_STAT_ANY, and only
// when that is not conclusive, from /proc/sysvipc. An object that is gone is
// AlreadyGone; one whose identity changed is kept (Changed). The error is
// non-nil exactly when the outcome is Failed and equals outcome.Err: the
// caller reports it and goes on with the other objects.
//
// Ids carry a sequence number, so between the re-check and IPC_RMID the id
// cannot be reused by a new object (that takes 2^16 allocations at the same
// index); the re-check guards against the much longer window between the
// snapshot and the removal.
func Remove(fs FS, o Object) (RemoveOutcome, error) {
	res, found, cur, err := recheck(fs, o.Ident)
	switch res {
	case AlreadyGone:
		return RemoveOutcome{Result: AlreadyGone}, nil
	case Changed:
		return RemoveOutcome{Result: Changed, Found: found}, nil
	case Failed:
		return failed(o.Ident, "re-check", err)
	}
	if o.Sems != nil && cur.Sem != nil {
		// The decision rested on each semaphore's last pid and waiters.
		st, err := SemStates(o.ID, cur.Sem.NSems)
		switch {
		case err != nil && isGone(err):
			return RemoveOutcome{Result: AlreadyGone}, nil
		case err != nil:
			return RemoveOutcome{Result: Touched, Why: "its semaphores cannot be read again: " + ErrText(err)}, nil
		}
		cur.Sems = st
	}
	if why := changed(&o, &cur); why != "" {
		return RemoveOutcome{Result: Touched, Why: why}, nil
	}
	if err := rmFuncs[o.Type](o.ID); err != nil {
		if isGone(err) {
			return RemoveOutcome{Result: AlreadyGone}, nil
		}
		return failed(o.Ident, "IPC_RMID", err)
	}
	if o.Type == TypeShm {
		// Attached segments are only marked: say so.
		var b statBuf
		if ipcStatID(TypeShm, o.ID, &b) == 0 && b.perm().Mode&ShmDest != 0 {
			return RemoveOutcome{Result: RemovedDeferred}, nil
		}
	}
	return RemoveOutcome{Result: Removed}, nil
}

// The kernel calls of the re-check, variables so that tests can make them
// answer what a race or an old kernel would.
var (
	statID       = ipcStatID
	statAnyIndex = statIndex
)

func failed(id Ident, op string, err error) (RemoveOutcome, error) {
	err = fmt.Errorf("ipcdiff: removing %s %d (key %s): %s: %w", id.Type, id.ID, KeyString(id.Key), op, err)
	return RemoveOutcome{Result: Failed, Err: err}, err
}

// recheck compares the object the kernel holds at want.ID now with want.
// It returns 0 when it is the same object, with what the kernel holds now
// (as /proc/sysvipc shows it), AlreadyGone when there is none (or a
// segment already marked for destruction), Changed with the identity found
// when another object holds the id, Failed with the error otherwise.
func recheck(fs FS, want Ident) (RemoveResult, Ident, Object, error) {
	if want.Type >= numTypes || want.ID < 0 {
		return Failed, Ident{}, Object{}, fmt.Errorf("%w: %v", ErrUsage, want)
	}
	var b statBuf
	e := statID(want.Type, want.ID, &b)
	switch {
	case e == 0:
	case e == unix.EINVAL || e == unix.EIDRM:
		return AlreadyGone, Ident{}, Object{}, nil
	case e == unix.EACCES || e == unix.EPERM:
		// Not readable by us (removal may still be allowed: owner or
		// creator). *_STAT_ANY by index needs no permission.
		found, ok := statAnyID(want.Type, want.ID, &b)
		if !ok {
			return recheckProc(fs, want)
		}
		if !found {
			return AlreadyGone, Ident{}, Object{}, nil
		}
	default:
		return Failed, Ident{}, Object{}, e
	}
	p := b.perm()
	cur := Ident{Type: want.Type, ID: want.ID, Key: p.Key, CUID: p.Cuid}
	if want.Type == TypeShm && p.Mode&ShmDest != 0 {
		// IPC_RMID already ran: the key is cleared and the segment goes at
		// the last detach.
		return AlreadyGone, cur, Object{}, nil
	}
	if cur != want {
		return Changed, cur, Object{}, nil
	}
	o, ok := fromStat(&Object{Ident: want}, &b)
	if !ok {
		return recheckProc(fs, want)
	}
	return 0, cur, o, nil
}

// statAnyID looks id up by its index with *_STAT_ANY. found says the object
// is there (b then holds it); ok false means the answer is not conclusive
// (a kernel before 4.17 lacks *_STAT_ANY and says EINVAL, like a free index).
func statAnyID(t Type, id int, b *statBuf) (found, ok bool) {
	// The index is the id's low 15 bits, or 24 with ipcmni_extend.
	for _, shift := range []uint{ipcmniShift, 24} {
		got, e := statAnyIndex(t, id&(1<<shift-1), b)
		if e == 0 && got == id {
			return true, true
		}
	}
	return false, false
}

// recheckProc is the slow path of recheck: find the id in /proc/sysvipc.
func recheckProc(fs FS, want Ident) (RemoveResult, Ident, Object, error) {
	s, err := fs.Snapshot(1 << want.Type)
	if err != nil {
		return Failed, Ident{}, Object{}, err
	}
	o, ok := s.find(want.Type, want.ID)
	switch {
	case !ok:
		return AlreadyGone, Ident{}, Object{}, nil
	case o.Shm != nil && o.Shm.Perms&ShmDest != 0:
		return AlreadyGone, o.Ident, Object{}, nil
	case o.Ident != want:
		return Changed, o.Ident, Object{}, nil
	}
	return 0, o.Ident, o, nil
}

// find returns object id of type t in s.
func (s *Snapshot) find(t Type, id int) (Object, bool) {
	switch t {
	case TypeShm:
		for i := range s.Shm {
			if s.Shm[i].ID == id {
				return Object{Ident: s.Shm[i].ident(), Shm: &s.Shm[i]}, true
			}
		}
	case TypeSem:
		for i := range s.Sem {
			if s.Sem[i].ID == id {
				return Object{Ident: s.Sem[i].ident(), Sem: &s.Sem[i]}, true
			}
		}
	case TypeMsg:
		for i := range s.Msg {
			if s.Msg[i].ID == id {
				return Object{Ident: s.Msg[i].ident(), Msg: &s.Msg[i]}, true
			}
		}
	}
	return Object{}, false
}
