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

// sysvID is the identity of a SysV object.
func sysvID(t Type, id int, key int32, cuid uint32) Ident {
	return Ident{Type: t, ID: id, Key: key, CUID: cuid}
}

// diff is DiffIdents against the identities of before (nil: empty).
func diff(before, after *Snapshot) []Object {
	if before == nil {
		return DiffIdents(Idents{}, after)
	}
	return DiffIdents(IdentsOf(before), after)
}

func TestDiffIdents(t *testing.T) {
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
	got := diff(before, after)
	// By type, then in the order the snapshot lists them.
	want := []Ident{
		sysvID(TypeShm, 65536, 4, 0), sysvID(TypeShm, 5, 11, 0), sysvID(TypeShm, 3, 5, 0),
		sysvID(TypeSem, 1, 7, 0),
		sysvID(TypeMsg, 2, 12, 0),
	}
	if !slices.Equal(identsOf(got), want) {
		t.Fatalf("DiffIdents = %v, want %v", identsOf(got), want)
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

	if d := diff(nil, after); len(d) != 7 {
		t.Errorf("DiffIdents(nothing, after) = %d objects, want 7", len(d))
	}
	if d := diff(after, after); len(d) != 0 {
		t.Errorf("DiffIdents(after, after) = %v", identsOf(d))
	}
	// Duplicate ids (only in hand-made input) must not confuse the search.
	dup := &Snapshot{Types: AllTypes, Shm: []Shm{{ID: 1, Key: 1}, {ID: 1, Key: 2}}}
	if d := diff(dup, dup); len(d) != 0 {
		t.Errorf("DiffIdents of duplicates = %v", identsOf(d))
	}
	// Objects lists the same as a diff against nothing.
	if !slices.EqualFunc(after.Objects(), diff(nil, after), func(a, b Object) bool { return a.Ident == b.Ident }) {
		t.Errorf("Objects = %v, want %v", identsOf(after.Objects()), identsOf(diff(nil, after)))
	}
}

// TestIdentsNamed: identities of named objects (device, inode, name) are
// told apart by every field.
func TestIdentsNamed(t *testing.T) {
	a := Ident{Type: TypeShm, ID: 7, Dev: 40, Name: "/a"}
	list := []Ident{a, {Type: TypeShm, ID: 7, Dev: 41, Name: "/a"}, {Type: TypeShm, ID: 7, Dev: 40, Name: "/b"},
		sysvID(TypeShm, 7, 0, 0), {Type: TypeShm, ID: 1 << 40}, a}
	ids := NewIdents(list)
	if ids.Len() != 5 {
		t.Errorf("Len = %d, want 5 (each identity once)", ids.Len())
	}
	for _, id := range list {
		if !ids.Contains(id) {
			t.Errorf("Contains(%+v) = false", id)
		}
	}
	for _, id := range []Ident{{Type: TypeShm, ID: 7, Dev: 40, Name: "/c"}, {Type: TypeSem, ID: 7, Dev: 40, Name: "/a"},
		{Type: TypeShm, ID: 8, Dev: 40, Name: "/a"}, {Type: TypeShm, ID: 7, Name: "/a"}, sysvID(TypeShm, 7, 1, 0),
		{Type: TypeShm, ID: 1<<40 + 1}, {Type: TypeShm, ID: 1 << 41}} {
		if ids.Contains(id) {
			t.Errorf("Contains(%+v) = true, not in the set", id)
		}
	}
	if (Idents{}).Contains(a) || (Idents{}).Len() != 0 {
		t.Errorf("the zero Idents is not empty")
	}
	if got := a.String(); got != "shm /a" {
		t.Errorf("String = %q", got)
	}
	if got := sysvID(TypeSem, 3, 0, 0).String(); got != "sem 3" {
		t.Errorf("String = %q", got)
	}
}
