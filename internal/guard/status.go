package guard

import (
	"fmt"
	"strings"

	"golang.org/x/sys/unix"
)

// Exit statuses of ipcguard's own. The command's own status (or its
// signal) passes through; supervisor.ExecError carries env(1)'s 126 and
// 127 for a command that cannot be run.
const (
	// ExitUsage: bad usage, or ipcguard failed before the command ran
	// (125, as env(1) and timeout(1) use it).
	ExitUsage = 125
	// ExitIncomplete: a sweep met a corrupt journal, could not finish
	// one, or failed to remove an object; rm did not remove an object it
	// was given. Something is left that cron or ExecStopPost= should
	// report.
	ExitIncomplete = 1
)

// Exited is the wait status of a process that exited with code.
func Exited(code int) unix.WaitStatus { return unix.WaitStatus(code << 8) }

// Error ends a run before its command ran (the command was not found or
// cannot be executed, the fork failed). Code is the status ipcguard ends
// with: 125, 126 or 127.
type Error struct {
	Code int
	Err  error
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// WantCleanup applies the --on policy (failure, always, never) to the
// command's status, and says why.
func WantCleanup(on string, ws unix.WaitStatus) (bool, string) {
	how := StatusText(ws)
	switch {
	case on == "never":
		return false, "--on never"
	case on == "always":
		return true, "--on always (" + how + ")"
	case Failed(ws):
		return true, "command failed (" + how + ")"
	}
	return false, "command succeeded (--on failure)"
}

// Failed reports a non-zero exit status or death by a signal.
func Failed(ws unix.WaitStatus) bool { return ws.Signaled() || ws.ExitStatus() != 0 }

// StatusText says how a process ended: "exit status 3", "killed by SIGTERM".
func StatusText(ws unix.WaitStatus) string {
	if ws.Signaled() {
		return "killed by " + unix.SignalName(ws.Signal())
	}
	return fmt.Sprintf("exit status %d", ws.ExitStatus())
}

// OneLine is err's text on one line.
func OneLine(err error) string {
	return strings.ReplaceAll(strings.TrimSpace(err.Error()), "\n", "; ")
}

// orNone is s, or "no reason given".
func orNone(s string) string {
	if s == "" {
		return "no reason given"
	}
	return s
}
