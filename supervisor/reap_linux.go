package supervisor

import (
	"time"

	"golang.org/x/sys/unix"
)

// setSubreaper makes this process the child subreaper of its descendants:
// orphans are reparented to it rather than to init.
func setSubreaper() error {
	return unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
}

// reap is the one place that waits for children: it collects every child
// that changed state, without blocking, until none is left to report.
// The command's exit is recorded and its stops and continues drive job
// control; orphans (adopted as subreaper) are just reaped.
func (s *supervision) reap() {
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG|unix.WUNTRACED|unix.WCONTINUED, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil || pid <= 0 { // ECHILD, or nothing more to report
			return
		}
		if pid != s.pid || s.done {
			if s.waitAll && s.done && (ws.Exited() || ws.Signaled()) {
				s.outlived = append(s.outlived, ChildExit{Pid: pid, Status: ws, At: time.Now()})
			}
			continue
		}
		switch {
		case ws.Exited() || ws.Signaled():
			s.done, s.ws, s.ended = true, ws, time.Now()
		case ws.Stopped():
			s.stopped = true
			s.jobStopped(ws.StopSignal())
		case ws.Continued():
			s.stopped = false
		}
	}
}
