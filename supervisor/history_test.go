package supervisor

import (
	"testing"
	"time"

	"github.com/ipcguard/ipcguard/ipcdiff"
	"golang.org/x/sys/unix"
)

// at is a time in the history tests: ms after a fixed origin.
func at(ms int) time.Time {
	return time.Unix(1_700_000_000, 0).Add(time.Duration(ms) * time.Millisecond)
}

// cross is a crossing of the cursor from lo to hi in (from, to] ms.
func cross(from, to, lo, hi int) Crossing {
	return Crossing{From: at(from), To: at(to), Lo: lo, Hi: hi}
}

func lap(from, to int) Crossing { return Crossing{From: at(from), To: at(to), All: true} }

// histTree is a tree whose member 200 ran in [start, end] ms, watched from
// 0 to until ms with the crossings given (NewWatch keeps those covering 200).
func histTree(start, end, until int, pre []int, log ...Crossing) *Tree {
	tr := NewTree("perf", 100)
	tr.Exact = true
	tr.Join(200, at(start))
	tr.Leave(200, at(end))
	tr.finished = at(until)
	tr.SetWatch(NewWatch(at(0), at(until), pre, log, tr.Pids()))
	return tr
}

func TestHolder(t *testing.T) {
	type window struct{ from, to int }
	cases := []struct {
		name string
		tree *Tree
		w    window
		want ipcdiff.Holder
	}{
		{"only the member's own hand-out", histTree(1000, 1010, 9000, nil, cross(990, 995, 150, 205)),
			window{0, 3000}, ipcdiff.HeldByTree},
		{"the number was reused after the member", histTree(1000, 1010, 9000, nil,
			cross(990, 995, 150, 205), cross(2000, 2005, 190, 210)),
			window{0, 3000}, ipcdiff.HeldAmbiguous},
		{"reused long after the window", histTree(1000, 1010, 9000, nil,
			cross(990, 995, 150, 205), cross(5000, 5005, 190, 210)),
			window{0, 3000}, ipcdiff.HeldByTree},
		{"another process had it just before", histTree(1000, 1010, 9000, nil,
			cross(500, 505, 190, 201), cross(990, 995, 150, 205)),
			window{0, 3000}, ipcdiff.HeldAmbiguous},
		{"another process had it seconds before", histTree(5000, 5010, 9000, nil,
			cross(500, 505, 190, 201), cross(4990, 4995, 150, 205)),
			window{4000, 7000}, ipcdiff.HeldAmbiguous}, // it may have lived until just before the fork
		{"in use when the run began", histTree(1000, 1010, 9000, []int{200},
			cross(990, 995, 150, 205)),
			window{0, 3000}, ipcdiff.HeldAmbiguous},
		{"in use when the run began, window inside the member's life", histTree(1000, 6000, 9000, []int{200},
			cross(990, 995, 150, 205)),
			window{2000, 4000}, ipcdiff.HeldByTree},
		{"a possible lap", histTree(1000, 1010, 9000, nil,
			cross(990, 995, 150, 205), lap(1500, 1505)),
			window{0, 3000}, ipcdiff.HeldAmbiguous},
		{"the member's own hand-out in a lap", histTree(1000, 1010, 9000, nil, lap(990, 995)),
			window{0, 3000}, ipcdiff.HeldAmbiguous},
		{"a lap while the member lived", histTree(1000, 6000, 9000, nil,
			cross(990, 995, 150, 205), lap(3000, 3005)),
			window{2000, 4000}, ipcdiff.HeldByTree},
		{"a lap while the member lived, window past its exit", histTree(1000, 6000, 9000, nil,
			cross(990, 995, 150, 205), lap(3000, 3005), cross(4000, 4005, 150, 205)),
			window{2000, 7000}, ipcdiff.HeldByTree},
		{"a lap while the member lived, reused after its exit", histTree(1000, 6000, 9000, nil,
			cross(990, 995, 150, 205), lap(3000, 3005), cross(6500, 6505, 190, 210)),
			window{2000, 7000}, ipcdiff.HeldAmbiguous},
		{"a hand-out across the member's exit", histTree(1000, 6000, 9000, nil,
			cross(990, 995, 150, 205), cross(5990, 6030, 150, 205)),
			window{2000, 7000}, ipcdiff.HeldAmbiguous},
		{"a window past the watch", histTree(1000, 1010, 2000, nil, cross(990, 995, 150, 205)),
			window{0, 3000}, ipcdiff.HeldAmbiguous},
		{"no member then", histTree(1000, 1010, 9000, nil, cross(990, 995, 150, 205)),
			window{2000, 3000}, ipcdiff.HeldOutside},
		{"the cursor put back (ns_last_pid written)", histTree(1000, 1010, 9000, nil,
			cross(990, 995, 150, 205), cross(2000, 2005, 210, 201)),
			window{0, 3000}, ipcdiff.HeldAmbiguous},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h, _, why := c.tree.Holder(200, at(c.w.from), at(c.w.to))
			if h != c.want {
				t.Fatalf("Holder = %v (%s), want %v", h, why, c.want)
			}
			if (h == ipcdiff.HeldAmbiguous) != (why != "") {
				t.Errorf("why = %q for %v", why, h)
			}
		})
	}
	// Without a watch, only a window inside the member's life proves.
	tr := NewTree("perf", 100)
	tr.Join(200, at(1000))
	tr.Leave(200, at(6000))
	if h, _, _ := tr.Holder(200, at(0), at(3000)); h != ipcdiff.HeldAmbiguous {
		t.Errorf("no watch, window past the fork: %v", h)
	}
	if h, _, _ := tr.Holder(200, at(2000), at(3000)); h != ipcdiff.HeldByTree {
		t.Errorf("no watch, window inside the life: %v", h)
	}
}

// A second member under the same number: the first one's hand-out, then
// the second one's, and nothing else: the number was only ever the tree's.
func TestHolderSameNumberTwice(t *testing.T) {
	tr := NewTree("perf", 100)
	tr.Exact = true
	tr.Join(200, at(1000))
	tr.Leave(200, at(1010))
	tr.Join(200, at(3000))
	tr.Leave(200, at(3010))
	tr.finished = at(9000)
	tr.SetWatch(NewWatch(at(0), at(9000), nil, []Crossing{cross(990, 995, 150, 205), cross(2990, 2995, 190, 210)}, tr.Pids()))
	if h, _, why := tr.Holder(200, at(0), at(5000)); h != ipcdiff.HeldByTree {
		t.Fatalf("Holder = %v (%s)", h, why)
	}
}

func TestPidWatchCompact(t *testing.T) {
	log := []Crossing{cross(0, 5, 100, 200), cross(5, 10, 200, 300), cross(10, 15, 300, 32000), cross(15, 20, 32000, 400)}
	got := compact(append([]Crossing(nil), log...), 32768)
	if len(got) != 2 {
		t.Fatalf("compact: %d crossings", len(got))
	}
	if got[0].All || got[0].Lo != 100 || got[0].Hi != 300 || !got[0].From.Equal(at(0)) || !got[0].To.Equal(at(10)) {
		t.Errorf("first merged crossing %+v", got[0])
	}
	// 300 → 32000 → 400 goes round more than once: any pid.
	if !got[1].All {
		t.Errorf("second merged crossing %+v is not a lap", got[1])
	}
}

// TestPerfGetPairing: the entry of a get gives its key and flags, its exit
// the id; only IPC_PRIVATE or IPC_CREAT|IPC_EXCL prove a creation.
func TestPerfGetPairing(t *testing.T) {
	tr := newPerfTracker(true)
	tr.tracks = true
	tr.started(10, time.Unix(0, 1))
	get := func(tid int, key, flags int64, id int64) {
		tr.apply(perfRecord{kind: unix.PERF_RECORD_SAMPLE, pid: tid, tid: tid, typ: "sem", enter: true, key: key, flags: flags})
		tr.apply(perfRecord{kind: unix.PERF_RECORD_SAMPLE, pid: tid, tid: tid, typ: "sem", ret: id})
	}
	get(11, 0, unix.IPC_CREAT, 1)                                                             // IPC_PRIVATE
	get(12, 0x42, unix.IPC_CREAT|unix.IPC_EXCL, 2)                                            // keyed, exclusive
	get(13, 0x43, unix.IPC_CREAT, 3)                                                          // keyed: may have opened a stranger's
	get(14, 0x44, unix.IPC_CREAT|unix.IPC_EXCL, -17)                                          // EEXIST
	tr.apply(perfRecord{kind: unix.PERF_RECORD_SAMPLE, pid: 15, tid: 15, typ: "sem", ret: 5}) // entry lost
	for id, want := range map[int]bool{1: true, 2: true, 3: false, 5: false} {
		c, proven, _, _ := tr.b.tree.Created("sem", id)
		if !c || proven != want {
			t.Errorf("Created(sem %d) = %v, proven %v; want true, %v", id, c, proven, want)
		}
	}
	if c, _, _, _ := tr.b.tree.Created("sem", -17); c {
		t.Error("a failed get counted")
	}
}

// An unwatched crossing (a sweep's, from the dead supervisor's last record
// to now) may hold the number's hand-out to the member and, after a write
// of ns_last_pid, another one: it never counts as the member's own.
func TestHolderUnwatchedCrossing(t *testing.T) {
	c := cross(990, 5000, 150, 260)
	c.Unwatched = true
	tr := histTree(1000, 1000, 6000, nil, c)
	tr.Exact = false // a journal's tree: the member's exit is not known
	if h, _, _ := tr.Holder(200, at(2000), at(4000)); h != ipcdiff.HeldAmbiguous {
		t.Fatalf("Holder = %v: an unwatched crossing was taken for the member's own hand-out", h)
	}
	// The same crossing, watched: the member's own, and nothing else.
	c.Unwatched = false
	tr = histTree(1000, 1000, 6000, nil, c)
	tr.Exact = false
	if h, _, why := tr.Holder(200, at(2000), at(4000)); h != ipcdiff.HeldByTree {
		t.Fatalf("watched: Holder = %v (%s)", h, why)
	}
}

func TestStep(t *testing.T) {
	st := func(cursor int, lo, hi uint64, init bool) CursorState {
		return CursorState{Cursor: cursor, Threads: 100, ForksLo: lo, ForksHi: hi, PidMax: 32768, InitNS: init}
	}
	cases := []struct {
		name      string
		prev, cur CursorState
		ok, all   bool
	}{
		{"nothing handed out", st(500, 10, 10, true), st(500, 10, 10, true), false, false},
		{"forks elsewhere only", st(500, 10, 12, false), st(500, 14, 15, false), false, false},
		{"forward", st(500, 10, 11, true), st(530, 40, 41, true), true, false},
		{"more forks than the cursor moved (forks elsewhere, or counted late)", st(500, 10, 11, false), st(510, 40, 41, false), true, false},
		{"enough forks for a lap", st(500, 10, 11, false), st(510, 40, 40000, false), true, true},
		{"pid_max changed", st(500, 10, 11, false), func() CursorState { c := st(510, 12, 13, false); c.PidMax = 4096; return c }(), true, true},
		{"a fork count from another boot", st(500, 10, 11, false), st(510, 1, 2, false), true, true},
	}
	for _, c := range cases {
		got, ok := Step(c.prev, at(0), c.cur, at(5))
		if ok != c.ok || got.All != c.all {
			t.Errorf("%s: Step = %+v, %v; want ok %v, all %v", c.name, got, ok, c.ok, c.all)
		}
	}
}
