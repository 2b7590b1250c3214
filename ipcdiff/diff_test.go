package ipcdiff

import (
	"slices"
	"testing"
)

func identsOf(objs []Object) []Ident {
	var ids []Ident
	for _, o := range objs {
		ids = append(ids, o.Ident)
	}
	return ids
}

func TestDiff(t *testing.T) {
	before := &Snapshot{Types: AllTypes,
		Shm: []Shm{{ID: 5, Key: 1}, {ID: 2, Key: 2}, {ID: 32770, Key: 3}},
		Sem: []Sem{{ID: 1, Key: 7, CUID: 1000}},
		Msg: []Msg{{ID: 0, Key: 9}, {ID: 1, Key: 10}},
	}
	after := &Snapshot{Types: AllTypes,
		// Unsorted: index order is not id order after a wrap.
		Shm: []Shm{{ID: 65536, Key: 4}, {ID: 32770, Key: 3}, {ID: 5, Key: 11}, {ID: 3, Key: 5}},
		Sem: []Sem{{ID: 1, Key: 7, CUID: 0}}, // same id and key, other creator
		Msg: []Msg{{ID: 1, Key: 10}, {ID: 2, Key: 12, LSPID: 40}},
	}
	got := Diff(before, after)
	want := []Ident{
		{TypeShm, 3, 5, 0}, {TypeShm, 5, 11, 0}, {TypeShm, 65536, 4, 0},
		{TypeSem, 1, 7, 0},
		{TypeMsg, 2, 12, 0},
	}
	if !slices.Equal(identsOf(got), want) {
		t.Fatalf("Diff = %v, want %v", identsOf(got), want)
	}
	for _, o := range got {
		n := 0
		for _, p := range []bool{o.Shm != nil, o.Sem != nil, o.Msg != nil} {
			if p {
				n++
			}
		}
		if n != 1 {
			t.Fatalf("%v has %d rows", o.Ident, n)
		}
	}
	if got[4].Msg.LSPID != 40 {
		t.Errorf("msg row not filled: %+v", got[4].Msg)
	}
	after.Msg[1].LSPID = 41
	if got[4].Msg.LSPID != 40 {
		t.Errorf("Object points into after, not at a copy")
	}

	// A type read by one snapshot only is not compared; nil before is empty.
	if d := Diff(&Snapshot{Types: 1 << TypeSem}, after); !slices.Equal(identsOf(d), []Ident{{TypeSem, 1, 7, 0}}) {
		t.Errorf("Diff with sem-only before = %v", identsOf(d))
	}
	if d := Diff(nil, after); len(d) != 7 {
		t.Errorf("Diff(nil, after) = %d objects, want 7", len(d))
	}
	if d := Diff(after, after); len(d) != 0 {
		t.Errorf("Diff(after, after) = %v", identsOf(d))
	}
	if d := Diff(before, nil); d != nil {
		t.Errorf("Diff(before, nil) = %v", d)
	}
	// Duplicate ids (only in hand-made input) must not confuse the merge.
	dup := &Snapshot{Types: AllTypes, Shm: []Shm{{ID: 1, Key: 1}, {ID: 1, Key: 2}}}
	if d := Diff(dup, dup); len(d) != 0 {
		t.Errorf("Diff of duplicates = %v", identsOf(d))
	}
}
