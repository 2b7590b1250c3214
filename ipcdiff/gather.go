package ipcdiff

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
)

// Gather collects the evidence attribution needs beyond /proc/sysvipc, for
// the new objects only: per-semaphore pids and waiters of new sets, and the
// live processes that map new segments still attached (nattch > 0). Objects
// that vanished meanwhile are left as they are (removal will find them
// gone); other failures are returned joined, and the objects they concern
// simply carry less evidence — which can only keep them, never remove them.
func Gather(fs FS, objs []Object) error {
	// An incomplete map (other users' maps unreadable) only names fewer
	// attachers: nattch > 0 keeps the segment either way.
	return gather(fs, objs, func(s *Shm) bool { return s.Nattch > 0 })
}

// gather fills the semaphores' state of the sets among objs (Enrich),
// marking those that could not be read Unreadable, and the attachers of
// the segments for which mapped says a scan of /proc/*/maps is needed.
func gather(fs FS, objs []Object, mapped func(*Shm) bool) error {
	var errs []error
	unread := map[Ident]string{}
	for _, e := range Enrich(objs) {
		if !errors.Is(e.Err, ErrVanished) {
			errs = append(errs, &e)
			unread[e.Ident] = "semctl GETPID: " + ErrText(e.Err)
		}
	}
	for i := range objs {
		if why, ok := unread[objs[i].Ident]; ok {
			objs[i].Unreadable = why
		}
	}
	ids := map[int]bool{}
	for _, o := range objs {
		if o.Shm != nil && mapped(o.Shm) {
			ids[o.ID] = true
		}
	}
	if len(ids) == 0 {
		return errors.Join(errs...)
	}
	who, _, err := fs.Attachers(ids)
	if err != nil {
		errs = append(errs, fmt.Errorf("reading /proc/*/maps: %w", err))
	}
	for i := range objs {
		if objs[i].Shm != nil {
			objs[i].Attachers = who[objs[i].ID]
		}
	}
	return errors.Join(errs...)
}

// ErrText is the innermost error text of err ("permission denied"), for
// reports that name the errno, not the chain of calls.
func ErrText(err error) string {
	for {
		u := errors.Unwrap(err)
		if u == nil {
			return err.Error()
		}
		err = u
	}
}

// IdentSet is a set of object identities, such as a journal's record of the
// snapshot taken before a run.
type IdentSet interface {
	Contains(Ident) bool
}

// DiffIdents returns the objects of after whose identity is not in before.
func DiffIdents(before IdentSet, after *Snapshot) []Object {
	var out []Object
	for i := range after.Shm {
		s := after.Shm[i]
		if id := s.ident(); !before.Contains(id) {
			out = append(out, Object{Ident: id, Shm: &s})
		}
	}
	for i := range after.Sem {
		s := after.Sem[i]
		if id := s.ident(); !before.Contains(id) {
			out = append(out, Object{Ident: id, Sem: &s})
		}
	}
	for i := range after.Msg {
		m := after.Msg[i]
		if id := m.ident(); !before.Contains(id) {
			out = append(out, Object{Ident: id, Msg: &m})
		}
	}
	return out
}

// Idents is a compact, sorted set of identities: what Diff needs of the
// snapshot taken before a run, at a fifth of the snapshot's memory.
type Idents []Ident

// IdentsOf returns the identities of the objects of s.
func IdentsOf(s *Snapshot) Idents {
	ids := make(Idents, 0, s.Len())
	for i := range s.Shm {
		ids = append(ids, s.Shm[i].ident())
	}
	for i := range s.Sem {
		ids = append(ids, s.Sem[i].ident())
	}
	for i := range s.Msg {
		ids = append(ids, s.Msg[i].ident())
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
	return cmp.Compare(a.CUID, b.CUID)
}

// Contains implements IdentSet.
func (s Idents) Contains(id Ident) bool {
	_, found := slices.BinarySearchFunc(s, id, cmpIdent)
	return found
}
