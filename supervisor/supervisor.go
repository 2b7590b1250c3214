package supervisor

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/ipcguard/ipcguard/internal/procfs"
	"golang.org/x/sys/unix"
)

// defaultGrace is the time descendants get between SIGTERM and SIGKILL.
const defaultGrace = 5 * time.Second

// Run starts the command of opts and supervises it until it has exited:
//
//   - This process becomes a child subreaper: orphaned descendants of the
//     command are reparented to it and reaped.
//   - Every catchable signal (see forwarded) is caught from before the
//     fork (from Prepare on, if it was called) and forwarded once to the
//     command; SIGCHLD drives the one loop that waits for children. Run
//     must be the only code of the process that starts and waits for
//     children while it runs.
//   - The command runs in its own process group. When this process is in
//     the foreground of its controlling terminal the command's group gets
//     the foreground, and job control (Ctrl-Z, fg, bg) is passed through.
//   - The command inherits the standard streams of opts (default: this
//     process's), every descriptor this process inherited without
//     close-on-exec, the environment, working directory, umask, resource
//     limits, and the signal mask and ignored signals this process started
//     with (see package sigstart and inheritIgnored for what the Go runtime
//     lets through).
//   - A service manager's protocols keep working through this process:
//     with NOTIFY_SOCKET set, the command gets a socket of this process
//     whose messages are relayed from this process's pid, MAINPID= dropped
//     (notify_linux.go); LISTEN_PID and WATCHDOG_PID that name this
//     process name the command in its environment (listen_linux.go).
//
// Once the command has exited, remaining descendants are terminated
// (SIGTERM, opts.Grace, SIGKILL) if opts.Terminate says so, waited for
// with opts.WaitDescendants, and left running otherwise;
// Result.Remaining lists those left running, or that could not be killed. Signals that arrive from then on
// are dropped. Run returns the tree the tracker saw; Result.Tree is never
// nil.
//
// A command that cannot be started is an *ExecError (127 not found, 126
// not executable). Other errors mean Run could not supervise at all.
func Run(opts Options) (*Result, error) {
	if len(opts.Args) == 0 {
		return nil, errors.New("supervisor: no command")
	}
	path := opts.Path
	if path == "" {
		p, err := LookPath(opts.Args[0], opts.Env)
		if err != nil {
			return nil, err
		}
		path = p
	}
	if opts.Dir != "" {
		if st, err := os.Stat(opts.Dir); err != nil {
			return nil, fmt.Errorf("supervisor: working directory: %w", err)
		} else if !st.IsDir() {
			return nil, fmt.Errorf("supervisor: working directory %s: %w", opts.Dir, syscall.ENOTDIR)
		}
	}
	env := opts.Env
	if env == nil {
		env = os.Environ()
	}
	if opts.Logf == nil {
		opts.Logf = func(string, ...any) {}
	}
	env, relay := withNotifyRelay(env, opts.Logf)
	defer relay.stop()
	files := []*os.File{opts.Stdin, opts.Stdout, opts.Stderr}
	for i, std := range []*os.File{os.Stdin, os.Stdout, os.Stderr} {
		if files[i] == nil {
			files[i] = std
		}
	}
	if opts.Grace <= 0 {
		opts.Grace = defaultGrace
	}

	if err := setSubreaper(); err != nil {
		return nil, fmt.Errorf("supervisor: becoming a child subreaper: %w", err)
	}
	tty := openTerminal()
	defer tty.close()

	kind := opts.Tracker
	if kind == "" {
		kind = TrackAuto
	}
	tr, trErr := newTracker(kind, opts.TrackCreation)
	// A tracker asked for by name is a promise of how the tree is
	// followed: if it cannot work here, the command is not started.
	required := kind != TrackAuto
	if required && trErr != nil {
		return nil, trErr
	}
	if tr != nil && opts.Joined != nil {
		tr.setJoined(opts.Joined)
	}
	if tr != nil && opts.Left != nil {
		tr.setLeft(opts.Left)
	}
	if tr != nil && opts.Got != nil {
		tr.setGot(opts.Got)
	}
	if tr != nil {
		tr.adoptSelfChildren()
	}
	// Last before the fork: catching takes a while, and Prepare may have
	// started it in the background.
	sigs := catch()
	defer sigs.stop()

	attr := &syscall.ProcAttr{
		Dir:   opts.Dir,
		Env:   env,
		Files: []uintptr{files[0].Fd(), files[1].Fd(), files[2].Fd()},
		Sys:   &syscall.SysProcAttr{Setpgid: true},
	}
	if tty.isForeground() {
		attr.Sys.Foreground = true
		attr.Sys.Ctty = tty.fd
	}
	var tramp *viaTrampoline
	if names := selfPidVars(env); len(names) > 0 {
		tramp = &viaTrampoline{names: names}
	} else if startState.Ignored&^(1<<(unix.SIGKILL-1)|1<<(unix.SIGSTOP-1)) != 0 {
		// Signals ignored at start must reach the command ignored. This
		// process handles them (to forward them), and setting SIG_IGN
		// around the fork would drop one sent meanwhile: the trampoline,
		// a second start of this program, ignores them before the exec.
		tramp = &viaTrampoline{}
	}
	if opts.CreationSeccomp {
		if tramp == nil {
			tramp = &viaTrampoline{}
		}
		tramp.seccomp = true
	}
	st := start(path, opts.Args, attr, tr, tty, required, sigs, tramp)
	if st.trErr != nil && required {
		st.release()
		return nil, st.trErr
	}
	if st.noTrampoline != nil && len(tramp.names) > 0 {
		opts.Logf("cannot give the command its own pid in %s (%v): it gets ipcguard's", strings.Join(tramp.names, ", "), st.noTrampoline)
	}
	var watch *creationWatch
	var watchNote string
	if opts.CreationSeccomp && st.err == nil {
		switch {
		case st.noTrampoline != nil:
			watchNote = fmt.Sprintf("seccomp: not installed: %v (the command was started directly)", st.noTrampoline)
		case tramp.listener < 0:
			watchNote = fmt.Sprintf("seccomp: not installed: %v", tramp.filterErr)
		default:
			var err error
			if watch, err = startCreationWatch(tramp.listener, opts.Got); err != nil {
				// The listener is closed: the tree's creating gets fail
				// with ENOSYS. Say so loudly.
				opts.Logf("seccomp creation tracking failed (%v): semget and msgget calls that create fail with ENOSYS in the command", err)
				watchNote = "seccomp: " + err.Error()
			}
		}
	} else if tramp != nil && tramp.listener >= 0 {
		unix.Close(tramp.listener)
	}
	if st.trErr != nil {
		trErr = st.trErr
		tr = nil
	}
	if st.err != nil {
		if tr != nil {
			tr.finish()
		}
		st.release()
		return nil, execError(opts.Args[0], st.err)
	}
	if st.noForeground != nil {
		opts.Logf("supervisor: cannot give the terminal to the command: %v", st.noForeground)
	}
	for _, f := range files {
		runtime.KeepAlive(f)
	}
	if opts.Started != nil {
		opts.Started(st.pid, st.at)
	}

	s := &supervision{pid: st.pid, sigs: sigs, tty: tty, handed: attr.Sys.Foreground, logf: opts.Logf,
		killAfter: opts.KillAfter, waitAll: opts.WaitDescendants}
	s.wait()
	if opts.Exited != nil {
		opts.Exited(s.ws)
	}
	res := &Result{Pid: st.pid, Status: s.ws, Started: st.at, Ended: s.ended, KilledAfter: s.killedAfter, ForkTid: st.tid}
	s.reclaimTerminal()
	var leftover []member

	if opts.Terminate != nil && opts.Terminate(s.ws) {
		// Whatever the tracker saw, the descendants still running now are
		// members of the tree: note when each started, before killing it.
		for _, d := range descendants() {
			if t, err := proc.StartTicks(d.pid); err == nil {
				leftover = append(leftover, member{pid: d.pid, at: procfs.StartWall(t)})
			}
		}
		res.Terminated, res.Killed, res.Remaining = s.terminate(opts.Grace)
	} else if s.waitAll {
		s.waitDescendants()
		res.Outlived = s.outlived
	} else {
		s.reap()
		for _, d := range descendants() {
			res.Remaining = append(res.Remaining, d.pid)
		}
	}

	finished := time.Now()
	if tr != nil {
		res.Tree = tr.finish()
	}
	var made []member
	if watch != nil {
		made, watchNote = watch.finish()
	}
	if st.release != nil {
		st.release()
	}
	if res.Tree == nil {
		res.Tree = NewTree("none", st.pid)
		if trErr != nil {
			res.Tree.Note = trErr.Error()
		}
	}
	if opts.CreationSeccomp {
		if watch != nil {
			res.Tree.Tracker += "+seccomp"
		}
		for _, m := range made {
			res.Tree.SawCreate(m.get, m.id, m.proven, m.at)
		}
		res.Tree.Note = joinNotes(res.Tree.Note, watchNote)
	}
	// The supervisor itself knows its child's lifetime exactly, whatever
	// the tracker saw or lost: from the fork to the reaping.
	res.Tree.finished = finished
	res.Tree.ensureRoot(st.pid, st.at, s.ended)
	end := time.Now()
	for _, m := range leftover {
		res.Tree.ensureRoot(m.pid, m.at, end)
	}
	return res, nil
}

// started is the outcome of start.
type started struct {
	pid          int
	at           time.Time
	err          error  // the command could not be started
	trErr        error  // the tracker could not be prepared (tracker dropped)
	noForeground error  // started, but without the terminal's foreground
	noTrampoline error  // started directly: the trampoline failed
	release      func() // lets the forking thread exit (after the tracker's finish)
	tid          int    // the forking thread
}

// start forks and executes the command on a new goroutine locked to its
// OS thread: the tracker's beforeStart opens its events on that thread,
// the fork inherits them, and the goroutine ends still locked, so that the
// thread exits and no later Go thread is forked from it (and inherits
// them). The child gets the signal mask and the ignored signals this
// process started with.
func start(path string, args []string, attr *syscall.ProcAttr, tr tracker, tty *terminal, required bool, sigs *signals, tramp *viaTrampoline) started {
	c := make(chan started, 1)
	go func() {
		runtime.LockOSThread()
		// No UnlockOSThread: the thread goes away with the goroutine.
		var st started
		st.tid = unix.Gettid()
		if tr != nil {
			if err := tr.beforeStart(); err != nil {
				st.trErr = err
				if required {
					st.trErr = fmt.Errorf("%w: %s: %w", errNoTracker, tr.name(), err)
				}
				tr.finish()
				tr = nil
			}
		}
		if st.trErr != nil && required {
			st.release = func() {}
			c <- st
			return
		}
		restoreMask := setStartMask()
		st.pid, st.err = forkExec(path, args, attr, tramp)
		undoIgnore := func() {}
		var te *trampolineError
		if errors.As(st.err, &te) {
			// No trampoline: the ignored signals are ignored around the
			// fork instead (one sent meanwhile is lost).
			st.noTrampoline, tramp = te.err, nil
			undoIgnore = sigs.ignoreForFork(inheritIgnored())
			st.pid, st.err = forkExec(path, args, attr, nil)
		}
		if st.err != nil && attr.Sys.Foreground {
			// The child may have taken the foreground before it failed.
			tty.setForeground(tty.pgrp)
			// Failing to hand the terminal over (it went away, or this
			// process left the foreground meanwhile) must not keep the
			// command from running: try again in the background. An
			// exec failure fails again, the same way.
			attr.Sys.Foreground = false
			pid, err := forkExec(path, args, attr, tramp)
			if err == nil {
				st.noForeground = st.err
			}
			st.pid, st.err = pid, err
		}
		restoreMask()
		undoIgnore()
		st.at = time.Now()
		if st.err == nil && tr != nil {
			tr.started(st.pid, st.at)
		}
		release := make(chan struct{})
		st.release = func() { close(release) }
		c <- st
		if tr != nil {
			// Keep this thread alive until the tracker has finished:
			// perf events inherited from it are created disabled once
			// it has exited, so later forks of the tree would go unseen.
			<-release
		}
	}()
	return <-c
}

// supervision is the state of one run between the fork and the command's
// end.
type supervision struct {
	pid  int // the command, leader of its own process group
	sigs *signals
	tty  *terminal
	// handed is true while the command's group holds the terminal's
	// foreground because this process gave it.
	handed  bool
	stopped bool // the command is stopped (as last reported by wait4)
	done    bool // the command has exited and was reaped
	ws      unix.WaitStatus
	ended   time.Time
	logf    func(format string, args ...any)
	// killAfter is Options.KillAfter; killedAfter what it killed.
	killAfter   time.Duration
	killedAfter []int
	// waitAll: signals also go to the orphans adopted, whose exits
	// after the command's are collected in outlived.
	waitAll  bool
	outlived []ChildExit
}

// wait forwards signals and reaps children until the command has exited.
func (s *supervision) wait() {
	var budget <-chan time.Time // armed by the first terminating signal
	s.reap()
	for !s.done {
		select {
		case <-s.sigs.chld:
			s.reap()
		case sig := <-s.sigs.c:
			taken(sig)
			s.forward(sig.(syscall.Signal))
			if s.killAfter > 0 && budget == nil && terminating(sig.(syscall.Signal)) {
				budget = time.After(s.killAfter)
			}
		case <-budget:
			s.killTree()
			s.reap()
		}
	}
}

// terminating reports whether sig asks the command to end (what starts
// the KillAfter budget).
func terminating(sig syscall.Signal) bool {
	return sig == unix.SIGINT || sig == unix.SIGTERM || sig == unix.SIGHUP || sig == unix.SIGQUIT
}

// killTree sends SIGKILL to the command and to every descendant of this
// process, scanning again for processes forked meanwhile until a scan
// finds none not yet killed (each through a pidfd checked against its
// parent, see track). The command is not reaped before s.done: its pid is
// still its own.
func (s *supervision) killTree() {
	if s.done {
		return
	}
	s.logf("supervisor: the command (pid %d) is still running %v after it was asked to stop: killing it and its descendants", s.pid, s.killAfter)
	unix.Kill(s.pid, unix.SIGKILL)
	killed := map[int]bool{s.pid: true}
	s.killedAfter = append(s.killedAfter, s.pid)
	for round := 0; round < 100; round++ {
		found := false
		for _, d := range descendants() {
			if killed[d.pid] {
				continue
			}
			v := track(d)
			if v == nil {
				continue
			}
			found = true
			killed[d.pid] = true
			if v.send(d.pid, unix.SIGKILL) == nil {
				s.killedAfter = append(s.killedAfter, d.pid)
			}
			if v.fd >= 0 {
				unix.Close(v.fd)
			}
		}
		if !found {
			return
		}
	}
}

// forward passes sig to the command and, with waitAll, to every other
// child of this process (the orphans it adopted). The command is not
// reaped before s.done, nor an adopted orphan before it is listed and
// signalled (one goroutine does both), so no pid can have been reused.
func (s *supervision) forward(sig syscall.Signal) {
	if !s.done {
		if sig == unix.SIGCONT && s.stopped && s.tty != nil {
			s.resume()
		} else {
			unix.Kill(s.pid, sig)
		}
	}
	if !s.waitAll {
		return
	}
	for _, pid := range childrenFunc()(os.Getpid()) {
		if pid != s.pid || s.done {
			unix.Kill(pid, sig)
		}
	}
}

// waitDescendants forwards signals and reaps children until this process
// has none left: every descendant is then gone, since each orphan of the
// tree is reparented here before its parent can be reaped.
func (s *supervision) waitDescendants() {
	for {
		s.reap()
		if !hasChildren() {
			return
		}
		select {
		case <-s.sigs.chld:
		case sig := <-s.sigs.c:
			taken(sig)
			s.forward(sig.(syscall.Signal))
		}
	}
}
