package ipcdiff

import (
	"errors"
)

// Gather collects the evidence attribution needs beyond the listing, for
// the new objects only, kind by kind: per-semaphore pids and waiters of
// new sets, and the live processes that map new segments still attached
// (nattch > 0). Objects that vanished meanwhile are left as they are
// (removal will find them gone); other failures are returned joined, and
// the objects they concern simply carry less evidence — which can only
// keep them, never remove them.
func Gather(fs FS, objs []Object) error { return gather(fs, objs, false) }

// GatherOrphans collects the evidence Orphans needs beyond the listing
// for objs, normally every object of the namespace: the per-semaphore
// pids and waiters of every set (enrichSems), and the processes that map each
// segment (Attachers, one scan of /proc/*/maps). A set whose semaphores
// could not be read gets Unreadable. A segment with nattch 0 is mapped by
// nobody, whatever the maps of processes we may not read would say: the
// kernel counts every attach, in every namespace. The error joins what
// failed; the objects concerned carry less evidence, which can only make
// them not orphans.
func GatherOrphans(fs FS, objs []Object) error { return gather(fs, objs, true) }

func gather(fs FS, objs []Object, users bool) error {
	var errs []error
	for _, k := range kinds {
		if err := k.gather(fs, objs, users); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// ErrText is the innermost error text of err ("permission denied"), for
// reports that name the errno, not the chain of calls.
func ErrText(err error) string {
	for {
		u := errors.Unwrap(err)
		if u == nil {
			return err.Error()
		}
		err = u
	}
}
