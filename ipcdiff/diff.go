package ipcdiff

import (
	"cmp"
	"slices"
)

func (s *Shm) ident() Ident { return Ident{Type: TypeShm, ID: s.ID, Key: s.Key, CUID: s.CUID} }
func (s *Sem) ident() Ident { return Ident{Type: TypeSem, ID: s.ID, Key: s.Key, CUID: s.CUID} }
func (m *Msg) ident() Ident { return Ident{Type: TypeMsg, ID: m.ID, Key: m.Key, CUID: m.CUID} }

// entry is a row of one of the /proc/sysvipc tables.
type entry[T any] interface {
	*T
	ident() Ident
}

// Diff returns the objects in after whose identity (type, id, key, cuid) is
// not in before, sorted by type, then id. Only the types both snapshots read
// are compared; a nil before counts as empty. Each Object points at a copy
// of its row, not into after.
//
// The kernel lists objects by index and hands out indexes cyclically, so
// both lists are nearly always already sorted by id; Diff then merges them
// in one pass without a map, and sorts a permutation only when they are not.
func Diff(before, after *Snapshot) []Object {
	if after == nil {
		return nil
	}
	if before == nil {
		before = &Snapshot{Types: after.Types}
	}
	types := before.Types & after.Types
	var out []Object
	if types.Has(TypeShm) {
		out = diffRows(out, before.Shm, after.Shm, func(o *Object, p *Shm) { o.Shm = p })
	}
	if types.Has(TypeSem) {
		out = diffRows(out, before.Sem, after.Sem, func(o *Object, p *Sem) { o.Sem = p })
	}
	if types.Has(TypeMsg) {
		out = diffRows(out, before.Msg, after.Msg, func(o *Object, p *Msg) { o.Msg = p })
	}
	return out
}

// diffRows appends to out the rows of after whose identity is not in before.
func diffRows[T any, P entry[T]](out []Object, before, after []T, set func(*Object, *T)) []Object {
	bo := idOrder[T, P](before)
	ao := idOrder[T, P](after)
	at := func(rows []T, order []int32, i int) P {
		if order != nil {
			return P(&rows[order[i]])
		}
		return P(&rows[i])
	}
	var fresh []int32
	i := 0
	for j := range after {
		a := at(after, ao, j).ident()
		for i < len(before) && at(before, bo, i).ident().ID < a.ID {
			i++
		}
		seen := false
		for k := i; k < len(before); k++ {
			b := at(before, bo, k).ident()
			if b.ID != a.ID {
				break
			}
			if b == a {
				seen = true
				break
			}
		}
		if !seen {
			idx := int32(j)
			if ao != nil {
				idx = ao[j]
			}
			fresh = append(fresh, idx)
		}
	}
	if len(fresh) == 0 {
		return out
	}
	copies := make([]T, len(fresh))
	out = slices.Grow(out, len(fresh))
	for n, idx := range fresh {
		copies[n] = after[idx]
		out = append(out, Object{Ident: P(&copies[n]).ident()})
		set(&out[len(out)-1], &copies[n])
	}
	return out
}

// idOrder returns nil when rows are sorted by id, else the permutation of
// their indexes that sorts them by id.
func idOrder[T any, P entry[T]](rows []T) []int32 {
	sorted := true
	for i := 1; i < len(rows); i++ {
		if P(&rows[i-1]).ident().ID > P(&rows[i]).ident().ID {
			sorted = false
			break
		}
	}
	if sorted {
		return nil
	}
	order := make([]int32, len(rows))
	for i := range order {
		order[i] = int32(i)
	}
	slices.SortStableFunc(order, func(x, y int32) int {
		return cmp.Compare(P(&rows[x]).ident().ID, P(&rows[y]).ident().ID)
	})
	return order
}
