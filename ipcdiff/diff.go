package ipcdiff

import (
	"cmp"
	"encoding/binary"
	"hash/maphash"
	"math"
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
	var idx [numTypes][]int
	n := 0
	for t, k := range kinds {
		for i, id := range k.idents(after) {
			if !before.Contains(id) {
				idx[t] = append(idx[t], i)
				n++
			}
		}
	}
	if n == 0 {
		return nil
	}
	out := make([]Object, 0, n)
	for t, k := range kinds {
		if b, ok := k.(batchObjects); ok {
			out = b.appendObjects(out, after, idx[t])
			continue
		}
		for _, i := range idx[t] {
			out = append(out, k.object(after, i))
		}
	}
	return out
}

// batchObjects is implemented by the kinds that make the Objects of many
// rows at once (kind.object for each of the rows idx of s, appended to
// out), copying the rows into one new array instead of one allocation
// each: a run may leave thousands.
type batchObjects interface {
	appendObjects(out []Object, s *Snapshot, idx []int) []Object
}

func (shmKind) appendObjects(out []Object, s *Snapshot, idx []int) []Object {
	rows := make([]Shm, len(idx))
	for j, i := range idx {
		rows[j] = s.Shm[i]
		out = append(out, Object{Ident: rows[j].ident(), Shm: &rows[j]})
	}
	return out
}

func (semKind) appendObjects(out []Object, s *Snapshot, idx []int) []Object {
	rows := make([]Sem, len(idx))
	for j, i := range idx {
		rows[j] = s.Sem[i]
		out = append(out, Object{Ident: rows[j].ident(), Sem: &rows[j]})
	}
	return out
}

func (msgKind) appendObjects(out []Object, s *Snapshot, idx []int) []Object {
	rows := make([]Msg, len(idx))
	for j, i := range idx {
		rows[j] = s.Msg[i]
		out = append(out, Object{Ident: rows[j].ident(), Msg: &rows[j]})
	}
	return out
}

// Idents is a compact, sorted set of identities: what DiffIdents needs of
// the snapshot taken before a run, in 16 bytes an object. A System V
// identity (type, id, key, creator uid) is kept exactly. A named one
// (device, inode number, name) is kept as a 119-bit hash, keyed afresh in
// every process: two identities that collide make a new object look as
// if it existed before, so it is kept, never removed. The zero Idents is
// empty.
type Idents struct{ keys []identKey }

// identKey is an Ident packed into 128 bits: the Type in the top byte of
// hi; below it, for an exact key, the id (hi) and the key and creator uid
// (lo); for a hashed key (hashedBit set), the hash.
type identKey struct{ hi, lo uint64 }

const hashedBit = 1 << 55

// keySeeds key the hash of named identities (two 64-bit hashes).
var keySeeds = [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()}

// keyOf packs id.
func keyOf(id Ident) identKey {
	if id.Dev == 0 && id.Name == "" && uint(id.ID) <= math.MaxUint32 {
		return identKey{uint64(id.Type)<<56 | uint64(id.ID), uint64(uint32(id.Key))<<32 | uint64(id.CUID)}
	}
	return hashedKey(id)
}

// hashedKey is keyOf for an identity with a name, a device or an id of
// more than 32 bits.
func hashedKey(id Ident) identKey {
	var b [8 + 8 + 4 + 4]byte
	binary.LittleEndian.PutUint64(b[0:], uint64(id.ID))
	binary.LittleEndian.PutUint64(b[8:], id.Dev)
	binary.LittleEndian.PutUint32(b[16:], uint32(id.Key))
	binary.LittleEndian.PutUint32(b[20:], id.CUID)
	var h [2]uint64
	for i, seed := range keySeeds {
		var m maphash.Hash
		m.SetSeed(seed)
		m.Write(b[:])
		m.WriteString(id.Name)
		h[i] = m.Sum64()
	}
	return identKey{uint64(id.Type)<<56 | hashedBit | h[0]&(hashedBit-1), h[1]}
}

func cmpKey(a, b identKey) int {
	if c := cmp.Compare(a.hi, b.hi); c != 0 {
		return c
	}
	return cmp.Compare(a.lo, b.lo)
}

// add adds id, unsorted: the caller sorts.
func (s *Idents) add(id Ident) { s.keys = append(s.keys, keyOf(id)) }

// IdentsOf returns the identities of the objects of s.
func IdentsOf(s *Snapshot) Idents {
	ids := Idents{keys: make([]identKey, 0, s.Len())}
	for _, k := range kinds {
		k.addIdents(s, &ids)
	}
	slices.SortFunc(ids.keys, cmpKey)
	return ids
}

// NewIdents returns the set of the identities ids.
func NewIdents(ids []Ident) Idents {
	s := Idents{keys: make([]identKey, 0, len(ids))}
	for _, id := range ids {
		s.add(id)
	}
	slices.SortFunc(s.keys, cmpKey)
	s.keys = slices.Compact(s.keys)
	return s
}

// Len is the number of identities in s.
func (s Idents) Len() int { return len(s.keys) }

// Contains implements IdentSet.
func (s Idents) Contains(id Ident) bool {
	_, found := slices.BinarySearchFunc(s.keys, keyOf(id), cmpKey)
	return found
}

// NamedIdents returns the identities of the objects of s that have a name
// (the POSIX kinds): Idents keeps only a hash of them, and a name that
// existed before a run is a family (docs/evidence.md, "POSIX objects").
func NamedIdents(s *Snapshot) []Ident {
	var out []Ident
	for t := range s.Types.All() {
		for _, id := range s.TypeIdents(t) {
			if id.Name != "" {
				out = append(out, id)
			}
		}
	}
	return out
}
