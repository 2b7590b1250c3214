package ipcdiff

import (
	"errors"
	"fmt"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// What the three System V kinds (shm.go, sem.go, msg.go) share: a table
// of /proc/sysvipc each, identities of type, id, key and creator uid,
// shmctl/semctl/msgctl (sysv_linux.go), and the re-check before IPC_RMID.

// sysvKind is a System V kind: what the shared re-check and removal need
// of it beyond kind.
type sysvKind interface {
	kind
	// fromStat turns what IPC_STAT (or *_STAT_ANY) wrote into b into the
	// object /proc/sysvipc would show for id; ok is false where this
	// architecture's layout is not known here (then only /proc tells).
	fromStat(id Ident, b *statBuf) (cur Object, ok bool)
	// destroyed reports whether the mode of the object's ipc64_perm says
	// IPC_RMID already ran on it (SHM_DEST).
	destroyed(mode uint32) bool
	// changed says what of the evidence the decision on o rested on
	// differs in cur, the same object read again ("" when nothing does).
	changed(o, cur *Object) string
	// reread reads again, into cur, the evidence that IPC_STAT does not
	// give (each semaphore's pid and waiters); a non-zero result ends the
	// removal with it.
	reread(o, cur *Object) RemoveOutcome
	// removed is the result of a successful IPC_RMID on id.
	removed(id int) RemoveResult
}

// sysvTable reads the objects of one System V kind, as openSysv set it
// up: by index with *_STAT_ANY when it can, else from /proc/sysvipc.
type sysvTable[T any] struct {
	f      *os.File
	name   string
	t      Type
	n      int // objects in use (*_INFO), -1 unknown
	maxIdx int // the highest index in use (*_INFO), -1 none
	// ns is the IPC namespace of the thread that opened f (zero: the
	// tables are not scanned, see openSysv); proc finds a thread's.
	ns    nsIdent
	proc  FS
	parse func([]byte, []T) ([]T, error)
	// row is the row /proc would show for id from what *_STAT_ANY wrote
	// into b; ok false where this architecture's layout is not known.
	row   func(id int, b *statBuf) (T, bool)
	store func(*Snapshot, []T)
}

// openSysv opens /proc/sysvipc/NAME of type t, and asks the kernel how
// many objects it holds and its highest index in use, all in the calling
// thread's IPC namespace. The table is scanned by index (scanSysv) when f
// is the kernel's own (procfs, not a fixture), the kind's layout is known
// here, the indexes in use are not too sparse for it, and the thread's
// IPC namespace can be named (so that a reader on another thread can
// prove it sees the same).
func openSysv[T any](fs FS, t Type, parse func([]byte, []T) ([]T, error), row func(int, *statBuf) (T, bool), store func(*Snapshot, []T)) (tableReader, error) {
	// The table, the counts and the namespace proof are read on one OS
	// thread: each answers for the IPC namespace of the thread that asks.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	f, err := fs.openTable(t.String())
	if err != nil {
		return nil, err
	}
	n, maxIdx := info(t)
	r := &sysvTable[T]{f: f, name: t.String(), t: t, n: n, maxIdx: maxIdx, proc: fs, parse: parse, row: row, store: store}
	if _, ok := row(0, new(statBuf)); ok && !fs.textOnly && n >= 0 && maxIdx+1 <= scanSparse*n+scanSlack && onProcfs(f) {
		r.ns, _ = fs.threadIPC()
	}
	return r, nil
}

// A scan costs about a quarter of a microsecond per free index and a
// little more per object, /proc/sysvipc about 1.5 µs per object (the
// kernel's rendering and our parsing): up to scanSparse free indexes per
// object (plus scanSlack) the scan is the cheaper.
const (
	scanSparse = 4
	scanSlack  = 256
)

func (r *sysvTable[T]) size() int { return r.n }
func (r *sysvTable[T]) close()    { r.f.Close() }

func (r *sysvTable[T]) read(s *Snapshot) error {
	if r.ns != (nsIdent{}) {
		if rows, ok := r.scan(); ok {
			r.store(s, rows)
			return nil
		}
	}
	rows, err := readOpenTable(r.f, r.name, r.parse, r.n)
	if err != nil {
		return err
	}
	r.store(s, rows)
	return nil
}

// scan lists the kind's objects with *_STAT_ANY, index by index from 0 to
// the highest in use when the table was opened (ipc/shm.c shmctl_stat,
// ipc/sem.c semctl_stat, ipc/msg.c msgctl_stat: no read permission
// needed, the pids as the calling thread's pid namespace sees them, as in
// /proc/sysvipc; shm rss and swap stay 0). An object that existed when the
// table was opened is at an index up to that one, so it is listed, as
// /proc lists it. ok is false when the scan proves nothing and /proc must
// be read instead: the calling thread is in another IPC namespace than
// the opener's, the kernel refused an index for another reason than a free
// one (a security module), or it found nothing where *_INFO counted
// objects (a kernel before 4.17 lacks *_STAT_ANY and says EINVAL).
func (r *sysvTable[T]) scan() (rows []T, ok bool) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if ns, err := r.proc.threadIPC(); err != nil || ns != r.ns {
		return nil, false
	}
	rows = make([]T, 0, r.n+r.n/8+16) // room for objects made meanwhile
	var b statBuf
	for idx := 0; idx <= r.maxIdx; idx++ {
		id, e := statIndex(r.t, idx, &b)
		switch e {
		case 0:
		case unix.EINVAL, unix.EIDRM: // free, or being removed
			continue
		default:
			return nil, false
		}
		row, ok := r.row(id, &b)
		if !ok {
			return nil, false
		}
		rows = append(rows, row)
	}
	if len(rows) == 0 && r.n > 0 {
		return nil, false
	}
	return rows, true
}

// sysvOf is the System V kind of t, nil for another.
func sysvOf(t Type) sysvKind {
	k, _ := kindOf(t).(sysvKind)
	return k
}

// removeSysv is Remove for a System V object: the re-check of its
// identity and evidence (recheck, sysvReread, sysvChanged), then IPC_RMID.
func removeSysv(fs FS, k sysvKind, o Object) (RemoveOutcome, error) {
	res, found, cur, err := recheck(fs, o.Ident)
	switch res {
	case AlreadyGone:
		return RemoveOutcome{Result: AlreadyGone}, nil
	case Changed:
		return RemoveOutcome{Result: Changed, Found: found}, nil
	case Failed:
		return failed(o.Ident, "re-check", err)
	}
	if out := sysvReread(&o, &cur); out.Result != 0 {
		return out, nil
	}
	if why := sysvChanged(&o, &cur); why != "" {
		return RemoveOutcome{Result: Touched, Why: why}, nil
	}
	if err := rmFuncs[o.Type](o.ID); err != nil {
		if isGone(err) {
			return RemoveOutcome{Result: AlreadyGone}, nil
		}
		return failed(o.Ident, "IPC_RMID", err)
	}
	return RemoveOutcome{Result: k.removed(o.ID)}, nil
}

// sysvReread and sysvChanged are the kind's reread and changed, called on
// the concrete kind: through the interface the two objects would escape
// to the heap, two allocations per removal. A System V kind not listed
// here is refused (kept), never removed without its re-check.
func sysvReread(o, cur *Object) RemoveOutcome {
	switch o.Type {
	case TypeShm:
		return shmKind{}.reread(o, cur)
	case TypeSem:
		return semKind{}.reread(o, cur)
	case TypeMsg:
		return msgKind{}.reread(o, cur)
	}
	return RemoveOutcome{Result: Refused, Why: "no re-check for " + o.Type.String()}
}

func sysvChanged(o, cur *Object) string {
	switch o.Type {
	case TypeShm:
		return shmKind{}.changed(o, cur)
	case TypeSem:
		return semKind{}.changed(o, cur)
	case TypeMsg:
		return msgKind{}.changed(o, cur)
	}
	return "no re-check for " + o.Type.String()
}

// sysvFromStat is the kind's fromStat, called on the concrete kind (so
// that the buffer stays on the caller's stack).
func sysvFromStat(id Ident, b *statBuf) (Object, bool) {
	switch id.Type {
	case TypeShm:
		return shmKind{}.fromStat(id, b)
	case TypeSem:
		return semKind{}.fromStat(id, b)
	case TypeMsg:
		return msgKind{}.fromStat(id, b)
	}
	return Object{}, false
}

// The kernel calls of the re-check, variables so that tests can make them
// answer what a race or an old kernel would (nil: the real ones).
var (
	statID       func(t Type, id int, b *statBuf) unix.Errno
	statAnyIndex func(t Type, idx int, b *statBuf) (int, unix.Errno)
)

// statByID is ipcStatID, or the test's statID.
func statByID(t Type, id int, b *statBuf) unix.Errno {
	if statID == nil {
		return ipcStatID(t, id, b)
	}
	tb := new(statBuf) // the test's function may keep it: not b
	e := statID(t, id, tb)
	*b = *tb
	return e
}

// statByIndex is statIndex, or the test's statAnyIndex.
func statByIndex(t Type, idx int, b *statBuf) (int, unix.Errno) {
	if statAnyIndex == nil {
		return statIndex(t, idx, b)
	}
	tb := new(statBuf)
	id, e := statAnyIndex(t, idx, tb)
	*b = *tb
	return id, e
}

// recheck compares the System V object the kernel holds at want.ID now
// with want. It returns 0 when it is the same object, with what the kernel
// holds now (as /proc/sysvipc shows it), AlreadyGone when there is none
// (or a segment already marked for destruction), Changed with the identity
// found when another object holds the id, Failed with the error otherwise.
func recheck(fs FS, want Ident) (RemoveResult, Ident, Object, error) {
	k := sysvOf(want.Type)
	if k == nil || want.ID < 0 {
		return Failed, Ident{}, Object{}, fmt.Errorf("%w: %v", ErrUsage, want)
	}
	var b statBuf
	e := statByID(want.Type, want.ID, &b)
	switch {
	case e == 0:
	case e == unix.EINVAL || e == unix.EIDRM:
		return AlreadyGone, Ident{}, Object{}, nil
	case e == unix.EACCES || e == unix.EPERM:
		// Not readable by us (removal may still be allowed: owner or
		// creator). *_STAT_ANY by index needs no permission.
		found, ok := statAnyID(want.Type, want.ID, &b)
		if !ok {
			return recheckProc(fs, k, want)
		}
		if !found {
			return AlreadyGone, Ident{}, Object{}, nil
		}
	default:
		return Failed, Ident{}, Object{}, e
	}
	p := b.perm()
	cur := Ident{Type: want.Type, ID: want.ID, Key: p.Key, CUID: p.Cuid}
	if k.destroyed(uint32(p.Mode)) {
		// IPC_RMID already ran: the key is cleared and the segment goes at
		// the last detach.
		return AlreadyGone, cur, Object{}, nil
	}
	if cur != want {
		return Changed, cur, Object{}, nil
	}
	o, ok := sysvFromStat(want, &b)
	if !ok {
		return recheckProc(fs, k, want)
	}
	return 0, cur, o, nil
}

// statAnyID looks id up by its index with *_STAT_ANY. found says the object
// is there (b then holds it); ok false means the answer is not conclusive
// (a kernel before 4.17 lacks *_STAT_ANY and says EINVAL, like a free index).
func statAnyID(t Type, id int, b *statBuf) (found, ok bool) {
	// The index is the id's low 15 bits, or 24 with ipcmni_extend.
	for _, shift := range []uint{ipcmniShift, 24} {
		got, e := statByIndex(t, id&(1<<shift-1), b)
		if e == 0 && got == id {
			return true, true
		}
	}
	return false, false
}

// recheckProc is the slow path of recheck: find the id in /proc/sysvipc.
func recheckProc(fs FS, k sysvKind, want Ident) (RemoveResult, Ident, Object, error) {
	s, err := fs.Snapshot(1 << want.Type)
	if err != nil {
		return Failed, Ident{}, Object{}, err
	}
	o, ok := s.find(want.Type, want.ID)
	switch {
	case !ok:
		return AlreadyGone, Ident{}, Object{}, nil
	case k.evidence(&o).Removed != "":
		return AlreadyGone, o.Ident, Object{}, nil
	case o.Ident != want:
		return Changed, o.Ident, Object{}, nil
	}
	return 0, o.Ident, o, nil
}

// changed says what of the evidence the decision on o rested on differs
// in cur, the same object read again ("" when nothing does).
func changed(o, cur *Object) string {
	if k := sysvOf(o.Type); k != nil {
		return k.changed(o, cur)
	}
	return ""
}

// ErrVanished means an object was gone, or its id named another object, when
// it was looked at again.
var ErrVanished = errors.New("ipcdiff: object vanished")

// ObjectError is a failure concerning one object of a batch.
type ObjectError struct {
	Ident
	Err error
}

func (e *ObjectError) Error() string { return e.Ident.String() + ": " + e.Err.Error() }
func (e *ObjectError) Unwrap() error { return e.Err }

// isGone reports whether an errno says the object no longer exists.
func isGone(err error) bool { return errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EIDRM) }
