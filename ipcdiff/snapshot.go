package ipcdiff

import (
	"fmt"
	"os"
	"sync"
	"time"
)

// Snapshot reads the objects of the requested types from /proc/sysvipc.
// Taken is the time before the first read, so an object created after Taken
// may or may not be in the snapshot, but one created before it is.
//
// The files are opened on the calling goroutine — /proc/sysvipc shows the
// IPC namespace of the opening thread, and callers (tests, benchmarks) may
// have locked their goroutine's thread into a private namespace — and then
// read concurrently: the kernel's rendering of the tables dominates the cost,
// and the three render in parallel.
func (fs FS) Snapshot(types TypeSet) (*Snapshot, error) { return fs.SnapshotWith(types, true) }

// parallelMin is the number of objects from which the tables are read in
// parallel: about half a millisecond of rendering.
const parallelMin = 256

// SnapshotWith is Snapshot, reading the tables one after the other when
// parallel is false: slower, but with one read buffer alive at a time
// instead of three (a few MiB at the kernel limits).
func (fs FS) SnapshotWith(types TypeSet, parallel bool) (*Snapshot, error) {
	if types&^AllTypes != 0 || types == 0 {
		return nil, fmt.Errorf("%w: type set %#x", ErrUsage, uint8(types))
	}
	s := &Snapshot{Taken: time.Now(), Types: types}
	var files [numTypes]*os.File
	defer func() {
		for _, f := range files {
			if f != nil {
				f.Close()
			}
		}
	}()
	for t := TypeShm; t < numTypes; t++ {
		if !types.Has(t) {
			continue
		}
		f, err := fs.openTable(t.String())
		if err != nil {
			return nil, err
		}
		files[t] = f
	}
	// The counts too come from the calling thread's namespace.
	var hints [numTypes]int
	total := 0
	for t := TypeShm; t < numTypes; t++ {
		if files[t] != nil {
			hints[t] = inUse(t)
			if hints[t] < 0 {
				total += parallelMin // unknown: may be large
			} else {
				total += hints[t]
			}
		}
	}
	if total < parallelMin {
		// Small tables render in microseconds, less than it takes to
		// start threads for them.
		parallel = false
	}
	var errs [numTypes]error
	read := func(t Type) {
		switch t {
		case TypeShm:
			s.Shm, errs[t] = readOpenTable(files[t], "shm", appendShm, hints[t])
		case TypeSem:
			s.Sem, errs[t] = readOpenTable(files[t], "sem", appendSem, hints[t])
		case TypeMsg:
			s.Msg, errs[t] = readOpenTable(files[t], "msg", appendMsg, hints[t])
		}
	}
	var wg sync.WaitGroup
	last := Type(numTypes)
	for t := TypeShm; t < numTypes; t++ {
		if files[t] == nil {
			continue
		}
		switch {
		case last == numTypes:
		case parallel:
			wg.Add(1)
			go func(t Type) { defer wg.Done(); read(t) }(last)
		default:
			read(last)
		}
		last = t
	}
	read(last) // the last one on this goroutine
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return s, nil
}
