// Package journal keeps, for each ipcguard run, a small file in a per-user
// state directory from which a later `ipcguard sweep` can finish the run's
// cleanup when the supervisor itself was killed (SIGKILL, OOM): the identities
// of the objects that existed before the command started, the command's pid
// and start time, and the pids of its process tree as they were learned.
//
// The state directory also tells concurrent runs of the same uid about each
// other: see (*Journal).Overlapped.
//
// # File format
//
// A journal is a text file "run-<pid>-<start>.journal" (pid and start time of
// the supervisor), mode 0600, in two parts. The first part is written to a
// temporary file and renamed into place, so it is complete or absent:
//
//	ipcguard-journal 4 <offset of the record part, 16 hex digits>
//	H <sup pid> <sup start ticks> <uid> <gid> <started unix ns> <types> <strict 0|1>
//	A <argc> "<arg>"...          (Go-quoted strings)
//	K <n> <key>...               (keys to keep, signed decimal)
//	O "<on-policy>"
//	B <taken unix ns> <types> <n sections>
//	T <type> <n>                 (a section: n objects of this type follow)
//	<id> <key> <cuid>            (a System V object, hex)
//	<id> <key> <cuid> <dev> "<name>"
//	                             (a named object: its inode number as id,
//	                             its device in hex, its name Go-quoted)
//	E <CRC-32 of every byte before this line, 8 hex digits>
//
// Types are written by name: <types> is a comma-separated list ("shm,msg";
// "-" for none), <type> one name. A reader leaves out the types it does
// not know (a kind added later) and the objects of their sections. Names
// are quoted with strconv.QuoteToASCII: whatever bytes a name holds
// (spaces, newlines, quotes, bytes that are not UTF-8), its line stays one
// line of printable ASCII and strconv.Unquote gives it back exactly.
// Versions 2 and 3 wrote types as a TypeSet number and the before
// snapshot as "B <taken> <types> <n shm> <n sem> <n msg>" followed by the
// object lines of the three System V kinds; Load reads them too.
//
// The second part is appended, one record per write(2) on an O_APPEND
// descriptor, each a complete line ending in the CRC-32 of the bytes before
// its last space:
//
//	C <pid> <start ticks> <unix ns> <crc>   the command started
//	J <pid> <unix ns> <crc>                 pid joined the process tree
//	L <pid> <unix ns> <crc>                 pid left it
//	P <pid>... <crc>                        processes that existed when the pid watch began
//	W <from ns> <to ns> <lo> <hi> <all 0|1> <threads> <forks lo> <forks hi> <pid_max> <crc>
//	                                        the pid watch: pids in (lo, hi] (all: any pid)
//	                                        may have been handed out in (from, to]; then
//	                                        the allocator read hi, threads, the fork count
//	                                        before and after, pid_max
//	N <boot id> <ipc ns> <pid ns> <crc>     the namespaces of the run (procfs.NamespaceID)
//	G <type> <id> <proven 0|1> <unix ns> <crc>
//	                                        a get of the tree returned this id then
//	M <type> <dev> <pid> <unix ns> <moved 0|1> [<file>] "<name>" <crc>
//	                                        a watcher saw pid create (or move into place)
//	                                        the named object then (ipcdiff.Creation); file
//	                                        is the handle of the file the name was made for
//	                                        (posixipc.Handle, "TYPE:HEX"), absent when not
//	                                        known (and in journals written before it was
//	                                        recorded; a reader of that time skips a record
//	                                        with it as damaged, and so proves nothing)
//
//	Z "<pattern>" <crc>                     a --keep-name pattern of the run (one record each)
//	V <type> <state 1|2> <unix ns> <crc>    the creation watcher of the type's directory:
//	                                        1 watches every creation with its pid from then
//	                                        on, 2 lost events then (its record is incomplete)
//	X <times> <stays> <gets> <watch> <bad> <created> <crc>
//	                                        what compaction left out so far (see Compaction)
//
// A W record's all field is 2 for a record compaction merged (Merged).
// Past Header.CompactAt bytes the record part is compacted: the file is
// rewritten with the first part as it was and fewer records, by rules that
// only take evidence for the tree away (see Compaction).
//
// A file cut anywhere in the first part, or with any byte changed there, is
// corrupt (ErrCorrupt). In the second part a last line without its newline (a
// torn write) is ignored, and a complete line that does not validate is
// skipped and counted: Load never returns a record that was not written.
//
// Nothing is fsynced: System V IPC objects do not survive a reboot, so a
// journal lost in a crash of the machine has nothing left to clean.
package journal

import (
	"errors"
	"time"

	"github.com/ipcguard/ipcguard/ipcdiff"
)

// FormatVersion is the version of the journal format written by Begin.
// Version 1 had CRC-32C checksums; version 2 has the IEEE CRC-32, whose
// tables cost a tenth as much to set up at every start; version 3 adds
// compaction (the X record, and merged W records, which a reader of
// version 2 would skip as damaged and so lose); version 4 writes types by
// name and the before snapshot of every kind, with the device and name
// of named objects, and adds M records (a reader of version 3 could not
// read its before snapshot). Load reads versions 2 to 4.
const FormatVersion = 4

// typeNamesVersion is the first format version that writes types by
// name and the before snapshot by sections of any kind, with names.
const typeNamesVersion = 4

// oldestVersion is the oldest format version Load reads.
const oldestVersion = 2

var (
	// ErrCorrupt is wrapped by Load's error when the header or snapshot part
	// of a journal is incomplete or damaged.
	ErrCorrupt = errors.New("corrupt journal")
	// ErrVersion is wrapped by Load's error for a journal of another format
	// version.
	ErrVersion = errors.New("unsupported journal format version")
	// ErrClosed is returned by the record methods after Done.
	ErrClosed = errors.New("journal closed")
)

// Header describes a run. Begin fills zero SupervisorPid, SupervisorStart,
// UID, GID and Started from the calling process, and sets Version.
type Header struct {
	Version         int
	SupervisorPid   int
	SupervisorStart uint64 // clock ticks since boot, /proc/PID/stat field 22
	UID, GID        uint32
	Started         time.Time
	Types           ipcdiff.TypeSet
	Argv            []string
	Strict          bool
	KeepKeys        []int32
	OnPolicy        string
	// Registries are where the run also announces itself, whatever the
	// state directory (see DefaultRegistries); not written to the file.
	Registries []string
	// CompactAt is the size in bytes of the record part past which the
	// journal is compacted (see Compaction); 0 means DefaultCompactAt, a
	// negative value never. Not written to the file.
	CompactAt int64
}

// DefaultCompactAt is the record part's size at which a journal is
// compacted when Header.CompactAt is 0: 512 KiB, about 8000 forks.
const DefaultCompactAt = 512 << 10

// Member is one stay of a pid in the command's process tree. Joined or Left
// is zero when it was not recorded (Left is zero while the pid is in the tree).
type Member struct {
	Pid          int
	Joined, Left time.Time
}

// BeforeLen is the number of objects in the before snapshot.
func (r *Record) BeforeLen() int { return r.Before.Len() }

// Record is the content of a journal, as Load read it.
type Record struct {
	Header
	BeforeTaken  time.Time
	BeforeTypes  ipcdiff.TypeSet // the types the before snapshot read
	Before       ipcdiff.Idents  // the objects of the before snapshot
	BeforeNamed  []ipcdiff.Ident // those of them with a name (Before keeps only a hash of it)
	CommandPid   int             // 0 when the command was never recorded as started
	CommandStart uint64
	CommandAt    time.Time
	Members      []Member // in the order they joined
	// Pre lists the processes that existed when the pid watch began
	// (sorted), and Watch what it saw since, in time order: see Crossing.
	Pre        []int
	Watch      []Crossing
	LastCursor Cursor     // the allocator as the last W record read it
	Namespaces Namespaces // zero when the journal has no N record
	// Gets are the ids the tree's gets returned (creation tracking).
	Gets []Get
	// Created are the creations of named objects a watcher saw (M
	// records), in the order they were recorded.
	Created []ipcdiff.Creation
	// Watched are the types whose creations a watcher recorded with
	// their pids (V records), and WatchLost those whose watcher lost
	// events: the M records of a type count as complete only when it is
	// in Watched and not in WatchLost.
	Watched, WatchLost ipcdiff.TypeSet
	// Compacted says what compaction left out (zero when the journal was
	// never compacted).
	Compacted Compaction
	Path      string
	TornTail  bool // the file ended in an incomplete line (ignored)
	BadLines  int  // complete record lines that failed validation (skipped)

	// OwnKeys and OwnAllKeys are the keys the run declared the command's
	// (the Y record; see ipcdiff.Policy).
	OwnKeys    []int32
	OwnAllKeys bool
	// KeepNames are the run's --keep-name patterns (Z records; see
	// ipcdiff.Policy.KeepNamePatterns): a sweep keeps what the run would.
	KeepNames []string
}

// Damaged reports whether a complete record of the journal was lost (a
// line that failed validation, now or before a compaction): a lost pid
// watch record or process list would hide a hand-out, so the journal's pid
// watch proves nothing. A torn last line is not damage: nothing was
// recorded after it.
func (r *Record) Damaged() bool { return r.BadLines > 0 || r.Compacted.Bad > 0 }

// SupervisorAlive reports whether the ipcguard process that wrote the journal
// still runs.
func (r *Record) SupervisorAlive() bool {
	return ProcessAlive(r.SupervisorPid, r.SupervisorStart)
}

// CommandAlive reports whether the command recorded in the journal still runs.
func (r *Record) CommandAlive() bool {
	return r.CommandPid > 0 && ProcessAlive(r.CommandPid, r.CommandStart)
}

// Crossing is one record of the pid watch: the pids in the cyclic range
// (Lo, Hi] may have been handed to new processes between From and To; any
// pid when All.
type Crossing struct {
	From, To time.Time
	Lo, Hi   int
	All      bool
	// Merged marks a record compaction made of several (see Compaction):
	// its times are too coarse to place a member's own hand-out in it.
	Merged bool
}

// Cursor is the pid allocator as the watch last read it (see
// supervisor.CursorState): the last W record's.
type Cursor struct {
	Cursor, Threads  int
	ForksLo, ForksHi uint64
	PidMax           int
}

// Namespaces identifies where a run ran: its boot and its IPC and pid
// namespaces (procfs.BootID, procfs.NamespaceID).
type Namespaces struct {
	Boot, IPC, Pid string
}

// Get is one id a get of the tree returned; Proven when the get must have
// made the object (IPC_PRIVATE, or IPC_CREAT|IPC_EXCL).
type Get struct {
	Type   ipcdiff.Type
	ID     int
	Proven bool
	At     time.Time
}
