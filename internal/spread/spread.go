// Package spread runs independent steps on a few threads at once: the
// re-checks and removals of many IPC objects. Each step is a few system
// calls on one object, and the kernel runs those for different objects
// side by side (ipc/sem.c and ipc/shm.c lock the object, not the
// namespace, for them). The threads must all be in the IPC namespace the
// steps mean: a caller on a thread of its own namespace (setns(2)) must
// not spread.
package spread

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// Each calls f(i) once for every i in [0, n). With n >= least it spreads the
// calls over up to limit goroutines, one per CPU (runtime.GOMAXPROCS), in
// no particular order; otherwise it calls them in order on the caller's
// goroutine. f must be safe to call concurrently for different i.
func Each(n, least, limit int, f func(i int)) {
	workers := min(runtime.GOMAXPROCS(0), limit)
	if n < least || workers < 2 {
		for i := range n {
			f(i)
		}
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				f(i)
			}
		})
	}
	wg.Wait()
}
