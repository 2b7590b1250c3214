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
//	ipcguard-journal 3 <offset of the record part, 16 hex digits>
//	H <sup pid> <sup start ticks> <uid> <gid> <started unix ns> <types> <strict 0|1>
//	A <argc> "<arg>"...          (Go-quoted strings)
//	K <n> <key>...               (keys to keep, signed decimal)
//	O "<on-policy>"
//	B <taken unix ns> <types> <n shm> <n sem> <n msg>
//	<id> <key> <cuid>            (one line per object, hex: shm, then sem, then msg)
//	E <CRC-32 of every byte before this line, 8 hex digits>
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
//
//	X <times> <stays> <gets> <watch> <bad> <crc>
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
	"bytes"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math/bits"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ipcguard/ipcguard/ipcdiff"
)

// FormatVersion is the version of the journal format written by Begin.
// Version 1 had CRC-32C checksums; version 2 has the IEEE CRC-32, whose
// tables cost a tenth as much to set up at every start; version 3 adds
// compaction (the X record, and merged W records, which a reader of
// version 2 would skip as damaged and so lose). Load reads versions 2
// and 3.
const FormatVersion = 3

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

// IdentSet is a set of object identities.
type IdentSet map[ipcdiff.Ident]struct{}

// Contains reports whether id is in the set.
func (s IdentSet) Contains(id ipcdiff.Ident) bool {
	_, ok := s[id]
	return ok
}

// Len is the number of identities in the set.
func (s IdentSet) Len() int { return len(s) }

// BeforeLen is the number of objects in the before snapshot.
func (r *Record) BeforeLen() int { return len(r.Before) }

// Record is the content of a journal, as Load read it.
type Record struct {
	Header
	BeforeTaken  time.Time
	BeforeTypes  ipcdiff.TypeSet // the types the before snapshot read
	Before       IdentSet        // the objects of the before snapshot
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

// Journal is the journal of a run in progress. The record methods may be
// called from several goroutines.
type Journal struct {
	dir, name, path string
	uid             uint32
	seq             uint64 // the sequence value Begin wrote
	atBegin         []peer // other live runs when Begin ran

	regs   []*registered // registries the run announced itself in
	regErr []string      // registries it could not use

	mu     sync.Mutex
	f      *os.File // O_RDWR|O_APPEND; nil after Done
	broken bool     // a write failed part way: the file may end in a torn line
	err    error    // first record write error

	// Compaction (see compact).
	head      int64        // length of the first part
	size      int64        // length of the record part
	compactAt int64        // Header.CompactAt; <= 0: never
	next      int64        // compact when size reaches it
	retain    func() []int // see Retain
	compacted Compaction   // what compaction dropped so far
}

// Path is the journal's file name.
func (j *Journal) Path() string { return j.path }

// Begin writes the journal of a new run into the state directory dir (see
// StateDir) and registers the run in the directory's sequence file. Call it
// before the command starts; call Done once the run's cleanup is finished.
// before may be nil (no objects).
func Begin(dir string, h Header, before *ipcdiff.Snapshot) (*Journal, error) {
	if h.SupervisorPid < 0 {
		return nil, fmt.Errorf("journal: invalid supervisor pid %d", h.SupervisorPid)
	}
	if h.SupervisorPid == 0 {
		h.SupervisorPid = os.Getpid()
	}
	if h.SupervisorStart == 0 {
		st, err := ProcessStart(h.SupervisorPid)
		if err != nil {
			return nil, fmt.Errorf("journal: start time of pid %d: %w", h.SupervisorPid, err)
		}
		h.SupervisorStart = st
	}
	if h.UID == 0 && h.GID == 0 {
		h.UID, h.GID = uint32(os.Geteuid()), uint32(os.Getegid())
	}
	if h.Started.IsZero() {
		h.Started = time.Now()
	}
	h.Version = FormatVersion

	buf := encodeHead(&h, before)

	j := &Journal{
		dir:  dir,
		name: journalName(h.SupervisorPid, h.SupervisorStart),
		uid:  h.UID,
	}
	j.path = filepath.Join(dir, j.name)

	// The sequence lock is held from the increment until the journal is in
	// place: a run that takes the lock after us sees our journal, a run that
	// took it before us has its journal in place for us to see.
	seqf, err := openRegular(filepath.Join(dir, seqName), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	defer seqf.Close() // releases the lock
	if err := flock(seqf, syscall.LOCK_EX); err != nil {
		return nil, fmt.Errorf("journal: lock %s: %w", seqf.Name(), err)
	}
	seq, _, _ := readSeqFile(seqf) // unreadable: start again from 0
	j.seq = seq + 1
	if err := writeSeqFile(seqf, j.seq, h.SupervisorPid); err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	j.atBegin = liveOthers(dir, j.name)

	if _, err := os.Lstat(j.path); err == nil {
		return nil, fmt.Errorf("journal: %s already exists", j.path)
	}
	tmp := filepath.Join(dir, "."+j.name+tempSuffix)
	_ = os.Remove(tmp) // left by a Begin of this very process that failed
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_EXCL|os.O_APPEND|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	fail := func(err error) (*Journal, error) {
		f.Close()
		os.Remove(tmp)
		return nil, fmt.Errorf("journal: %w", err)
	}
	if err := f.Chmod(0o600); err != nil { // exact, whatever the umask
		return fail(err)
	}
	if _, err := f.Write(buf); err != nil {
		return fail(err)
	}
	if err := os.Rename(tmp, j.path); err != nil {
		return fail(err)
	}
	j.f = f
	j.head = int64(len(buf))
	j.compactAt = h.CompactAt
	if j.compactAt == 0 {
		j.compactAt = DefaultCompactAt
	}
	j.next = j.compactAt
	for _, base := range h.Registries {
		if ns, err := ipcNamespace(); err == nil && filepath.Clean(filepath.Join(base, ns)) == filepath.Clean(dir) {
			continue // the state directory itself
		}
		r, err := register(base, strings.TrimSuffix(j.name, journalSuffix), int(h.UID), h.SupervisorPid)
		if err != nil {
			j.regErr = append(j.regErr, fmt.Sprintf("%s: %v", base, err))
			continue
		}
		j.regs = append(j.regs, r)
	}
	return j, nil
}

// Command records that the command started as pid with start time startTicks.
// A write error is kept for Err.
func (j *Journal) Command(pid int, startTicks uint64, at time.Time) {
	var a [80]byte
	b := append(a[:0], 'C', ' ')
	b = strconv.AppendInt(b, int64(pid), 10)
	b = append(b, ' ')
	b = strconv.AppendUint(b, startTicks, 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, unixNano(at), 10)
	j.write(b)
}

// Join records that pid joined the command's process tree. A write error is
// kept for Err.
func (j *Journal) Join(pid int, at time.Time) { j.member('J', pid, at) }

// Leave records that pid left the command's process tree (exited). A write
// error is kept for Err.
func (j *Journal) Leave(pid int, at time.Time) { j.member('L', pid, at) }

func (j *Journal) member(tag byte, pid int, at time.Time) {
	var a [64]byte
	b := append(a[:0], tag, ' ')
	b = strconv.AppendInt(b, int64(pid), 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, unixNano(at), 10)
	j.write(b)
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

// Pre records the processes that existed when the pid watch began, in
// records of at most 512 pids. A write error is kept for Err.
func (j *Journal) Pre(pids []int) {
	for len(pids) > 0 {
		n := min(len(pids), 512)
		b := make([]byte, 0, 2+8*n)
		b = append(b, 'P')
		for _, p := range pids[:n] {
			b = append(b, ' ')
			b = strconv.AppendInt(b, int64(p), 10)
		}
		j.write(b)
		pids = pids[n:]
	}
}

// Namespaces records where the run runs. A write error is kept for Err.
func (j *Journal) Namespaces(n Namespaces) {
	for _, f := range []string{n.Boot, n.IPC, n.Pid} {
		if f == "" || strings.ContainsAny(f, " \n") {
			j.mu.Lock()
			if j.err == nil {
				j.err = fmt.Errorf("journal: bad namespace name %q", f)
			}
			j.mu.Unlock()
			return
		}
	}
	j.write([]byte("N " + n.Boot + " " + n.IPC + " " + n.Pid))
}

// Watch records what the pid watch saw in one interval, and the allocator
// as it read it last. A write error is kept for Err.
func (j *Journal) Watch(c Crossing, st Cursor) {
	c.Merged = false // only compaction merges
	var a [160]byte
	j.write(appendWatch(a[:0], c, st))
}

func appendWatch(b []byte, c Crossing, st Cursor) []byte {
	b = append(b, 'W', ' ')
	b = strconv.AppendInt(b, unixNano(c.From), 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, unixNano(c.To), 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, int64(c.Lo), 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, int64(c.Hi), 10)
	switch {
	case c.All:
		b = append(b, " 1"...)
	case c.Merged:
		b = append(b, " 2"...)
	default:
		b = append(b, " 0"...)
	}
	b = append(b, ' ')
	b = strconv.AppendInt(b, int64(st.Threads), 10)
	b = append(b, ' ')
	b = strconv.AppendUint(b, st.ForksLo, 10)
	b = append(b, ' ')
	b = strconv.AppendUint(b, st.ForksHi, 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, int64(st.PidMax), 10)
	return b
}

// Got records that a get of the tree returned object typ/id. A write error
// is kept for Err.
func (j *Journal) Got(typ ipcdiff.Type, id int, proven bool, at time.Time) {
	var a [80]byte
	j.write(appendGet(a[:0], Get{Type: typ, ID: id, Proven: proven, At: at}))
}

func appendGet(b []byte, g Get) []byte {
	b = append(b, 'G', ' ')
	b = append(b, g.Type.String()...)
	b = append(b, ' ')
	b = strconv.AppendInt(b, int64(g.ID), 10)
	b = append(b, ' ')
	b = appendBool(b, g.Proven)
	b = append(b, ' ')
	return strconv.AppendInt(b, unixNano(g.At), 10)
}

// OwnKeys records the keys the user declared the command's (--own-keys;
// all declares every key), so that a sweep decides as the run would
// have: one Y record, "Y ALL N KEY...". A write error is kept for Err.
func (j *Journal) OwnKeys(keys []int32, all bool) {
	b := make([]byte, 0, 16+12*len(keys))
	b = append(b, 'Y', ' ')
	b = appendBool(b, all)
	b = append(b, ' ')
	b = strconv.AppendInt(b, int64(len(keys)), 10)
	for _, k := range keys {
		b = append(b, ' ')
		b = strconv.AppendInt(b, int64(k), 10)
	}
	j.write(b)
}

// Err returns the first error of a record write (Command, Join, Leave), or
// ErrClosed for a record written after Done; nil when every record was
// written.
func (j *Journal) Err() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.err
}

// seal appends the checksum of line and a newline.
func seal(line []byte) []byte {
	sum := crc32.ChecksumIEEE(line)
	line = append(line, ' ')
	line = appendHex(line, uint64(sum), 8)
	return append(line, '\n')
}

// write appends the checksum and newline to line and writes it with one
// write(2); past the compaction threshold it compacts the journal.
func (j *Journal) write(line []byte) {
	line = seal(line)
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.f == nil {
		if j.err == nil {
			j.err = ErrClosed
		}
		return
	}
	if j.broken {
		// End the torn line left by the failed write, so that it is one bad
		// line of its own and this record stays intact.
		line = append([]byte{'\n'}, line...)
	}
	n, err := j.f.Write(line)
	j.size += int64(n)
	if err != nil {
		if n > 0 || j.broken {
			j.broken = true
		}
		j.fail(err)
		return
	}
	j.broken = false
	if j.compactAt > 0 && j.size >= j.next {
		j.compact()
	}
}

// fail keeps err as the journal's first error; call with mu held.
func (j *Journal) fail(err error) {
	if j.err == nil {
		j.err = fmt.Errorf("journal: %w", err)
	}
}

// Done removes the journal: the run's cleanup is complete. Later records are
// dropped (Err reports ErrClosed). Done may be called more than once.
func (j *Journal) Done() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.f == nil {
		return nil
	}
	j.f.Close()
	j.f = nil
	for _, r := range j.regs {
		os.Remove(r.marker)
	}
	if err := os.Remove(j.path); err != nil && !isNotExist(err) {
		return fmt.Errorf("journal: %w", err)
	}
	return nil
}

// Overlapped reports whether another ipcguard run that used the same state
// directory overlapped this one in time, with a reason for the report: when
// another live run existed at Begin, when another run began since (the
// sequence file changed), or when another live run exists now. A journal
// left by a dead supervisor counts only while its command still runs (that
// orphaned tree may still be creating objects). Errors reading the state
// directory count as overlap.
func (j *Journal) Overlapped() (bool, string) {
	var reasons []string
	peers := append([]peer(nil), j.atBegin...)
	peers = append(peers, liveOthers(j.dir, j.name)...)

	seq, lastPid, err := readSeq(j.dir)
	seqChanged := false
	if err != nil {
		reasons = append(reasons, fmt.Sprintf("cannot tell whether another ipcguard run overlapped: %v", err))
	} else if seq != j.seq {
		seqChanged = true
	}
	for _, e := range j.regErr {
		reasons = append(reasons, "cannot tell whether another ipcguard run of uid "+strconv.FormatUint(uint64(j.uid), 10)+" overlapped: "+e)
	}
	var regBegun uint64
	regLast := 0
	for _, r := range j.regs {
		p, n, last, err := r.overlapped()
		peers = append(peers, p...)
		if err != nil {
			reasons = append(reasons, fmt.Sprintf("cannot tell whether another ipcguard run overlapped: %v", err))
		}
		if n > regBegun {
			regBegun, regLast = n, last
		}
	}

	var runs, orphans []string
	seen := map[int]bool{}
	for _, p := range peers {
		if seen[p.pid] {
			continue
		}
		seen[p.pid] = true
		if p.cmdPid != 0 {
			orphans = append(orphans, fmt.Sprintf("command pid %d of dead run pid %d", p.cmdPid, p.pid))
		} else {
			runs = append(runs, strconv.Itoa(p.pid))
		}
	}
	if len(runs) > 0 {
		reasons = append(reasons, fmt.Sprintf("another ipcguard run of uid %d overlapped (%s %s)",
			j.uid, plural(len(runs), "pid", "pids"), strings.Join(runs, ", ")))
	}
	if len(orphans) > 0 {
		reasons = append(reasons, fmt.Sprintf("the command of a killed ipcguard run of uid %d still runs (%s)",
			j.uid, strings.Join(orphans, ", ")))
	}
	if seqChanged && !seen[lastPid] {
		n := seq - j.seq
		if seq < j.seq {
			n = 0 // the file was reset: at least one
		}
		what := "another ipcguard run"
		if n > 1 {
			what = strconv.FormatUint(n, 10) + " other ipcguard runs"
		}
		reasons = append(reasons, fmt.Sprintf("%s of uid %d began during this run (latest pid %d)", what, j.uid, lastPid))
	}
	if regBegun > 0 && !seqChanged && !seen[regLast] {
		reasons = append(reasons, fmt.Sprintf("another ipcguard run of uid %d, with another state directory, began during this run (latest pid %d)", j.uid, regLast))
	}
	if len(reasons) == 0 {
		return false, ""
	}
	return true, strings.Join(reasons, "; ")
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// peer is another run found in the state directory.
type peer struct {
	pid    int // its supervisor
	cmdPid int // set when the supervisor is dead and this command still runs
}

// liveOthers returns the runs in dir other than self whose supervisor is
// alive, or whose supervisor is dead but whose command still runs.
func liveOthers(dir, self string) []peer {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var out []peer
	for _, e := range ents {
		name := e.Name()
		if name == self {
			continue
		}
		if m, isMarker := strings.CutSuffix(name, markerSuffix); isMarker {
			// A run that journals elsewhere and announces itself here.
			if pid, start, ok := parseJournalName(m + journalSuffix); ok && m+journalSuffix != self && ProcessAlive(pid, start) {
				out = append(out, peer{pid: pid})
			}
			continue
		}
		pid, start, ok := parseJournalName(name)
		if !ok {
			continue
		}
		if ProcessAlive(pid, start) {
			out = append(out, peer{pid: pid})
			continue
		}
		if cpid, cstart, ok := peekCommand(filepath.Join(dir, name)); ok && ProcessAlive(cpid, cstart) {
			out = append(out, peer{pid: pid, cmdPid: cpid})
		}
	}
	return out
}

// peekCommand reads only the record part of a journal for its command.
func peekCommand(path string) (pid int, start uint64, ok bool) {
	f, err := openRegular(path, os.O_RDONLY, 0)
	if err != nil {
		return 0, 0, false
	}
	defer f.Close()
	var first [firstLineLen]byte
	if _, err := io.ReadFull(f, first[:]); err != nil {
		return 0, 0, false
	}
	_, off, err := parseFirstLine(first[:])
	if err != nil {
		return 0, 0, false
	}
	if _, err := f.Seek(int64(off), io.SeekStart); err != nil {
		return 0, 0, false
	}
	rest, err := io.ReadAll(io.LimitReader(f, 16<<20))
	if err != nil {
		return 0, 0, false
	}
	var r Record
	parseRecords(rest, &r)
	return r.CommandPid, r.CommandStart, r.CommandPid > 0
}

// Sequence file: "<seq> <pid>\n", the number of runs begun so far and the
// supervisor pid of the latest.

func flock(f *os.File, how int) error {
	for {
		err := syscall.Flock(int(f.Fd()), how)
		if err != syscall.EINTR {
			return err
		}
	}
}

func readSeq(dir string) (seq uint64, pid int, err error) {
	f, err := openRegular(filepath.Join(dir, seqName), os.O_RDONLY, 0)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	if err := flock(f, syscall.LOCK_SH); err != nil {
		return 0, 0, err
	}
	return readSeqFile(f)
}

func readSeqFile(f *os.File) (seq uint64, pid int, err error) {
	var buf [64]byte
	n, err := f.ReadAt(buf[:], 0)
	if err != nil && err != io.EOF {
		return 0, 0, err
	}
	line, _, ok := bytes.Cut(buf[:n], []byte{'\n'})
	s, p, ok2 := bytes.Cut(line, []byte{' '})
	if !ok || !ok2 {
		return 0, 0, fmt.Errorf("%s: malformed", f.Name())
	}
	seq, err = strconv.ParseUint(string(s), 10, 64)
	if err != nil {
		return 0, 0, fmt.Errorf("%s: malformed", f.Name())
	}
	pid, err = strconv.Atoi(string(p))
	if err != nil {
		return 0, 0, fmt.Errorf("%s: malformed", f.Name())
	}
	return seq, pid, nil
}

func writeSeqFile(f *os.File, seq uint64, pid int) error {
	b := strconv.AppendUint(make([]byte, 0, 48), seq, 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, int64(pid), 10)
	b = append(b, '\n')
	// No truncation (costly on tmpfs): readSeqFile reads the first line
	// only, so whatever an older, longer record leaves after it is inert.
	_, err := f.WriteAt(b, 0)
	return err
}

// Encoding.

const (
	magic        = "ipcguard-journal "
	firstLineLen = len(magic) + 1 + 1 + 16 + 1 // "ipcguard-journal 2 <16 hex>\n"
	endLineLen   = 2 + 8 + 1                   // "E <8 hex>\n"
)

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromUnixNano(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}

func appendHex(b []byte, v uint64, width int) []byte {
	const digits = "0123456789abcdef"
	for i := width - 1; i >= 0; i-- {
		b = append(b, digits[(v>>(4*uint(i)))&0xf])
	}
	return b
}

func appendBool(b []byte, v bool) []byte {
	if v {
		return append(b, '1')
	}
	return append(b, '0')
}

// encodeHead returns the first part of a journal, complete with its offset
// and end line.
func encodeHead(h *Header, s *ipcdiff.Snapshot) []byte {
	n := 0
	if s != nil {
		n = s.Len()
	}
	b := make([]byte, 0, 256+len(h.OnPolicy)+16*len(h.KeepKeys)+argvLen(h.Argv)+28*n)
	b = append(b, magic...)
	b = strconv.AppendInt(b, FormatVersion, 10)
	b = append(b, ' ')
	b = appendHex(b, 0, 16) // patched below
	b = append(b, '\n')

	b = append(b, 'H', ' ')
	b = strconv.AppendInt(b, int64(h.SupervisorPid), 10)
	b = append(b, ' ')
	b = strconv.AppendUint(b, h.SupervisorStart, 10)
	b = append(b, ' ')
	b = strconv.AppendUint(b, uint64(h.UID), 10)
	b = append(b, ' ')
	b = strconv.AppendUint(b, uint64(h.GID), 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, unixNano(h.Started), 10)
	b = append(b, ' ')
	b = strconv.AppendUint(b, uint64(h.Types), 10)
	b = append(b, ' ')
	b = appendBool(b, h.Strict)
	b = append(b, '\n')

	b = append(b, 'A', ' ')
	b = strconv.AppendInt(b, int64(len(h.Argv)), 10)
	for _, a := range h.Argv {
		b = append(b, ' ')
		b = strconv.AppendQuote(b, a)
	}
	b = append(b, '\n')

	b = append(b, 'K', ' ')
	b = strconv.AppendInt(b, int64(len(h.KeepKeys)), 10)
	for _, k := range h.KeepKeys {
		b = append(b, ' ')
		b = strconv.AppendInt(b, int64(k), 10)
	}
	b = append(b, '\n')

	b = append(b, 'O', ' ')
	b = strconv.AppendQuote(b, h.OnPolicy)
	b = append(b, '\n')

	var taken time.Time
	var types ipcdiff.TypeSet
	var shm []ipcdiff.Shm
	var sem []ipcdiff.Sem
	var msg []ipcdiff.Msg
	if s != nil {
		taken, types, shm, sem, msg = s.Taken, s.Types, s.Shm, s.Sem, s.Msg
	}
	b = append(b, 'B', ' ')
	b = strconv.AppendInt(b, unixNano(taken), 10)
	b = append(b, ' ')
	b = strconv.AppendUint(b, uint64(types), 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, int64(len(shm)), 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, int64(len(sem)), 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, int64(len(msg)), 10)
	b = append(b, '\n')
	for i := range shm {
		b = appendObj(b, shm[i].ID, shm[i].Key, shm[i].CUID)
	}
	for i := range sem {
		b = appendObj(b, sem[i].ID, sem[i].Key, sem[i].CUID)
	}
	for i := range msg {
		b = appendObj(b, msg[i].ID, msg[i].Key, msg[i].CUID)
	}

	off := uint64(len(b) + endLineLen)
	appendHex(b[firstLineLen-17:firstLineLen-17], off, 16)
	sum := crc32.ChecksumIEEE(b)
	b = append(b, 'E', ' ')
	b = appendHex(b, uint64(sum), 8)
	b = append(b, '\n')
	return b
}

func argvLen(argv []string) int {
	n := 0
	for _, a := range argv {
		n += len(a) + 3
	}
	return n
}

// appendObj appends an object line: id, key (as uint32, so 0xffffffff is
// "ffffffff") and cuid, in hex without leading zeros — keys read like ipcs
// prints them, and hex formats without divisions (the hot loop of Begin).
func appendObj(b []byte, id int, key int32, cuid uint32) []byte {
	b = appendHexVar(b, uint64(uint32(id)))
	b = append(b, ' ')
	b = appendHexVar(b, uint64(uint32(key)))
	b = append(b, ' ')
	b = appendHexVar(b, uint64(cuid))
	return append(b, '\n')
}

func appendHexVar(b []byte, v uint64) []byte {
	const digits = "0123456789abcdef"
	n := (bits.Len64(v) + 3) / 4
	if n == 0 {
		return append(b, '0')
	}
	b = slices.Grow(b, n)
	i := len(b) + n
	b = b[:i]
	for ; v != 0; v >>= 4 {
		i--
		b[i] = digits[v&0xf]
	}
	return b
}

// Decoding.

// Load reads the journal at path. The error wraps ErrCorrupt when the header
// or snapshot part is incomplete or damaged, ErrVersion for another format
// version. Damaged records are skipped (see Record.TornTail, BadLines).
func Load(path string) (*Record, error) {
	f, err := openRegular(path, os.O_RDONLY, 0)
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	data, err := io.ReadAll(f)
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	r, err := parse(data)
	if err != nil {
		return nil, fmt.Errorf("journal %s: %w", path, err)
	}
	r.Path = path
	return r, nil
}

func corrupt(what string) error { return fmt.Errorf("%w: %s", ErrCorrupt, what) }

func parseFirstLine(b []byte) (version int, off uint64, err error) {
	if len(b) < firstLineLen || !bytes.HasPrefix(b, []byte(magic)) {
		return 0, 0, corrupt("not an ipcguard journal")
	}
	v := b[len(magic)]
	if v < '0'+oldestVersion || v > '0'+FormatVersion {
		if v >= '0' && v <= '9' && b[len(magic)+1] == ' ' {
			return 0, 0, fmt.Errorf("%w %c (want %d)", ErrVersion, v, FormatVersion)
		}
		return 0, 0, corrupt("bad version")
	}
	if b[len(magic)+1] != ' ' || b[firstLineLen-1] != '\n' {
		return 0, 0, corrupt("bad first line")
	}
	off, ok := parseHex(b[firstLineLen-17 : firstLineLen-1])
	if !ok {
		return 0, 0, corrupt("bad first line")
	}
	return int(v - '0'), off, nil
}

func parseHex(b []byte) (uint64, bool) {
	if len(b) == 0 || len(b) > 16 {
		return 0, false
	}
	var v uint64
	for _, c := range b {
		switch {
		case c >= '0' && c <= '9':
			v = v<<4 | uint64(c-'0')
		case c >= 'a' && c <= 'f':
			v = v<<4 | uint64(c-'a'+10)
		default:
			return 0, false
		}
	}
	return v, true
}

func parse(data []byte) (*Record, error) {
	version, off, err := parseFirstLine(data)
	if err != nil {
		return nil, err
	}
	if off > uint64(len(data)) || off < uint64(firstLineLen+endLineLen) {
		return nil, corrupt("truncated in the header or snapshot")
	}
	end := data[off-endLineLen : off]
	if end[0] != 'E' || end[1] != ' ' || end[endLineLen-1] != '\n' {
		return nil, corrupt("no end-of-snapshot line")
	}
	want, ok := parseHex(end[2 : 2+8])
	if !ok {
		return nil, corrupt("bad end-of-snapshot line")
	}
	head := data[:off-endLineLen]
	if uint64(crc32.ChecksumIEEE(head)) != want {
		return nil, corrupt("checksum mismatch in the header or snapshot")
	}
	r := &Record{}
	if err := parseHead(head[firstLineLen:], r); err != nil {
		// The checksum matched: a writer bug rather than damage.
		return nil, corrupt(err.Error())
	}
	r.Version = version
	parseRecords(data[off:], r)
	return r, nil
}

// lines walks newline-terminated lines.
type lines struct{ b []byte }

func (l *lines) next() ([]byte, bool) {
	i := bytes.IndexByte(l.b, '\n')
	if i < 0 {
		return nil, false
	}
	line := l.b[:i]
	l.b = l.b[i+1:]
	return line, true
}

// field returns the first space-separated field of b and the rest.
func field(b []byte) (f, rest []byte) {
	if i := bytes.IndexByte(b, ' '); i >= 0 {
		return b[:i], b[i+1:]
	}
	return b, nil
}

// atoi parses a signed decimal without allocating.
func atoi(b []byte) (int64, bool) {
	neg := false
	if len(b) > 0 && b[0] == '-' {
		neg = true
		b = b[1:]
	}
	if len(b) == 0 || len(b) > 19 {
		return 0, false
	}
	var v int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int64(c-'0')
	}
	if v < 0 {
		return 0, false
	}
	if neg {
		v = -v
	}
	return v, true
}

func atou(b []byte) (uint64, bool) {
	if len(b) == 0 || len(b) > 20 {
		return 0, false
	}
	var v uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if v > (^uint64(0)-d)/10 {
			return 0, false
		}
		v = v*10 + d
	}
	return v, true
}

// ints parses exactly len(dst) space-separated signed decimals.
func ints(b []byte, dst []int64) bool {
	for i := range dst {
		var f []byte
		f, b = field(b)
		v, ok := atoi(f)
		if !ok {
			return false
		}
		dst[i] = v
	}
	return b == nil
}

// hex32s parses exactly len(dst) space-separated hex numbers of at most 8
// digits.
func hex32s(b []byte, dst []uint32) bool {
	for i := range dst {
		var f []byte
		f, b = field(b)
		if len(f) > 8 {
			return false
		}
		v, ok := parseHex(f)
		if !ok {
			return false
		}
		dst[i] = uint32(v)
	}
	return b == nil
}

func parseHead(b []byte, r *Record) error {
	ls := lines{b}
	line := func(tag byte) ([]byte, error) {
		l, ok := ls.next()
		if !ok || len(l) < 2 || l[0] != tag || l[1] != ' ' {
			return nil, fmt.Errorf("missing %c line", tag)
		}
		return l[2:], nil
	}

	l, err := line('H')
	if err != nil {
		return err
	}
	var hv [7]int64
	var start uint64
	{
		f, rest := field(l)
		pid, ok1 := atoi(f)
		f, rest = field(rest)
		st, ok2 := atou(f)
		if !ok1 || !ok2 || !ints(rest, hv[2:]) {
			return errors.New("bad H line")
		}
		hv[0], start = pid, st
	}
	r.Version = FormatVersion
	r.SupervisorPid = int(hv[0])
	r.SupervisorStart = start
	r.UID, r.GID = uint32(hv[2]), uint32(hv[3])
	r.Started = fromUnixNano(hv[4])
	r.Types = ipcdiff.TypeSet(hv[5])
	r.Strict = hv[6] != 0

	if l, err = line('A'); err != nil {
		return err
	}
	f, rest := field(l)
	n, ok := atoi(f)
	if !ok || n < 0 || n > int64(len(rest)) {
		return errors.New("bad A line")
	}
	s := string(rest)
	r.Argv = make([]string, 0, n)
	for i := int64(0); i < n; i++ {
		if i > 0 {
			if !strings.HasPrefix(s, " ") {
				return errors.New("bad A line")
			}
			s = s[1:]
		}
		q, err := strconv.QuotedPrefix(s)
		if err != nil {
			return errors.New("bad A line")
		}
		a, _ := strconv.Unquote(q)
		r.Argv = append(r.Argv, a)
		s = s[len(q):]
	}
	if s != "" {
		return errors.New("bad A line")
	}
	if n == 0 {
		r.Argv = nil
	}

	if l, err = line('K'); err != nil {
		return err
	}
	f, rest = field(l)
	n, ok = atoi(f)
	if !ok || n < 0 || n > int64(len(rest)) {
		return errors.New("bad K line")
	}
	if n > 0 {
		keys := make([]int64, n)
		if !ints(rest, keys) {
			return errors.New("bad K line")
		}
		for _, k := range keys {
			r.KeepKeys = append(r.KeepKeys, int32(k))
		}
	} else if rest != nil {
		return errors.New("bad K line")
	}

	if l, err = line('O'); err != nil {
		return err
	}
	if r.OnPolicy, err = strconv.Unquote(string(l)); err != nil {
		return errors.New("bad O line")
	}

	if l, err = line('B'); err != nil {
		return err
	}
	var bv [5]int64
	if !ints(l, bv[:]) || bv[2] < 0 || bv[3] < 0 || bv[4] < 0 {
		return errors.New("bad B line")
	}
	r.BeforeTaken = fromUnixNano(bv[0])
	r.BeforeTypes = ipcdiff.TypeSet(bv[1])
	total := bv[2] + bv[3] + bv[4]
	if total > int64(len(ls.b)/6+1) { // a line is at least "0 0 0\n"
		return errors.New("bad B line: object count")
	}
	r.Before = make(IdentSet, total)
	var v [3]uint32
	for t, cnt := range []int64{bv[2], bv[3], bv[4]} {
		typ := []ipcdiff.Type{ipcdiff.TypeShm, ipcdiff.TypeSem, ipcdiff.TypeMsg}[t]
		for i := int64(0); i < cnt; i++ {
			l, ok := ls.next()
			if !ok || !hex32s(l, v[:]) {
				return fmt.Errorf("bad %s object line", typ)
			}
			r.Before[ipcdiff.Ident{Type: typ, ID: int(v[0]), Key: int32(v[1]), CUID: v[2]}] = struct{}{}
		}
	}
	if len(ls.b) != 0 {
		return errors.New("extra data after the snapshot")
	}
	return nil
}

// parseRecords reads the appended records into r.
func parseRecords(b []byte, r *Record) {
	ls := lines{b}
	for {
		l, ok := ls.next()
		if !ok {
			break
		}
		if !parseRecord(l, r) {
			r.BadLines++
		}
	}
	if len(ls.b) > 0 {
		r.TornTail = true
	}
}

func parseRecord(l []byte, r *Record) bool {
	// "<tag> ... <crc 8 hex>"
	if len(l) < 2+1+8 || l[1] != ' ' || l[len(l)-9] != ' ' {
		return false
	}
	want, ok := parseHex(l[len(l)-8:])
	if !ok || uint64(crc32.ChecksumIEEE(l[:len(l)-9])) != want {
		return false
	}
	body := l[2 : len(l)-9]
	switch l[0] {
	case 'C':
		f, rest := field(body)
		pid, ok1 := atoi(f)
		f, rest = field(rest)
		start, ok2 := atou(f)
		var at [1]int64
		if !ok1 || !ok2 || pid <= 0 || !ints(rest, at[:]) {
			return false
		}
		r.CommandPid, r.CommandStart, r.CommandAt = int(pid), start, fromUnixNano(at[0])
	case 'J', 'L':
		var v [2]int64
		if !ints(body, v[:]) || v[0] <= 0 || v[0] > 1<<31-1 {
			return false
		}
		pid, at := int(v[0]), fromUnixNano(v[1])
		if l[0] == 'J' {
			r.Members = append(r.Members, Member{Pid: pid, Joined: at})
			return true
		}
		// Close the latest open stay of pid.
		for i := len(r.Members) - 1; i >= 0; i-- {
			if m := &r.Members[i]; m.Pid == pid && m.Left.IsZero() {
				m.Left = at
				return true
			}
		}
		r.Members = append(r.Members, Member{Pid: pid, Left: at})
	case 'P':
		for len(body) > 0 {
			var f []byte
			f, body = field(body)
			pid, ok := atoi(f)
			if !ok || pid <= 0 || pid > 1<<31-1 {
				return false
			}
			r.Pre = append(r.Pre, int(pid))
		}
		slices.Sort(r.Pre)
	case 'W':
		var v [9]int64
		if !ints(body, v[:]) || v[4] < 0 || v[4] > 2 || v[2] < 0 || v[3] < 0 || v[5] < 0 || v[6] < 0 || v[7] < v[6] || v[8] <= 0 {
			return false
		}
		r.Watch = append(r.Watch, Crossing{From: fromUnixNano(v[0]), To: fromUnixNano(v[1]),
			Lo: int(v[2]), Hi: int(v[3]), All: v[4] == 1, Merged: v[4] == 2})
		r.LastCursor = Cursor{Cursor: int(v[3]), Threads: int(v[5]), ForksLo: uint64(v[6]), ForksHi: uint64(v[7]), PidMax: int(v[8])}
	case 'N':
		f := strings.Fields(string(body))
		if len(f) != 3 {
			return false
		}
		r.Namespaces = Namespaces{Boot: f[0], IPC: f[1], Pid: f[2]}
	case 'G':
		f, rest := field(body)
		typ, err := ipcdiff.ParseType(string(f))
		var v [3]int64
		if err != nil || !ints(rest, v[:]) || v[0] < 0 || v[1] < 0 || v[1] > 1 {
			return false
		}
		r.Gets = append(r.Gets, Get{Type: typ, ID: int(v[0]), Proven: v[1] == 1, At: fromUnixNano(v[2])})
	case 'Y':
		f, rest := field(body)
		all, ok1 := atoi(f)
		f, rest = field(rest)
		n, ok2 := atoi(f)
		if !ok1 || !ok2 || all < 0 || all > 1 || n < 0 || n > int64(len(rest)) {
			return false
		}
		keys := make([]int64, n)
		if n > 0 && !ints(rest, keys) || n == 0 && rest != nil {
			return false
		}
		for _, k := range keys {
			if k < -1<<31 || k > 1<<31-1 {
				return false
			}
			r.OwnKeys = append(r.OwnKeys, int32(k))
		}
		r.OwnAllKeys = r.OwnAllKeys || all == 1
	case 'X':
		var v [5]int64
		if !ints(body, v[:]) || slices.Min(v[:]) < 0 || v[0] == 0 {
			return false
		}
		r.Compacted = Compaction{Times: int(v[0]), Stays: int(v[1]), Gets: int(v[2]), Watch: int(v[3]), Bad: int(v[4])}
	default:
		return false
	}
	return true
}

// Idents returns the identities of the set, sorted by type, id, key, cuid.
func (s IdentSet) Idents() []ipcdiff.Ident {
	out := make([]ipcdiff.Ident, 0, len(s))
	for id := range s {
		out = append(out, id)
	}
	slices.SortFunc(out, func(a, b ipcdiff.Ident) int {
		switch {
		case a.Type != b.Type:
			return int(a.Type) - int(b.Type)
		case a.ID != b.ID:
			return cmpInt(a.ID, b.ID)
		case a.Key != b.Key:
			return cmpInt(int(a.Key), int(b.Key))
		}
		return cmpInt(int(a.CUID), int(b.CUID))
	})
	return out
}

func cmpInt(a, b int) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
