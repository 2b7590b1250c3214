package ipcdiff

import (
	"cmp"
	"slices"
)

// IdentSet is a set of object identities, such as a journal's record of the
// snapshot taken before a run.
type IdentSet interface {
	Contains(Ident) bool
}

// DiffIdents returns the objects of after whose identity is not in before,
// by type, then in the order after lists them. Each Object holds a copy of
// its row, not a pointer into after.
func DiffIdents(before IdentSet, after *Snapshot) []Object {
	var out []Object
	for _, k := range kinds {
		for i, id := range k.idents(after) {
			if !before.Contains(id) {
				out = append(out, k.object(after, i))
			}
		}
	}
	return out
}

// Idents is a compact, sorted set of identities: what DiffIdents needs of
// the snapshot taken before a run, at a fraction of the snapshot's memory.
type Idents []Ident

// IdentsOf returns the identities of the objects of s.
func IdentsOf(s *Snapshot) Idents {
	ids := make(Idents, 0, s.Len())
	for _, k := range kinds {
		ids = k.appendIdents(s, ids)
	}
	slices.SortFunc(ids, cmpIdent)
	return ids
}

// NewIdents returns ids as an Idents: sorted, each identity once. It
// reorders ids in place and keeps its array.
func NewIdents(ids []Ident) Idents {
	slices.SortFunc(ids, cmpIdent)
	return slices.Compact(ids)
}

func cmpIdent(a, b Ident) int {
	if c := cmp.Compare(a.Type, b.Type); c != 0 {
		return c
	}
	if c := cmp.Compare(a.ID, b.ID); c != 0 {
		return c
	}
	if c := cmp.Compare(a.Key, b.Key); c != 0 {
		return c
	}
	if c := cmp.Compare(a.CUID, b.CUID); c != 0 {
		return c
	}
	if c := cmp.Compare(a.Dev, b.Dev); c != 0 {
		return c
	}
	return cmp.Compare(a.Name, b.Name)
}

// Contains implements IdentSet.
func (s Idents) Contains(id Ident) bool {
	_, found := slices.BinarySearchFunc(s, id, cmpIdent)
	return found
}
