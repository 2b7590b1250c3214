package ipcdiff

import (
	"testing"
	"time"

	"github.com/ipcguard/ipcguard/internal/nstest"
)

// decideNow reads every object of the namespace with its evidence and
// decides on it, as ipcguard rm does.
func decideNow(t *testing.T, fs FS) map[Ident]OrphanDecision {
	t.Helper()
	objs := snap(t, fs).Objects()
	if err := GatherOrphans(fs, objs); err != nil {
		t.Fatal(err)
	}
	out := map[Ident]OrphanDecision{}
	for _, d := range Orphans(objs, &LiveProcs{Root: DefaultProcRoot}, time.Now(), 0) {
		out[d.Ident] = d
	}
	return out
}

// TestRemoveUnusedKernel: RemoveUnused, on real objects, refuses an object
// in use unless forced, and even forced keeps an object whose id now names
// another object; unforced it keeps one used since the decision.
func TestRemoveUnusedKernel(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode.String(), func(t *testing.T) {
			if !nstest.Isolate(t, mode) {
				return
			}
			fs := procFS(t)
			runIPC(t, "shm:key=0x10", "sem:key=0x20:op", "msg:key=0x30:send")
			holder := startIPC(t, "shm:key=0x40:attach")
			ds := decideNow(t, fs)
			if len(ds) != 4 {
				t.Fatalf("decisions %+v", ds)
			}
			var free []OrphanDecision
			var used OrphanDecision
			for _, d := range ds {
				if d.Key == 0x40 {
					used = d
				} else {
					free = append(free, d)
				}
			}
			if !used.InUse || used.Class != ClassAttached {
				t.Fatalf("attached segment: in use %v class %q (%s)", used.InUse, used.Class, used.Reason())
			}
			for _, d := range free {
				if d.InUse {
					t.Fatalf("%v of a dead process: in use (%s)", d.Ident, d.Reason())
				}
			}

			// In use: refused with the reason; forced: removed (at the
			// last detach).
			if out, err := RemoveUnused(fs, used, false); err != nil || out.Result != InUse || out.Why == "" {
				t.Errorf("RemoveUnused(attached) = %+v, %v; want in use", out, err)
			}
			if _, ok := snap(t, fs).find(TypeShm, used.ID); !ok {
				t.Fatalf("a refused segment was removed")
			}

			// The id names another object (a doctored identity): kept,
			// forced or not.
			for _, force := range []bool{false, true} {
				for _, d := range free {
					d.Key++
					if out, err := RemoveUnused(fs, d, force); err != nil || out.Result != Changed {
						t.Errorf("RemoveUnused(%v doctored, force %v) = %+v, %v; want changed", d.Ident, force, out, err)
					}
				}
			}
			// Used since the decision: kept unforced, removed forced.
			runIPC(t, "shm:key=0x10:attach", "sem:key=0x20:op", "msg:key=0x30:send")
			for _, d := range free {
				if out, err := RemoveUnused(fs, d, false); err != nil || out.Result != Touched {
					t.Errorf("RemoveUnused(%v used since) = %+v, %v; want touched", d.Ident, out, err)
				}
			}
			if n := snap(t, fs).Len(); n != 4 {
				t.Fatalf("%d objects left, want all 4", n)
			}
			for _, d := range free {
				if out, err := RemoveUnused(fs, d, true); err != nil || out.Result != Removed {
					t.Errorf("RemoveUnused(%v, force) = %+v, %v; want removed", d.Ident, out, err)
				}
			}
			if out, err := RemoveUnused(fs, used, true); err != nil || out.Result != RemovedDeferred {
				t.Errorf("RemoveUnused(attached, force) = %+v, %v; want removed at the last detach", out, err)
			}
			stopIPC(t, holder)
			if n := snap(t, fs).Len(); n != 0 {
				t.Errorf("%d objects left, want none", n)
			}
		})
	}
}
