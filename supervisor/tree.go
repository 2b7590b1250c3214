package supervisor

import (
	"sort"
	"syscall"
	"time"

	"github.com/ipcguard/ipcguard/ipcdiff"
)

// Span is a time during which a pid was a member of the tree. End is zero
// when the member was still running when tracking finished.
type Span struct {
	Start, End time.Time
}

// Tree is the set of processes that were ever part of the command's tree,
// as one tracker saw it. It implements ipcdiff.Tree.
type Tree struct {
	Tracker string // mechanism that produced it ("perf", "perf+syscalls", "proc-connector", "poll")
	Root    int    // the command's pid
	// Exact is true when the tracker saw every fork of the tree (no lost
	// events), so a pid it did not see was certainly not a member.
	Exact bool
	// Note says why the tree is not exact, or what degraded.
	Note string
	// CreationTracked is true when every shmget/semget/msgget of the tree was
	// observed (syscall tracepoints, no lost events).
	CreationTracked bool

	spans   map[int][]Span
	created map[string]map[int]creation
	// foreign holds, per pid, when a process outside the tree was seen
	// taking that pid number after it had been a member (pid reuse).
	foreign map[int][]time.Time

	// finished is when the tracker finished: members whose span is still
	// open were running then.
	finished time.Time
	// watch is what the pid watch saw (SetWatch); without it no pid
	// number is proven free of reuse.
	watch Watch
}

// NewTree returns an empty tree for tracker name rooted at pid root.
func NewTree(name string, root int) *Tree {
	return &Tree{Tracker: name, Root: root, spans: map[int][]Span{}, created: map[string]map[int]creation{}, foreign: map[int][]time.Time{}}
}

// Join records that pid became a member at time at.
func (t *Tree) Join(pid int, at time.Time) {
	s := t.spans[pid]
	if n := len(s); n > 0 && s[n-1].End.IsZero() {
		return // already a live member
	}
	t.spans[pid] = append(s, Span{Start: at})
}

// Leave records that member pid exited at time at.
func (t *Tree) Leave(pid int, at time.Time) {
	s := t.spans[pid]
	if n := len(s); n > 0 && s[n-1].End.IsZero() {
		s[n-1].End = at
	}
}

// Foreign records that a process outside the tree took the number of
// former (or current) member pid at time at: pid reuse. The member must
// have died before, so an open span of pid ends at at; later activity of
// that pid number is not the tree's until pid joins again.
func (t *Tree) Foreign(pid int, at time.Time) {
	if len(t.spans[pid]) == 0 {
		return // never a member: nothing to guard
	}
	t.Leave(pid, at)
	t.foreign[pid] = append(t.foreign[pid], at)
}

// extend moves the end of pid's last, ended span to at when at is later:
// a thread of the member outlived its thread-group leader, whose exit
// ended the span.
func (t *Tree) extend(pid int, at time.Time) {
	s := t.spans[pid]
	if n := len(s); n > 0 && !s[n-1].End.IsZero() && at.After(s[n-1].End) {
		s[n-1].End = at
	}
}

// IsLive reports whether pid is currently a member (joined and not left).
func (t *Tree) IsLive(pid int) bool {
	s := t.spans[pid]
	return len(s) > 0 && s[len(s)-1].End.IsZero()
}

// creation is what the creation tracker saw of one id: the last get of
// the tree that returned it, and whether that get must have made a new
// object.
type creation struct {
	at     time.Time
	proven bool
}

// SawCreate records that a get of the tree returned object typ/id at time
// at; proven says the get must have made a new object (IPC_PRIVATE, or
// IPC_CREAT|IPC_EXCL).
func (t *Tree) SawCreate(typ string, id int, proven bool, at time.Time) {
	m := t.created[typ]
	if m == nil {
		m = map[int]creation{}
		t.created[typ] = m
	}
	if c, ok := m[id]; !ok || !at.Before(c.at) {
		m[id] = creation{at: at, proven: proven}
	}
}

// Spans returns the membership spans of pid.
func (t *Tree) Spans(pid int) []Span { return t.spans[pid] }

// Pids returns every pid that was ever a member, sorted.
func (t *Tree) Pids() []int {
	p := make([]int, 0, len(t.spans))
	for pid := range t.spans {
		p = append(p, pid)
	}
	sort.Ints(p)
	return p
}

// Created implements ipcdiff.Tree.
func (t *Tree) Created(typ string, id int) (created, proven bool, at time.Time, tracked bool) {
	c, created := t.created[typ][id]
	return created, c.proven, c.at, t.CreationTracked
}

// SetFinished sets when the tree's tracking finished: a member whose span is
// still open was running then.
func (t *Tree) SetFinished(at time.Time) { t.finished = at }

// SetWatch gives the tree what the pid watch saw; until then (and with a
// Watch that is not OK) no pid number is proven free of reuse.
func (t *Tree) SetWatch(w Watch) { t.watch = w }

// Until implements ipcdiff.Tree: when the tracker finished (the record of
// the tree is complete up to then).
func (t *Tree) Until() time.Time { return t.finished }

// Holder implements ipcdiff.Tree. The pid watch gives the times at which a
// process outside the tree may have held the number (see foreignTimes).
// When there is none in [from, to] and a member had the number by then,
// whoever acted with it in that window was a member: from its fork on the
// number was the member's until the kernel handed it out again. An exact
// tracker also knows each member's exit: a window in which no member ran
// is outside the tree, whatever the watch says.
func (t *Tree) Holder(pid int, from, to time.Time) (ipcdiff.Holder, bool, string) {
	if pid <= 0 || !t.startedBy(pid, to) {
		return ipcdiff.HeldOutside, t.Exact, ""
	}
	if t.Exact && !t.held(pid, from, to) {
		// The tracker saw each member's exit: none ran under the number
		// in the window.
		return ipcdiff.HeldOutside, true, ""
	}
	f := t.foreignTimes(pid)
	if why := t.whyForeign(pid, f, from, to); why != "" {
		return ipcdiff.HeldAmbiguous, t.Exact, why
	}
	return ipcdiff.HeldByTree, t.Exact, ""
}

// startedBy reports whether a member had pid number pid by time at.
func (t *Tree) startedBy(pid int, at time.Time) bool {
	for _, s := range t.spans[pid] {
		if !s.Start.After(at) {
			return true
		}
	}
	return false
}

// Alive implements ipcdiff.Tree: members not seen to exit that still exist.
func (t *Tree) Alive() []int {
	var live []int
	for _, pid := range t.Pids() {
		if t.IsLive(pid) && processExists(pid) {
			live = append(live, pid)
		}
	}
	return live
}

func processExists(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || err == syscall.EPERM
}

// ensureRoot makes the command's own span [start, end] part of the tree.
func (t *Tree) ensureRoot(pid int, start, end time.Time) {
	for _, s := range t.spans[pid] {
		if !s.Start.After(start.Add(ipcdiff.MembershipSlack)) && (s.End.IsZero() || !s.End.Before(end)) {
			return
		}
	}
	t.spans[pid] = append(t.spans[pid], Span{Start: start, End: end})
}

// Member reports whether pid was a member of t at some moment of [from,
// to] widened by ipcdiff.MembershipSlack, and whether t is exact (saw
// every fork of the tree). A pid <= 0 is never a member.
func (t *Tree) Member(pid int, from, to time.Time) (m, exact bool) {
	if pid <= 0 {
		return false, true
	}
	from, to = from.Add(-ipcdiff.MembershipSlack), to.Add(ipcdiff.MembershipSlack)
	for _, s := range t.Spans(pid) {
		if !s.Start.After(to) && (s.End.IsZero() || !s.End.Before(from)) {
			return true, t.Exact
		}
	}
	return false, t.Exact
}
