package supervisor

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"
)

// tracker learns the command's process tree while it runs.
//
// The supervisor calls, in order: setJoined (optional) before anything
// else; beforeStart on the OS thread that will fork the command (locked, so
// events opened on "this thread, inherited" cover the command and all its
// descendants); started with the command's pid right after the fork;
// finish once the command and every descendant have exited (or when the
// supervisor gives up waiting for them), which drains pending events and
// returns the tree.
//
// Trackers never wait(2) on anything: the supervisor owns every wait.
// finish may be called without started (the command could not be
// started): it releases everything and returns a tree with Root 0.
// finish is idempotent and returns the same tree each time.
type tracker interface {
	name() string
	beforeStart() error
	started(pid int, at time.Time)
	finish() *Tree
	// setJoined installs a hook called as members are learned (the
	// journal appends them), not for the root, which the supervisor knows.
	// The hook runs on a tracker goroutine, one call at a time, in the
	// order members were learned; it must not call back into the tracker
	// and should be quick (a journal append). Members learned only while
	// finish drains are reported before finish returns. Call before
	// beforeStart.
	setJoined(fn func(pid int, at time.Time))
	// setLeft installs a hook called, like the joined hook and in the same
	// order with it, when a member's exit is seen (the journal closes its
	// span). Trackers that cannot see exits exactly (poll) never call it.
	setLeft(fn func(pid int, at time.Time))
	// setGot installs a hook called, in the same order with the others,
	// for each id a get of the tree returned (creation tracking).
	setGot(fn func(typ string, id int, proven bool, at time.Time))
	// adoptSelfChildren says that this process forks nothing but the
	// command while the tracker runs (Run): a child of this process other
	// than the command is then a clone(CLONE_PARENT) of the tree, which
	// the kernel reports as this process's child.
	adoptSelfChildren()
}

// TrackerKind names a tree-tracking mechanism.
type TrackerKind string

const (
	TrackAuto    TrackerKind = "auto"           // the most exact one that works here
	TrackPerf    TrackerKind = "perf"           // perf_event_open task events (+ syscall tracepoints as root)
	TrackProcCon TrackerKind = "proc-connector" // netlink proc connector (needs privileges)
	TrackPoll    TrackerKind = "poll"           // subreaper + polling /proc
)

// newTracker returns the tracker of the given kind; TrackAuto picks the most
// exact one that works here, falling back in order. creation asks for
// syscall-level creation tracking where privileges allow it.
//
// TrackAuto decides in beforeStart (perf must be opened on the forking
// thread): perf (with the syscall tracepoints when creation is asked and
// tracefs is readable, i.e. as root), then the proc connector, then
// polling; the Note of the final tree says what was tried and why it
// failed. An explicit kind is probed here and returns an error when it
// cannot work on this machine.
func newTracker(kind TrackerKind, creation bool) (tracker, error) {
	switch kind {
	case TrackAuto, "":
		return &autoTracker{cands: []tracker{
			newPerfTracker(creation),
			newProcConTracker(),
			newPollTracker(proc),
		}}, nil
	case TrackPerf:
		if err := probePerf(); err != nil {
			return nil, fmt.Errorf("%w: perf: %w", errNoTracker, err)
		}
		return newPerfTracker(creation), nil
	case TrackProcCon:
		if err := probeProcCon(); err != nil {
			return nil, fmt.Errorf("%w: proc-connector: %w", errNoTracker, err)
		}
		return newProcConTracker(), nil
	case TrackPoll:
		if !proc.HasChildrenFiles() {
			return nil, fmt.Errorf("%w: poll: %w", errNoTracker, errNoChildrenFiles)
		}
		return newPollTracker(proc), nil
	}
	return nil, fmt.Errorf("%w: unknown tracker %q", errNoTracker, kind)
}

var errNoChildrenFiles = errors.New("no /proc/PID/task/TID/children (CONFIG_PROC_CHILDREN)")

// autoTracker opens the first candidate that works and delegates to it.
type autoTracker struct {
	cands  []tracker
	chosen tracker
	failed []string // "perf: reason"
	joined func(pid int, at time.Time)
	left   func(pid int, at time.Time)
	got    func(typ string, id int, proven bool, at time.Time)
	adopt  bool
	tree   *Tree
}

func (a *autoTracker) name() string {
	if a.chosen != nil {
		return a.chosen.name()
	}
	return string(TrackAuto)
}

func (a *autoTracker) setJoined(fn func(pid int, at time.Time)) { a.joined = fn }
func (a *autoTracker) setLeft(fn func(pid int, at time.Time))   { a.left = fn }
func (a *autoTracker) setGot(fn func(typ string, id int, proven bool, at time.Time)) {
	a.got = fn
}
func (a *autoTracker) adoptSelfChildren() { a.adopt = true }

func (a *autoTracker) beforeStart() error {
	for _, c := range a.cands {
		c.setJoined(a.joined)
		c.setLeft(a.left)
		c.setGot(a.got)
		if a.adopt {
			c.adoptSelfChildren()
		}
		if err := c.beforeStart(); err != nil {
			a.failed = append(a.failed, c.name()+": "+err.Error())
			continue
		}
		a.chosen = c
		return nil
	}
	return fmt.Errorf("%w: %s", errNoTracker, strings.Join(a.failed, "; "))
}

func (a *autoTracker) started(pid int, at time.Time) {
	if a.chosen != nil {
		a.chosen.started(pid, at)
	}
}

func (a *autoTracker) finish() *Tree {
	if a.tree != nil {
		return a.tree
	}
	if a.chosen == nil {
		a.tree = NewTree("none", 0)
		a.tree.Note = strings.Join(a.failed, "; ")
		return a.tree
	}
	t := a.chosen.finish()
	if len(a.failed) > 0 {
		t.Note = joinNotes(strings.Join(a.failed, "; "), t.Note)
	}
	a.tree = t
	return t
}

func joinNotes(notes ...string) string {
	var keep []string
	for _, n := range notes {
		if n != "" {
			keep = append(keep, n)
		}
	}
	return strings.Join(keep, "; ")
}

// member is one learned member, for the joined hook, or one id a get of
// the tree returned, for the got hook.
type member struct {
	pid  int
	at   time.Time
	left bool // an exit, not a join

	get    string // an id a get returned: object type
	id     int
	proven bool
}

// trackBase is what every tracker shares: the tree being built under mu,
// and the joined hook.
type trackBase struct {
	mu     sync.Mutex // guards b
	b      builder
	hookMu sync.Mutex // serializes hook calls
	joined func(pid int, at time.Time)
	left   func(pid int, at time.Time)
	got    func(typ string, id int, proven bool, at time.Time)
	// selfChildren: see tracker.adoptSelfChildren.
	selfChildren bool
}

func (tb *trackBase) setGot(fn func(typ string, id int, proven bool, at time.Time)) { tb.got = fn }
func (tb *trackBase) adoptSelfChildren()                                            { tb.selfChildren = true }

func (tb *trackBase) setJoined(fn func(pid int, at time.Time)) { tb.joined = fn }
func (tb *trackBase) setLeft(fn func(pid int, at time.Time))   { tb.left = fn }

// takeJoins returns the joins and exits learned since the last call, in
// the order they were applied; call with mu held.
func (tb *trackBase) takeJoins() []member {
	j := tb.b.events
	tb.b.events = nil
	return j
}

// report calls the hooks for js; call without mu held.
func (tb *trackBase) report(js []member) {
	if len(js) == 0 || (tb.joined == nil && tb.left == nil && tb.got == nil) {
		return
	}
	tb.hookMu.Lock()
	defer tb.hookMu.Unlock()
	for _, m := range js {
		switch {
		case m.get != "":
			if tb.got != nil {
				tb.got(m.get, m.id, m.proven, m.at)
			}
		case m.left && tb.left != nil:
			tb.left(m.pid, m.at)
		case !m.left && tb.joined != nil:
			tb.joined(m.pid, m.at)
		}
	}
}

// builder turns fork and exit events, applied in causal order, into a
// Tree. Callers serialize.
type builder struct {
	tree *Tree
	// reused marks pids whose number a process outside the tree took after
	// their last span: events of that pid are no longer the tree's.
	reused map[int]bool
	events []member // joins and exits, in order, for the hooks
}

func newBuilder(name string, root int) builder {
	return builder{tree: NewTree(name, root), reused: map[int]bool{}}
}

// isMember reports whether the current holder of pid number p is the
// tree's: p was a member and no foreign process took the number since.
// A member whose thread-group leader exited (span ended) but whose other
// threads still run is still the tree's.
func (b *builder) isMember(p int) bool {
	return len(b.tree.spans[p]) > 0 && !b.reused[p]
}

// join makes pid a member from at.
func (b *builder) join(pid int, at time.Time) {
	if b.tree.IsLive(pid) {
		// A new process under a number still open: its exit was lost.
		b.tree.Leave(pid, at)
	}
	b.tree.Join(pid, at)
	delete(b.reused, pid)
	if pid != b.tree.Root {
		b.events = append(b.events, member{pid: pid, at: at})
	}
}

// fork applies "process parent forked process child" when parent
// membership decides (proc connector): a member's child joins; a foreign
// process taking a member's number marks reuse.
func (b *builder) fork(parent, child int, at time.Time) {
	if parent == child {
		return // a thread
	}
	if b.isMember(parent) {
		b.tree.extend(parent, at) // it was alive to fork
		b.join(child, at)
		return
	}
	b.foreign(child, at)
}

// thread applies "process pid, a member, made a thread tid": the thread
// is a member too, under its own number (the kernel records a thread's
// own id for a message it receives while waiting: msg lrpid).
func (b *builder) thread(pid, tid int, at time.Time) {
	if pid == tid || !b.isMember(pid) {
		return
	}
	b.tree.extend(pid, at) // it was alive to make a thread
	b.join(tid, at)
}

// foreign applies "a process outside the tree now holds pid".
func (b *builder) foreign(pid int, at time.Time) {
	if len(b.tree.spans[pid]) > 0 && !b.reused[pid] {
		b.tree.Foreign(pid, at)
		b.reused[pid] = true
	}
}

// exit applies "thread tid of process pid exited". The exit of the thread
// group leader (pid == tid) ends the span; a later exit of another thread
// of the same process moves the end.
func (b *builder) exit(pid, tid int, at time.Time) {
	if tid != pid && b.isMember(tid) && b.tree.IsLive(tid) {
		// A member thread: its own number is free from now on.
		b.tree.Leave(tid, at)
		b.events = append(b.events, member{pid: tid, at: at, left: true})
	}
	if !b.isMember(pid) {
		return
	}
	if b.tree.IsLive(pid) {
		if pid == tid {
			b.tree.Leave(pid, at)
			b.events = append(b.events, member{pid: pid, at: at, left: true})
		}
		return
	}
	b.tree.extend(pid, at)
}

// pollNote is the Note an inexact tracker leaves.
const pollNote = "polling may miss short-lived processes"

// selfPid is the supervisor's pid, whose own events every tracker ignores.
var selfPid = os.Getpid()
