package ipcdiff

import "time"

// Creation is the creation of a named object as a watcher saw it (as
// root, fanotify on the shm tmpfs or the mqueue filesystem): the object
// of type Type named Name on the filesystem Dev (st_dev) was made by the
// process Pid at At. Moved says the watcher saw the name moved into place
// (rename(2)) rather than created: the object behind it may be older than
// At. A run records the creations it saw in its journal, so that a sweep
// can use them as the run would have.
type Creation struct {
	Type  Type
	Dev   uint64
	Name  string
	Pid   int
	At    time.Time
	Moved bool
}
