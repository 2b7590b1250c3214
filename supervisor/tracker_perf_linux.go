package supervisor

import (
	"errors"
	"fmt"
	"os"
	"sort"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// perfTracker follows the tree with perf_event_open task events: a dummy
// software event with task=1 and inherit=1, opened on the forking thread
// once per CPU, so every process forked from it (and their descendants)
// carries a copy that writes PERF_RECORD_FORK/EXIT into our ring buffers.
// Only the tree carries the events: every fork record is the tree's, except
// the supervisor's own. As root it also opens the syscall tracepoints
// sys_exit_{shm,sem,msg}get the same way, into the same buffers, and
// records the ids the tree obtained.
type perfTracker struct {
	trackBase
	creation bool // creation tracking asked for

	clock  int32 // clock of record times: CLOCK_MONOTONIC
	off    int64 // wall ns minus record-clock ns
	bufs   []*perfBuf
	fds    []int // every event fd, closed at finish
	tpType map[uint16]tracepoint
	tracks bool     // all three tracepoints open on every CPU
	notes  []string // degradations found while opening

	stopFd int
	done   chan struct{}

	// Under mu:
	root     int
	recs     []perfRecord       // decoded, not applied yet (newer than the cut, or before started)
	lost     uint64             // records the kernel dropped (PERF_RECORD_LOST)
	throttle bool               // sampling was throttled: tracepoint samples dropped
	gets     map[int]pendingGet // per thread: the get it entered
	tree     *Tree              // set by finish
}

func newPerfTracker(creation bool) *perfTracker {
	return &perfTracker{creation: creation, stopFd: -1}
}

func (t *perfTracker) name() string {
	if t.tracks {
		return "perf+syscalls"
	}
	return string(TrackPerf)
}

// perfBuf is one per-CPU ring buffer.
type perfBuf struct {
	full    bool // found nearly full once: records may have been dropped
	fd      int
	mem     []byte
	meta    *unix.PerfEventMmapPage
	data    []byte
	scratch []byte
}

// perfFullSlack: a buffer with less free space than this (more than any
// record we open takes) may have dropped records.
const perfFullSlack = 512

// Ring buffer size: 1 metadata page + perfPages data pages (power of 2),
// smaller when the locked-memory limit refuses it. 128 pages (512 KiB) are
// what an unprivileged user may lock per CPU by default (the sysctl
// kernel.perf_event_mlock_kb, 516 KiB, counts the metadata page too;
// kernel/events/core.c, perf_mmap): a fork and its exit take about
// 100 bytes, so a buffer holds some 5000 of each CPU's. With 16 pages a
// command forking 15 000 times a second on a loaded 2-CPU machine lost
// records whenever the reader was not scheduled for 45 ms.
const perfPages = 128

func probePerf() error {
	attr := dummyAttr(unix.CLOCK_MONOTONIC, 0)
	attr.Bits &^= unix.PerfBitInherit
	fd, err := unix.PerfEventOpen(&attr, 0, -1, -1, unix.PERF_FLAG_FD_CLOEXEC)
	if err != nil {
		return perfOpenError(err)
	}
	return unix.Close(fd)
}

func dummyAttr(clock int32, wakeup uint32) unix.PerfEventAttr {
	a := unix.PerfEventAttr{
		Type:        unix.PERF_TYPE_SOFTWARE,
		Config:      unix.PERF_COUNT_SW_DUMMY,
		Sample_type: unix.PERF_SAMPLE_TID | unix.PERF_SAMPLE_TIME,
		Bits: unix.PerfBitInherit | unix.PerfBitExcludeKernel | unix.PerfBitExcludeHv |
			unix.PerfBitTask | unix.PerfBitSampleIDAll | unix.PerfBitUseClockID,
		Clockid: clock,
	}
	if wakeup > 0 {
		a.Bits |= unix.PerfBitWatermark
		a.Wakeup = wakeup
	}
	a.Size = uint32(unsafe.Sizeof(a))
	return a
}

func tracepointAttr(clock int32, id uint64) unix.PerfEventAttr {
	a := unix.PerfEventAttr{
		Type:        unix.PERF_TYPE_TRACEPOINT,
		Config:      id,
		Sample:      1, // every event
		Sample_type: unix.PERF_SAMPLE_TID | unix.PERF_SAMPLE_TIME | unix.PERF_SAMPLE_RAW,
		Bits:        unix.PerfBitInherit | unix.PerfBitSampleIDAll | unix.PerfBitUseClockID,
		Clockid:     clock,
	}
	a.Size = uint32(unsafe.Sizeof(a))
	return a
}

func perfOpenError(err error) error {
	if errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM) {
		if v, rerr := proc.Sysctl("kernel/perf_event_paranoid"); rerr == nil {
			return fmt.Errorf("perf_event_open: %w (perf_event_paranoid=%s)", err, v)
		}
	}
	return fmt.Errorf("perf_event_open: %w", err)
}

// beforeStart opens the events on the calling (locked) thread.
func (t *perfTracker) beforeStart() error {
	cpus, err := onlineCPUs()
	if err != nil {
		return err
	}
	// Record times are CLOCK_MONOTONIC, converted to wall time with the
	// offset measured here: records of different CPUs are sorted by time,
	// which a wall clock stepped meanwhile would break, and the syscall
	// tracepoints refuse CLOCK_REALTIME (EINVAL) while sharing a buffer
	// needs one clock.
	t.clock = unix.CLOCK_MONOTONIC
	var real, mono unix.Timespec
	unix.ClockGettime(unix.CLOCK_REALTIME, &real)
	unix.ClockGettime(t.clock, &mono)
	t.off = real.Nano() - mono.Nano()
	for _, cpu := range cpus {
		buf, err := t.openCPU(cpu)
		if err != nil {
			t.closeAll()
			return err
		}
		t.bufs = append(t.bufs, buf)
	}
	if t.creation {
		if err := t.openSyscalls(cpus); err != nil {
			t.notes = append(t.notes, "syscalls: "+err.Error())
		}
	}
	if t.stopFd, err = unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK); err != nil {
		t.closeAll()
		return fmt.Errorf("eventfd: %w", err)
	}
	t.done = make(chan struct{})
	go t.loop()
	return nil
}

func (t *perfTracker) openCPU(cpu int) (*perfBuf, error) {
	pagesize := os.Getpagesize()
	for pages := perfPages; ; pages /= 2 {
		attr := dummyAttr(t.clock, uint32(pages*pagesize/4))
		fd, err := unix.PerfEventOpen(&attr, 0, cpu, -1, unix.PERF_FLAG_FD_CLOEXEC)
		if err != nil {
			return nil, perfOpenError(err)
		}
		mem, err := unix.Mmap(fd, 0, (1+pages)*pagesize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
		if err != nil {
			unix.Close(fd)
			if errors.Is(err, unix.EPERM) && pages > 1 {
				continue // locked-memory limit: try a smaller buffer
			}
			return nil, fmt.Errorf("perf mmap: %w", err)
		}
		t.fds = append(t.fds, fd)
		b := &perfBuf{fd: fd, mem: mem, meta: (*unix.PerfEventMmapPage)(unsafe.Pointer(&mem[0]))}
		off, size := uint64(pagesize), uint64(pages*pagesize)
		if b.meta.Data_offset != 0 {
			off, size = b.meta.Data_offset, b.meta.Data_size
		}
		b.data = mem[off : off+size]
		return b, nil
	}
}

func (t *perfTracker) started(pid int, at time.Time) {
	t.mu.Lock()
	t.root = pid
	t.b = newBuilder(t.name(), pid)
	t.b.join(pid, at)
	t.mu.Unlock()
}

// loop drains the buffers when they fill to their watermark, and at least
// every perfInterval so members reach the hook soon.
func (t *perfTracker) loop() {
	defer close(t.done)
	pfds := make([]unix.PollFd, 1, 1+len(t.bufs))
	pfds[0] = unix.PollFd{Fd: int32(t.stopFd), Events: unix.POLLIN}
	for _, b := range t.bufs {
		pfds = append(pfds, unix.PollFd{Fd: int32(b.fd), Events: unix.POLLIN})
	}
	for {
		_, err := unix.Poll(pfds, int(perfInterval/time.Millisecond))
		if err != nil && !errors.Is(err, unix.EINTR) {
			return
		}
		if pfds[0].Revents != 0 {
			return
		}
		for i := 1; i < len(pfds); i++ {
			if pfds[i].Revents&(unix.POLLHUP|unix.POLLERR|unix.POLLNVAL) != 0 {
				pfds[i].Fd = -1 // the forking thread exited; its buffer is still read
			}
		}
		t.drain(false)
	}
}

const perfInterval = 50 * time.Millisecond

// perfReorder is how long a record may take between its timestamp and its
// appearance in a buffer; records newer than that are applied next time,
// when every buffer has caught up (records of different CPUs are unordered).
const perfReorder = 5 * time.Millisecond

// drain reads every buffer and applies, in time order, the records old
// enough that no earlier one can still appear (all of them when final).
func (t *perfTracker) drain(final bool) {
	var clk unix.Timespec
	unix.ClockGettime(t.clock, &clk)
	cut := uint64(clk.Nano() - int64(perfReorder))
	t.mu.Lock()
	for _, b := range t.bufs {
		b.read(func(rec []byte) {
			r, ok := decodePerfRecord(rec, t.tpType)
			if ok {
				t.recs = append(t.recs, r)
			}
		})
	}
	var joins []member
	if t.root != 0 {
		recs := t.recs
		sort.SliceStable(recs, func(i, j int) bool { return recs[i].time < recs[j].time })
		n := len(recs)
		if !final {
			n = sort.Search(len(recs), func(i int) bool { return recs[i].time > cut })
		}
		for _, r := range recs[:n] {
			t.apply(r)
		}
		t.recs = append(recs[:0], recs[n:]...)
		joins = t.takeJoins()
	}
	t.mu.Unlock()
	t.report(joins)
}

// apply applies one record; call with mu held.
func (t *perfTracker) apply(r perfRecord) {
	at := time.Unix(0, int64(r.time)+t.off)
	switch r.kind {
	case unix.PERF_RECORD_LOST, unix.PERF_RECORD_LOST_SAMPLES:
		t.lost += r.lost
	case unix.PERF_RECORD_THROTTLE:
		t.throttle = true
	case unix.PERF_RECORD_FORK:
		// Every process carrying our events descends from the forking
		// thread: a fork is the tree's unless the supervisor forked.
		if r.pid == selfPid {
			return
		}
		if r.ppid == selfPid {
			// The command itself (joined at started), or a child the tree
			// made with clone(CLONE_PARENT): only the tree carries our
			// events.
			if r.pid != r.ppid && r.pid != t.root && t.selfChildren {
				t.b.join(r.pid, at)
			}
			return
		}
		if r.pid == r.ppid {
			t.b.thread(r.pid, r.tid, at)
			return
		}
		t.b.join(r.pid, at)
	case unix.PERF_RECORD_EXIT:
		if r.pid != selfPid {
			t.b.exit(r.pid, r.tid, at)
		}
	case unix.PERF_RECORD_SAMPLE:
		if r.pid == selfPid || r.typ == "" {
			return
		}
		if r.enter {
			if t.gets == nil {
				t.gets = map[int]pendingGet{}
			}
			t.gets[r.tid] = pendingGet{typ: r.typ, key: r.key, flags: r.flags}
			return
		}
		g, ok := t.gets[r.tid]
		delete(t.gets, r.tid)
		if r.ret < 0 {
			return
		}
		// The entry of the same get on the same thread: with key
		// IPC_PRIVATE, or IPC_CREAT|IPC_EXCL, the id is a new object.
		proven := ok && g.typ == r.typ && (g.key == 0 || g.flags&(unix.IPC_CREAT|unix.IPC_EXCL) == unix.IPC_CREAT|unix.IPC_EXCL)
		t.b.tree.SawCreate(r.typ, int(r.ret), proven, at)
		t.b.events = append(t.b.events, member{pid: r.pid, at: at, get: r.typ, id: int(r.ret), proven: proven})
	}
}

// finish drains everything and returns the tree.
func (t *perfTracker) finish() *Tree {
	if t.done != nil {
		unix.Write(t.stopFd, []byte{1, 0, 0, 0, 0, 0, 0, 0})
		<-t.done
		t.done = nil
	}
	t.mu.Lock()
	if t.tree != nil {
		t.mu.Unlock()
		return t.tree
	}
	t.mu.Unlock()
	if t.root != 0 {
		t.drain(true)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, b := range t.bufs {
		if b.full && t.lost == 0 {
			t.lost = 1 // at least: the count is unknown
			t.notes = append(t.notes, "perf: a ring buffer filled up: records may have been dropped")
		}
	}
	t.closeAll()
	if t.root == 0 {
		t.b = newBuilder(t.name(), 0)
	}
	tr := t.b.tree
	tr.Tracker = t.name()
	tr.Exact = t.lost == 0
	tr.CreationTracked = t.tracks && t.lost == 0 && !t.throttle
	notes := t.notes
	if t.lost > 0 {
		notes = append(notes, fmt.Sprintf("perf: %d records lost (ring buffer overflow): the tree may be incomplete", t.lost))
	}
	if t.tracks && t.throttle {
		notes = append(notes, "perf: syscall sampling was throttled: creations may have been missed")
	}
	tr.Note = joinNotes(append([]string{tr.Note}, notes...)...)
	t.tree = tr
	return tr
}

func (t *perfTracker) closeAll() {
	for _, b := range t.bufs {
		unix.Munmap(b.mem)
	}
	t.bufs = nil
	for _, fd := range t.fds {
		unix.Close(fd)
	}
	t.fds = nil
	if t.stopFd >= 0 {
		unix.Close(t.stopFd)
		t.stopFd = -1
	}
}
