package guard

import (
	"fmt"
	"time"

	"github.com/ipcguard/ipcguard/internal/journal"
	"github.com/ipcguard/ipcguard/ipcdiff"
	"github.com/ipcguard/ipcguard/supervisor"
)

// cursorReader reads the pid allocator: its state, a moment before the
// reading and one after it.
type cursorReader func() (st supervisor.CursorState, before, after time.Time, err error)

func readCursorNow() (supervisor.CursorState, time.Time, time.Time, error) {
	before := time.Now()
	c, err := supervisor.ReadCursor(procRoot)
	return c, before, time.Now(), err
}

// journalTreeAt rebuilds the tree a journal recorded, for the same
// decision as a run's: never exact (the supervisor died, later forks went
// unseen); each member counts from its fork to its exit as recorded, or
// only at its fork when the exit was not (after the supervisor died nobody
// watched, and a sweep runs once every member has ended); creation
// evidence as recorded; and the pid watch as far as the journal has it,
// carried on to what now reads of the pid allocator (see journalWatch).
func journalTreeAt(rec *journal.Record, now cursorReader) (*supervisor.Tree, supervisor.Watch) {
	t := supervisor.NewTree("journal", rec.CommandPid)
	var rootEnd time.Time
	for _, m := range rec.Members {
		switch {
		case m.Pid == rec.CommandPid && m.Joined.IsZero():
			rootEnd = m.Left
		case !m.Joined.IsZero():
			end := m.Left
			if end.IsZero() {
				end = m.Joined
			}
			t.Join(m.Pid, m.Joined)
			t.Leave(m.Pid, end)
		}
	}
	if rec.CommandPid > 0 && !rec.CommandAt.IsZero() {
		if rootEnd.IsZero() {
			rootEnd = rec.CommandAt
		}
		t.Join(rec.CommandPid, rec.CommandAt)
		t.Leave(rec.CommandPid, rootEnd)
	}
	for _, g := range rec.Gets {
		t.SawCreate(g.Type.String(), g.ID, g.Proven, g.At)
	}
	// What the supervisor recorded is complete up to its last record.
	last := rec.CommandAt
	for _, m := range rec.Members {
		last = latest(last, m.Joined, m.Left)
	}
	for _, c := range rec.Watch {
		last = latest(last, c.To)
	}
	t.SetFinished(last)
	w := journalWatch(rec, t.Pids(), now)
	t.SetWatch(w)
	return t, w
}

// sweepTree is the tree a sweep decides with: a journal's, or, when its
// compaction left member stays out, one in which a pid not known as a
// member at a time is never taken for a stranger's (see compactedTree).
func sweepTree(rec *journal.Record, now cursorReader) (ipcdiff.Tree, supervisor.Watch) {
	t, w := journalTreeAt(rec, now)
	if rec.Compacted.Stays > 0 {
		return compactedTree{t}, w
	}
	return t, w
}

// compactedTree is the tree of a journal whose compaction left member
// stays out (journal.Compaction). A pid it does not know as a member at a
// time may be a member whose stay was left out: it is ambiguous, never
// outside the tree, since a pid merely unknown to an inexact tracker does
// not count against an object the tree was seen creating.
type compactedTree struct{ *supervisor.Tree }

// Holder implements ipcdiff.Tree.
func (t compactedTree) Holder(pid int, from, to time.Time) (ipcdiff.Holder, bool, string) {
	h, exact, why := t.Tree.Holder(pid, from, to)
	if h == ipcdiff.HeldOutside && pid > 0 {
		return ipcdiff.HeldAmbiguous, false, fmt.Sprintf("pid %d may have been a member whose record the journal's compaction left out", pid)
	}
	return h, exact, why
}

func latest(t time.Time, ts ...time.Time) time.Time {
	for _, u := range ts {
		if u.After(t) {
			t = u
		}
	}
	return t
}

// journalWatch rebuilds the pid watch of a journal, and carries it on to
// now: the pid allocator is the kernel's, so from the cursor the watch
// read last and the cursor now, a sweep knows what may have been handed
// out since the supervisor died, as the supervisor would have. A journal
// that lost a record (a damaged line) has no watch: the lost record may
// be the one that showed a hand-out.
func journalWatch(rec *journal.Record, pids []int, now cursorReader) supervisor.Watch {
	n := len(rec.Watch)
	if n == 0 || len(rec.Pre) == 0 || rec.Namespaces.Pid == "" {
		return supervisor.Watch{Why: "the journal holds no record of the pid watch"}
	}
	if rec.Damaged() {
		return supervisor.Watch{Why: "the journal lost records (damaged lines), perhaps of the pid watch"}
	}
	log := make([]supervisor.Crossing, n, n+1)
	for i, c := range rec.Watch {
		// A record compaction merged is too coarse in time to place a
		// member's own hand-out in (journal.Compaction).
		log[i] = supervisor.Crossing{From: c.From, To: c.To, Lo: c.Lo, Hi: c.Hi, All: c.All, Unwatched: c.Merged}
	}
	until := log[n-1].To
	if cur, before, after, err := now(); err == nil {
		last := supervisor.CursorState{Cursor: rec.LastCursor.Cursor, Threads: rec.LastCursor.Threads,
			ForksLo: rec.LastCursor.ForksLo, ForksHi: rec.LastCursor.ForksHi, PidMax: rec.LastCursor.PidMax, InitNS: cur.InitNS}
		c, ok := supervisor.Step(last, log[n-1].From, cur, after)
		if !cur.InitNS {
			// Outside the initial pid namespace a process privileged over
			// it may have moved the cursor back and forth over the time
			// nobody watched (even to where it was): any number may have
			// been handed out again.
			c, ok = supervisor.Crossing{From: log[n-1].From, To: after, All: true}, true
		}
		if ok {
			c.Unwatched = true
			log = append(log, c)
		}
		until = before
	}
	return supervisor.NewWatch(log[0].From, until, rec.Pre, log, pids)
}
