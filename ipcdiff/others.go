package ipcdiff

import "fmt"

// Others describes the objects of s that are not candidates (not in
// cands: they existed before the run), for Policy.OtherKeys and
// Policy.OtherNames: each family (a key, a name) they hold, with the
// first object that holds it ("shm 5"; a new object of the family is
// kept with it, docs/evidence.md, key families). invisible is a sign
// that processes this pid namespace cannot see use the IPC namespace —
// an object of any kind in s, candidate or not, whose creator the kernel
// records (Evidence.CreatorRecorded) as a pid that reads 0 — and ""
// without one. cands may be nil: no candidates. The maps are never nil.
//
// Families come from each kind's evidence of a bare identity (no row),
// the creators from the evidence of every object of the kinds that may
// record one (not sets and queues: see creatorless).
func Others(s *Snapshot, cands IdentSet) (keys map[int32]string, names map[string]string, invisible string) {
	keys, names = map[int32]string{}, map[string]string{}
	var bare Object // one for all: the kinds' methods make it escape
	for t, k := range kinds {
		if !s.Types.Has(Type(t)) {
			continue
		}
		for i, id := range k.idents(s) {
			// An identity without a key or a name is of no family
			// (IPC_PRIVATE): the common case, and the cheap one.
			if (id.Key != 0 || id.Name != "") && (cands == nil || !cands.Contains(id)) {
				bare.Ident = id
				noteFamily(k.evidence(&bare).Family, id, keys, names)
			}
			if _, ok := k.(creatorless); ok || invisible != "" {
				continue
			}
			if c, ok := k.(creatorShown); ok {
				if c.invisibleCreator(s, i) {
					invisible = fmt.Sprintf("%s was made by a process not visible from this pid namespace: processes of another pid namespace use this IPC namespace", id)
				}
				continue
			}
			o := k.object(s, i)
			if ev := k.evidence(&o); ev.CreatorRecorded && !hasCreator(ev.Pids) {
				invisible = fmt.Sprintf("%s was made by a process not visible from this pid namespace: processes of another pid namespace use this IPC namespace", id)
			}
		}
	}
	return keys, names, invisible
}

// noteFamily records f of object id in keys or names, unless one holds it
// already or it is the zero family (IPC_PRIVATE).
func noteFamily(f Family, id Ident, keys map[int32]string, names map[string]string) {
	switch {
	case f.Name != "":
		if _, ok := names[f.Name]; !ok {
			names[f.Name] = id.String()
		}
	case f.Key != 0:
		if _, ok := keys[f.Key]; !ok {
			keys[f.Key] = id.String()
		}
	}
}

func hasCreator(pids []PidFact) bool {
	for _, p := range pids {
		if p.Creator {
			return true
		}
	}
	return false
}

// creatorless is implemented by the kinds whose objects never record
// their creator (Evidence.CreatorRecorded is always false): Others reads
// no evidence of their rows for a sign of an invisible creator.
type creatorless interface{ noCreator() }

func (semKind) noCreator() {}
func (msgKind) noCreator() {}

// creatorShown is implemented by the kinds that tell from a snapshot's row
// alone what their evidence would: whether the kernel recorded the
// creator of the i-th object of s as a pid that reads 0. Others asks them
// instead of building each object's evidence.
type creatorShown interface {
	invisibleCreator(s *Snapshot, i int) bool
}

// invisibleCreator: a segment's evidence has CreatorRecorded, and a
// creator fact exactly when cpid > 0.
func (shmKind) invisibleCreator(s *Snapshot, i int) bool { return s.Shm[i].CPID <= 0 }
