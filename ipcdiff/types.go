// Package ipcdiff reads the System V IPC objects of an IPC namespace from
// /proc/sysvipc, diffs two snapshots, decides which new objects a process
// tree created, and removes those safely.
package ipcdiff

import (
	"fmt"
	"strings"
	"time"
)

// Type is a kind of System V IPC object.
type Type uint8

const (
	TypeShm Type = iota // shared memory segment
	TypeSem             // semaphore set
	TypeMsg             // message queue
	numTypes
)

var typeNames = [numTypes]string{"shm", "sem", "msg"}

func (t Type) String() string {
	if t < numTypes {
		return typeNames[t]
	}
	return fmt.Sprintf("type(%d)", uint8(t))
}

// ParseType parses "shm", "sem" or "msg".
func ParseType(s string) (Type, error) {
	for i, n := range typeNames {
		if s == n {
			return Type(i), nil
		}
	}
	return 0, fmt.Errorf("%w: unknown IPC type %q (want shm, sem or msg)", ErrUsage, s)
}

// TypeSet is a set of Types.
type TypeSet uint8

// AllTypes holds shm, sem and msg.
const AllTypes TypeSet = 1<<TypeShm | 1<<TypeSem | 1<<TypeMsg

// Has reports whether t is in the set.
func (s TypeSet) Has(t Type) bool { return s&(1<<t) != 0 }

// ParseTypeSet parses a comma-separated list such as "shm,sem".
func ParseTypeSet(list string) (TypeSet, error) {
	var s TypeSet
	for _, f := range strings.Split(list, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		t, err := ParseType(f)
		if err != nil {
			return 0, err
		}
		s |= 1 << t
	}
	if s == 0 {
		return 0, fmt.Errorf("%w: empty IPC type list", ErrUsage)
	}
	return s, nil
}

func (s TypeSet) String() string {
	var n []string
	for t := Type(0); t < numTypes; t++ {
		if s.Has(t) {
			n = append(n, t.String())
		}
	}
	return strings.Join(n, ",")
}

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

// Sem is one line of /proc/sysvipc/sem.
type Sem struct {
	Key                  int32
	ID                   int
	Perms                uint32
	NSems                int
	UID, GID, CUID, CGID uint32
	Otime, Ctime         int64
}

// Msg is one line of /proc/sysvipc/msg.
type Msg struct {
	Key                  int32
	ID                   int
	Perms                uint32
	CBytes, QNum         uint64
	LSPID, LRPID         int // last msgsnd, last msgrcv
	UID, GID, CUID, CGID uint32
	Stime, Rtime, Ctime  int64
}

// SHM_DEST and SHM_LOCKED are the flag bits the kernel adds to shm perms.
const (
	ShmDest   = 0o1000
	ShmLocked = 0o2000
)

// Ident identifies an object across snapshots: ids are reused only after
// their sequence number wraps, and key and creator make a reuse visible.
type Ident struct {
	Type Type
	ID   int
	Key  int32
	CUID uint32
}

// KeyString formats a key the way ipcs does.
func KeyString(key int32) string { return fmt.Sprintf("0x%08x", uint32(key)) }

func (id Ident) String() string { return fmt.Sprintf("%s %d", id.Type, id.ID) }

// Snapshot is the objects of one IPC namespace at one time.
type Snapshot struct {
	Taken time.Time
	Types TypeSet // the types read; the others are empty
	Shm   []Shm
	Sem   []Sem
	Msg   []Msg
}

// Len is the number of objects in the snapshot.
func (s *Snapshot) Len() int { return len(s.Shm) + len(s.Sem) + len(s.Msg) }

// SemState is the kernel's per-semaphore state (semctl GETPID, GETNCNT, GETZCNT).
type SemState struct {
	Pid        int // last process to operate on the semaphore; 0 = none yet
	NCnt, ZCnt int // processes waiting for increase, for zero
}

// Object is one object found new by Diff, with the evidence gathered for it.
type Object struct {
	Ident
	Shm  *Shm // exactly one of Shm, Sem, Msg is set
	Sem  *Sem
	Msg  *Msg
	Sems []SemState // per-semaphore state of a new set (Sem only)
	// Attachers are the live pids that map the segment (Shm only), from
	// /proc/PID/maps; filled only when asked for.
	Attachers []int
	// Unreadable says which evidence could not be read (semctl GETPID
	// refused, /proc/PID/maps of a process we may not read while the
	// segment is attached, ...): "" when all of it was read. Evidence that
	// could not be read is not absence of evidence: such an object is kept.
	Unreadable string
}

// Owner returns the owner and creator uid/gid of the object.
func (o *Object) Owner() (uid, gid, cuid, cgid uint32) {
	switch {
	case o.Shm != nil:
		return o.Shm.UID, o.Shm.GID, o.Shm.CUID, o.Shm.CGID
	case o.Sem != nil:
		return o.Sem.UID, o.Sem.GID, o.Sem.CUID, o.Sem.CGID
	case o.Msg != nil:
		return o.Msg.UID, o.Msg.GID, o.Msg.CUID, o.Msg.CGID
	}
	return
}
