package ipcdiff

import (
	"reflect"
	"testing"

	"github.com/ipcguard/ipcguard/internal/nstest"
)

// TestDiffIdentsMatchesDiff: diffing against the compact identities of the
// snapshot before gives exactly what diffing against the snapshot gives.
func TestDiffIdentsMatchesDiff(t *testing.T) {
	before := &Snapshot{Types: AllTypes,
		Shm: []Shm{{ID: 1, Key: 5, CUID: 1}, {ID: 3, Key: 0, CUID: 1}},
		Sem: []Sem{{ID: 2, Key: -7, CUID: 0}},
		Msg: []Msg{{ID: 4, Key: 9, CUID: 2}},
	}
	after := &Snapshot{Types: AllTypes,
		Shm: []Shm{{ID: 1, Key: 5, CUID: 1}, {ID: 3, Key: 0, CUID: 2}, {ID: 8}}, // 3: same id, other creator
		Sem: []Sem{{ID: 2, Key: -7, CUID: 0}, {ID: 6, Key: 1}},
		Msg: []Msg{{ID: 4, Key: 10, CUID: 2}}, // same id, other key
	}
	got, want := DiffIdents(IdentsOf(before), after), Diff(before, after)
	if len(got) != 4 || !reflect.DeepEqual(got, want) {
		t.Fatalf("DiffIdents = %v\nDiff       = %v", got, want)
	}
	ids := IdentsOf(before)
	for _, id := range []Ident{{TypeShm, 1, 5, 1}, {TypeSem, 2, -7, 0}, {TypeMsg, 4, 9, 2}} {
		if !ids.Contains(id) {
			t.Errorf("Contains(%v) = false", id)
		}
	}
	if ids.Contains(Ident{TypeSem, 1, 5, 1}) || ids.Contains(Ident{TypeShm, 3, 0, 2}) {
		t.Errorf("Contains finds what is not there")
	}
}

// TestSnapshotSerialEqualsParallel: both ways of reading give the same
// objects, in a namespace holding some of each type.
func TestSnapshotSerialEqualsParallel(t *testing.T) {
	if !nstest.Isolate(t, nstest.Root) {
		return
	}
	if out, err := nstest.IPCCmd("shm", "shm:key=0x11", "sem:n=2:op", "msg:send", "msg:key=0x12").CombinedOutput(); err != nil {
		t.Fatalf("helper: %v\n%s", err, out)
	}
	fs, err := NewFS("/proc")
	if err != nil {
		t.Fatal(err)
	}
	par, err := fs.Snapshot(AllTypes)
	if err != nil {
		t.Fatal(err)
	}
	ser, err := fs.SnapshotWith(AllTypes, false)
	if err != nil {
		t.Fatal(err)
	}
	if par.Len() != 5 || !reflect.DeepEqual(par.Shm, ser.Shm) || !reflect.DeepEqual(par.Sem, ser.Sem) || !reflect.DeepEqual(par.Msg, ser.Msg) {
		t.Fatalf("parallel %+v\nserial   %+v", par, ser)
	}
}
