// Command ipcguard runs a command and, when it fails, removes the System V
// IPC objects its process tree created, and nothing else.
package main

import (
	"os"
	"runtime/debug"

	"github.com/ipcguard/ipcguard/supervisor"
)

var version = "dev"

func main() {
	// Two snapshots at the kernel limits hold ~12 MiB; a soft limit keeps
	// the collector from letting the heap grow to twice that (GOMEMLIMIT in
	// the environment overrides it).
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(16 << 20)
	}
	supervisor.Exit(run(os.Args))
}
