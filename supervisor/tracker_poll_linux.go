package supervisor

import (
	"time"

	"github.com/ipcguard/ipcguard/internal/procfs"
)

// pollTracker follows the tree by reading /proc/PID/task/*/children from
// the root down, and the supervisor's own children (orphans of the tree are
// reparented to the supervisor, a child subreaper), every pollInterval. It
// misses processes that live shorter than that: its trees are never exact.
//
// Every child of the supervisor that appears after started is taken for an
// orphan of the tree: the supervisor must not start other children while it
// tracks (children it had before started are remembered and excluded).
//
// A span starts at the process's start time from /proc/PID/stat (10 ms
// resolution) and ends when it was last seen running (before it was seen
// gone, a zombie, or replaced by another process under the same number).
type pollTracker struct {
	trackBase
	fs       procfs.FS
	interval time.Duration
	stop     chan struct{}
	done     chan struct{}

	// Under mu:
	root     int
	excluded map[int]uint64 // supervisor's children at started: pid → start
	live     map[int]*polled
	dead     map[int]uint64 // pid → start of a member seen dead, not to rejoin
	tree     *Tree
}

type polled struct {
	start    uint64
	lastSeen time.Time
	reached  bool
}

const pollInterval = time.Millisecond

func newPollTracker(fs procfs.FS) *pollTracker {
	return &pollTracker{fs: fs, interval: pollInterval}
}

func (t *pollTracker) name() string { return string(TrackPoll) }

func (t *pollTracker) beforeStart() error {
	if !t.fs.HasChildrenFiles() {
		return errNoChildrenFiles
	}
	return nil
}

func (t *pollTracker) started(pid int, at time.Time) {
	t.mu.Lock()
	t.root = pid
	t.b = newBuilder(t.name(), pid)
	t.b.join(pid, at)
	t.live = map[int]*polled{}
	t.dead = map[int]uint64{}
	t.excluded = map[int]uint64{}
	if st, err := t.fs.Stat(pid); err == nil {
		t.live[pid] = &polled{start: st.Start, lastSeen: at}
	}
	kids, _ := t.fs.Children(selfPid, nil)
	for _, k := range kids {
		if k == pid {
			continue
		}
		if st, err := t.fs.Stat(k); err == nil {
			t.excluded[k] = st.Start
		}
	}
	t.scan()
	joins := t.takeJoins()
	t.mu.Unlock()
	t.report(joins)
	t.stop = make(chan struct{})
	t.done = make(chan struct{})
	go t.loop()
}

func (t *pollTracker) loop() {
	defer close(t.done)
	tick := time.NewTicker(t.interval)
	defer tick.Stop()
	for {
		select {
		case <-t.stop:
			return
		case <-tick.C:
		}
		t.mu.Lock()
		t.scan()
		joins := t.takeJoins()
		t.mu.Unlock()
		t.report(joins)
	}
}

// scan walks the tree once; call with mu held.
func (t *pollTracker) scan() {
	now := time.Now()
	for _, p := range t.live {
		p.reached = false
	}
	queue := []int{t.root}
	if kids, err := t.fs.Children(selfPid, nil); err == nil {
		for _, k := range kids {
			if _, ok := t.excluded[k]; !ok {
				queue = append(queue, k)
			}
		}
	}
	seen := map[int]bool{}
	for len(queue) > 0 {
		pid := queue[len(queue)-1]
		queue = queue[:len(queue)-1]
		if seen[pid] {
			continue
		}
		seen[pid] = true
		st, err := t.fs.Stat(pid)
		if err != nil {
			continue // gone; handled below if it was a member
		}
		if ex, ok := t.excluded[pid]; ok && ex == st.Start {
			continue
		}
		p := t.live[pid]
		if p != nil && p.start != st.Start {
			// Exited and the number was reused, by a tree process
			// since we reached it from the tree.
			t.b.tree.Leave(pid, p.lastSeen)
			t.dead[pid] = p.start
			delete(t.live, pid)
			p = nil
		}
		zombie := st.State == 'Z' || st.State == 'X'
		if p == nil {
			if d, ok := t.dead[pid]; ok && d == st.Start {
				continue
			}
			if pid == t.root && t.b.tree.IsLive(pid) && len(t.b.tree.Spans(pid)) == 1 {
				p = &polled{start: st.Start} // joined at started
			} else {
				start := procfs.StartWall(st.Start)
				if start.IsZero() || start.After(now) {
					start = now
				}
				t.b.join(pid, start)
				p = &polled{start: st.Start, lastSeen: now}
			}
			t.live[pid] = p
		}
		if zombie {
			// Exited (a zombie not reaped yet): a member that ended
			// since it was last seen running, or one only seen dead.
			t.b.tree.Leave(pid, p.lastSeen)
			t.dead[pid] = p.start
			delete(t.live, pid)
			continue
		}
		p.lastSeen, p.reached = now, true
		queue, _ = t.fs.Children(pid, queue)
	}
	// Members not reached from the tree: gone, replaced, or orphaned
	// somewhere we do not look (still members while they run).
	for pid, p := range t.live {
		if p.reached {
			continue
		}
		st, err := t.fs.Stat(pid)
		switch {
		case err != nil || st.State == 'Z' || st.State == 'X':
			t.b.tree.Leave(pid, p.lastSeen)
			t.dead[pid] = p.start
			delete(t.live, pid)
		case st.Start != p.start:
			t.b.tree.Leave(pid, p.lastSeen)
			t.b.foreign(pid, now)
			delete(t.live, pid)
		default:
			p.lastSeen = now
		}
	}
}

func (t *pollTracker) finish() *Tree {
	if t.done != nil {
		close(t.stop)
		<-t.done
		t.done = nil
	}
	t.mu.Lock()
	if t.tree != nil {
		t.mu.Unlock()
		return t.tree
	}
	if t.root == 0 {
		t.b = newBuilder(t.name(), 0)
	} else {
		t.scan()
	}
	tr := t.b.tree
	tr.Exact = false
	tr.Note = pollNote
	t.tree = tr
	joins := t.takeJoins()
	t.mu.Unlock()
	t.report(joins)
	return tr
}
