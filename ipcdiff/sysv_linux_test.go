package ipcdiff

import (
	"errors"
	"runtime"
	"slices"
	"testing"
	"unsafe"

	"github.com/ipcguard/ipcguard/internal/nstest"
	"golang.org/x/sys/unix"
)

// TestIPCVersion pins what the probe found on the architectures we know:
// 64-bit ones refuse IPC_64 in cmd.
func TestIPCVersion(t *testing.T) {
	switch runtime.GOARCH {
	case "amd64", "arm64", "riscv64", "loong64":
		if v := ipcVersion(); v != 0 {
			t.Fatalf("ipcVersion() = %#x on %s, want 0", v, runtime.GOARCH)
		}
	default:
		t.Skipf("no expectation for %s", runtime.GOARCH)
	}
}

// TestSemWaiters checks GETNCNT and GETZCNT with real waiters, and that
// removing the set wakes them with EIDRM.
func TestSemWaiters(t *testing.T) {
	if !nstest.Isolate(t, nstest.Unprivileged) {
		return
	}
	id, _, e := unix.Syscall(unix.SYS_SEMGET, 0, 2, unix.IPC_CREAT|0o600)
	if e != 0 {
		t.Fatal(e)
	}
	type sembuf struct {
		num uint16
		op  int16
		flg int16
	}
	woke := make(chan unix.Errno, 2)
	wait := func(num uint16, op int16) {
		b := sembuf{num: num, op: op}
		_, _, e := unix.Syscall(unix.SYS_SEMOP, id, uintptr(unsafe.Pointer(&b)), 1)
		woke <- e
	}
	// Semaphore 0 is 0: a -1 waits for an increase. Semaphore 1 is made 1
	// first so that a wait-for-zero blocks.
	up := sembuf{num: 1, op: 1}
	if _, _, e := unix.Syscall(unix.SYS_SEMOP, id, uintptr(unsafe.Pointer(&up)), 1); e != 0 {
		t.Fatal(e)
	}
	go wait(0, -1)
	go wait(1, 0)
	want := []SemState{{NCnt: 1}, {ZCnt: 1}}
	var st []SemState
	waitFor(t, "two waiters", func() bool {
		var err error
		if st, err = semStates(int(id), 2); err != nil {
			t.Fatal(err)
		}
		st[1].Pid = 0 // our own pid, from the semop above
		return slices.Equal(st, want)
	})
	if err := rmSem(int(id)); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if e := <-woke; e != unix.EIDRM {
			t.Errorf("waiter woke with %v, want EIDRM", e)
		}
	}
	if _, err := semStates(int(id), 2); !errors.Is(err, unix.EINVAL) {
		t.Errorf("semStates of a removed set: %v, want EINVAL", err)
	}
	if _, err := semStates(0, -1); !errors.Is(err, ErrUsage) {
		t.Errorf("semStates(0, -1): %v", err)
	}
	for _, rm := range []func(int) error{rmShm, rmSem, rmMsg} {
		if err := rm(int(id)); !errors.Is(err, unix.EINVAL) {
			t.Errorf("removing a missing object: %v, want EINVAL", err)
		}
	}
}

// TestStatAnyMatchesProc shows that *_STAT_ANY yields the fields
// /proc/sysvipc has (pids included), except shm rss and swap.
func TestStatAnyMatchesProc(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Skip("statAnySnapshot decodes amd64 layouts")
	}
	for _, mode := range modes {
		t.Run(mode.String(), func(t *testing.T) {
			t.Parallel()
			if !nstest.Isolate(t, mode) {
				return
			}
			fs := procFS(t)
			startIPC(t, "shm:key=0x1234:size=8192:attach", "sem:key=0x80000001:n=3:op", "msg:key=0x5678:send", "shm", "msg:send:recv")
			runIPC(t, "shm:key=0x99", "sem:n=2")
			proc := snap(t, fs)
			any, err := statAnySnapshot()
			if err != nil {
				t.Fatal(err)
			}
			for i := range proc.Shm {
				proc.Shm[i].RSS, proc.Shm[i].Swap = 0, 0
			}
			if !slices.Equal(proc.Shm, any.Shm) || !slices.Equal(proc.Sem, any.Sem) || !slices.Equal(proc.Msg, any.Msg) {
				t.Fatalf("/proc:      %+v\n*_STAT_ANY: %+v", proc, any)
			}
			if len(any.Shm) != 3 || len(any.Sem) != 2 || len(any.Msg) != 2 {
				t.Fatalf("counts: %+v", any)
			}
		})
	}
}
