package guard

import (
	"testing"
	"unsafe"

	"github.com/ipcguard/ipcguard/internal/nstest"
	"github.com/ipcguard/ipcguard/ipcdiff"
	"golang.org/x/sys/unix"
)

func TestMain(m *testing.M) { nstest.Main(m, nil) }

// TestRemoveAllSpread: with enough removals to spread them over threads
// (removeAll), exactly the objects decided on are removed, each after its
// own re-check: a segment attached after the decision and a semaphore set
// operated on after it are kept as touched, the objects decided to be kept
// stay, and the report lists every object in the decisions' order.
func TestRemoveAllSpread(t *testing.T) {
	if !nstest.Isolate(t, nstest.Root) {
		return
	}
	const each = parallelRemovals // per type: well over the threshold in all
	for i := 0; i < each; i++ {
		if _, err := unix.SysvShmGet(unix.IPC_PRIVATE, 4096, unix.IPC_CREAT|0o600); err != nil {
			t.Fatal(err)
		}
		if _, _, e := unix.Syscall(unix.SYS_SEMGET, unix.IPC_PRIVATE, 2, unix.IPC_CREAT|0o600); e != 0 {
			t.Fatal(e)
		}
		if _, _, e := unix.Syscall(unix.SYS_MSGGET, unix.IPC_PRIVATE, unix.IPC_CREAT|0o600, 0); e != 0 {
			t.Fatal(e)
		}
	}
	fs, err := ipcdiff.NewFS("/proc")
	if err != nil {
		t.Fatal(err)
	}
	snap, err := fs.Snapshot(ipcdiff.SysvTypes)
	if err != nil {
		t.Fatal(err)
	}
	objs := snap.Objects()
	if err := ipcdiff.Gather(fs, objs); err != nil {
		t.Fatal(err)
	}
	ds := make([]ipcdiff.Decision, len(objs))
	var attached, operated ipcdiff.Ident
	for i, o := range objs {
		ds[i] = ipcdiff.Decision{Object: o, Remove: i%3 != 0}
		switch {
		case !ds[i].Remove:
		case o.Type == ipcdiff.TypeShm && attached.Type == 0:
			attached = o.Ident
		case o.Type == ipcdiff.TypeSem && operated.Type == 0:
			operated = o.Ident
		}
	}
	// A stranger acts on two of them after the decision.
	addr, err := unix.SysvShmAttach(attached.ID, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.SysvShmDetach(addr)
	op := struct {
		num   uint16
		op    int16
		flags int16
	}{0, 1, 0}
	if _, _, e := unix.Syscall(unix.SYS_SEMOP, uintptr(operated.ID), uintptr(unsafe.Pointer(&op)), 1); e != 0 {
		t.Fatal(e)
	}

	rep := &Report{}
	applyDecisions(fs, ds, false, rep)

	if len(rep.Objects) != len(ds) {
		t.Fatalf("%d objects in the report, want %d", len(rep.Objects), len(ds))
	}
	left, err := fs.Snapshot(ipcdiff.SysvTypes)
	if err != nil {
		t.Fatal(err)
	}
	there := map[ipcdiff.Ident]bool{}
	for _, o := range left.Objects() {
		there[o.Ident] = true
	}
	removed := 0
	for i, d := range ds {
		got := rep.Objects[i]
		if got.Type != d.Type.String() || got.ID != d.ID {
			t.Fatalf("report object %d is %s %d, want %s %d: out of the decisions' order", i, got.Type, got.ID, d.Type, d.ID)
		}
		want := ActKept
		if d.Remove && d.Ident != attached && d.Ident != operated {
			want = ActRemoved
			removed++
		}
		if got.Action != want {
			t.Errorf("%s %d: %s (%s), want %s", got.Type, got.ID, got.Action, got.Error, want)
		}
		if there[d.Ident] != (want == ActKept) {
			t.Errorf("%s %d: still there %v, action %s", got.Type, got.ID, there[d.Ident], want)
		}
	}
	if rep.Removed != removed || rep.Kept != len(ds)-removed || rep.Failed != 0 {
		t.Errorf("removed %d, kept %d, failed %d; want %d, %d, 0", rep.Removed, rep.Kept, rep.Failed, removed, len(ds)-removed)
	}
}
