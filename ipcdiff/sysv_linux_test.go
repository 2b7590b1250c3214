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
// /proc/sysvipc has (pids included), except shm rss and swap, and that a
// snapshot scans the tables with it, on the opening thread and on
// threads of another IPC namespace alike (those read /proc instead).
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
			text := fs
			text.textOnly = true
			startIPC(t, "shm:key=0x1234:size=8192:attach", "sem:key=0x80000001:n=3:op", "msg:key=0x5678:send", "shm", "msg:send:recv")
			runIPC(t, "shm:key=0x99", "sem:n=2")
			proc := snap(t, text)
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
			for _, parallel := range []bool{false, true} {
				got, err := fs.SnapshotWith(AllTypes, parallel)
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(proc.Shm, got.Shm) || !slices.Equal(proc.Sem, got.Sem) || !slices.Equal(proc.Msg, got.Msg) {
					t.Fatalf("parallel %v: /proc: %+v\nsnapshot: %+v", parallel, proc, got)
				}
			}
			for ty := range SysvTypes.All() {
				r, err := kinds[ty].open(fs)
				if err != nil {
					t.Fatal(err)
				}
				ok := false
				switch r := r.(type) {
				case *sysvTable[Shm]:
					ok = r.ns != nsIdent{}
				case *sysvTable[Sem]:
					ok = r.ns != nsIdent{}
				case *sysvTable[Msg]:
					ok = r.ns != nsIdent{}
				}
				r.close()
				if !ok {
					t.Errorf("%v: the table would not be scanned", ty)
				}
			}
		})
	}
}

// TestScanOtherNamespace reads, on a thread of another IPC namespace,
// tables opened in a private one: the scan refuses (it would list the
// other namespace's objects) and /proc, bound to the opener's namespace,
// is read.
func TestScanOtherNamespace(t *testing.T) {
	nstest.LockedNamespace(t)
	fs := procFS(t)
	if _, err := unix.SysvShmGet(0x4321, 1, unix.IPC_CREAT|0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, e := unix.Syscall(unix.SYS_SEMGET, 0, 1, unix.IPC_CREAT|0o600); e != 0 {
		t.Fatal(e)
	}
	if _, _, e := unix.Syscall(unix.SYS_MSGGET, 0, unix.IPC_CREAT|0o600, 0); e != 0 {
		t.Fatal(e)
	}
	want := snap(t, fs)
	if len(want.Shm) != 1 || len(want.Sem) != 1 || len(want.Msg) != 1 {
		t.Fatalf("counts: %+v", want)
	}
	s := &Snapshot{Types: SysvTypes}
	var readers []tableReader
	for ty := range SysvTypes.All() {
		r, err := kinds[ty].open(fs)
		if err != nil {
			t.Fatal(err)
		}
		defer r.close()
		readers = append(readers, r)
	}
	done := make(chan error)
	go func() {
		// A thread of another private namespace, with objects at the
		// same indexes; it ends with the goroutine (never unlocked).
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWIPC); err != nil {
			done <- err
			return
		}
		if err := createObjects(population{1, 1, 1}, 0x7000); err != nil {
			done <- err
			return
		}
		for _, r := range readers {
			if err := r.read(s); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for i := range want.Shm {
		want.Shm[i].RSS, want.Shm[i].Swap = 0, 0
	}
	for i := range s.Shm {
		s.Shm[i].RSS, s.Shm[i].Swap = 0, 0
	}
	if !slices.Equal(want.Shm, s.Shm) || !slices.Equal(want.Sem, s.Sem) || !slices.Equal(want.Msg, s.Msg) {
		t.Fatalf("read on another thread: %+v, want %+v", s, want)
	}
}
