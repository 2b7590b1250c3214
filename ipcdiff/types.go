package ipcdiff

import (
	"fmt"
	"iter"
	"strings"
	"time"
)

// Type is a kind of IPC object (kind.go lists them).
type Type uint8

func (t Type) String() string {
	if k := kindOf(t); k != nil {
		return k.name()
	}
	return fmt.Sprintf("type(%d)", uint8(t))
}

// ParseType parses the name of a kind: "shm", "sem", "msg", "pshm",
// "psem" or "pmsg".
func ParseType(s string) (Type, error) {
	for t, k := range kinds {
		if s == k.name() {
			return Type(t), nil
		}
	}
	return 0, fmt.Errorf("%w: unknown IPC type %q (want %s)", ErrUsage, s, typeNames())
}

// typeNames lists the names of the kinds: "shm, sem or msg".
func typeNames() string {
	var n []string
	for _, k := range kinds {
		n = append(n, k.name())
	}
	if len(n) < 2 {
		return strings.Join(n, "")
	}
	return strings.Join(n[:len(n)-1], ", ") + " or " + n[len(n)-1]
}

// TypeSet is a set of Types.
type TypeSet uint32

// AllTypes holds every kind.
const AllTypes TypeSet = 1<<numTypes - 1

// Has reports whether t is in the set.
func (s TypeSet) Has(t Type) bool { return t < maxTypes && s&(1<<t) != 0 }

// All yields the Types of the set that a kind has, in order.
func (s TypeSet) All() iter.Seq[Type] {
	return func(yield func(Type) bool) {
		for t := range numTypes {
			if s.Has(Type(t)) && !yield(Type(t)) {
				return
			}
		}
	}
}

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
	for t := range s.All() {
		n = append(n, t.String())
	}
	return strings.Join(n, ",")
}

// Ident identifies an object across snapshots. A SysV object is its type,
// IPC id, key and creator uid: ids are reused only after their sequence
// number wraps, and key and creator make a reuse visible. A POSIX object
// (a file of the shm tmpfs or of the mqueue filesystem) is its type, the
// filesystem's device (Dev), its inode number (ID) and its name. Ident is
// comparable: a map key.
type Ident struct {
	Type Type
	ID   int // the IPC id; a POSIX object's inode number
	Key  int32
	CUID uint32
	Dev  uint64 // a POSIX object's filesystem (st_dev); 0 for SysV
	// Name is a POSIX object's name as its directory lists it ("foo",
	// glibc's semaphore "sem.foo"); "" for SysV.
	Name string
}

// KeyString formats a key the way ipcs does: "0x%08x" (without fmt, and
// without allocating for IPC_PRIVATE: a report names thousands).
func KeyString(key int32) string {
	if key == 0 {
		return "0x00000000"
	}
	const digits = "0123456789abcdef"
	b := [10]byte{'0', 'x'}
	for i, u := 9, uint32(key); i >= 2; i, u = i-1, u>>4 {
		b[i] = digits[u&15]
	}
	return string(b[:])
}

// String is "shm 32768", or a named object's type and name: "pshm foo".
func (id Ident) String() string {
	if id.Name != "" {
		return id.Type.String() + " " + id.Name
	}
	return fmt.Sprintf("%s %d", id.Type, id.ID)
}

// Snapshot is the objects of one IPC namespace at one time. The SysV
// kinds keep their rows in Shm, Sem and Msg; a kind without a field here
// keeps them in rows[its Type], as it likes (a slice of its row type).
type Snapshot struct {
	Taken time.Time
	Types TypeSet // the types read; the others are empty
	Shm   []Shm
	Sem   []Sem
	Msg   []Msg
	rows  [numTypes]any // the rows of kinds without a field above
	// Unread says, for each requested kind that could not be read
	// because what holds it is not there (a POSIX directory: ErrNoDir),
	// why; such a kind is not in Types.
	Unread map[Type]error
}

// Len is the number of objects in the snapshot.
func (s *Snapshot) Len() int {
	n := 0
	for _, k := range kinds {
		n += k.count(s)
	}
	return n
}

// Object is one object, found new by DiffIdents or listed by Objects,
// with the evidence gathered for it. Its kind's row is in the field of
// the kind (Shm, Sem, Msg) or in Data; the evidence a gathering adds is in
// the fields below them or, for a kind that has its own, in Data too.
type Object struct {
	Ident
	Shm *Shm // the row of a segment, set, queue (one of them, by Type)
	Sem *Sem
	Msg *Msg
	// Data is the row and gathered evidence of a kind without a field
	// above, as the kind keeps them.
	Data any
	Sems []SemState // per-semaphore state of a set (Sem only)
	// Attachers are the live pids that map the segment (Shm only), from
	// /proc/PID/maps; filled only when asked for.
	Attachers []int
	// Unreadable says which evidence could not be read (semctl GETPID
	// refused, /proc/PID/maps of a process we may not read while the
	// segment is attached, ...): "" when all of it was read. Evidence that
	// could not be read is not absence of evidence: such an object is kept.
	Unreadable string
}
