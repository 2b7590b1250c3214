//go:build linux

package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Helper commands: the ipcguard-bench binary run with one of these as its first
// argument is a command for ipcguard to run, not the benchmark.
const (
	// helperMark PATH: write the CLOCK_MONOTONIC instant (ns) at which
	// main started to PATH, and exit 0.
	helperMark = "__benchtab_mark"
	// helperMake N: create N objects (a third of each type), use each so
	// that the kernel records our pid on it, and exit 1.
	helperMake = "__benchtab_make"
	// helperFill SHM SEM MSG: create that many unused objects and exit 0
	// (for profiling by hand, in a namespace of your own: unshare -i).
	helperFill = "__benchtab_fill"
	// helperRSS OUT ARGV...: run ARGV, write its peak RSS (KiB) to OUT and
	// exit with its status. The peak RSS the kernel reports for a process
	// started with vfork includes its parent's peak up to the exec: run
	// from this small helper, not from the big benchmark process, the
	// figure is ipcguard's own.
	helperRSS = "__benchtab_rss"
	// helperForks N STATEDIR OUT: fork N children that exit at once,
	// reaping each, as fast as one process can; make one segment and use
	// it; write what forks reports to OUT and exit 1. Every 1024 forks it
	// notes the size of the journal its parent keeps under STATEDIR (none
	// when the parent is not ipcguard).
	helperForks = "__benchtab_forks"
)

// helperMain runs the helper command args names, if any, and reports
// whether it did. It exits the process itself.
func helperMain(args []string) bool {
	if len(args) < 3 {
		return false
	}
	switch args[1] {
	case helperRSS:
		if len(args) < 4 {
			fmt.Fprintf(os.Stderr, "usage: %s OUT ARGV...\n", helperRSS)
			os.Exit(2)
		}
		pid, err := syscall.ForkExec(args[3], args[3:], &syscall.ProcAttr{Files: []uintptr{0, 1, 2}, Env: os.Environ()})
		if err != nil {
			fmt.Fprintf(os.Stderr, "ipcguard-bench rss: %v\n", err)
			os.Exit(2)
		}
		var ws syscall.WaitStatus
		var ru syscall.Rusage
		if _, err := syscall.Wait4(pid, &ws, 0, &ru); err != nil {
			fmt.Fprintf(os.Stderr, "ipcguard-bench rss: %v\n", err)
			os.Exit(2)
		}
		if err := os.WriteFile(args[2], strconv.AppendInt(nil, ru.Maxrss, 10), 0o600); err != nil {
			os.Exit(2)
		}
		os.Exit(ws.ExitStatus())
	case helperForks:
		if len(args) != 5 {
			fmt.Fprintf(os.Stderr, "usage: %s N STATEDIR OUT\n", helperForks)
			os.Exit(2)
		}
		n, err := strconv.Atoi(args[2])
		if err == nil {
			err = forks(n, args[3], args[4])
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "ipcguard-bench forks: %v\n", err)
			os.Exit(2)
		}
		os.Exit(1)
	case helperMark:
		t := monoNow()
		if err := os.WriteFile(args[2], strconv.AppendInt(nil, t, 10), 0o600); err != nil {
			fmt.Fprintf(os.Stderr, "ipcguard-bench mark: %v\n", err)
			os.Exit(2)
		}
		os.Exit(0)
	case helperMake:
		n, err := strconv.Atoi(args[2])
		if err == nil {
			err = makeUsed(split(n))
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "ipcguard-bench make: %v\n", err)
			os.Exit(2)
		}
		os.Exit(1)
	case helperFill:
		var p population
		var err error
		if len(args) != 5 {
			err = fmt.Errorf("usage: %s SHM SEM MSG", helperFill)
		}
		for i, n := range []*int{&p.shm, &p.sem, &p.msg} {
			if err == nil {
				*n, err = strconv.Atoi(args[2+i])
			}
		}
		if err == nil {
			err = fill(p)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "ipcguard-bench fill: %v\n", err)
			os.Exit(2)
		}
		os.Exit(0)
	}
	return false
}

// monoNow is CLOCK_MONOTONIC in nanoseconds: comparable across processes.
func monoNow() int64 {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return ts.Nano()
}

// population counts objects of each type.
type population struct{ shm, sem, msg int }

func (p population) total() int { return p.shm + p.sem + p.msg }

// split divides n objects between the types, shm taking the remainder.
func split(n int) population {
	return population{shm: n - 2*(n/3), sem: n / 3, msg: n / 3}
}

// fill creates p private objects (one-page segments, one-semaphore sets,
// empty queues) with raw syscalls, unused.
func fill(p population) error {
	for i := range p.shm {
		if _, err := unix.SysvShmGet(unix.IPC_PRIVATE, os.Getpagesize(), unix.IPC_CREAT|0o600); err != nil {
			return fmt.Errorf("shmget #%d: %w", i, err)
		}
	}
	for i := range p.sem {
		if _, _, e := unix.Syscall(unix.SYS_SEMGET, unix.IPC_PRIVATE, 1, unix.IPC_CREAT|0o600); e != 0 {
			return fmt.Errorf("semget #%d: %w", i, e)
		}
	}
	for i := range p.msg {
		if _, _, e := unix.Syscall(unix.SYS_MSGGET, unix.IPC_PRIVATE, unix.IPC_CREAT|0o600, 0); e != 0 {
			return fmt.Errorf("msgget #%d: %w", i, e)
		}
	}
	return nil
}

type sembuf struct {
	num uint16
	op  int16
	flg int16
}

type msgbuf struct {
	mtype int64
	text  [8]byte
}

// makeUsed creates p objects and uses each one, as a real program would:
// attaches and detaches every segment, increments every semaphore, sends
// one message to every queue. The kernel then records this pid as the
// last user of each (shm lpid, sempid, msg lspid): pid evidence.
func makeUsed(p population) error {
	for i := range p.shm {
		id, err := unix.SysvShmGet(unix.IPC_PRIVATE, os.Getpagesize(), unix.IPC_CREAT|0o600)
		if err != nil {
			return fmt.Errorf("shmget #%d: %w", i, err)
		}
		b, err := unix.SysvShmAttach(id, 0, 0)
		if err != nil {
			return fmt.Errorf("shmat %d: %w", id, err)
		}
		b[0] = 1
		if err := unix.SysvShmDetach(b); err != nil {
			return fmt.Errorf("shmdt %d: %w", id, err)
		}
	}
	op := sembuf{num: 0, op: 1}
	for i := range p.sem {
		id, _, e := unix.Syscall(unix.SYS_SEMGET, unix.IPC_PRIVATE, 1, unix.IPC_CREAT|0o600)
		if e != 0 {
			return fmt.Errorf("semget #%d: %w", i, e)
		}
		if _, _, e := unix.Syscall(unix.SYS_SEMOP, id, uintptr(unsafe.Pointer(&op)), 1); e != 0 {
			return fmt.Errorf("semop %d: %w", id, e)
		}
	}
	m := msgbuf{mtype: 1, text: [8]byte{'b', 'e', 'n', 'c', 'h'}}
	for i := range p.msg {
		id, _, e := unix.Syscall(unix.SYS_MSGGET, unix.IPC_PRIVATE, unix.IPC_CREAT|0o600, 0)
		if e != 0 {
			return fmt.Errorf("msgget #%d: %w", i, e)
		}
		if _, _, e := unix.Syscall6(unix.SYS_MSGSND, id, uintptr(unsafe.Pointer(&m)), uintptr(len(m.text)), unix.IPC_NOWAIT, 0, 0); e != 0 {
			return fmt.Errorf("msgsnd %d: %w", id, e)
		}
	}
	return nil
}

// clear removes every shared memory segment of the namespace (what P5's
// command made, when ipcguard kept it).
func clear() error {
	b, err := os.ReadFile("/proc/sysvipc/shm")
	if err != nil {
		return err
	}
	for i, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if i == 0 || len(f) < 2 {
			continue
		}
		id, err := strconv.Atoi(f[1])
		if err != nil {
			return fmt.Errorf("/proc/sysvipc/shm: %q", l)
		}
		if _, err := unix.SysvShmCtl(id, unix.IPC_RMID, nil); err != nil {
			return fmt.Errorf("removing segment %d: %w", id, err)
		}
	}
	return nil
}
