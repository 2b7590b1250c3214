// Package sigstart tells the signal mask and the ignored signals this
// process started with, as execve(2) left them, before the Go runtime
// changed them.
//
// The Go runtime, before any Go code runs, installs its handler for most
// signals (forgetting that one was SIG_IGN, except SIGHUP and SIGINT) and
// unblocks a set of signals in every thread (SIGHUP, SIGINT, SIGQUIT,
// SIGILL, SIGTRAP, SIGABRT, SIGBUS, SIGFPE, SIGSEGV, SIGSTKFLT, SIGTERM,
// SIGCHLD, SIGPROF, SIGSYS, SIGURG, 32..34; runtime/signal_unix.go,
// runtime/sigtab_linux_generic.go). A wrapper that must hand the original
// state to its command therefore records it earlier: on linux/amd64 an
// assembly entry point, selected at link time with
//
//	-ldflags=-E=github.com/ipcguard/ipcguard/internal/sigstart.entry
//
// runs before the runtime and records everything (Exact). Without it, or
// on another architecture, the package falls back to what survives the
// runtime's start, read at package initialization: the mask of the
// signals the runtime leaves alone (the main thread's mask at init), and
// SIG_IGN of SIGHUP, SIGINT, SIGCONT, SIGTSTP, SIGTTIN and SIGTTOU (which
// the runtime does not touch until os/signal asks for them).
package sigstart

import (
	"os"
	"os/signal"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Set is a set of signals 1..64: bit n-1 stands for signal n, as in the
// SigBlk and SigIgn lines of /proc/PID/status (proc(5)).
type Set uint64

// Has reports whether sig (1..64) is in s.
func (s Set) Has(sig unix.Signal) bool { return sig >= 1 && sig <= 64 && s&(1<<(sig-1)) != 0 }

// With returns s with sig (1..64) added.
func (s Set) With(sig unix.Signal) Set {
	if sig < 1 || sig > 64 {
		return s
	}
	return s | 1<<(sig-1)
}

// State is the signal state this process started with.
type State struct {
	Blocked Set // the signal mask of the thread that called execve
	Ignored Set // signals whose disposition was SIG_IGN
	// Exact is true when the state was recorded before the Go runtime
	// started (the assembly entry point ran); false when it is the
	// fallback described in the package comment.
	Exact bool
}

// Written by entry before the runtime starts (never by Go code): the
// kernel's struct sigaction is handler, flags, restorer, mask (8 bytes
// each on amd64).
var (
	startMask Set
	startActs [65][4]uint64
	captured  bool
)

var start State

func init() {
	if captured {
		start = State{Blocked: startMask, Exact: true}
		for sig := 1; sig <= 64; sig++ {
			if startActs[sig][0] == sigIgn {
				start.Ignored = start.Ignored.With(unix.Signal(sig))
			}
		}
		return
	}
	// The fallback. Package initialization runs on the main thread, whose
	// mask is the one execve left minus what the runtime unblocked.
	var mask unix.Sigset_t
	unix.RawSyscall6(unix.SYS_RT_SIGPROCMASK, unix.SIG_BLOCK, 0, uintptr(unsafe.Pointer(&mask)), 8, 0, 0)
	start.Blocked = Set(mask.Val[0])
	for _, sig := range []unix.Signal{unix.SIGHUP, unix.SIGINT, unix.SIGCONT, unix.SIGTSTP, unix.SIGTTIN, unix.SIGTTOU} {
		var act [4]uint64
		_, _, e := unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(sig), 0, uintptr(unsafe.Pointer(&act)), 8, 0, 0)
		if e == 0 && act[0] == sigIgn {
			start.Ignored = start.Ignored.With(sig)
		}
	}
}

// sigIgn is SIG_IGN as the kernel's struct sigaction holds it.
const sigIgn = 1

// fatal are the signals the Go runtime answers with a goroutine dump and
// exit status 2 (runtime/sigtab_linux_generic.go: _SigThrow) as long as
// os/signal does not catch them.
var fatal = []os.Signal{unix.SIGQUIT, unix.SIGABRT, unix.SIGTRAP, unix.SIGSYS}

// early receives fatal from package initialization on: this package
// depends on little, so it is initialized among the first.
var early = make(chan os.Signal, 16)

func init() { signal.Notify(early, fatal...) }

// Fatal returns the signals that the Go runtime would answer with a
// goroutine dump (SIGQUIT, SIGABRT, SIGTRAP, SIGSYS) and the channel on
// which they have been delivered since this package was initialized
// (16 deep; more are dropped). Its receiver owns their handling.
func Fatal() ([]os.Signal, chan os.Signal) { return fatal, early }

// Start returns the signal state this process started with.
func Start() State { return start }
