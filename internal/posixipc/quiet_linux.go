package posixipc

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"

	"github.com/ipcguard/ipcguard/internal/procfs"
	"golang.org/x/sys/unix"
)

// ProcKey is the identity of a process: its pid and its start time in
// clock ticks after boot (/proc/PID/stat field 22).
type ProcKey struct {
	Pid   int
	Start uint64
}

// Sample is the CPU time of every process of one uid at one moment.
type Sample struct {
	proc string
	uid  uint32
	self ProcKey
	// cpu is each process's CPU time in nanoseconds; -1 where it could not
	// be read.
	cpu map[ProcKey]int64
	buf []byte // what one reads the proc files into
}

// pfKthread is PF_KTHREAD of include/linux/sched.h (/proc/PID/stat field 9).
const pfKthread = 0x00200000

// SampleUID records, for every process proc shows ("/proc") whose real,
// effective, saved or filesystem uid is uid (kernel threads excepted), its
// identity and the CPU time of all its threads, live and exited, in
// nanoseconds: the process CPU clock (clock_gettime of
// clock_getcpuclockid(pid), the scheduler's sum_exec_runtime of the thread
// group, kernel/time/posix-cpu-timers.c), which unlike per-thread
// schedstat also counts threads that exited between two samples.
func SampleUID(proc string, uid uint32) (*Sample, error) {
	s := &Sample{proc: proc, uid: uid, cpu: map[ProcKey]int64{}, buf: make([]byte, 0, 4<<10)}
	pids, err := procfs.Tgids(proc)
	if err != nil {
		return nil, fmt.Errorf("posixipc: listing %s: %w", proc, err)
	}
	for _, pid := range pids {
		k, ns, ok := s.one(pid)
		if ok {
			s.cpu[k] = ns
		}
		if pid == os.Getpid() {
			s.self = k
		}
	}
	return s, nil
}

// one reads one process: ok is false when it is not one of the uid's, is
// a kernel thread, or is gone.
//
// Its files are read through its directory, which stays bound to it: once
// it is reaped (and its number free for another), every lookup there fails
// with ENOENT (fs/proc/base.c: pid_revalidate, proc_pident_lookup), while a
// zombie's still succeeds. One lookup after the CPU clock, which is read by
// number, proves that the clock was this process's.
func (s *Sample) one(pid int) (ProcKey, int64, bool) {
	dir, err := unix.Open(s.proc+"/"+strconv.Itoa(pid), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return ProcKey{}, 0, false
	}
	defer unix.Close(dir)
	st, flags, err := s.statFlags(dir)
	if err != nil || flags&pfKthread != 0 {
		return ProcKey{}, 0, false
	}
	s.buf, err = readProc(dir, "status", s.buf)
	if err != nil {
		return ProcKey{}, 0, false
	}
	status, err := procfs.ParseStatus(s.buf)
	if err != nil || !slices.Contains(status.Uids[:], s.uid) {
		return ProcKey{}, 0, false
	}
	k := ProcKey{Pid: pid, Start: st.Start}
	ns := int64(-1)
	var ts unix.Timespec
	if err := unix.ClockGettime(int32(^pid<<3|2), &ts); err == nil {
		ns = ts.Nano()
	}
	if !reachable(dir) {
		return ProcKey{}, 0, false
	}
	return k, ns, true
}

// reachable reports whether the process whose /proc directory is open as
// dir has not been reaped (see Sample.one).
func reachable(dir int) bool {
	return unix.Faccessat(dir, "stat", unix.F_OK, 0) == nil
}

// statFlags reads the stat file of the process directory p: the fields
// of procfs.Stat and the flags (field 9).
func statFlags(p string) (procfs.Stat, uint64, error) {
	dir, err := unix.Open(p, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return procfs.Stat{}, 0, &os.PathError{Op: "open", Path: p, Err: err}
	}
	defer unix.Close(dir)
	var s Sample
	return s.statFlags(dir)
}

// statFlags is the package's statFlags of the process directory open as
// dir, reading into s.buf.
func (s *Sample) statFlags(dir int) (procfs.Stat, uint64, error) {
	var err error
	s.buf, err = readProc(dir, "stat", s.buf)
	if err != nil {
		return procfs.Stat{}, 0, err
	}
	b := s.buf
	st, err := procfs.ParseStat(b)
	if err != nil {
		return st, 0, err
	}
	// Field 9 (flags) is the 7th after the command name.
	f, ok := nthField(b[bytes.LastIndexByte(b, ')')+1:], 6)
	if !ok {
		return st, 0, fmt.Errorf("%w: stat has no flags field", ErrParse)
	}
	flags, err := strconv.ParseUint(string(f), 10, 64)
	return st, flags, err
}

// nthField is the field n (from 0) of b, fields separated by spaces.
func nthField(b []byte, n int) ([]byte, bool) {
	for {
		b = bytes.TrimLeft(b, " ")
		if len(b) == 0 {
			return nil, false
		}
		end := bytes.IndexByte(b, ' ')
		if end < 0 {
			end = len(b)
		}
		if n == 0 {
			return b[:end], true
		}
		b, n = b[end:], n-1
	}
}

// Quiet is what Compare found.
type Quiet struct {
	// Ran: processes of the first sample, alive now, whose CPU time grew.
	Ran []ProcKey
	// Gone: processes of the first sample that exited since.
	Gone []ProcKey
	// New: processes of the uid now that the first sample did not have.
	New []ProcKey
	// Unknown: processes whose CPU time could not be read at either sample.
	Unknown []ProcKey
	// Idle: processes alive at both samples that used no CPU in between.
	Idle []ProcKey
}

// ErrNoSample: Compare was called on a nil sample.
var ErrNoSample = errors.New("posixipc: no first sample")

// Compare samples again and tells, of the uid's processes other than
// members and the calling process, which ran, which are gone and which are
// new since s.
//
// What it proves: a process in Idle consumed no CPU between the two
// samples, so it made no system call then (every system call runs on the
// caller's CPU time): it created, opened, mapped and removed nothing in
// that interval. Ran, Gone and New processes may have done anything.
//
// What it cannot see: a process that started and exited between the two
// samples (a short-lived stranger) is in no list; the caller must combine
// this with a record of every fork in the window (the pid watch, or an
// exact tracker). Processes of a pid namespace proc does not show, and
// processes that gained or lost the uid between the samples (setuid) are
// not covered either, nor a process of another uid that acts for this one
// (root making a file and chown(2)ing it).
func (s *Sample) Compare(members map[ProcKey]bool) (Quiet, error) {
	var q Quiet
	if s == nil {
		return q, ErrNoSample
	}
	now, err := SampleUID(s.proc, s.uid)
	if err != nil {
		return q, err
	}
	skip := func(k ProcKey) bool { return members[k] || k == s.self || k == now.self }
	for k, before := range s.cpu {
		if skip(k) {
			continue
		}
		after, alive := now.cpu[k]
		switch {
		case !alive:
			q.Gone = append(q.Gone, k)
		case before < 0 || after < 0:
			q.Unknown = append(q.Unknown, k)
		case after > before:
			q.Ran = append(q.Ran, k)
		default:
			q.Idle = append(q.Idle, k)
		}
	}
	for k := range now.cpu {
		if _, ok := s.cpu[k]; !ok && !skip(k) {
			q.New = append(q.New, k)
		}
	}
	for _, l := range []*[]ProcKey{&q.Ran, &q.Gone, &q.New, &q.Unknown, &q.Idle} {
		slices.SortFunc(*l, func(a, b ProcKey) int { return a.Pid - b.Pid })
	}
	return q, nil
}

// readProc reads the file name of the proc directory open as dir to EOF
// into buf (reset first) and returns the grown buffer: openat(2), read(2)
// until it returns 0, close(2). A sample reads two files of every process
// of the uid (every process, as root): os.Open would add a fcntl(2) or
// two, an fstat(2) and an epoll_ctl(2) that fails to each, for files that
// cannot be polled anyway. The error is openat(2)'s or read(2)'s.
func readProc(dir int, name string, buf []byte) ([]byte, error) {
	fd, err := unix.Openat(dir, name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return buf[:0], &os.PathError{Op: "open", Path: name, Err: err}
	}
	defer unix.Close(fd)
	buf = buf[:0]
	for {
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, max(cap(buf), 4<<10))
		}
		n, err := unix.Read(fd, buf[len(buf):cap(buf)])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return buf, &os.PathError{Op: "read", Path: name, Err: err}
		}
		if n <= 0 {
			return buf, nil
		}
		buf = buf[:len(buf)+n]
	}
}
