package procfs

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ErrOtherNamespace is returned when a proc mount shows another pid
// namespace than the caller's: its pids are not the caller's pids.
var ErrOtherNamespace = errors.New("proc is mounted for another pid namespace")

// SameNamespace checks that the proc mount at root shows the caller's pid
// namespace: <root>/self must name the caller's own pid (proc(5)). A proc
// mounted for another pid namespace (a container's /proc bind-mounted,
// unshare --pid without --mount-proc) gives other processes under the
// same numbers; its liveness and start times are then not evidence.
func SameNamespace(root string) error {
	self, err := os.Readlink(filepath.Join(root, "self"))
	if err != nil {
		return fmt.Errorf("%w: %w", ErrOtherNamespace, err)
	}
	if self != strconv.Itoa(os.Getpid()) {
		return fmt.Errorf("%w: %s/self is %q, this process is %d", ErrOtherNamespace, root, self, os.Getpid())
	}
	return nil
}

// Tgids lists the thread-group ids (processes) <root> shows, sorted: the
// numeric entries of the proc root directory.
func Tgids(root string) ([]int, error) {
	f, err := os.Open(root)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, err
	}
	pids := make([]int, 0, len(names))
	for _, n := range names {
		if n == "" || n[0] < '1' || n[0] > '9' {
			continue
		}
		if p, err := strconv.Atoi(n); err == nil {
			pids = append(pids, p)
		}
	}
	slices.Sort(pids)
	return pids, nil
}

// Loadavg is what the pid watch needs from /proc/loadavg (proc(5)):
// "0.00 0.01 0.05 RUNNING/THREADS LASTPID".
type Loadavg struct {
	// Threads is the number of tasks (threads) of the whole system.
	Threads int
	// LastPid is the pid most recently allocated in the reader's pid
	// namespace: the kernel's allocation cursor minus one
	// (fs/proc/loadavg.c).
	LastPid int
}

// ParseLoadavg parses the contents of /proc/loadavg.
func ParseLoadavg(b []byte) (Loadavg, error) {
	var l Loadavg
	f := bytes.Fields(b)
	if len(f) < 5 {
		return l, fmt.Errorf("parsing /proc/loadavg: %d fields, want 5", len(f))
	}
	_, thr, ok := bytes.Cut(f[3], []byte("/"))
	if !ok {
		return l, fmt.Errorf("parsing /proc/loadavg: field 4 %q", f[3])
	}
	var err error
	if l.Threads, err = strconv.Atoi(string(thr)); err != nil {
		return l, fmt.Errorf("parsing /proc/loadavg: threads: %w", err)
	}
	if l.LastPid, err = strconv.Atoi(string(f[4])); err != nil {
		return l, fmt.Errorf("parsing /proc/loadavg: last pid: %w", err)
	}
	return l, nil
}

// ParseForks returns the "processes" counter of /proc/stat: the number of
// forks and clones (threads included) since boot, all pid namespaces
// together (kernel/fork.c total_forks).
func ParseForks(b []byte) (uint64, error) {
	i := bytes.Index(b, []byte("\nprocesses "))
	if i < 0 {
		return 0, errors.New("parsing /proc/stat: no processes line")
	}
	v := b[i+len("\nprocesses "):]
	if j := bytes.IndexByte(v, '\n'); j >= 0 {
		v = v[:j]
	}
	n, err := strconv.ParseUint(string(bytes.TrimSpace(v)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("parsing /proc/stat: processes: %w", err)
	}
	return n, nil
}

// UserHZ is the unit of the times in /proc/PID/stat (USER_HZ: 100 on every
// architecture Go supports on Linux).
const UserHZ = 100

// StartWall converts a start time in clock ticks after boot (field 22 of
// /proc/PID/stat) into wall time. The kernel takes that time after the
// pid is allocated and truncates it to a tick, so the result is at most
// one tick (10 ms) before the process began. The boot time is measured on
// each call from CLOCK_BOOTTIME, which keeps running through suspend as
// start times do. It returns the zero time when the clocks cannot be read.
func StartWall(ticks uint64) time.Time {
	var boot, real unix.Timespec
	if unix.ClockGettime(unix.CLOCK_BOOTTIME, &boot) != nil || unix.ClockGettime(unix.CLOCK_REALTIME, &real) != nil {
		return time.Time{}
	}
	sinceBoot := time.Duration(ticks) * (time.Second / UserHZ)
	return time.Unix(0, real.Nano()-boot.Nano()+int64(sinceBoot))
}

// nsGetID is NS_GET_ID (include/uapi/linux/nsfs.h, Linux 6.18):
// _IOR(0xb7, 13, __u64), a 64-bit namespace id that is never reused while
// the system runs, unlike the namespace's inode number.
const nsGetID = 0x8008b70d

// NamespaceID names the calling process's namespace of a kind ("ipc",
// "pid", ...) from /proc/self/ns/<kind>: "id:N" with the kernel's unique
// namespace id where the kernel has NS_GET_ID, else "ino:N" with the
// namespace's inode number (reused soon after the namespace dies).
func NamespaceID(root, kind string) (string, error) {
	f, err := os.Open(filepath.Join(root, "self", "ns", kind))
	if err != nil {
		return "", err
	}
	defer f.Close()
	var id uint64
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, f.Fd(), nsGetID, uintptr(unsafe.Pointer(&id))); e == 0 {
		return "id:" + strconv.FormatUint(id, 10), nil
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return "", err
	}
	return "ino:" + strconv.FormatUint(st.Ino, 10), nil
}

// BootID is this boot's random id (/proc/sys/kernel/random/boot_id):
// namespace ids and pids mean nothing across a reboot.
func BootID(root string) (string, error) {
	b, err := os.ReadFile(filepath.Join(root, "sys", "kernel", "random", "boot_id"))
	if err != nil {
		return "", err
	}
	return string(bytes.TrimSpace(b)), nil
}

// InitPidNamespaceInode is the inode number of the initial pid namespace
// (PROC_PID_INIT_INO, include/linux/proc_ns.h): it never changes.
const InitPidNamespaceInode = 0xEFFFFFFC

// NamespaceInode is the inode number of the calling process's namespace of
// a kind ("pid", "ipc", ...).
func NamespaceInode(root, kind string) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Stat(filepath.Join(root, "self", "ns", kind), &st); err != nil {
		return 0, err
	}
	return st.Ino, nil
}
