package supervisor

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/ipcguard/ipcguard/internal/procfs"
	"golang.org/x/sys/unix"
)

// PidWatch follows the kernel's pid allocation cursor of this process's
// pid namespace while a run goes on, so that attribution can prove that a
// pid number a member had was not handed to another process in the time
// an action recorded with that number took place (docs/evidence.md).
//
// It samples, every pidWatchInterval: the last pid handed out in this pid
// namespace and the number of tasks of the system (/proc/loadavg), the
// number of forks since boot (/proc/stat "processes"), and pid_max
// (/proc/sys/kernel/pid_max, per pid namespace since Linux 6.14). Between
// two samples the numbers handed out lie in the cyclic range the cursor
// moved over, unless the cursor can have gone round the whole range, which
// the fork count rules out or not: a lap needs one fork per free pid, and
// at least pid_max - 300 - tasks - forks pids are free (kernel/pid.c wraps
// to RESERVED_PIDS, 300). At the start it also lists the processes that
// exist (the numbers that may have a holder from before the run).
//
// What it cannot see: a process privileged over the pid namespace
// (CAP_SYS_ADMIN or CAP_CHECKPOINT_RESTORE) that chooses its pid with
// clone3's set_tid, or writes ns_last_pid and puts the cursor back within
// one interval. A cursor put back is otherwise seen as a lap.
type PidWatch struct {
	mu    sync.Mutex
	err   error // why the watch proves nothing
	from  time.Time
	until time.Time
	pre   []int // processes at the start, sorted
	log   []Crossing

	fs                    procfs.FS // the mount the watch reads
	fdLoad, fdStat, fdMax int
	buf                   []byte
	initNS                bool // see CursorState.InitNS
	drift                 time.Duration
	last                  CursorState

	// The journal hook, and what was seen since it was last called.
	journal   func(Crossing, CursorState)
	jAcc      Crossing
	jMoved    bool
	jDist     int
	jLastCall time.Time

	stop chan struct{}
	done chan struct{}
}

// CursorState is one reading of the pid allocator of a pid namespace.
type CursorState struct {
	Cursor  int // the last pid handed out (/proc/loadavg)
	Threads int // tasks of the whole system (/proc/loadavg)
	// Forks since boot, all namespaces (/proc/stat "processes"), read just
	// before (Lo) and just after (Hi) the cursor.
	ForksLo, ForksHi uint64
	PidMax           int // /proc/sys/kernel/pid_max
	// InitNS says the pid namespace is the initial one, where only a
	// process privileged over the whole system can move the cursor back.
	// (Counting forks does not show such a move: the kernel counts a fork
	// some time after it took the pid, so the count read after one cursor
	// reading may include pids that reading already showed.)
	InitNS bool
}

// ReadCursor reads the pid allocator of the caller's pid namespace once,
// from the procfs mounted at root.
func ReadCursor(root string) (CursorState, error) {
	w := &PidWatch{fdLoad: -1, fdStat: -1, fdMax: -1, buf: make([]byte, 64<<10)}
	defer w.closeFds()
	if err := w.openFiles(root); err != nil {
		return CursorState{}, err
	}
	return w.read()
}

// Step is what may have been handed out between two readings of the pid
// allocator: ok is false when nothing was (in this namespace). The
// numbers handed out lie in the cyclic range the cursor moved over,
// unless the fork count allows a whole lap (then All).
func Step(prev CursorState, from time.Time, cur CursorState, to time.Time) (c Crossing, ok bool) {
	if cur.ForksHi == prev.ForksHi && cur.Cursor == prev.Cursor && cur.PidMax == prev.PidMax {
		return Crossing{}, false
	}
	// The pids handed out after the last reading of the cursor and by
	// this one were forked after the fork count read before it and
	// before the one read after this one: at most this many.
	forks := cur.ForksHi - prev.ForksLo
	if cur.ForksHi < prev.ForksLo {
		forks = 1 << 62 // not the same boot's counter
	}

	c = Crossing{From: from, To: to, Lo: prev.Cursor, Hi: cur.Cursor}
	free := int64(min(cur.PidMax, prev.PidMax)) - 300 - int64(prev.Threads) - int64(min(forks, 1<<40))
	if cur.PidMax != prev.PidMax || int64(min(forks, 1<<40)) >= free || cur.Cursor >= cur.PidMax {
		c.All = true
	}
	if !c.All && c.Lo == c.Hi {
		return Crossing{}, false // forks in other namespaces only
	}
	return c, true
}

// Journal installs fn, which the watch calls from its own goroutine with
// what it saw since the last call (the intervals merged into one, coarser
// in time and never less safe): every journalEvery when the cursor moved,
// every journalIdle when it did not (the call then only says how far the
// watch got). A sweep rebuilds the watch from these records.
func (w *PidWatch) Journal(fn func(Crossing, CursorState)) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.journal = fn
	w.jAcc = Crossing{From: w.from, To: w.until, Lo: w.last.Cursor, Hi: w.last.Cursor}
	w.jMoved = false
	w.jDist = 0
	for _, c := range w.log {
		w.accumulate(c)
	}
	w.flushJournal(true)
}

// Mark samples the allocator now and hands what was seen since the last
// call to the journal hook at once (the command has just been forked: its
// own hand-out must be on record before anything else happens).
func (w *PidWatch) Mark() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done == nil {
		return
	}
	w.sample()
	w.flushJournal(true)
}

// Pre returns the processes that existed when the watch began, sorted.
func (w *PidWatch) Pre() []int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.pre)
}

const (
	journalEvery = time.Second
	journalIdle  = 5 * time.Second
)

func (w *PidWatch) accumulate(c Crossing) {
	if !w.jMoved {
		w.jAcc.From, w.jAcc.Lo = c.From, c.Lo
	}
	w.jMoved = true
	w.jAcc.Hi, w.jAcc.To = c.Hi, c.To
	w.jAcc.All = w.jAcc.All || c.All
	w.jDist += dist(c.Lo, c.Hi, max(w.last.PidMax, 1))
	if w.jDist >= w.last.PidMax-1 {
		w.jAcc.All = true
	}
}

// flushJournal hands the accumulated record to the journal hook when it is
// due (or now); call with mu held.
func (w *PidWatch) flushJournal(now bool) {
	if w.journal == nil {
		return
	}
	wait := journalIdle
	if w.jMoved {
		wait = journalEvery
	}
	if !now && w.until.Sub(w.jLastCall) < wait {
		return
	}
	c := w.jAcc
	if !w.jMoved {
		c.To = w.until
		c.Lo, c.Hi, c.All = w.last.Cursor, w.last.Cursor, false
	}
	w.journal(c, w.last)
	w.jLastCall = w.until
	w.jAcc = Crossing{From: w.until, To: w.until, Lo: w.last.Cursor, Hi: w.last.Cursor}
	w.jMoved, w.jDist = false, 0
}

// pidWatchInterval is how often the watch samples the cursor: 15 µs of
// reads each time here. The proof does not depend on it (the fork count
// rules out laps); it only sets how closely a hand-out is placed in time.
const pidWatchInterval = 5 * time.Millisecond

// maxCrossings bounds the watch's memory: past it, neighbouring intervals
// are merged two by two (coarser in time, never less safe).
const maxCrossings = 1 << 15

// StartPidWatch starts a watch of the pid namespace of the calling
// process, whose procfs is mounted at root. A watch that cannot work here
// (a proc mounted for another pid namespace, files missing) is returned
// all the same: it proves nothing, and Stop says why.
func StartPidWatch(root string) *PidWatch {
	w := &PidWatch{fdLoad: -1, fdStat: -1, fdMax: -1, buf: make([]byte, 64<<10)}
	w.from = time.Now() // before the first reading
	if err := w.open(root); err != nil {
		w.err = err
		w.closeFds()
		return w
	}
	w.stop, w.done = make(chan struct{}), make(chan struct{})
	go w.loop()
	return w
}

func (w *PidWatch) openFiles(root string) error {
	fs, err := procfs.NewFS(root)
	if err != nil {
		return fmt.Errorf("%w: %w", procfs.ErrOtherNamespace, err)
	}
	if err := fs.SameNamespace(); err != nil {
		return err
	}
	w.fs = fs
	if id, err := fs.NamespaceInode("pid"); err == nil && id == procfs.InitPidNamespaceInode {
		w.initNS = true
	}
	for _, f := range []struct {
		fd   *int
		path string
	}{{&w.fdLoad, "loadavg"}, {&w.fdStat, "stat"}, {&w.fdMax, "sys/kernel/pid_max"}} {
		if *f.fd, err = unix.Open(fs.Path(f.path), unix.O_RDONLY|unix.O_CLOEXEC, 0); err != nil {
			return fmt.Errorf("opening %s/%s: %w", root, f.path, err)
		}
	}
	return nil
}

func (w *PidWatch) open(root string) error {
	err := w.openFiles(root)
	if err != nil {
		return err
	}
	if w.last, err = w.read(); err != nil {
		return err
	}
	// Every process that exists now is in the list, or was made after the
	// first sample, so that the cursor's moves account for its number.
	if w.pre, err = w.fs.Tgids(); err != nil {
		return fmt.Errorf("listing %s: %w", root, err)
	}
	w.until = w.from
	return nil
}

func (w *PidWatch) read() (CursorState, error) {
	var s CursorState
	n, err := unix.Pread(w.fdStat, w.buf, 0)
	if err != nil {
		return s, fmt.Errorf("reading stat: %w", err)
	}
	if s.ForksLo, err = procfs.ParseForks(w.buf[:n]); err != nil {
		return s, err
	}
	if n, err = unix.Pread(w.fdLoad, w.buf, 0); err != nil {
		return s, fmt.Errorf("reading loadavg: %w", err)
	}
	l, err := procfs.ParseLoadavg(w.buf[:n])
	if err != nil {
		return s, err
	}
	s.Cursor, s.Threads = l.LastPid, l.Threads
	if n, err = unix.Pread(w.fdStat, w.buf, 0); err != nil {
		return s, fmt.Errorf("reading stat: %w", err)
	}
	if s.ForksHi, err = procfs.ParseForks(w.buf[:n]); err != nil {
		return s, err
	}
	s.InitNS = w.initNS
	// A sysctl file is read into a kernel buffer of the size asked for
	// (fs/proc/proc_sysctl.c, proc_sys_call_handler): a small one.
	if n, err = unix.Pread(w.fdMax, w.buf[:32], 0); err != nil {
		return s, fmt.Errorf("reading pid_max: %w", err)
	}
	if s.PidMax, err = procfs.ParsePidMax(w.buf[:n]); err != nil {
		return s, err
	}
	return s, nil
}

func (w *PidWatch) loop() {
	defer close(w.done)
	tick := time.NewTicker(pidWatchInterval)
	defer tick.Stop()
	for {
		select {
		case <-w.stop:
			return
		case <-tick.C:
			w.mu.Lock()
			w.sample()
			w.mu.Unlock()
		}
	}
}

// sample reads the cursor once and logs what may have been handed out
// since the last sample; call with mu held.
func (w *PidWatch) sample() {
	if w.err != nil {
		return
	}
	// The reading reflects every hand-out before `before`, and perhaps
	// some up to `after`: those not in the last reading happened after
	// the last `before`.
	before := time.Now()
	s, err := w.read()
	after := time.Now()
	if err != nil {
		w.err = err
		return
	}
	p := w.last
	w.last = s
	prevUntil := w.until
	w.until = before
	if d := (before.Round(0).Sub(w.from.Round(0)) - before.Sub(w.from)).Abs(); d > w.drift {
		w.drift = d
	}
	defer w.flushJournal(false)
	c, ok := Step(p, prevUntil, s, after)
	if !ok {
		return
	}
	w.log = append(w.log, c)
	if w.journal != nil {
		w.accumulate(c)
	}
	if len(w.log) > maxCrossings {
		w.log = compact(w.log, s.PidMax)
	}
}

// compact merges neighbouring crossings two by two.
func compact(log []Crossing, pidMax int) []Crossing {
	out := log[:0]
	for i := 0; i < len(log); i += 2 {
		if i+1 == len(log) {
			out = append(out, log[i])
			break
		}
		a, b := log[i], log[i+1]
		m := Crossing{From: a.From, To: b.To, Lo: a.Lo, Hi: b.Hi, All: a.All || b.All}
		if !m.All && dist(a.Lo, a.Hi, pidMax)+dist(b.Lo, b.Hi, pidMax) >= pidMax-1 {
			m.All = true
		}
		out = append(out, m)
	}
	return out
}

// dist is how far the cursor moved from lo to hi, going up and wrapping.
func dist(lo, hi, pidMax int) int {
	if hi >= lo {
		return hi - lo
	}
	return pidMax - lo + hi
}

// Stop takes a last sample, stops the watch and returns what it saw of the
// pid numbers pids (the members' numbers). Later calls return the same
// coverage. A watch that could not work returns a Watch that is not OK.
func (w *PidWatch) Stop(pids []int) Watch {
	if w == nil {
		return Watch{Why: "no pid watch ran"}
	}
	if w.done != nil {
		close(w.stop)
		<-w.done
		w.done = nil
		w.mu.Lock()
		w.sample()
		w.closeFds()
		w.mu.Unlock()
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		why := w.err.Error()
		if errors.Is(w.err, procfs.ErrOtherNamespace) {
			why = "/proc shows another pid namespace"
		}
		return Watch{Why: "the pid allocator could not be watched (" + why + ")"}
	}
	out := NewWatch(w.from, w.until, w.pre, w.log, pids)
	out.Drift = w.drift
	return out
}

// NewWatch builds the Watch of the pid numbers pids from what a pid watch
// saw between from and until: the processes that existed at from (pre,
// sorted) and the crossings since, in time order. A sweep calls it with
// what the journal kept.
func NewWatch(from, until time.Time, pre []int, log []Crossing, pids []int) Watch {
	out := Watch{OK: true, From: from, Until: until, Pids: make(map[int]*PidRecord, len(pids))}
	sorted := slices.Clone(pids)
	slices.Sort(sorted)
	sorted = slices.Compact(sorted)
	for _, p := range sorted {
		_, isPre := slices.BinarySearch(pre, p)
		out.Pids[p] = &PidRecord{Pre: isPre}
	}
	// Each crossing goes to the members' numbers it covers: a binary search
	// for the range, so a long log costs its length, not times the members.
	add := func(c Crossing, lo, hi int) { // numbers in (lo, hi]
		i, _ := slices.BinarySearch(sorted, lo+1)
		for ; i < len(sorted) && sorted[i] <= hi; i++ {
			r := out.Pids[sorted[i]]
			r.Cross = append(r.Cross, c)
		}
	}
	for _, c := range log {
		switch {
		case c.All:
			for _, p := range sorted {
				out.Pids[p].Cross = append(out.Pids[p].Cross, c)
			}
		case c.Lo < c.Hi:
			add(c, c.Lo, c.Hi)
		case c.Lo > c.Hi:
			add(c, c.Lo, int(^uint(0)>>1))
			add(c, 0, c.Hi)
		}
	}
	return out
}

func (w *PidWatch) closeFds() {
	for _, fd := range []*int{&w.fdLoad, &w.fdStat, &w.fdMax} {
		if *fd >= 0 {
			unix.Close(*fd)
			*fd = -1
		}
	}
}

// HandedOut lists the pid numbers the cursor moved over while the watch
// ran (after Stop: the whole run), each once: every number handed out in
// that time is among them (numbers in use then were skipped by the
// kernel, so not every one was handed out). ok is false, with no list,
// when more than limit numbers are covered, when the cursor may have gone
// round the whole range or passed a number twice (then a number may have
// had two holders in the run), or when the watch could not work: then
// any number may have been handed out.
func (w *PidWatch) HandedOut(limit int) (pids []int, ok bool) {
	if w == nil {
		return nil, false
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return nil, false
	}
	seen := map[int]bool{}
	for _, c := range w.log {
		if c.All {
			return nil, false
		}
		n, wrap := c.Lo, w.last.PidMax
		for n != c.Hi {
			n++
			if wrap > 0 && n >= wrap {
				n = 1
			}
			if seen[n] || len(seen) >= limit {
				return nil, false
			}
			seen[n] = true
			pids = append(pids, n)
			if n == c.Hi || (wrap <= 0 && n > c.Hi && c.Lo < c.Hi) {
				break
			}
		}
	}
	slices.Sort(pids)
	return pids, true
}
