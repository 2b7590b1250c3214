package ipcdiff

import "fmt"

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
	// Refused: the kind would not act on the object (a POSIX name that is
	// not one directory entry, a directory of another namespace); see Why.
	Refused
	// ReplacedRemoved: a POSIX name was unlinked, but between the re-check
	// and the unlink it had been made to name another file (by its owner,
	// or root), which the unlink removed; see Why. The caller must report
	// it: the object decided on was not the one removed.
	ReplacedRemoved
)

var resultNames = [...]string{
	Removed: "removed", RemovedDeferred: "removed (destroyed at last detach)",
	AlreadyGone: "already gone", Changed: "identity changed, kept", Failed: "failed",
	Touched: "changed since the decision, kept", InUse: "in use, kept",
	Refused: "refused, kept", ReplacedRemoved: "replaced between re-check and unlink; the replacement was removed",
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
	// Why says what changed when Result is Touched, why the kind refused
	// (Refused), or what was removed instead (ReplacedRemoved).
	Why string
}

// Remove removes object o, but only if it is still the same object and
// nothing the decision rested on changed (docs/evidence.md): right before
// removing, its kind reads it again and compares its identity and the
// evidence (for a System V object: IPC_STAT, which costs one syscall plus
// GETPID, GETNCNT and GETZCNT of each semaphore of a set, compared on
// type, id, key, cuid, attach count, and the pids and times of its last
// operations; when the caller may not read the object (EACCES), with
// *_STAT_ANY, and only when that is not conclusive, from /proc/sysvipc).
// An object that changed is kept (Touched); one that is gone is
// AlreadyGone; one whose identity changed is kept (Changed). The error is
// non-nil exactly when the outcome is Failed and equals outcome.Err: the
// caller reports it and goes on with the other objects.
//
// SysV ids carry a sequence number, so between the re-check and IPC_RMID
// the id cannot be reused by a new object (that takes 2^16 allocations at
// the same index); the re-check guards against the much longer window
// between the snapshot and the removal.
func Remove(fs FS, o Object) (RemoveOutcome, error) {
	k := kindOf(o.Type)
	if k == nil {
		return failed(o.Ident, "re-check", fmt.Errorf("%w: %v", ErrUsage, o.Ident))
	}
	return k.remove(fs, o)
}

func failed(id Ident, op string, err error) (RemoveOutcome, error) {
	what := id.String()
	if id.Name == "" {
		what += " (key " + KeyString(id.Key) + ")"
	}
	err = fmt.Errorf("ipcdiff: removing %s: %s: %w", what, op, err)
	return RemoveOutcome{Result: Failed, Err: err}, err
}
