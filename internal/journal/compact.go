package journal

import (
	"cmp"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"

	"github.com/ipcguard/ipcguard/ipcdiff"
)

// Compaction says what compacting a journal dropped or merged, in all
// (record "X <times> <stays> <gets> <watch> <bad> <created>"). A journal grows with
// every process the tree forks; past Header.CompactAt bytes of records it
// is rewritten whole (a temporary file renamed over it, so a reader or a
// crash sees the old journal or the new one, never a mix), keeping:
//
//   - the first part, and the C, N and P records, as they are;
//   - every stay of a member whose exit is not recorded (a sweep must see
//     that it may still run);
//   - the closed stays of the pids that name a candidate object now (see
//     Retain), then the most recent other closed stays, within a quarter
//     of CompactAt; the others are dropped, whole (join and exit together);
//   - the gets, each id once (proven if any get of it was), the most
//     recent within a sixteenth of CompactAt;
//   - the creations a watcher saw (M records), each name once (type,
//     device and name: the latest creation of it), the most recent
//     within a sixteenth of CompactAt;
//   - the pid watch records, merged two by two (all but the last) while
//     they are more than CompactAt/1024 (512 records, about 70 bytes each,
//     by default).
//
// So a compacted record part takes under half of CompactAt plus what must
// stay (open stays, the process list), and the next compaction comes at
// CompactAt again, or at twice that size if more.
//
// Every rule only takes evidence for the tree away, never evidence against
// it, so a sweep of a compacted journal keeps whatever it would have kept
// with the whole one (docs/evidence.md, "After the supervisor died"):
//
//   - A dropped stay is a pid number the sweep no longer knows as the
//     tree's at that time: a fact naming it is "not known to be in the
//     tree" (kept), and the pid watch counts a hand-out that was the
//     member's as a stranger's (more time in which the number may have
//     been another process's, never less). A stay is never made longer
//     (two stays merged into one would claim the number for the tree in
//     between: not safe), and a stay whose exit is not recorded is never
//     dropped (the sweep skips a journal whose tree still runs).
//   - Two watch records merged cover the union of their ranges from the
//     first one's start to the second one's end, and "any pid" when the
//     cursor may have gone round the whole range in them together (as
//     supervisor.compact merges in memory): every hand-out stays covered.
//     A merged record (Crossing.Merged) is too coarse in time to tell a
//     member's own hand-out from a stranger's after the member's exit, so
//     a sweep never takes one for a member's own.
//   - A dropped get or creation is creation not seen: the object needs
//     other evidence. Only the latest creation of a name is kept: an
//     earlier one is of an object that the name no longer holds. It may
//     have been the first creation of a file (Creation.File) that another
//     name holds now, so a sweep does not use the files of a compacted
//     journal's creations (it judges them by names, as without files).
//   - Lines that fail their checksum are dropped and counted (Bad): a
//     sweep then trusts no pid watch of the journal (a lost watch record
//     or process list would hide a hand-out).
type Compaction struct {
	Times   int // compactions so far
	Stays   int // member stays dropped
	Gets    int // gets dropped (repeated ids are not counted)
	Watch   int // watch records merged away
	Bad     int // damaged lines dropped
	Created int // creations dropped (repeated names are not counted)
}

// Retain installs fn, which compaction calls for the pids that name an
// object the run may clean now (creator, last attach, last operation of
// each semaphore, last send and receive of objects new since the run
// began): their closed stays are kept first. Without it only recency
// chooses which closed stays are kept.
func (j *Journal) Retain(fn func() []int) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.retain = fn
}

// Compacted reports what compaction dropped so far.
func (j *Journal) Compacted() Compaction {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.compacted
}

// compact rewrites the journal with its records compacted; call with mu
// held. A failure leaves the journal as it was (and complete) and is kept
// for Err; the next attempt waits until the journal has doubled.
func (j *Journal) compact() {
	err := j.compactFile()
	if err != nil {
		j.fail(fmt.Errorf("compacting: %w", err))
		j.next = 2 * j.size
		return
	}
	j.next = max(j.compactAt, 2*j.size)
}

func (j *Journal) compactFile() error {
	st, err := j.f.Stat()
	if err != nil {
		return err
	}
	if st.Size() < j.head {
		return fmt.Errorf("%s: shorter than its first part", j.path)
	}
	data := make([]byte, st.Size())
	if _, err := j.f.ReadAt(data, 0); err != nil {
		return err
	}
	var keep map[int]bool
	if j.retain != nil {
		pids := j.retain()
		keep = make(map[int]bool, len(pids))
		for _, p := range pids {
			keep[p] = true
		}
	}
	recs, c := compactRecords(data[j.head:], limitsFor(j.compactAt), keep)

	tmp := filepath.Join(j.dir, "."+j.name+tempSuffix)
	_ = os.Remove(tmp) // left by a compaction of this very process that failed
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_EXCL|os.O_APPEND|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return err
	}
	err = f.Chmod(0o600) // exact, whatever the umask
	if err == nil {
		_, err = f.Write(data[:j.head])
	}
	if err == nil {
		_, err = f.Write(recs)
	}
	if err == nil {
		err = os.Rename(tmp, j.path)
	}
	if err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	j.f.Close()
	j.f = f
	j.size = int64(len(recs))
	j.broken = false
	j.compacted = c
	return nil
}

// limits are the budgets of a compaction.
type limits struct {
	stays int // bytes of closed stays
	gets  int // bytes of gets
	watch int // watch records
}

func limitsFor(at int64) limits {
	return limits{stays: int(at / 4), gets: int(at / 16), watch: max(int(at/1024), 2)}
}

// stay is one member stay in a record part: its join line, and its exit
// line (-1 while open).
type stay struct {
	pid        int
	join, exit int
	left       int64
	size       int
}

// watchRec is a W record as written.
type watchRec struct {
	c  Crossing
	st Cursor
}

// compactRecords compacts a record part (see Compaction), keeping the
// closed stays of the pids in keep first.
func compactRecords(b []byte, lim limits, keep map[int]bool) ([]byte, Compaction) {
	var (
		c      Compaction
		recs   [][]byte
		fixed  []int // lines kept as they are (C, N, P)
		stays  []stay
		open   = map[int][]int{} // pid → indices in stays of open stays
		lonely []int             // exits without a recorded join
		cmdPid int
		gets   []Get
		getAt  = map[Get]int{} // Get with only type and id → index in gets
		made   []ipcdiff.Creation
		madeAt = map[ipcdiff.Creation]int{} // Creation with only type, device and name → index in made
		watch  []watchRec
	)
	ls := lines{b}
	var r Record // reused: most lines are joins and exits
	for {
		l, ok := ls.next()
		if !ok {
			break
		}
		r.Members, r.Gets, r.Watch, r.Pre, r.Created = r.Members[:0], r.Gets[:0], r.Watch[:0], r.Pre[:0], r.Created[:0]
		if !parseRecord(l, &r) {
			c.Bad++
			continue
		}
		i := len(recs)
		recs = append(recs, l)
		switch l[0] {
		case 'C':
			cmdPid = r.CommandPid
			fixed = append(fixed, i)
		case 'N', 'P', 'Y', 'Z', 'V':
			fixed = append(fixed, i)
		case 'X':
			c = Compaction{Times: r.Compacted.Times, Stays: r.Compacted.Stays, Gets: r.Compacted.Gets,
				Watch: r.Compacted.Watch, Bad: r.Compacted.Bad + c.Bad, Created: r.Compacted.Created}
		case 'M':
			if len(r.Created) == 0 {
				fixed = append(fixed, i) // of a kind this ipcguard does not know: kept as it is
				break
			}
			m := r.Created[0]
			k := ipcdiff.Creation{Type: m.Type, Dev: m.Dev, Name: m.Name}
			if at, ok := madeAt[k]; ok {
				if !m.At.Before(made[at].At) {
					made[at] = m
				}
			} else {
				madeAt[k] = len(made)
				made = append(made, m)
			}
		case 'J':
			m := r.Members[0]
			open[m.Pid] = append(open[m.Pid], len(stays))
			stays = append(stays, stay{pid: m.Pid, join: i, exit: -1, size: len(l) + 1})
		case 'L':
			m := r.Members[0]
			o := open[m.Pid]
			if len(o) == 0 {
				lonely = append(lonely, i)
				break
			}
			s := &stays[o[len(o)-1]]
			open[m.Pid] = o[:len(o)-1]
			s.exit, s.left, s.size = i, unixNano(m.Left), s.size+len(l)+1
		case 'G':
			// The latest get of an id stands for it, as in the tree
			// (supervisor.Tree.SawCreate): an earlier proof of creation
			// must not pass to a newer object under the same id.
			g := r.Gets[0]
			k := Get{Type: g.Type, ID: g.ID}
			if at, ok := getAt[k]; ok {
				if !g.At.Before(gets[at].At) {
					gets[at] = g
				}
			} else {
				getAt[k] = len(gets)
				gets = append(gets, g)
			}
		case 'W':
			watch = append(watch, watchRec{r.Watch[0], r.LastCursor})
		}
	}
	if len(ls.b) > 0 {
		c.Bad++ // a torn line
	}
	c.Times++

	// Member lines: open stays, the command's own exits, and the closed
	// stays that fit, in the order they were written.
	var members []int
	for _, i := range lonely {
		var r Record
		parseRecord(recs[i], &r)
		if r.Members[0].Pid == cmdPid {
			members = append(members, i)
		}
		// Any other exit without a join tells a sweep nothing.
	}
	var closed []*stay
	for k := range stays {
		s := &stays[k]
		if s.exit < 0 {
			members = append(members, s.join)
		} else {
			closed = append(closed, s)
		}
	}
	slices.SortStableFunc(closed, func(a, b *stay) int {
		if ka, kb := keep[a.pid], keep[b.pid]; ka != kb {
			if ka {
				return -1
			}
			return 1
		}
		return cmp.Compare(b.left, a.left) // most recent first
	})
	budget := lim.stays
	for _, s := range closed {
		if s.size > budget {
			c.Stays++
			continue
		}
		budget -= s.size
		members = append(members, s.join, s.exit)
	}
	kept := append(fixed, members...)
	slices.Sort(kept)

	out := make([]byte, 0, len(b)/2)
	for _, i := range kept {
		out = append(out, recs[i]...)
		out = append(out, '\n')
	}

	// Gets, then creations: the most recent of each that fit, in the
	// order they were first recorded.
	var dropped int
	out, dropped = appendRecent(out, len(gets), lim.gets, func(k int) []byte { return appendGet(nil, gets[k]) })
	c.Gets += dropped
	out, dropped = appendRecent(out, len(made), lim.gets, func(k int) []byte { return appendCreated(nil, made[k]) })
	c.Created += dropped

	// The pid watch: merged two by two, all but the last, until it fits.
	for len(watch) > lim.watch {
		n := len(watch)
		merged := watch[:0]
		for k := 0; k < n-1; k += 2 {
			if k+1 == n-1 {
				merged = append(merged, watch[k])
				break
			}
			merged = append(merged, mergeWatch(watch[k], watch[k+1]))
			c.Watch++
		}
		merged = append(merged, watch[n-1])
		watch = merged
	}
	for _, w := range watch {
		out = append(out, seal(appendWatch(nil, w.c, w.st))...)
	}

	x := []byte{'X'}
	for _, v := range []int{c.Times, c.Stays, c.Gets, c.Watch, c.Bad, c.Created} {
		x = append(x, ' ')
		x = strconv.AppendInt(x, int64(v), 10)
	}
	return append(out, seal(x)...), c
}

// mergeWatch merges two consecutive watch records into one that covers
// both (see Compaction).
func mergeWatch(a, b watchRec) watchRec {
	m := watchRec{c: Crossing{From: a.c.From, To: b.c.To, Lo: a.c.Lo, Hi: b.c.Hi, Merged: true}, st: b.st}
	pidMax := b.st.PidMax
	switch {
	case a.c.All || b.c.All || a.st.PidMax != b.st.PidMax || pidMax <= 0:
		m.c.All = true
	default:
		// The cursor went from a.Lo to a.Hi, on to b.Lo (the same number
		// unless a record was lost) and to b.Hi.
		d := ringDist(a.c.Lo, a.c.Hi, pidMax) + ringDist(a.c.Hi, b.c.Lo, pidMax) + ringDist(b.c.Lo, b.c.Hi, pidMax)
		if d >= pidMax-1 {
			m.c.All = true
		}
	}
	if m.c.All {
		m.c.Merged = false
	}
	return m
}

// ringDist is how far the pid cursor moved from lo to hi, going up and
// wrapping at pidMax (as supervisor.dist).
func ringDist(lo, hi, pidMax int) int {
	if hi >= lo {
		return hi - lo
	}
	return pidMax - lo + hi
}

// appendRecent appends to out, sealed and in their order, the last of the
// n records line(0..n-1) that fit in budget bytes together, and says how
// many of the first it left out.
func appendRecent(out []byte, n, budget int, line func(k int) []byte) ([]byte, int) {
	first := n
	var ls [][]byte
	for k := n - 1; k >= 0; k-- {
		l := seal(line(k))
		if len(l) > budget {
			break
		}
		budget -= len(l)
		ls = append(ls, l)
		first = k
	}
	for k := len(ls) - 1; k >= 0; k-- {
		out = append(out, ls[k]...)
	}
	return out, first
}
