package procfs

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
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
func (fs FS) SameNamespace() error {
	root := fs.root
	self, err := os.Readlink(root + "/self")
	if err != nil {
		return fmt.Errorf("%w: %w", ErrOtherNamespace, err)
	}
	if self != strconv.Itoa(os.Getpid()) {
		return fmt.Errorf("%w: %s/self is %q, this process is %d", ErrOtherNamespace, root, self, os.Getpid())
	}
	return nil
}

// SameNamespace is NewFS(root)'s SameNamespace, without NewFS's check.
func SameNamespace(root string) error { return mount(root).SameNamespace() }

// nsGetID is NS_GET_ID (include/uapi/linux/nsfs.h, Linux 6.18):
// _IOR(0xb7, 13, __u64), a 64-bit namespace id that is never reused while
// the system runs, unlike the namespace's inode number.
const nsGetID = 0x8008b70d

// NamespaceID names the calling process's namespace of a kind ("ipc",
// "pid", ...) from /proc/self/ns/<kind>: "id:N" with the kernel's unique
// namespace id where the kernel has NS_GET_ID, else "ino:N" with the
// namespace's inode number (reused soon after the namespace dies).
func NamespaceID(root, kind string) (string, error) { return mount(root).NamespaceID(kind) }

// NamespaceID is the package's NamespaceID for the FS's mount.
func (fs FS) NamespaceID(kind string) (string, error) {
	f, err := os.Open(fs.Path("self", "ns", kind))
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
func BootID(root string) (string, error) { return mount(root).BootID() }

// BootID is the package's BootID for the FS's mount.
func (fs FS) BootID() (string, error) {
	b, err := os.ReadFile(fs.Path("sys", "kernel", "random", "boot_id"))
	if err != nil {
		return "", err
	}
	return string(bytes.TrimSpace(b)), nil
}

// InitPidNamespaceInode is the inode number of the initial pid namespace
// (PROC_PID_INIT_INO, include/linux/proc_ns.h): it never changes.
const InitPidNamespaceInode = 0xEFFFFFFC

// NamespaceInode is the inode number of the calling process's namespace of
// a kind ("pid", "ipc", ...): stat(2) of /proc/self/ns/<kind>.
func (fs FS) NamespaceInode(kind string) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Stat(fs.Path("self", "ns", kind), &st); err != nil {
		return 0, err
	}
	return st.Ino, nil
}

// NamespaceLink reads the link /proc/<task>/ns/<kind> ("ipc:[4026531839]"),
// task being a pid, "self" or "thread-self": two tasks are in the same
// namespace of that kind when their links read the same. The error is
// readlink(2)'s (see Gone).
func (fs FS) NamespaceLink(task, kind string) (string, error) {
	return os.Readlink(fs.root + "/" + task + "/ns/" + kind)
}

// IPCNamespaceName names the IPC namespace of the calling thread,
// "ipc-<inode>", from the link /proc/thread-self/ns/ipc.
func (fs FS) IPCNamespaceName() (string, error) {
	link, err := fs.NamespaceLink("thread-self", "ipc")
	if err != nil {
		return "", err
	}
	ino := strings.TrimSuffix(strings.TrimPrefix(link, "ipc:["), "]")
	if _, err := strconv.ParseUint(ino, 10, 64); err != nil {
		return "", fmt.Errorf("unexpected IPC namespace link %q", link)
	}
	return "ipc-" + ino, nil
}

// Sysctl returns /proc/sys/<name> ("kernel/perf_event_paranoid") with
// surrounding white space trimmed.
func (fs FS) Sysctl(name string) (string, error) {
	b, err := os.ReadFile(fs.root + "/sys/" + name)
	if err != nil {
		return "", err
	}
	return string(bytes.TrimSpace(b)), nil
}

// OverflowUID returns the uid that owners unmapped in the caller's user
// namespace appear as (/proc/sys/kernel/overflowuid, 65534 when unreadable),
// and whether the caller is in a user namespace that leaves some uid
// unmapped: /proc/self/uid_map is not the initial namespace's
// "0 0 4294967295" (user_namespaces(7)). An unreadable uid_map counts as
// the initial namespace.
func (fs FS) OverflowUID() (uint32, bool) {
	b, err := os.ReadFile(fs.Path("self", "uid_map"))
	if err != nil {
		return 0, false
	}
	if f := strings.Fields(string(b)); len(f) == 3 && f[0] == "0" && f[1] == "0" && f[2] == "4294967295" {
		return 0, false // the initial user namespace: every uid is real
	}
	o, err := fs.Sysctl("kernel/overflowuid")
	if err != nil {
		return 65534, true
	}
	v, err := strconv.ParseUint(o, 10, 32)
	if err != nil {
		return 65534, true
	}
	return uint32(v), true
}
