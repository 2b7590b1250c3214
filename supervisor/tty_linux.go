package supervisor

import (
	"runtime"
	"syscall"

	"golang.org/x/sys/unix"
)

// terminal is this process's controlling terminal, when it has one. A nil
// *terminal is valid and stands for "no terminal": job control is off.
type terminal struct {
	fd   int
	pgrp int // this process's own process group
}

// openTerminal opens the controlling terminal (/dev/tty, or standard input
// when /dev/tty cannot be opened but stdin is the controlling terminal),
// close-on-exec. It returns nil when there is none.
func openTerminal() *terminal {
	t := &terminal{fd: -1, pgrp: unix.Getpgrp()}
	if fd, err := unix.Open("/dev/tty", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0); err == nil {
		t.fd = fd
	} else if fd, err := unix.FcntlInt(0, unix.F_DUPFD_CLOEXEC, 3); err == nil {
		t.fd = fd
	} else {
		return nil
	}
	if _, err := unix.IoctlGetInt(t.fd, unix.TIOCGPGRP); err != nil {
		// Not a terminal, or not ours (TIOCGPGRP answers ENOTTY for a
		// terminal that is not the caller's controlling terminal).
		unix.Close(t.fd)
		return nil
	}
	return t
}

func (t *terminal) close() {
	if t != nil {
		unix.Close(t.fd)
	}
}

// foreground returns the terminal's foreground process group, or -1.
func (t *terminal) foreground() int {
	if t == nil {
		return -1
	}
	pg, err := unix.IoctlGetInt(t.fd, unix.TIOCGPGRP)
	if err != nil {
		return -1
	}
	return pg
}

// isForeground reports whether this process's group is in the foreground.
func (t *terminal) isForeground() bool { return t != nil && t.foreground() == t.pgrp }

// setForeground makes pgrp the terminal's foreground group. It works from
// a background group too: SIGTTOU is blocked on the calling thread for the
// call, so the kernel neither sends it (which would reach the command as a
// forwarded signal) nor refuses.
func (t *terminal) setForeground(pgrp int) error {
	if t == nil {
		return nil
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		var set, old unix.Sigset_t
		set.Val[(unix.SIGTTOU-1)/64] |= 1 << ((uint(unix.SIGTTOU) - 1) % 64)
		unix.PthreadSigmask(unix.SIG_BLOCK, &set, &old)
		errc <- unix.IoctlSetPointerInt(t.fd, unix.TIOCSPGRP, pgrp)
		unix.PthreadSigmask(unix.SIG_SETMASK, &old, nil)
	}()
	return <-errc
}

// reclaimTerminal gives the terminal back to this process's group after
// the command handed it over has exited (or stopped).
func (s *supervision) reclaimTerminal() {
	if !s.handed {
		return
	}
	s.handed = false
	if s.tty.foreground() != s.tty.pgrp {
		if err := s.tty.setForeground(s.tty.pgrp); err != nil {
			s.logf("supervisor: taking the terminal back: %v", err)
		}
	}
}

// jobStopped handles the command stopping while this process has a
// terminal: as a shell expects of its job, the job stops too, with the
// same signal, after this process took the terminal back: every process of
// this process's own group (the job's, when an intermediate process such
// as make, sh -c or perl's system() started this one) and then this
// process. The terminal stopped the command's group only; a direct run
// would have stopped them all. This process goes on when continued (then
// resume hands the terminal over again).
//
// Without a terminal there is no job control to serve: this process keeps
// running (reaping, ready to clean up) while the command is stopped, and
// forwards the SIGCONT that continues it.
//
// The kernel discards job-control stops of an orphaned process group, and
// nobody would continue it. There, a SIGTSTP stop of the command is undone
// at once, as if discarded too; a SIGTTIN or SIGTTOU stop (where the
// command, run directly, would have seen EIO) or a SIGSTOP is left as it
// is, with a note: resuming would only repeat it.
func (s *supervision) jobStopped(sig syscall.Signal) {
	if s.tty == nil {
		return
	}
	s.reclaimTerminal()
	if orphanedPgrp(s.tty.pgrp) {
		if sig == unix.SIGTSTP {
			s.resume()
		} else {
			s.logf("supervisor: the command (pid %d) stopped on %v; this process group is orphaned, so it stays stopped until it gets SIGCONT", s.pid, sig)
		}
		return
	}
	stopGroup(s.tty.pgrp, sig)
	stopSelf(sig)
	// Continued: SIGCONT is on its way through s.sigs and calls resume.
}

// stopGroup sends sig to every process of process group pgrp but this
// one (which catches it: a kill(-pgrp) would come back to it as a signal
// to forward).
func stopGroup(pgrp int, sig syscall.Signal) {
	self := unix.Getpid()
	pids, err := proc.Tgids()
	if err != nil {
		return
	}
	for _, pid := range pids {
		if pid == self {
			continue
		}
		if pg, err := unix.Getpgid(pid); err == nil && pg == pgrp {
			unix.Kill(pid, sig)
		}
	}
}

// resume continues the stopped command's process group, giving it the
// terminal first if this process is in the foreground (after fg; not after
// bg).
func (s *supervision) resume() {
	if s.tty.isForeground() {
		if err := s.tty.setForeground(s.pid); err != nil {
			s.logf("supervisor: giving the terminal to the command: %v", err)
		} else {
			s.handed = true
		}
	}
	unix.Kill(-s.pid, unix.SIGCONT)
}

// orphanedPgrp reports whether process group pgrp is orphaned (POSIX): no
// member has a parent in another group of the same session. The kernel
// discards SIGTSTP, SIGTTIN and SIGTTOU sent to a member of such a group.
func orphanedPgrp(pgrp int) bool {
	sid, err := unix.Getsid(0)
	if err != nil {
		return true
	}
	// The usual case: this process's parent is the shell that runs the job.
	if parentOutsideGroup(unix.Getppid(), pgrp, sid) {
		return false
	}
	pids, err := proc.Tgids()
	if err != nil {
		return true
	}
	for _, pid := range pids {
		if pg, err := unix.Getpgid(pid); err != nil || pg != pgrp {
			continue
		}
		st, err := proc.Stat(pid)
		if err == nil && parentOutsideGroup(st.Ppid, pgrp, sid) {
			return false
		}
	}
	return true
}

// parentOutsideGroup: ppid is in session sid but not in group pgrp.
func parentOutsideGroup(ppid, pgrp, sid int) bool {
	if ppid <= 0 {
		return false
	}
	pg, err := unix.Getpgid(ppid)
	if err != nil || pg == pgrp {
		return false
	}
	psid, err := unix.Getsid(ppid)
	return err == nil && psid == sid
}
