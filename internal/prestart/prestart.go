// Package prestart begins a guarded run's slowest preparation while the
// program's packages are still being initialized: catching the signals
// the run forwards takes one round trip to the Go runtime's signal thread
// per signal (about 25 µs each, 1 to 2 ms for all), and it must be over
// before the command starts. Imported for its side effect by the ipcguard
// command only, it starts that work (supervisor.Prepare) when the command
// line surely asks for a run (cmdline.IsGuardedRun) and IPCGUARD_SWEEP does
// not ask for a sweep first; otherwise Run catches them itself, later.
package prestart

import (
	"os"

	"github.com/ipcguard/ipcguard/internal/cmdline"
	"github.com/ipcguard/ipcguard/supervisor"
)

func init() {
	if cmdline.IsGuardedRun(os.Args) && os.Getenv("IPCGUARD_SWEEP") == "" {
		supervisor.Prepare()
	}
}
