package ipcdiff

import (
	"fmt"
	"iter"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The System V shared memory segment: /proc/sysvipc/shm, shmctl, the
// attachers in /proc/PID/maps (ipc/shm.c).

// Shm is one line of /proc/sysvipc/shm.
type Shm struct {
	Key                  int32
	ID                   int
	Perms                uint32 // mode bits plus SHM_DEST (01000) and SHM_LOCKED (02000)
	Size                 uint64
	CPID, LPID           int // creator, last shmat/shmdt; 0 when not visible in the reader's pid namespace
	Nattch               uint64
	UID, GID, CUID, CGID uint32
	Atime, Dtime, Ctime  int64 // seconds since the epoch; 0 = never
	RSS, Swap            uint64
}

// SHM_DEST and SHM_LOCKED are the flag bits the kernel adds to shm perms.
const (
	ShmDest   = 0o1000
	ShmLocked = 0o2000
)

// Slots of the shm columns in a row.
const (
	shmKey = iota
	shmID
	shmPerms
	shmSize
	shmCPID
	shmLPID
	shmNattch
	shmUID
	shmGID
	shmCUID
	shmCGID
	shmAtime
	shmDtime
	shmCtime
	shmRSS
	shmSwap
)

// shmSchema describes /proc/sysvipc/shm. rss and swap appeared in Linux 4.6.
var shmSchema = schema{table: "shm", cols: []column{
	shmKey:    {"key", kindKey, false},
	shmID:     {"shmid", kindID, false},
	shmPerms:  {"perms", kindOctal, false},
	shmSize:   {"size", kindU64, false},
	shmCPID:   {"cpid", kindPid, false},
	shmLPID:   {"lpid", kindPid, false},
	shmNattch: {"nattch", kindU64, false},
	shmUID:    {"uid", kindU32, false},
	shmGID:    {"gid", kindU32, false},
	shmCUID:   {"cuid", kindU32, false},
	shmCGID:   {"cgid", kindU32, false},
	shmAtime:  {"atime", kindTime, false},
	shmDtime:  {"dtime", kindTime, false},
	shmCtime:  {"ctime", kindTime, false},
	shmRSS:    {"rss", kindU64, true},
	shmSwap:   {"swap", kindU64, true},
}}

// parseShm parses the text of /proc/sysvipc/shm.
func parseShm(b []byte) ([]Shm, error) { return appendShm(b, nil) }

// appendShm parses the text of /proc/sysvipc/shm, appending to out.
func appendShm(b []byte, out []Shm) ([]Shm, error) {
	return appendTable(&shmSchema, b, func(r *row) Shm {
		return Shm{
			Key:    int32(r[shmKey]),
			ID:     int(r[shmID]),
			Perms:  uint32(r[shmPerms]),
			Size:   r[shmSize],
			CPID:   int(r[shmCPID]),
			LPID:   int(r[shmLPID]),
			Nattch: r[shmNattch],
			UID:    uint32(r[shmUID]),
			GID:    uint32(r[shmGID]),
			CUID:   uint32(r[shmCUID]),
			CGID:   uint32(r[shmCGID]),
			Atime:  int64(r[shmAtime]),
			Dtime:  int64(r[shmDtime]),
			Ctime:  int64(r[shmCtime]),
			RSS:    r[shmRSS],
			Swap:   r[shmSwap],
		}
	}, out)
}

func (s *Shm) ident() Ident { return Ident{Type: TypeShm, ID: s.ID, Key: s.Key, CUID: s.CUID} }

// shmKind is the kind of System V shared memory segments.
type shmKind struct{}

func (shmKind) name() string { return "shm" }

func (shmKind) open(fs FS) (tableReader, error) {
	return openSysv(fs, TypeShm, appendShm, shmRow, func(s *Snapshot, rows []Shm) { s.Shm = rows })
}

func (shmKind) count(s *Snapshot) int { return len(s.Shm) }
func (shmKind) idents(s *Snapshot) iter.Seq2[int, Ident] {
	rows := s.Shm
	return func(yield func(int, Ident) bool) {
		for i := range rows {
			if !yield(i, rows[i].ident()) {
				return
			}
		}
	}
}
func (shmKind) addIdents(s *Snapshot, ids *Idents) {
	for i := range s.Shm {
		ids.add(s.Shm[i].ident())
	}
}

func (shmKind) only(dst, src *Snapshot) { dst.Shm = src.Shm }

func (shmKind) object(s *Snapshot, i int) Object {
	r := s.Shm[i]
	return Object{Ident: r.ident(), Shm: &r}
}

// gather names the live processes that map the segments among objs: those
// still attached (nattch > 0), or every one when users. An incomplete map
// (other users' maps unreadable) only names fewer attachers: nattch > 0
// keeps the segment either way.
func (shmKind) gather(fs FS, objs []Object, users bool) error {
	ids := map[int]bool{}
	for _, o := range objs {
		if o.Shm != nil && (users || o.Shm.Nattch > 0) {
			ids[o.ID] = true
		}
	}
	if len(ids) == 0 {
		return nil
	}
	who, _, err := fs.Attachers(ids)
	if err != nil {
		err = fmt.Errorf("reading /proc/*/maps: %w", err)
	}
	for i := range objs {
		if objs[i].Shm != nil {
			objs[i].Attachers = who[objs[i].ID]
		}
	}
	return err
}

// evidence: cpid proves creation (the kernel records it for every
// segment); its window runs from the run's start to the earliest of ctime
// (creation, or a later IPC_SET that may change nothing visible), atime
// and dtime. lpid is the last shmat or shmdt (or the detach at exit),
// stamped by the later of atime and dtime; with nattch 0 that use has
// ended.
func (shmKind) evidence(o *Object) Evidence {
	ev := Evidence{Family: Family{Key: o.Key}}
	s := o.Shm
	if s == nil {
		return ev
	}
	ev.CreatorRecorded = true
	ev.UID, ev.GID, ev.CUID, ev.CGID = s.UID, s.GID, s.CUID, s.CGID
	ev.Ctime, ev.Last = s.Ctime, max(s.Ctime, s.Atime, s.Dtime)
	first := s.Ctime
	for _, t := range []int64{s.Atime, s.Dtime} {
		if t > 0 && (first <= 0 || t < first) {
			first = t
		}
	}
	ev.Pids = make([]PidFact, 0, 2)
	if s.CPID > 0 {
		ev.Pids = append(ev.Pids, PidFact{Role: "creator", Pid: s.CPID, Stamp: first, NoLater: true, Creator: true})
	}
	if s.LPID > 0 {
		ev.Pids = append(ev.Pids, PidFact{Role: "last attach/detach", Pid: s.LPID, Stamp: max(s.Atime, s.Dtime), LetGo: s.Nattch == 0})
	}
	ev.Users = []Users{{How: "attached by", Pids: o.Attachers, Count: s.Nattch, None: "nobody attaches it"}}
	if s.CPID == 0 {
		ev.Invisible = append(ev.Invisible, "its creator is not visible from this pid namespace")
	}
	if s.LPID == 0 && (s.Atime != 0 || s.Dtime != 0) {
		ev.Invisible = append(ev.Invisible, "it was attached by a process not visible from this pid namespace")
	}
	if s.Perms&ShmDest != 0 {
		ev.Removed = fmt.Sprintf("marked for destruction, freed at the last detach (%d attached)", s.Nattch)
	}
	return ev
}

func (shmKind) getsTracked() bool { return true }

func (k shmKind) remove(fs FS, o Object) (RemoveOutcome, error) { return removeSysv(fs, k, o) }

func (shmKind) listing(o *Object) Listing {
	s := o.Shm
	if s == nil {
		return Listing{}
	}
	l := Listing{UID: s.UID, Perms: s.Perms & 0o777, Size: s.Size, Nattch: s.Nattch, Creator: s.CPID, HasCreator: true,
		Users: o.Attachers, Ctime: s.Ctime}
	if s.LPID > 0 {
		l.LastOp = []int{s.LPID}
	}
	if s.Perms&ShmDest != 0 {
		l.Flags = "dest"
	}
	return l
}

func (shmKind) fromStat(id Ident, b *statBuf) (Object, bool) {
	r, ok := shmRow(id.ID, b)
	if !ok {
		return Object{}, false
	}
	return Object{Ident: id, Shm: &r}, true
}

// shmRow is the row /proc/sysvipc/shm shows for segment id, from the
// struct shmid64_ds IPC_STAT or SHM_STAT_ANY wrote into b, without rss
// and swap (which only /proc gives); ok is false where the layout is not
// known here (not 64-bit).
func shmRow(id int, b *statBuf) (Shm, bool) {
	if unsafe.Sizeof(uintptr(0)) != 8 {
		return Shm{}, false
	}
	d := (*unix.SysvShmDesc)(unsafe.Pointer(b))
	return Shm{Key: d.Perm.Key, ID: id, Perms: d.Perm.Mode & 0xffff, Size: d.Segsz, CPID: int(d.Cpid), LPID: int(d.Lpid),
		Nattch: d.Nattch, UID: d.Perm.Uid, GID: d.Perm.Gid, CUID: d.Perm.Cuid, CGID: d.Perm.Cgid,
		Atime: d.Atime, Dtime: d.Dtime, Ctime: d.Ctime}, true
}

func (shmKind) destroyed(mode uint32) bool { return mode&ShmDest != 0 }

// changed: who is attached, who attached or detached last, and when.
func (shmKind) changed(o, cur *Object) string {
	a, b := o.Shm, cur.Shm
	switch {
	case a == nil:
		return ""
	case b == nil:
		return "cannot be read again"
	case b.Nattch != a.Nattch:
		return fmt.Sprintf("nattch %d, was %d", b.Nattch, a.Nattch)
	case b.CPID != a.CPID || b.LPID != a.LPID:
		return fmt.Sprintf("cpid/lpid %d/%d, were %d/%d", b.CPID, b.LPID, a.CPID, a.LPID)
	case b.Atime != a.Atime || b.Dtime != a.Dtime || b.Ctime != a.Ctime:
		return "attached, detached or changed since"
	}
	return ""
}

func (shmKind) reread(o, cur *Object) RemoveOutcome { return RemoveOutcome{} }

// removed: an attached segment is only marked (SHM_DEST, key cleared) and
// destroyed at the last detach: say so.
func (shmKind) removed(id int) RemoveResult {
	var b statBuf
	if ipcStatID(TypeShm, id, &b) == 0 && b.perm().Mode&ShmDest != 0 {
		return RemovedDeferred
	}
	return Removed
}
