package supervisor

import (
	"errors"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// descendant is a live process below this one: pid, and the parent it was
// found under.
type descendant struct {
	pid, ppid int
}

// descendants lists every live (not zombie) descendant of this process,
// parents before children: the children of every thread of this process
// (the command's orphans, reparented here, whatever session they made),
// then recursively theirs, from /proc/PID/task/TID/children. Without those
// files (CONFIG_PROC_CHILDREN off) it builds the tree from /proc/PID/stat.
//
// It finds nothing when /proc belongs to another PID namespace (a process
// started in a new one without mounting its own /proc): its numbers would
// name other processes here.
func descendants() []descendant {
	if !hasChildren() {
		// Orphans are reparented here, so a live descendant has a live
		// ancestor among this process's children: there is none.
		return nil
	}
	self := os.Getpid()
	if proc.SameNamespace() != nil {
		return nil
	}
	kids := childrenFunc()
	var out []descendant
	seen := map[int]bool{self: true}
	queue := []int{self}
	for len(queue) > 0 {
		parent := queue[0]
		queue = queue[1:]
		for _, pid := range kids(parent) {
			if seen[pid] {
				continue
			}
			seen[pid] = true
			st, err := proc.Stat(pid)
			if err != nil || st.Ppid != parent || st.State == 'Z' || st.State == 'X' {
				continue // gone, moved, or dead already
			}
			out = append(out, descendant{pid: pid, ppid: parent})
			queue = append(queue, pid)
		}
	}
	return out
}

// hasChildren reports whether this process has any child, running,
// stopped or zombie, without reaping it (one waitid instead of a scan of
// the children of every thread). It errs on the side of yes.
func hasChildren() bool {
	var info unix.Siginfo
	for {
		err := unix.Waitid(unix.P_ALL, 0, &info,
			unix.WEXITED|unix.WSTOPPED|unix.WCONTINUED|unix.WNOHANG|unix.WNOWAIT|unix.WALL, nil)
		if err == unix.EINTR {
			continue
		}
		return err != unix.ECHILD
	}
}

// childrenFunc returns how to list the children of a pid on this system.
func childrenFunc() func(pid int) []int {
	if proc.HasChildrenFiles() {
		return func(pid int) []int {
			kids, _ := proc.Children(pid, nil)
			return kids
		}
	}
	byParent := map[int][]int{}
	pids, _ := proc.Tgids()
	for _, pid := range pids {
		if st, err := proc.Stat(pid); err == nil {
			byParent[st.Ppid] = append(byParent[st.Ppid], pid)
		}
	}
	return func(pid int) []int { return byParent[pid] }
}

// victim is a descendant being terminated. fd is a pidfd (or -1) that
// keeps naming that very process however its pid number is reused, and
// polls readable when it exits.
type victim struct {
	fd             int
	termed, killed bool
	dead           bool
	// denied is set when SIGKILL was refused (a set-user-ID descendant,
	// when this process is not privileged): there is no point waiting.
	denied bool
}

// descPoll caps one wait of terminate: descendants that fork while being
// terminated are found by scanning again.
const descPoll = 50 * time.Millisecond

// killWait bounds the wait for descendants after SIGKILL (one stuck in an
// uninterruptible sleep, on a dead NFS server say, does not die).
const killWait = 2 * time.Second

// terminate ends every remaining descendant: SIGTERM (and SIGCONT, so
// that stopped ones act on it) to each, then SIGKILL to those still alive
// after grace, scanning again for processes forked meanwhile, until none
// remain. The wait is on the descendants' pidfds: terminate returns as
// soon as the last one is gone. A SIGINT, SIGTERM, SIGHUP or SIGQUIT that
// this process receives meanwhile cuts the grace period short. It returns
// the pids sent SIGTERM, those sent SIGKILL, and those that could not be
// killed (SIGKILL refused, or still there killWait after it).
func (s *supervision) terminate(grace time.Duration) (terminated, killed, remaining []int) {
	deadline := time.Now().Add(grace)
	victims := map[int]*victim{}
	defer func() {
		for _, v := range victims {
			if v.fd >= 0 {
				unix.Close(v.fd)
			}
		}
	}()
	kill := false
	var left []int // found but not waited for: denied, or given up
	for {
		s.reap()
		if !kill && !time.Now().Before(deadline) {
			kill = true
			deadline = time.Now().Add(killWait)
		}
		giveUp := kill && !time.Now().Before(deadline)
		var live []*victim
		var fds []unix.PollFd
		left = left[:0]
		for _, d := range descendants() {
			v := victims[d.pid]
			if v == nil || v.dead {
				if v != nil && v.fd >= 0 {
					unix.Close(v.fd)
				}
				v = track(d)
				if v == nil {
					continue
				}
				victims[d.pid] = v
			}
			switch {
			case kill && !v.killed && !v.denied:
				v.killed = true
				if errors.Is(v.send(d.pid, unix.SIGKILL), syscall.EPERM) {
					v.denied = true
				} else {
					killed = append(killed, d.pid)
				}
			case !kill && !v.termed:
				v.termed = true
				if errors.Is(v.send(d.pid, unix.SIGTERM), syscall.EPERM) {
					v.denied = true // not ours to signal: SIGKILL is refused too
				} else {
					terminated = append(terminated, d.pid)
					v.send(d.pid, unix.SIGCONT)
				}
			}
			if v.denied || giveUp {
				left = append(left, d.pid)
				continue
			}
			live = append(live, v)
			if v.fd >= 0 {
				fds = append(fds, unix.PollFd{Fd: int32(v.fd), Events: unix.POLLIN})
			}
		}
		if len(live) == 0 {
			break
		}
		wait := min(descPoll, time.Until(deadline))
		if wait > 0 {
			unix.Poll(fds, int((wait+time.Millisecond-1)/time.Millisecond))
		}
		for _, v := range live {
			if v.fd >= 0 && exited(v.fd) {
				v.dead = true
			}
		}
		if !kill && s.hurried() {
			deadline = time.Now()
		}
	}
	s.reap()
	return terminated, killed, left
}

// track opens a pidfd for d and checks that it names the process found:
// still d.ppid's child (so not a newcomer that took a dead descendant's
// pid number). It returns nil when d is gone. Without pidfds (kernels
// before 5.3) the pid is used as is.
func track(d descendant) *victim {
	fd, err := unix.PidfdOpen(d.pid, 0)
	if err != nil {
		if errors.Is(err, syscall.ESRCH) {
			return nil
		}
		return &victim{fd: -1}
	}
	st, err := proc.Stat(d.pid)
	if err != nil || st.Ppid != d.ppid {
		unix.Close(fd)
		return nil
	}
	return &victim{fd: fd}
}

func (v *victim) send(pid int, sig syscall.Signal) error {
	if v.fd >= 0 {
		return unix.PidfdSendSignal(v.fd, sig, nil, 0)
	}
	return unix.Kill(pid, sig)
}

// exited reports whether the process of pidfd fd has exited.
func exited(fd int) bool {
	p := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	n, err := unix.Poll(p, 0)
	return err == nil && n > 0 && p[0].Revents&(unix.POLLIN|unix.POLLHUP|unix.POLLERR) != 0
}

// hurried drains the signals received while descendants are terminated
// (they are no longer forwarded) and reports whether one asks to hurry.
func (s *supervision) hurried() bool {
	hurry := false
	for {
		select {
		case sig := <-s.sigs.c:
			taken(sig)
			switch sig {
			case unix.SIGINT, unix.SIGTERM, unix.SIGHUP, unix.SIGQUIT:
				hurry = true
			}
		case <-s.sigs.chld:
		default:
			return hurry
		}
	}
}
