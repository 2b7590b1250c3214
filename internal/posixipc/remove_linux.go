package posixipc

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// RemoveResult is what became of an object Remove was asked to remove.
type RemoveResult uint8

const (
	// Removed: the name was unlinked, and it named the object.
	Removed RemoveResult = iota + 1
	// AlreadyGone: the name no longer existed. Not an error.
	AlreadyGone
	// Changed: the name now names another file (another inode, or not a
	// regular file): kept.
	Changed
	// Touched: the same file, but its ctime or size changed since the
	// decision (written, resized, a queue sent to or received from): kept.
	Touched
	// Refused: Remove would not act: a name that is not one entry, a
	// directory of another namespace, or a queue whose identity cannot be
	// re-checked; see Why.
	Refused
	// Failed: the re-check or the unlink failed (EPERM, EACCES, EROFS,
	// EBUSY for a mount point...); see Err.
	Failed
	// ReplacedRemoved: the name was unlinked, but between the re-check and
	// the unlink it had been made to name another file, which the unlink
	// removed (package doc, "Removal"). The caller must report it.
	ReplacedRemoved
)

var resultNames = [...]string{
	Removed: "removed", AlreadyGone: "already gone", Changed: "identity changed, kept",
	Touched: "changed since the decision, kept", Refused: "refused", Failed: "failed",
	ReplacedRemoved: "replaced between re-check and unlink; the replacement was removed",
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
	// Found is the identity now under the name when Result is Changed
	// (zero FileKey when it is not a regular file).
	Found ID
	// Err is why a removal failed (Result Failed); it wraps the errno, so
	// errors.Is(o.Err, unix.EPERM) works.
	Err error
	// Why says why Remove refused or kept the object.
	Why string
}

// Remove removes object o from d after re-checking it (package doc,
// "Removal"): the name must still be a regular file of the same device and
// inode, with the ctime and size of o. The error is non-nil exactly when
// the outcome is Failed and equals outcome.Err.
func (d *Dir) Remove(o Object) (RemoveOutcome, error) {
	if !validName(o.Name) {
		return RemoveOutcome{Result: Refused, Why: fmt.Sprintf("%q is not one directory entry", o.Name)}, nil
	}
	if o.Dev != d.Dev {
		return RemoveOutcome{Result: Refused, Why: "the object is not of this directory's filesystem"}, nil
	}
	switch {
	case d.NS == NSOurs:
		return d.removeAt(o)
	case d.Queues && d.NS == NSUnknown:
		return removeQueueByName(o)
	}
	return RemoveOutcome{Result: Refused, Why: "the directory is " + d.NS.String() + ": " + d.NSWhy}, nil
}

func (d *Dir) removeAt(o Object) (RemoveOutcome, error) {
	// Hold the file open (O_PATH: no open of the object itself, no effect
	// on it; O_NOFOLLOW: a symlink is opened as itself) to tell afterwards
	// which inode the unlink removed.
	fd, err := unix.Openat(d.fd, o.Name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return RemoveOutcome{Result: AlreadyGone}, nil
		}
		return failed(fmt.Errorf("posixipc: open %q: %w", o.Name, err))
	}
	defer unix.Close(fd)
	var held unix.Stat_t
	if err := unix.Fstat(fd, &held); err != nil {
		return failed(fmt.Errorf("posixipc: fstat %q: %w", o.Name, err))
	}
	if out, keep := recheck(o, held); keep {
		return out, nil
	}
	// The name again, now: it must still be the held file.
	var now unix.Stat_t
	if err := unix.Fstatat(d.fd, o.Name, &now, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return RemoveOutcome{Result: AlreadyGone}, nil
		}
		return failed(fmt.Errorf("posixipc: fstatat %q: %w", o.Name, err))
	}
	if out, keep := recheck(o, now); keep {
		return out, nil
	}
	if err := unix.Unlinkat(d.fd, o.Name, 0); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return RemoveOutcome{Result: AlreadyGone}, nil
		}
		return failed(fmt.Errorf("posixipc: unlink %q: %w", o.Name, err))
	}
	return afterUnlink(fd, held)
}

// afterUnlink tells through the held descriptor whether the unlink removed
// the held inode: its link count fell (tmpfs and mqueue files have no
// other names but glibc's semaphore temporary, which it unlinks at once).
func afterUnlink(fd int, held unix.Stat_t) (RemoveOutcome, error) {
	var after unix.Stat_t
	if err := unix.Fstat(fd, &after); err == nil && after.Nlink >= held.Nlink {
		return RemoveOutcome{Result: ReplacedRemoved, Why: "the name was made to name another file between the re-check and the unlink"}, nil
	}
	return RemoveOutcome{Result: Removed}, nil
}

// recheck compares a fresh stat of o's name with o.
func recheck(o Object, st unix.Stat_t) (RemoveOutcome, bool) {
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return RemoveOutcome{Result: Changed, Found: ID{Name: o.Name}, Why: "not a regular file now"}, true
	}
	if st.Dev != o.Dev || st.Ino != o.Ino {
		return RemoveOutcome{Result: Changed, Found: ID{FileKey: FileKey{Dev: st.Dev, Ino: st.Ino}, Name: o.Name}}, true
	}
	want := o.Ctime
	if !o.ReadCtime.IsZero() {
		want = o.ReadCtime
	}
	if ct := (unix.Timespec{Sec: want.Unix(), Nsec: int64(want.Nanosecond())}); !want.IsZero() && st.Ctim != ct {
		return RemoveOutcome{Result: Touched, Why: "its ctime changed"}, true
	}
	if st.Size != o.Size {
		return RemoveOutcome{Result: Touched, Why: fmt.Sprintf("its size changed from %d to %d", o.Size, st.Size)}, true
	}
	return RemoveOutcome{}, false
}

// removeQueueByName removes a queue with mq_unlink, in the caller's
// namespace, after mq_open of the name gave the same device and inode.
func removeQueueByName(o Object) (RemoveOutcome, error) {
	var fd int
	var err error
	for _, mode := range []int{unix.O_RDONLY, unix.O_WRONLY} {
		if fd, err = mqOpen(o.Name, mode|unix.O_NONBLOCK); err == nil || !errors.Is(err, unix.EACCES) {
			break
		}
	}
	switch {
	case errors.Is(err, unix.ENOENT):
		return RemoveOutcome{Result: AlreadyGone}, nil
	case errors.Is(err, unix.EACCES):
		return RemoveOutcome{Result: Refused, Why: "the queue cannot be opened to re-check its identity, and no directory of this namespace's mqueue is known"}, nil
	case err != nil:
		return failed(fmt.Errorf("posixipc: mq_open %q: %w", o.Name, err))
	}
	defer unix.Close(fd)
	var held unix.Stat_t
	if err := unix.Fstat(fd, &held); err != nil {
		return failed(fmt.Errorf("posixipc: fstat of queue %q: %w", o.Name, err))
	}
	if out, keep := recheck(o, held); keep {
		return out, nil
	}
	if err := mqUnlink(o.Name); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return RemoveOutcome{Result: AlreadyGone}, nil
		}
		return failed(fmt.Errorf("posixipc: mq_unlink %q: %w", o.Name, err))
	}
	return afterUnlink(fd, held)
}

func failed(err error) (RemoveOutcome, error) {
	return RemoveOutcome{Result: Failed, Err: err}, err
}
