package supervisor

import (
	"os"
	"runtime"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// StatusCode is the exit status a shell reports for ws: the exit status,
// or 128+N for death by signal N.
func StatusCode(ws unix.WaitStatus) int {
	switch {
	case ws.Exited():
		return ws.ExitStatus()
	case ws.Signaled():
		return 128 + int(ws.Signal())
	case ws.Stopped():
		return 128 + int(ws.StopSignal())
	}
	return 125
}

// Exit ends this process the way the command ended: with the same exit
// status, or killed by the same signal (as timeout(1) does: core dumps of
// this process are turned off first, so that a command killed by SIGSEGV
// does not make the supervisor dump core too). Where the signal cannot
// kill this process (it is the init of a PID namespace, or the signal does
// not terminate), it exits with 128+N. Exit does not return.
func Exit(ws unix.WaitStatus) {
	if ws.Signaled() {
		dieFrom(ws.Signal())
	}
	os.Exit(StatusCode(ws))
}

// dieFrom kills this process with sig, bypassing the Go runtime's handler
// (which would print a stack trace for SIGQUIT or SIGABRT, or panic). If
// the process is still alive after a moment, it returns.
func dieFrom(sig syscall.Signal) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	unix.Setrlimit(unix.RLIMIT_CORE, &unix.Rlimit{})
	if sig != unix.SIGKILL {
		if _, err := setDefault(sig); err != nil {
			return
		}
	}
	raiseDefault(sig)
	// A fatal signal directed at this thread kills before tgkill returns;
	// the process-wide one below covers a thread that somehow survived.
	unix.Kill(unix.Getpid(), sig)
	time.Sleep(100 * time.Millisecond)
}
