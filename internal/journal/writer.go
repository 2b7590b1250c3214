package journal

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ipcguard/ipcguard/ipcdiff"
)

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

// Got records that a get of the tree returned object typ/id. A write error
// is kept for Err.
func (j *Journal) Got(typ ipcdiff.Type, id int, proven bool, at time.Time) {
	var a [80]byte
	j.write(appendGet(a[:0], Get{Type: typ, ID: id, Proven: proven, At: at}))
}

// Created records that a watcher saw the tree create the named object c
// (an M record). A write error is kept for Err.
func (j *Journal) Created(c ipcdiff.Creation) {
	j.write(appendCreated(make([]byte, 0, 64+len(c.Name)), c))
}

// Watching records that the creations of typ are watched, with their
// pids, from now on (a V record, state 1); Lost that the watcher of typ
// lost events (state 2). A write error is kept for Err.
func (j *Journal) Watching(typ ipcdiff.Type) { j.write(appendWatchState(nil, typ, 1, time.Now())) }

// Lost: see Watching.
func (j *Journal) Lost(typ ipcdiff.Type) { j.write(appendWatchState(nil, typ, 2, time.Now())) }

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

// KeepNames records the run's --keep-name patterns, one Z record each
// ("Z QUOTED"), so that a sweep keeps the POSIX objects the run would have
// kept. A write error is kept for Err: a caller must not rely on a journal
// whose Err is set after this call, since a sweep would miss the patterns.
func (j *Journal) KeepNames(pats []string) {
	for _, p := range pats {
		b := make([]byte, 0, 8+len(p))
		b = append(b, 'Z', ' ')
		j.write(appendName(b, p))
	}
}

// Err returns the first error of a record write (Command, Join, Leave), or
// ErrClosed for a record written after Done; nil when every record was
// written.
func (j *Journal) Err() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.err
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
