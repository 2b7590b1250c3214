package ipcdiff

import (
	"fmt"
	"iter"
	"time"
)

// The kinds of IPC object, by Type: the one place a kind is registered.
// A Type is written to journals (as a bit of a TypeSet and by name), so a
// kind keeps its number: a new kind takes the next one.
const (
	TypeShm  Type = iota // System V shared memory segment (shm.go)
	TypeSem              // System V semaphore set (sem.go)
	TypeMsg              // System V message queue (msg.go)
	TypePshm             // POSIX shared memory (pshm.go)
	TypePsem             // POSIX named semaphore, glibc's sem.NAME (psem.go)
	TypePmsg             // POSIX message queue (pmsg.go)
	numTypes             // the number of kinds; at most maxTypes
)

// kinds holds the implementation of each kind.
var kinds = [numTypes]kind{
	TypeShm:  shmKind{},
	TypeSem:  semKind{},
	TypeMsg:  msgKind{},
	TypePshm: pshmKind,
	TypePsem: psemKind,
	TypePmsg: pmsgKind,
}

// maxTypes is how many kinds a TypeSet can hold.
const maxTypes = 32

var _ [maxTypes - numTypes]struct{} // numTypes <= maxTypes

func init() {
	for t, k := range kinds {
		if k == nil {
			panic(fmt.Sprintf("ipcdiff: type %d has no kind", t))
		}
	}
}

// kindOf is the kind of t, nil for a Type no kind has.
func kindOf(t Type) kind {
	if t < numTypes {
		return kinds[t]
	}
	return nil
}

// kind is one kind of IPC object: everything the generic code (snapshot,
// diff, evidence, attribution, orphans, removal) needs to know of it. Each
// method deals with the kind's own objects only; the generic code calls
// the kind of an object's Type.
type kind interface {
	// name is the kind's name in type lists, selectors and reports, as
	// util-linux spells it ("shm").
	name() string

	// open opens, on the calling goroutine, what holds the kind's objects
	// (/proc/sysvipc/shm, a directory): the namespaces that decide what is
	// seen are the calling thread's. The reader it returns may be read on
	// another goroutine, concurrently with the other kinds' readers.
	open(fs FS) (tableReader, error)

	// count is the number of the kind's objects in s; idents yields the
	// index and identity of each; object is the i-th as an Object, with a
	// copy of its row (an Object never points into a Snapshot); only
	// copies the kind's objects of src into dst when it keeps them in a
	// field of its own (Snapshot.Shm), not in Snapshot.rows.
	count(s *Snapshot) int
	idents(s *Snapshot) iter.Seq2[int, Ident]
	addIdents(s *Snapshot, ids *Idents) // adds the identities of the kind's objects (Idents.add)
	object(s *Snapshot, i int) Object
	only(dst, src *Snapshot)

	// gather fills in the evidence of the kind's objects among objs that
	// a listing lacks (per-semaphore pids, attachers, holders), marking
	// Unreadable what could not be read. users is false for a run: only
	// objects that some process uses by the listing's own account (nattch
	// > 0) need their users named; true for orphans: every object. An
	// object that vanished meanwhile is left as it is; the error joins the
	// other failures.
	gather(fs FS, objs []Object, users bool) error

	// evidence is what o (of this kind) shows, in the terms of
	// docs/evidence.md that attribution and orphans judge. o may carry
	// no row (an Object made from an Ident): then only its family.
	evidence(o *Object) Evidence

	// getsTracked reports whether the creation trackers of a run
	// (Tree.Created) see the calls that make the kind's objects: only then
	// does a tracked run's silence about an object count against it.
	getsTracked() bool

	// remove removes o after reading it again: a different identity
	// (Changed), or a change of anything its evidence rested on (Touched),
	// keeps it; see Remove.
	remove(fs FS, o Object) (RemoveOutcome, error)

	// listing is what `ipcguard ls` shows of o.
	listing(o *Object) Listing
}

// tableReader reads the objects of one kind that its open opened.
type tableReader interface {
	// size is the number of objects expected (-1: unknown); it only sizes
	// buffers and chooses whether to read the kinds in parallel.
	size() int
	// read reads the objects into the kind's part of s, and only there.
	read(s *Snapshot) error
	close()
}

// Family names the objects that stay together (docs/evidence.md, key
// families): programs pair objects on one SysV key (ALSA's dmix pairs a
// segment and a set), or on one POSIX name. The zero Family (IPC_PRIVATE)
// joins nothing.
type Family struct {
	Key  int32  // a SysV key
	Name string // a POSIX name ("/foo"), when Key is 0
}

// IsZero reports whether f names no family.
func (f Family) IsZero() bool { return f.Key == 0 && f.Name == "" }

// String is the key as ipcs shows it, or the name.
func (f Family) String() string {
	if f.Name != "" {
		return f.Name
	}
	return KeyString(f.Key)
}

// noun is "key 0x00001234" or "name /foo".
func (f Family) noun() string {
	if f.Name != "" {
		return "name " + f.Name
	}
	return "key " + KeyString(f.Key)
}

// PidFact is one pid the kernel (or a tracker) recorded on an object, with
// when the action it records took place. Attribution counts it for the
// tree only with its time (docs/evidence.md, "A pid counts only with its
// time"); orphans ask whether it is dead or reused.
type PidFact struct {
	Role string // "creator", "last attach/detach", "semaphore 2 last op"
	Pid  int    // > 0
	// Stamp is the kernel's time stamp of the action, whole seconds since
	// the epoch (widened by StampSlack and the run's clock slack); 0 when
	// the kernel keeps none: then the action may lie anywhere in the run.
	// NoLater says the stamp only bounds the action from above (a creator
	// under a ctime that a later change may have moved).
	Stamp   int64
	NoLater bool
	// From and To, when To is set, are the window of the action as a
	// tracker observed it (a creation seen by fanotify), used instead of
	// Stamp.
	From, To time.Time
	// Creator says the action made the object (shm cpid, a creation seen):
	// the tree's creator proves creation.
	Creator bool
	// LetGo says the use this pid made has ended (a segment nobody has
	// attached now): an outsider's LetGo fact does not keep a private
	// object whose creation by the tree is proven (X11 MIT-SHM).
	LetGo bool
}

// Users is one way processes use an object now: attach it, hold it open,
// map it.
type Users struct {
	How   string // "attached by", "held open by", "mapped by"
	Pids  []int  // the live processes, as far as they could be named
	Count uint64 // how many the kernel counts (nattch); 0 when it keeps no count
	// None is what to say for an orphan when nobody uses it so ("nobody
	// attaches it"); "" to say nothing.
	None string
}

// Evidence is a kind's account of one object in the generic terms of
// docs/evidence.md, which Attribute and Orphans judge the same way for
// every kind. A kind only translates; it decides nothing.
type Evidence struct {
	Family Family
	// Owner and creator (uid, gid): window evidence wants the run's
	// creator; a private object the tree only used wants the run's
	// creator uid. A kind without a separate creator gives the owner.
	UID, GID, CUID, CGID uint32
	// Ctime is the creation, or a later change that may hide it (IPC_SET,
	// SETVAL, chmod): the creation is not later. Last is the latest of the
	// object's stamps (creation, change, use, birth and modification
	// times): every action a pid is recorded for moves one of them. Both
	// are whole seconds since the epoch; 0 when there are none.
	Ctime, Last int64
	// Pids are the pid facts, in the order reports name them.
	Pids []PidFact
	// CreatorRecorded says the kernel records the creator of every object
	// of the kind (shm cpid) or a tracker saw this one made: an object
	// without a creator fact then has an invisible creator (Invisible
	// says so). Without it (sets, queues, POSIX objects), that the tree
	// used an object does not prove it made it: a keyed one needs proof
	// of creation, a private one the run's creator uid, and one never
	// used can be judged an orphan by its age only.
	CreatorRecorded bool
	// Users are the processes that use the object now.
	Users []Users
	// Waiters describe processes waiting on the object ("semaphore 2 has 1
	// waiting process(es)"); NoWaiters is what to say for an orphan when
	// no process waits and the kind could tell ("" to say nothing).
	Waiters   []string
	NoWaiters string
	// Invisible lists signs that a process this pid namespace cannot see
	// used the object (a pid field 0 with activity).
	Invisible []string
	// NotGathered says which evidence a gathering would have read and did
	// not (an orphan needs it all); Object.Unreadable says what could not
	// be read.
	NotGathered string
	// Removed says how the object is already removed ("marked for
	// destruction, freed at the last detach (1 attached)"): never removed
	// again.
	Removed string
}

// Evidence is what o shows for attribution and orphans (its kind's
// account; only its family for a Type no kind has).
func (o *Object) Evidence() Evidence {
	if k := kindOf(o.Type); k != nil {
		return k.evidence(o)
	}
	return Evidence{Family: Family{Key: o.Key, Name: o.Name}}
}

// Listing is what `ipcguard ls` shows of an object; the fields a kind has
// no use for are zero.
type Listing struct {
	UID      uint32
	Perms    uint32 // permission bits
	Size     uint64 // bytes (shm)
	NSems    int    // sem
	Messages uint64 // msg
	Queue    bool   // a message queue: Messages is its size
	Nattch   uint64 // shm
	// Creator is the creator's pid when the kind records one (HasCreator).
	Creator    int
	HasCreator bool
	LastOp     []int // the pids of the last operations, each once
	Users      []int // the live processes that use it (attach, hold, map)
	Ctime      int64
	Flags      string // "dest": already removed, freed at the last detach
}

// Owners is what Evidence says of o's owner and creator (UID, GID, CUID,
// CGID), without building the rest of it: a report wants them for every
// object.
func (o *Object) Owners() (uid, gid, cuid, cgid uint32) {
	switch {
	case o.Type == TypeShm && o.Shm != nil:
		return o.Shm.UID, o.Shm.GID, o.Shm.CUID, o.Shm.CGID
	case o.Type == TypeSem && o.Sem != nil:
		return o.Sem.UID, o.Sem.GID, o.Sem.CUID, o.Sem.CGID
	case o.Type == TypeMsg && o.Msg != nil:
		return o.Msg.UID, o.Msg.GID, o.Msg.CUID, o.Msg.CGID
	}
	c := *o // the kind's evidence makes its argument escape: a copy, on this path only
	ev := c.Evidence()
	return ev.UID, ev.GID, ev.CUID, ev.CGID
}

// Listing is what `ipcguard ls` shows of o; with the evidence gathered
// (Gather), the users and last operations it names.
func (o *Object) Listing() Listing {
	if k := kindOf(o.Type); k != nil {
		return k.listing(o)
	}
	return Listing{}
}
