package supervisor

import (
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// Options describe one supervised run.
type Options struct {
	Path string   // executable to run, already resolved (see LookPath)
	Args []string // argv, Args[0] as the user gave it
	Env  []string // nil means os.Environ()
	Dir  string   // "" means the current directory

	// Stdin, Stdout, Stderr default to the supervisor's own.
	Stdin, Stdout, Stderr *os.File

	Tracker       TrackerKind // "" means TrackAuto
	TrackCreation bool        // also watch shmget/semget/msgget where allowed
	// CreationSeccomp starts the command with no_new_privs and a seccomp
	// filter whose listener this process answers: semget and msgget calls
	// of the tree that may create are made here, for the caller, which
	// proves their creation (seccomp_linux.go). The ids go to Got (proven)
	// and into the tree; the tree's Note says what the watch did, or why
	// it could not be installed (the command then runs without it).
	CreationSeccomp bool

	// Terminate decides, from the command's status, whether descendants
	// still running after the command exited are terminated (SIGTERM, Grace,
	// SIGKILL) before Run returns. nil leaves them running.
	Terminate func(ws unix.WaitStatus) bool
	Grace     time.Duration // default 5s

	// KillAfter, when positive, is a stop budget as timeout(1)'s -k: once a
	// SIGINT, SIGTERM, SIGHUP or SIGQUIT has been forwarded, if the
	// command is still running KillAfter later, the command and every
	// descendant get SIGKILL, so that what follows (cleanup) runs before a
	// CI runner's own SIGKILL. 0 means never.
	KillAfter time.Duration

	// WaitDescendants keeps Run supervising, once the command has exited
	// (and Terminate did not end its descendants), until every
	// descendant is gone: as child subreaper this process adopts each
	// orphan of the tree, so when it has no child left, no descendant
	// is left. Meanwhile, and already while the command runs, each
	// forwarded signal goes to every child of this process: the command
	// and the orphans adopted (a daemon's main process, which signals
	// its own children as it sees fit), not to their descendants. The
	// exits of the processes reaped after the command are in
	// Result.Outlived.
	WaitDescendants bool

	// Started is called right after the command started (journal).
	Started func(pid int, at time.Time)
	// Exited is called right after the command was reaped, with its
	// status, before Run ends leftover descendants or waits for them; may
	// be nil.
	Exited func(ws unix.WaitStatus)
	// Joined is called as tree members are learned (journal); may be nil.
	Joined func(pid int, at time.Time)
	// Left is called as members' exits are seen (journal); may be nil.
	Left func(pid int, at time.Time)
	// Got is called for each id a get of the tree returned, when creation
	// is tracked (journal); proven says the get made the object. May be nil.
	Got func(typ string, id int, proven bool, at time.Time)
	// Logf receives diagnostics meant for the user's stderr; may be nil.
	Logf func(format string, args ...any)
}

// Result is the outcome of a supervised run.
type Result struct {
	Pid     int
	Status  unix.WaitStatus
	Started time.Time
	Ended   time.Time
	Tree    *Tree
	// Terminated lists descendants that had to be signalled after the command
	// exited, and Killed those that needed SIGKILL.
	Terminated, Killed []int
	// Remaining lists descendants left running (Terminate returned false).
	Remaining []int
	// KilledAfter lists the processes killed when KillAfter ran out (the
	// command first); empty when it did not.
	KilledAfter []int
	// Outlived lists, with WaitDescendants, how the processes this
	// process reaped after the command had exited ended: the orphans of
	// the tree (reparented here), in the order they were reaped. A
	// descendant reaped by its own parent is not among them.
	Outlived []ChildExit
	// ForkTid is the thread of this process that forked the command; it
	// exits once the command has started (its number was handed out for
	// the run, and is this process's, not a stranger's).
	ForkTid int
}

// ChildExit is the end of one child: its pid, wait status and when it
// was reaped.
type ChildExit struct {
	Pid    int
	Status unix.WaitStatus
	At     time.Time
}

// ExecError is a failure to start the command, with the exit status env(1)
// uses for it: 127 not found, 126 found but not executable.
type ExecError struct {
	Cmd  string
	Code int
	Err  error
}

func (e *ExecError) Error() string { return e.Cmd + ": " + e.Err.Error() }
func (e *ExecError) Unwrap() error { return e.Err }
