package ipcdiff

import (
	"errors"
	"fmt"
	"iter"
	"runtime"
	"slices"
	"sync"
	"unsafe"
)

// The System V semaphore set: /proc/sysvipc/sem, and semctl for what the
// table lacks, each semaphore's last pid and waiters (ipc/sem.c).

// Sem is one line of /proc/sysvipc/sem.
type Sem struct {
	Key                  int32
	ID                   int
	Perms                uint32
	NSems                int
	UID, GID, CUID, CGID uint32
	Otime, Ctime         int64
}

// SemState is the kernel's per-semaphore state (semctl GETPID, GETNCNT, GETZCNT).
type SemState struct {
	Pid        int // last process to operate on the semaphore; 0 = none yet
	NCnt, ZCnt int // processes waiting for increase, for zero
}

// Slots of the sem columns in a row.
const (
	semKey = iota
	semID
	semPerms
	semNSems
	semUID
	semGID
	semCUID
	semCGID
	semOtime
	semCtime
)

// semSchema describes /proc/sysvipc/sem. It has no pid column: the
// per-semaphore pids come from semctl (see semStates).
var semSchema = schema{table: "sem", cols: []column{
	semKey:   {"key", kindKey, false},
	semID:    {"semid", kindID, false},
	semPerms: {"perms", kindOctal, false},
	semNSems: {"nsems", kindID, false},
	semUID:   {"uid", kindU32, false},
	semGID:   {"gid", kindU32, false},
	semCUID:  {"cuid", kindU32, false},
	semCGID:  {"cgid", kindU32, false},
	semOtime: {"otime", kindTime, false},
	semCtime: {"ctime", kindTime, false},
}}

// parseSem parses the text of /proc/sysvipc/sem.
func parseSem(b []byte) ([]Sem, error) { return appendSem(b, nil) }

// appendSem parses the text of /proc/sysvipc/sem, appending to out.
func appendSem(b []byte, out []Sem) ([]Sem, error) {
	return appendTable(&semSchema, b, func(r *row) Sem {
		return Sem{
			Key:   int32(r[semKey]),
			ID:    int(r[semID]),
			Perms: uint32(r[semPerms]),
			NSems: int(r[semNSems]),
			UID:   uint32(r[semUID]),
			GID:   uint32(r[semGID]),
			CUID:  uint32(r[semCUID]),
			CGID:  uint32(r[semCGID]),
			Otime: int64(r[semOtime]),
			Ctime: int64(r[semCtime]),
		}
	}, out)
}

func (s *Sem) ident() Ident { return Ident{Type: TypeSem, ID: s.ID, Key: s.Key, CUID: s.CUID} }

// semKind is the kind of System V semaphore sets.
type semKind struct{}

func (semKind) name() string { return "sem" }

func (semKind) open(fs FS) (tableReader, error) {
	return openSysv(fs, TypeSem, appendSem, semRow, func(s *Snapshot, rows []Sem) { s.Sem = rows })
}

func (semKind) count(s *Snapshot) int { return len(s.Sem) }
func (semKind) idents(s *Snapshot) iter.Seq2[int, Ident] {
	rows := s.Sem
	return func(yield func(int, Ident) bool) {
		for i := range rows {
			if !yield(i, rows[i].ident()) {
				return
			}
		}
	}
}
func (semKind) addIdents(s *Snapshot, ids *Idents) {
	for i := range s.Sem {
		ids.add(s.Sem[i].ident())
	}
}

func (semKind) only(dst, src *Snapshot) { dst.Sem = src.Sem }

func (semKind) object(s *Snapshot, i int) Object {
	r := s.Sem[i]
	return Object{Ident: r.ident(), Sem: &r}
}

// gather fills Sems of the sets among objs (enrichSems); a set whose
// semaphores could not be read (other than gone) is Unreadable.
func (semKind) gather(fs FS, objs []Object, users bool) error {
	var errs []error
	unread := map[Ident]string{}
	for _, e := range enrichSems(objs) {
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
	return errors.Join(errs...)
}

// evidence: each semaphore's last pid (semop, SETVAL, SETALL, a SEM_UNDO
// adjustment at exit). The kernel keeps no time per semaphore (the set's
// otime is the latest semop on any of them, SETVAL stamps ctime, and undo
// adjustments stamp nothing): each may lie anywhere in the run. No creator
// pid is kept.
func (semKind) evidence(o *Object) Evidence {
	ev := Evidence{Family: Family{Key: o.Key}}
	s := o.Sem
	if s == nil {
		return ev
	}
	ev.UID, ev.GID, ev.CUID, ev.CGID = s.UID, s.GID, s.CUID, s.CGID
	ev.Ctime, ev.Last = s.Ctime, max(s.Ctime, s.Otime)
	zero := 0
	waiting := false
	for i, st := range o.Sems {
		if st.Pid > 0 {
			if ev.Pids == nil {
				ev.Pids = make([]PidFact, 0, len(o.Sems)-i)
			}
			ev.Pids = append(ev.Pids, PidFact{Role: semRole(i), Pid: st.Pid})
		} else if st.Pid == 0 {
			zero++
		}
		if st.NCnt > 0 || st.ZCnt > 0 {
			waiting = true
			ev.Waiters = append(ev.Waiters, fmt.Sprintf("semaphore %d has %d waiting process(es)", i, st.NCnt+st.ZCnt))
		}
	}
	if o.Sems != nil && !waiting {
		ev.NoWaiters = "nobody waits on it"
	}
	if s.Otime != 0 && len(o.Sems) > 0 && zero == len(o.Sems) {
		ev.Invisible = append(ev.Invisible, "it was operated on by a process not visible from this pid namespace")
	}
	if o.Sems == nil && s.NSems > 0 {
		ev.NotGathered = "its semaphores were not read"
	}
	return ev
}

// semRole is the role of semaphore i's pid fact; the first ones are made
// once (a run may leave thousands of sets).
func semRole(i int) string {
	if r := semRoles(); i < len(r) {
		return r[i]
	}
	return fmt.Sprintf("semaphore %d last op", i)
}

var semRoles = sync.OnceValue(func() []string {
	r := make([]string, 16)
	for i := range r {
		r[i] = fmt.Sprintf("semaphore %d last op", i)
	}
	return r
})

func (semKind) getsTracked() bool { return true }

func (k semKind) remove(fs FS, o Object) (RemoveOutcome, error) { return removeSysv(fs, k, o) }

func (semKind) listing(o *Object) Listing {
	s := o.Sem
	if s == nil {
		return Listing{}
	}
	l := Listing{UID: s.UID, Perms: s.Perms & 0o777, NSems: s.NSems, Ctime: s.Ctime}
	for _, x := range o.Sems {
		if x.Pid > 0 && !slices.Contains(l.LastOp, x.Pid) {
			l.LastOp = append(l.LastOp, x.Pid)
		}
	}
	return l
}

func (semKind) fromStat(id Ident, b *statBuf) (Object, bool) {
	r, ok := semRow(id.ID, b)
	if !ok {
		return Object{}, false
	}
	return Object{Ident: id, Sem: &r}, true
}

// semRow is the row /proc/sysvipc/sem shows for set id, from the struct
// semid64_ds IPC_STAT or SEM_STAT_ANY wrote into b (x86_64 pads each time
// with an unused long); ok is false where the layout is not known here.
func semRow(id int, b *statBuf) (Sem, bool) {
	if unsafe.Sizeof(uintptr(0)) != 8 {
		return Sem{}, false
	}
	w := (*[32]int64)(unsafe.Pointer(b))
	base := int(unsafe.Sizeof(*b.perm())) / 8
	otime, ctime, nsems := w[base], w[base+1], w[base+2]
	switch runtime.GOARCH {
	case "amd64":
		ctime, nsems = w[base+2], w[base+4]
	case "arm64", "riscv64", "loong64":
	default:
		return Sem{}, false
	}
	p := b.perm()
	return Sem{Key: p.Key, ID: id, Perms: p.Mode & 0xffff, NSems: int(nsems), UID: p.Uid, GID: p.Gid,
		CUID: p.Cuid, CGID: p.Cgid, Otime: otime, Ctime: ctime}, true
}

func (semKind) destroyed(uint32) bool { return false }

// changed: the last semop or change, and each semaphore's pid and
// waiters.
func (semKind) changed(o, cur *Object) string {
	switch {
	case o.Sem == nil:
		return ""
	case cur.Sem == nil:
		return "cannot be read again"
	case cur.Sem.Otime != o.Sem.Otime || cur.Sem.Ctime != o.Sem.Ctime:
		return "operated on or changed since"
	case cur.Sems != nil && !slices.Equal(cur.Sems, o.Sems):
		return "its semaphores' last pids or waiters changed"
	}
	return ""
}

// reread reads each semaphore's pid and waiters again when the decision
// rested on them.
func (semKind) reread(o, cur *Object) RemoveOutcome {
	if o.Sems == nil || cur.Sem == nil {
		return RemoveOutcome{}
	}
	st, err := semStates(o.ID, cur.Sem.NSems)
	switch {
	case err != nil && isGone(err):
		return RemoveOutcome{Result: AlreadyGone}
	case err != nil:
		return RemoveOutcome{Result: Touched, Why: "its semaphores cannot be read again: " + ErrText(err)}
	}
	cur.Sems = st
	return RemoveOutcome{}
}

func (semKind) removed(int) RemoveResult { return Removed }
