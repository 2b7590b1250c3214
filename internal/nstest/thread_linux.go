package nstest

import (
	"os"
	"runtime"
	"testing"

	"golang.org/x/sys/unix"
)

// LockedNamespace moves the calling goroutine into a private IPC namespace
// for the rest of its life, for benchmarks (which cannot use Isolate): it
// locks the goroutine to its OS thread and unshares CLONE_NEWIPC on that
// thread only. It never unlocks: when the goroutine ends the runtime
// terminates the thread, and the namespace with its objects goes with it,
// so it cannot leak to other goroutines. The Go runtime starts new threads
// from a clean template thread while a goroutine is locked, so they do not
// inherit the namespace either.
//
// Everything that must see the namespace (creating objects, reading
// /proc/sysvipc or /proc/sys/kernel/{shmmni,sem,msgmni}) must run on the
// calling goroutine; subtests and benchmarks started with Run run on other
// goroutines and see the host's namespace. The caller must be root (real
// CAP_SYS_ADMIN: a multithreaded process cannot enter a new user
// namespace); otherwise tb is skipped.
func LockedNamespace(tb testing.TB) {
	tb.Helper()
	if InChild() {
		// Already isolated: an isolated child is its own namespace.
		runtime.LockOSThread()
		return
	}
	if os.Geteuid() != 0 {
		tb.Skip("nstest: LockedNamespace needs root (unshare(CLONE_NEWIPC) in a multithreaded process); run as root")
	}
	runtime.LockOSThread()
	if err := unix.Unshare(unix.CLONE_NEWIPC); err != nil {
		// Stay locked: the thread's state is unknown, let it die with us.
		tb.Skipf("nstest: unshare(CLONE_NEWIPC): %v", err)
	}
}
