package ipcdiff

import (
	"errors"
	"fmt"
	"iter"
	"sync"
	"time"
)

// Snapshot reads the objects of the requested types. Taken is the time
// before the first read, so an object created after Taken may or may not
// be in the snapshot, but one created before it is.
//
// The SysV kinds are listed with *_STAT_ANY, index by index (one syscall
// an index, about half the cost of the kernel's rendering of
// /proc/sysvipc), or read from /proc/sysvipc where that cannot be done or
// proves nothing (see openSysv and sysvTable.scan); either way the rows
// are what /proc/sysvipc shows, but for shm rss and swap, which a scan
// leaves 0.
//
// What holds the objects is opened on the calling goroutine — /proc/sysvipc
// shows the IPC namespace of the opening thread, and callers (tests,
// benchmarks) may have locked their goroutine's thread into a private
// namespace — and then read concurrently: a scan on another thread runs
// only when that thread is in the opener's IPC namespace, else /proc,
// bound to it, is read.
func (fs FS) Snapshot(types TypeSet) (*Snapshot, error) { return fs.SnapshotWith(types, true) }

// parallelMin is the number of objects from which the tables are read in
// parallel: about half a millisecond of rendering, or of a scan.
const parallelMin = 256

// SnapshotWith is Snapshot, reading the kinds one after the other when
// parallel is false: slower, but with one read buffer alive at a time
// instead of one per kind (a few MiB at the kernel limits).
func (fs FS) SnapshotWith(types TypeSet, parallel bool) (*Snapshot, error) {
	if types&^AllTypes != 0 || types == 0 {
		return nil, fmt.Errorf("%w: type set %#x", ErrUsage, uint32(types))
	}
	s := &Snapshot{Taken: time.Now(), Types: types}
	var readers [numTypes]tableReader
	defer func() {
		for _, r := range readers {
			if r != nil {
				r.close()
			}
		}
	}()
	total := 0
	for t := range types.All() {
		r, err := kinds[t].open(fs)
		if errors.Is(err, ErrNoDir) {
			// A POSIX directory that is not there: the kind is not read,
			// and the snapshot says why.
			s.Types &^= 1 << t
			if s.Unread == nil {
				s.Unread = map[Type]error{}
			}
			s.Unread[t] = err
			continue
		}
		if err != nil {
			return nil, err
		}
		readers[t] = r
		if n := r.size(); n < 0 {
			total += parallelMin // unknown: may be large
		} else {
			total += n
		}
	}
	if total < parallelMin {
		// Small tables render in microseconds, less than it takes to
		// start threads for them.
		parallel = false
	}
	var errs [numTypes]error
	var wg sync.WaitGroup
	last := Type(numTypes)
	for t := range s.Types.All() {
		switch {
		case last == numTypes:
		case parallel:
			wg.Add(1)
			go func(t Type) { defer wg.Done(); errs[t] = readers[t].read(s) }(last)
		default:
			errs[last] = readers[last].read(s)
		}
		last = t
	}
	if last != numTypes {
		errs[last] = readers[last].read(s) // the last one on this goroutine
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Objects returns every object of s, with no evidence beyond its row.
func (s *Snapshot) Objects() []Object {
	out := make([]Object, 0, s.Len())
	for _, k := range kinds {
		for i := range k.count(s) {
			out = append(out, k.object(s, i))
		}
	}
	return out
}

// Count is the number of objects of type t in s.
func (s *Snapshot) Count(t Type) int {
	if k := kindOf(t); k != nil {
		return k.count(s)
	}
	return 0
}

// TypeIdents yields the index and identity of each object of type t in
// s, in the order s lists them.
func (s *Snapshot) TypeIdents(t Type) iter.Seq2[int, Ident] {
	if k := kindOf(t); k != nil {
		return k.idents(s)
	}
	return func(func(int, Ident) bool) {}
}

// Only returns a copy of s holding only the objects of the types ts.
func (s *Snapshot) Only(ts TypeSet) *Snapshot {
	out := &Snapshot{Taken: s.Taken, Types: s.Types & ts, Unread: s.Unread}
	for t := range ts.All() {
		out.rows[t] = s.rows[t]
		kinds[t].only(out, s)
	}
	return out
}

// find returns the object of type t with this id in s.
func (s *Snapshot) find(t Type, id int) (Object, bool) {
	k := kindOf(t)
	if k == nil {
		return Object{}, false
	}
	for i, x := range k.idents(s) {
		if x.ID == id {
			return k.object(s, i), true
		}
	}
	return Object{}, false
}
