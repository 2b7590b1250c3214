//go:build linux

package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// forksOut is what the forks helper writes to its OUT file (JSON).
type forksOut struct {
	Forks   int   `json:"forks"`
	LoopNs  int64 `json:"loop_ns"`       // the fork loop alone
	Journal int64 `json:"journal_bytes"` // largest journal size seen; 0 without one
	Samples int   `json:"samples"`       // journal sizes read
	HWMKiB  int64 `json:"hwm_kib"`       // this process's own peak RSS (VmHWM)
}

// journalEvery is how many forks the helper makes between two readings of
// the journal's size.
const journalEvery = 1024

// forks is the helper of P5: n children forked with clone(CLONE_VM |
// CLONE_VFORK) that exit at once, each reaped before the next; then one
// segment made and attached (the cleanup then has something to decide over
// a tree of n+1 members). Every journalEvery forks it reads the size of
// the journal that its parent (ipcguard) keeps in stateDir; compaction
// keeps it under a bound (journal.Header.CompactAt plus one record), so
// sampled sizes approach the largest. It writes forksOut to out.
func forks(n int, stateDir, out string) error {
	parent := os.Getppid()
	var res forksOut
	journal := ""
	sample := func() {
		if journal == "" {
			m, _ := filepath.Glob(filepath.Join(stateDir, "*", fmt.Sprintf("run-%d-*.journal", parent)))
			if len(m) == 0 {
				return
			}
			journal = m[0]
		}
		if fi, err := os.Stat(journal); err == nil {
			res.Journal = max(res.Journal, fi.Size())
			res.Samples++
		}
	}
	// The forking thread keeps every signal blocked: the child shares
	// this thread's stack and memory until it exits, and must run no
	// handler.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	all, old := ^uint64(0), uint64(0)
	if _, _, e := unix.RawSyscall6(unix.SYS_RT_SIGPROCMASK, unix.SIG_SETMASK, uintptr(unsafe.Pointer(&all)), uintptr(unsafe.Pointer(&old)), 8, 0, 0); e != 0 {
		return fmt.Errorf("rt_sigprocmask: %w", e)
	}
	t0 := time.Now()
	for i := range n {
		pid, err := forkExit()
		if err != nil {
			unix.RawSyscall6(unix.SYS_RT_SIGPROCMASK, unix.SIG_SETMASK, uintptr(unsafe.Pointer(&old)), 0, 8, 0, 0)
			return fmt.Errorf("fork #%d: %w", i, err)
		}
		var ws unix.WaitStatus
		for {
			_, err = unix.Wait4(pid, &ws, 0, nil)
			if err != unix.EINTR {
				break
			}
		}
		if err != nil {
			return fmt.Errorf("wait4 %d: %w", pid, err)
		}
		if (i+1)%journalEvery == 0 {
			sample()
		}
	}
	res.LoopNs = int64(time.Since(t0))
	unix.RawSyscall6(unix.SYS_RT_SIGPROCMASK, unix.SIG_SETMASK, uintptr(unsafe.Pointer(&old)), 0, 8, 0, 0)
	res.Forks = n
	sample()
	if err := makeUsed(population{shm: 1}); err != nil {
		return err
	}
	res.HWMKiB = vmHWM("/proc/self/status")
	b, err := json.Marshal(res)
	if err != nil {
		return err
	}
	return os.WriteFile(out, b, 0o600)
}

// forkExit makes a child that exits with status 0 at once and returns its
// pid. With CLONE_VFORK the caller is suspended until then. Raw system
// calls only: the child must not enter the Go runtime.
func forkExit() (int, error) {
	r1, _, e := syscall.RawSyscall6(syscall.SYS_CLONE, uintptr(syscall.SIGCHLD|syscall.CLONE_VM|syscall.CLONE_VFORK), 0, 0, 0, 0, 0)
	if e != 0 {
		return 0, e
	}
	if r1 == 0 {
		syscall.RawSyscall(syscall.SYS_EXIT_GROUP, 0, 0, 0)
	}
	return int(r1), nil
}

// vmHWM reads the VmHWM line (peak RSS, KiB) of a /proc/PID/status file;
// 0 when it cannot.
func vmHWM(path string) int64 {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			k, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return k
		}
	}
	return 0
}

func readForksOut(path string) (forksOut, error) {
	var r forksOut
	b, err := os.ReadFile(path)
	if err != nil {
		return r, err
	}
	return r, json.Unmarshal(b, &r)
}
