package guard

import (
	"math/rand"
	"testing"
	"time"

	"github.com/ipcguard/ipcguard/internal/journal"
	"github.com/ipcguard/ipcguard/ipcdiff"
	"github.com/ipcguard/ipcguard/supervisor"
)

// simRun is a simulated run: a pid allocator of a small pid namespace, the
// command's tree and strangers forking and exiting, and the records a
// supervisor writes for it, written to two journals at once: one never
// compacted, one compacted often.
type simRun struct {
	rng          *rand.Rand
	pidMax       int
	cursor       int
	held         map[int]bool // numbers in use now
	t0, now, end time.Time
	full, small  *journal.Journal
	members      []int // tree pids ever
	retain       map[int]bool
}

func (s *simRun) alloc() (int, int) {
	moved := 0
	for {
		s.cursor++
		moved++
		if s.cursor >= s.pidMax {
			s.cursor = 300
		}
		if !s.held[s.cursor] {
			s.held[s.cursor] = true
			return s.cursor, moved
		}
	}
}

func (s *simRun) both(f func(j *journal.Journal)) { f(s.full); f(s.small) }

// simulate writes one random run to both journals.
func simulate(t *testing.T, seed int64, compactAt int64) (full, small *journal.Record, s *simRun) {
	s = &simRun{rng: rand.New(rand.NewSource(seed)), pidMax: 1000, cursor: 300 + rand.New(rand.NewSource(seed)).Intn(600),
		held: map[int]bool{}, t0: time.Unix(1_700_000_000, 0), retain: map[int]bool{}}
	s.now = s.t0
	var err error
	s.full, err = journal.Begin(t.TempDir(), journal.Header{CompactAt: -1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	s.small, err = journal.Begin(t.TempDir(), journal.Header{CompactAt: compactAt}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.full.Done()
	defer s.small.Done()
	s.small.Retain(func() []int {
		var p []int
		for pid := range s.retain {
			p = append(p, pid)
		}
		return p
	})
	s.both(func(j *journal.Journal) { j.Namespaces(journal.Namespaces{Boot: "b", IPC: "i", Pid: "p"}) })

	// Strangers that exist at the start.
	type proc struct {
		pid    int
		tree   bool
		silent bool // its exit goes unrecorded
	}
	var live []proc
	var pre []int
	for i := 0; i < 40; i++ {
		p := 300 + s.rng.Intn(s.pidMax-300)
		if !s.held[p] {
			s.held[p] = true
			live = append(live, proc{pid: p})
			pre = append(pre, p)
		}
	}
	s.both(func(j *journal.Journal) { j.Pre(sortedInts(pre)) })

	lastCur, lastT, path := s.cursor, s.now, 0
	forks := uint64(1000)
	cursorState := func() journal.Cursor {
		return journal.Cursor{Cursor: s.cursor, Threads: len(live), ForksLo: forks, ForksHi: forks, PidMax: s.pidMax}
	}
	flush := func() {
		c := journal.Crossing{From: lastT, To: s.now, Lo: lastCur, Hi: s.cursor}
		if path >= s.pidMax-300-1 {
			c.All = true
		}
		if path > 0 || s.rng.Intn(4) == 0 {
			st := cursorState()
			s.both(func(j *journal.Journal) { j.Watch(c, st) })
		}
		lastCur, lastT, path = s.cursor, s.now, 0
	}
	fork := func(tree bool) int {
		pid, moved := s.alloc()
		path += moved
		forks++
		p := proc{pid: pid, tree: tree}
		if tree {
			p.silent = s.rng.Intn(20) == 0
			at := s.now.Add(time.Duration(s.rng.Intn(3)) * time.Millisecond)
			s.both(func(j *journal.Journal) { j.Join(pid, at) })
			s.members = append(s.members, pid)
			if s.rng.Intn(30) == 0 {
				s.retain[pid] = true
			}
		}
		live = append(live, p)
		return pid
	}

	s.now = s.now.Add(5 * time.Millisecond)
	root := fork(false) // the command: recorded by C, not J
	s.both(func(j *journal.Journal) { j.Command(root, 77, s.now) })
	live[len(live)-1].tree = true
	nextW := s.now.Add(time.Second)
	for step := 0; step < 4000; step++ {
		s.now = s.now.Add(time.Duration(3+s.rng.Intn(8)) * time.Millisecond)
		for k := s.rng.Intn(3); k > 0; k-- {
			fork(s.rng.Intn(2) == 0)
		}
		for i := 0; i < len(live); i++ {
			p := live[i]
			if p.pid == root || s.rng.Intn(12) != 0 {
				continue
			}
			delete(s.held, p.pid)
			if p.tree && !p.silent {
				at := s.now
				s.both(func(j *journal.Journal) { j.Leave(p.pid, at) })
			}
			live[i] = live[len(live)-1]
			live = live[:len(live)-1]
			i--
		}
		if s.rng.Intn(50) == 0 {
			id := s.rng.Intn(64)
			proven := s.rng.Intn(2) == 0
			at := s.now
			s.both(func(j *journal.Journal) { j.Got(ipcdiff.TypeShm, id, proven, at) })
		}
		if !s.now.Before(nextW) {
			flush()
			nextW = s.now.Add(time.Duration(500+s.rng.Intn(1000)) * time.Millisecond)
		}
	}
	at := s.now
	s.both(func(j *journal.Journal) { j.Leave(root, at) })
	flush()
	s.end = s.now
	for _, j := range []*journal.Journal{s.full, s.small} {
		if err := j.Err(); err != nil {
			t.Fatal(err)
		}
	}
	if full, err = journal.Load(s.full.Path()); err != nil {
		t.Fatal(err)
	}
	if small, err = journal.Load(s.small.Path()); err != nil {
		t.Fatal(err)
	}
	return full, small, s
}

func sortedInts(p []int) []int {
	out := append([]int(nil), p...)
	for i := 1; i < len(out); i++ {
		for k := i; k > 0 && out[k] < out[k-1]; k-- {
			out[k], out[k-1] = out[k-1], out[k]
		}
	}
	return out
}

// simTree is a sweep's tree with the allocator as the journal left it.
func simTree(rec *journal.Record, s *simRun) ipcdiff.Tree {
	t, _ := sweepTree(rec, func() (supervisor.CursorState, time.Time, time.Time, error) {
		c := rec.LastCursor
		return supervisor.CursorState{Cursor: c.Cursor, Threads: c.Threads, ForksLo: c.ForksLo, ForksHi: c.ForksHi, PidMax: c.PidMax},
			s.end.Add(time.Second), s.end.Add(time.Second), nil
	})
	return t
}

type deadProcs struct{}

func (deadProcs) Alive(int) bool                { return false }
func (deadProcs) Comm(int) string               { return "" }
func (deadProcs) Started(int) (time.Time, bool) { return time.Time{}, false }

// TestCompactedJournalIsConservative: for random runs, whatever a sweep of
// the compacted journal gives to the tree (a pid number held by the tree
// in a window; an object removed), a sweep of the whole journal gives it
// too: compaction may only make a sweep keep more.
func TestCompactedJournalIsConservative(t *testing.T) {
	var heldFull, heldSmall, removedFull, removedSmall, compactions int
	for seed := int64(1); seed <= 12; seed++ {
		full, small, s := simulate(t, seed, 16<<10)
		if full.Compacted.Times != 0 || small.Compacted.Times == 0 || small.Compacted.Stays == 0 {
			t.Fatalf("seed %d: compactions: full %+v, small %+v", seed, full.Compacted, small.Compacted)
		}
		compactions += small.Compacted.Times
		if small.Compacted.Watch == 0 {
			t.Errorf("seed %d: no watch record merged: %+v", seed, small.Compacted)
		}
		tf, ts := simTree(full, s), simTree(small, s)
		run := s.end.Sub(s.t0)
		rng := rand.New(rand.NewSource(seed))
		window := func() (time.Time, time.Time) {
			from := s.t0.Add(time.Duration(rng.Int63n(int64(run))))
			return from, from.Add(time.Duration(rng.Int63n(int64(3 * time.Second))))
		}
		for i := 0; i < 20000; i++ {
			pid := s.members[rng.Intn(len(s.members))]
			from, to := window()
			hf, _, _ := tf.Holder(pid, from, to)
			hs, _, _ := ts.Holder(pid, from, to)
			if hf == ipcdiff.HeldByTree {
				heldFull++
			}
			if hs == ipcdiff.HeldByTree {
				heldSmall++
				if hf != ipcdiff.HeldByTree {
					t.Fatalf("seed %d: pid %d in [%v, %v]: the tree's after compaction, %v before",
						seed, pid, from.Sub(s.t0), to.Sub(s.t0), hf)
				}
			}
		}
		// Whole decisions: objects whose pids are the members'.
		var objs []ipcdiff.Object
		sec := func() int64 { from, _ := window(); return from.Unix() }
		pick := func() int { return s.members[rng.Intn(len(s.members))] }
		for i := 0; i < 600; i++ {
			id := ipcdiff.Ident{ID: i, CUID: 0}
			switch i % 3 {
			case 0:
				id.Type = ipcdiff.TypeShm
				objs = append(objs, ipcdiff.Object{Ident: id, Shm: &ipcdiff.Shm{ID: i, CPID: pick(), LPID: pick(), Ctime: sec(), Atime: sec()}})
			case 1:
				id.Type = ipcdiff.TypeSem
				objs = append(objs, ipcdiff.Object{Ident: id, Sem: &ipcdiff.Sem{ID: i, NSems: 1, Otime: sec(), Ctime: sec()},
					Sems: []ipcdiff.SemState{{Pid: pick()}}})
			case 2:
				id.Type = ipcdiff.TypeMsg
				m := &ipcdiff.Msg{ID: i, LSPID: pick(), LRPID: pick(), Stime: sec(), Rtime: sec(), Ctime: sec()}
				if i%2 == 0 { // sent to, never read: one pid fact
					m.LRPID, m.Rtime = 0, 0
				}
				objs = append(objs, ipcdiff.Object{Ident: id, Msg: m})
			}
		}
		pol := ipcdiff.Policy{Start: s.t0, End: s.end.Add(time.Second), Contended: true, ContendedWhy: "sweep"}
		df, _ := ipcdiff.Attribute(objs, tf, deadProcs{}, pol)
		ds, _ := ipcdiff.Attribute(objs, ts, deadProcs{}, pol)
		for i := range ds {
			if df[i].Remove {
				removedFull++
			}
			if ds[i].Remove {
				removedSmall++
				if !df[i].Remove {
					t.Fatalf("seed %d: %s removed after compaction (%v), kept before: %s", seed, ds[i].Ident, ds[i].Evidence, df[i].Reason)
				}
			}
		}
	}
	t.Logf("%d compactions; held by the tree: %d before, %d after; removed: %d before, %d after",
		compactions, heldFull, heldSmall, removedFull, removedSmall)
	// The property must have been tried on facts the compacted journal
	// still proves, not only on facts it lost.
	if heldSmall == 0 || removedSmall == 0 || heldSmall == heldFull {
		t.Errorf("a vacuous check: held %d/%d, removed %d/%d", heldSmall, heldFull, removedSmall, removedFull)
	}
}

// TestMergedWatchRecordIsNeverOwn: a member forked just before a watch
// record ended; the next records, merged by compaction, cover its number
// again (a stranger got it after the member's exit) without a whole lap.
// The merged record starts before the member's recorded fork, so taken
// for the member's own hand-out it would hide the stranger: a sweep must
// not take it so.
func TestMergedWatchRecordIsNeverOwn(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	var recs []*journal.Record
	for _, compactAt := range []int64{-1, 3072} { // 3072: at most 3 watch records
		j, err := journal.Begin(t.TempDir(), journal.Header{CompactAt: compactAt}, nil)
		if err != nil {
			t.Fatal(err)
		}
		j.Namespaces(journal.Namespaces{Boot: "b", IPC: "i", Pid: "p"})
		j.Pre([]int{999})
		j.Command(450, 1, at(-900))
		j.Join(500, at(990)) // handed out in the second record, near its end
		j.Leave(500, at(1100))
		cur := func(c int) journal.Cursor { return journal.Cursor{Cursor: c, Threads: 1, PidMax: 1000} }
		j.Watch(journal.Crossing{From: at(-1000), To: at(0), Lo: 390, Hi: 450}, cur(450))
		j.Watch(journal.Crossing{From: at(0), To: at(1000), Lo: 450, Hi: 520}, cur(520))
		j.Watch(journal.Crossing{From: at(1000), To: at(2000), Lo: 520, Hi: 700}, cur(700))
		j.Watch(journal.Crossing{From: at(2000), To: at(3000), Lo: 700, Hi: 510}, cur(510)) // 500 again, at 2500
		j.Watch(journal.Crossing{From: at(3000), To: at(4000), Lo: 510, Hi: 515}, cur(515))
		for id := 0; id < 200; id++ { // fill the journal past compactAt
			j.Got(ipcdiff.TypeMsg, id, false, at(0))
		}
		if err := j.Err(); err != nil {
			t.Fatal(err)
		}
		r, err := journal.Load(j.Path())
		j.Done()
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, r)
	}
	merged := 0
	for _, c := range recs[1].Watch {
		if c.Merged && !c.All {
			merged++
		}
	}
	if recs[1].Compacted.Watch == 0 || merged == 0 || recs[1].Compacted.Stays != 0 {
		t.Fatalf("compaction did not merge as the test needs: %+v, watch %+v", recs[1].Compacted, recs[1].Watch)
	}
	for i, rec := range recs {
		tree, _ := sweepTree(rec, func() (supervisor.CursorState, time.Time, time.Time, error) {
			return supervisor.CursorState{Cursor: 515, Threads: 1, PidMax: 1000}, at(5000), at(5000), nil
		})
		if h, _, _ := tree.Holder(500, at(2600), at(2700)); h == ipcdiff.HeldByTree {
			t.Errorf("journal %d: pid 500 after a stranger took it is the tree's", i)
		}
	}
	// What the whole journal still proves: the member's own life.
	full, _ := sweepTree(recs[0], func() (supervisor.CursorState, time.Time, time.Time, error) {
		return supervisor.CursorState{Cursor: 515, Threads: 1, PidMax: 1000}, at(5000), at(5000), nil
	})
	if h, _, why := full.Holder(500, at(1040), at(1060)); h != ipcdiff.HeldByTree {
		t.Errorf("whole journal: pid 500 during the member's life: %v %s", h, why)
	}
}
