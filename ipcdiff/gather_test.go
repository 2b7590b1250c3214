package ipcdiff

import (
	"reflect"
	"testing"
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
