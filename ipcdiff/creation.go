package ipcdiff

import (
	"time"

	"github.com/ipcguard/ipcguard/internal/posixipc"
)

// Creation is one name made in a watched POSIX directory during a run, as
// the run's creation watcher (posixipc.Dir.Watch, fanotify) recorded it:
// the object of Type under Name on the filesystem Dev was created there,
// or renamed onto the name (Moved), by process Pid (0 when the watcher
// could not see it) no later than At, when the watcher read the event.
// File is the handle of the file the name was made for (the event's
// child FID), "" when the watcher did not report it. Attribute takes the
// last Creation of a name as the one that made the name now there, and,
// where files are known, the first Creation of a file as the one that
// made the file (docs/evidence.md, "POSIX objects"). A run records the
// creations it saw in its journal, so that a sweep can use them as the run
// would have.
type Creation struct {
	Type  Type
	Dev   uint64
	Name  string
	Pid   int
	At    time.Time
	Moved bool
	File  posixipc.Handle
}
