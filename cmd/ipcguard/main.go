//go:build !ipcguard_gen

// Command ipcguard runs a command and, when it fails, removes the System V
// IPC objects its process tree created, and nothing else.
package main

import (
	"fmt"
	"os"
	"runtime/debug"

	"github.com/ipcguard/ipcguard/internal/guard"
	_ "github.com/ipcguard/ipcguard/internal/prestart" // catch the run's signals from initialization on
	"github.com/ipcguard/ipcguard/supervisor"
	"golang.org/x/sys/unix"
)

// minFiles is the fewest descriptors a run needs: the standard streams,
// the runtime's poller, /proc reads, the POSIX directories and their
// watchers, the journal, its sequence file and the registries, the
// tracker's events, the pipe of the signal handler and the pipe of the
// fork (23 is the least that ran, on 2 CPUs). Above it, a fork that still
// lacks one fails with one line and 125 (see supervisor.LookPath).
const minFiles = 23

func main() {
	// Below that the run would fail half way (the fork's pipe, the journal)
	// or the Go runtime would die with a stack trace: say so in one line.
	var lim unix.Rlimit
	if unix.Getrlimit(unix.RLIMIT_NOFILE, &lim) == nil && lim.Cur < minFiles {
		fmt.Fprintf(os.Stderr, "ipcguard: the limit of open files is %d; ipcguard needs at least %d (ulimit -n)\n", lim.Cur, minFiles)
		os.Exit(guard.ExitUsage)
	}
	// Two snapshots at the kernel limits hold ~12 MiB; a soft limit keeps
	// the collector from letting the heap grow to twice that (GOMEMLIMIT in
	// the environment overrides it).
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(16 << 20)
	}
	supervisor.Exit(run(os.Args))
}
