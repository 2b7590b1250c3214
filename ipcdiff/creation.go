package ipcdiff

import "time"

// Creation is one name made in a watched POSIX directory during a run, as
// the run's creation watcher (posixipc.Dir.Watch, fanotify) recorded it:
// the object of Type under Name on the filesystem Dev was created there,
// or renamed onto the name (Moved), by process Pid (0 when the watcher
// could not see it) no later than At, when the watcher read the event.
// Attribute takes the last Creation of a name as the one that made the
// object now under it (docs/evidence.md, "POSIX objects").
type Creation struct {
	Type  Type
	Dev   uint64
	Name  string
	Pid   int
	At    time.Time
	Moved bool
}
