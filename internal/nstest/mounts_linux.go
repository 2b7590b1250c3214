package nstest

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"sort"
	"strconv"
	"syscall"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Where the bodies of IsolateMounts find their POSIX IPC objects (the
// directories glibc's shm_open(3), sem_open(3) and the mqueue mount of
// mq_overview(7) use).
const (
	ShmDir    = "/dev/shm"
	MqueueDir = "/dev/mqueue"
)

// Env variables of IsolateMounts' children.
const (
	envMounts  = "IPCGUARD_NSTEST_MOUNTS"  // the child is to make its private mounts
	envMounted = "IPCGUARD_NSTEST_MOUNTED" // they are made (set before the re-exec)
)

// mountErr is why the private mounts of this child could not be made;
// Isolate fails (or skips) the targeted test with it.
var mountErr error

// IsolateMounts is Isolate with private mounts: the body runs in a private
// IPC namespace, a private pid namespace (the body is its pid 1, and /proc
// is a proc mount of that namespace) and a private mount namespace whose
// root is made private (mount(2) MS_REC|MS_PRIVATE) before anything is
// mounted, so that no mount propagates to the host. There ShmDir is a tmpfs
// of its own (mode 1777) and MqueueDir is the mqueue instance of the
// private IPC namespace (ipc/mqueue.c: a mount shows the instance of the
// mounter's IPC namespace). Where the host has no /dev/mqueue, /dev is a
// tmpfs holding bind mounts of the host's /dev entries and those two
// directories, so that nothing is created in the host's /dev.
//
// The body is pid 1 of its pid namespace: a process whose parent dies
// (a command of a killed ipcguard) becomes the body's child and stays a
// zombie until the body waits for it (wait4); nothing reaps behind the
// back of os/exec.
//
// The pid namespace keeps the processes of the rest of the host out of the
// body's sight: POSIX objects carry no pid, and without root the evidence
// for them is a window in which no other process of the uid ran and no pid
// was handed out that the tree does not account for, which other test runs
// on the same host would otherwise contend.
//
// The child starts with the privilege to mount (real root; root of a new
// user namespace; for Unprivileged without real root, the invoking user
// with CAP_SYS_ADMIN in its user namespace as an ambient capability),
// mounts, and for Unprivileged then gives that privilege up (setgroups,
// setresgid and setresuid to NobodyUID, or the ambient capability cleared)
// and executes itself again, so that no thread of the body ever had it.
// Where the mounts cannot be made the test is skipped with the reason (it
// fails under CI, see Require); it never runs against the host's mounts.
func IsolateMounts(t *testing.T, mode Mode) bool {
	t.Helper()
	return isolate(t, mode, true)
}

// InPrivateMounts reports whether this process is the body (or a
// descendant of the body) of IsolateMounts with its mounts made.
func InPrivateMounts() bool { return os.Getenv(envMounted) != "" }

// enterMounts makes the private mounts of an IsolateMounts child and, for
// Unprivileged, drops the privilege and re-executes the test binary: it
// returns only in Root mode or with an error.
func enterMounts() error {
	// The credentials changed below are this thread's until execve(2),
	// which ends the process's other threads.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := privateMounts(); err != nil {
		return err
	}
	os.Setenv(envMounted, "1")
	if CurrentMode() == Root {
		return nil
	}
	if err := dropPrivilege(); err != nil {
		return fmt.Errorf("giving up the privilege to mount: %w", err)
	}
	bin := Binary()
	if bin == "" {
		bin = "/proc/self/exe"
	}
	err := syscall.Exec(bin, os.Args, os.Environ())
	// Only this thread lost the privilege: no body may run here.
	fmt.Fprintf(os.Stderr, "nstest: re-executing %s after giving up the privilege: %v\n", bin, err)
	os.Exit(2)
	return err
}

// dropPrivilege gives up, for the calling thread, what the child had to
// mount: root's credentials (real root: to NobodyUID, no supplementary
// groups), or the ambient capability of a user namespace. execve(2)
// recomputes the capabilities from these (capabilities(7)): none. In a
// user namespace the same uid stays, with no capability in any set.
func dropPrivilege() error {
	if os.Getuid() == 0 {
		if _, _, e := unix.RawSyscall(unix.SYS_SETGROUPS, 0, 0, 0); e != 0 {
			return fmt.Errorf("setgroups: %w", e)
		}
		if _, _, e := unix.RawSyscall(unix.SYS_SETRESGID, NobodyUID, NobodyUID, NobodyUID); e != 0 {
			return fmt.Errorf("setresgid: %w", e)
		}
		if _, _, e := unix.RawSyscall(unix.SYS_SETRESUID, NobodyUID, NobodyUID, NobodyUID); e != 0 {
			return fmt.Errorf("setresuid: %w", e)
		}
	}
	if _, _, e := unix.RawSyscall6(unix.SYS_PRCTL, unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0, 0); e != 0 {
		return fmt.Errorf("clearing the ambient capabilities: %w", e)
	}
	// And the inheritable set the ambient one needed (capset(2) acts on
	// the calling thread).
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var none [2]unix.CapUserData
	if _, _, e := unix.RawSyscall(unix.SYS_CAPSET, uintptr(unsafe.Pointer(&hdr)), uintptr(unsafe.Pointer(&none[0])), 0); e != 0 {
		return fmt.Errorf("capset: %w", e)
	}
	// A change of the effective uid clears the parent-death signal
	// (prctl(2), PR_SET_PDEATHSIG); execve keeps it.
	if _, _, e := unix.RawSyscall6(unix.SYS_PRCTL, unix.PR_SET_PDEATHSIG, uintptr(unix.SIGKILL), 0, 0, 0, 0); e != 0 {
		return fmt.Errorf("prctl(PR_SET_PDEATHSIG): %w", e)
	}
	return nil
}

// privateMounts makes the mounts of an IsolateMounts child, in the mount
// namespace it was started in.
func privateMounts() error {
	if err := unix.Mount("none", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("making / private (MS_REC|MS_PRIVATE): %w", err)
	}
	if err := unix.Mount("proc", "/proc", "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return fmt.Errorf("mounting /proc of the private pid namespace: %w", err)
	}
	if !isDir(MqueueDir) || !isDir(ShmDir) {
		if err := privateDev(); err != nil {
			return err
		}
	}
	if err := unix.Mount("tmpfs", ShmDir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=1777"); err != nil {
		return fmt.Errorf("tmpfs on %s: %w", ShmDir, err)
	}
	if err := unix.Mount("mqueue", MqueueDir, "mqueue", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return fmt.Errorf("mqueue on %s: %w", MqueueDir, err)
	}
	return nil
}

func isDir(path string) bool {
	fi, err := os.Lstat(path)
	return err == nil && fi.IsDir()
}

// privateDev puts a tmpfs on /dev that holds the host's /dev entries (bind
// mounts of its devices and directories, copies of its symlinks) and empty
// directories shm and mqueue to mount on.
func privateDev() error {
	old, err := unix.Open("/dev", unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open /dev: %w", err)
	}
	defer unix.Close(old)
	ents, err := os.ReadDir("/dev")
	if err != nil {
		return err
	}
	if err := unix.Mount("tmpfs", "/dev", "tmpfs", unix.MS_NOSUID, "mode=0755"); err != nil {
		return fmt.Errorf("tmpfs on /dev: %w", err)
	}
	// The covered /dev stays reachable through the descriptor.
	src := "/proc/self/fd/" + strconv.Itoa(old) + "/"
	for _, ent := range ents {
		name := ent.Name()
		if name == "shm" || name == "mqueue" {
			continue
		}
		dst := "/dev/" + name
		switch {
		case ent.Type()&os.ModeSymlink != 0:
			target, err := os.Readlink(src + name)
			if err != nil {
				return err
			}
			if err := os.Symlink(target, dst); err != nil {
				return err
			}
			continue
		case ent.IsDir():
			if err := os.Mkdir(dst, 0o755); err != nil {
				return err
			}
		default:
			if err := os.WriteFile(dst, nil, 0o600); err != nil {
				return err
			}
		}
		if err := unix.Mount(src+name, dst, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("bind mount of /dev/%s: %w", name, err)
		}
	}
	for _, d := range []string{ShmDir, MqueueDir} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return err
		}
	}
	return nil
}

// HostPosix lists the entries of the POSIX IPC directories the calling
// process sees: ShmDir, and MqueueDir when it is a directory, else (with
// CAP_SYS_ADMIN over the IPC namespace) a detached mount of the IPC
// namespace's mqueue instance (fsopen(2), fsmount(2); nothing is attached
// to the mount tree). Each entry is its directory, its name (quoted), its
// file type and inode; sorted. A directory that does not exist has none.
func HostPosix() ([]string, error) {
	var lines []string
	add := func(where string, fd int) error {
		l, err := dirEntries(where, fd)
		lines = append(lines, l...)
		return err
	}
	for _, dir := range []string{ShmDir, MqueueDir} {
		fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			if errors.Is(err, unix.ENOENT) {
				if dir == MqueueDir {
					if fd := detachedMqueue(); fd >= 0 {
						err := add("mqueue instance", fd)
						unix.Close(fd)
						if err != nil {
							return nil, err
						}
					}
				}
				continue
			}
			return nil, fmt.Errorf("%s: %w", dir, err)
		}
		err = add(dir, fd)
		unix.Close(fd)
		if err != nil {
			return nil, err
		}
	}
	sort.Strings(lines)
	return lines, nil
}

func dirEntries(where string, fd int) ([]string, error) {
	// ReadDir through a duplicate: f's Close would close fd.
	dup, err := unix.Dup(fd)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(dup), where)
	defer f.Close()
	ents, err := f.ReadDir(-1)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	var lines []string
	for _, e := range ents {
		var st unix.Stat_t
		if err := unix.Fstatat(fd, e.Name(), &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			if errors.Is(err, unix.ENOENT) {
				continue
			}
			return nil, fmt.Errorf("%s: %q: %w", where, e.Name(), err)
		}
		lines = append(lines, fmt.Sprintf("%s %s %s ino=%d", where, strconv.Quote(e.Name()),
			fileType(st.Mode), st.Ino))
	}
	return lines, nil
}

func fileType(mode uint32) string {
	switch mode & unix.S_IFMT {
	case unix.S_IFREG:
		return "file"
	case unix.S_IFDIR:
		return "dir"
	case unix.S_IFLNK:
		return "symlink"
	}
	return fmt.Sprintf("type=%o", mode&unix.S_IFMT)
}

// detachedMqueue opens a detached mount of the calling process's mqueue
// instance, or returns -1.
func detachedMqueue() int {
	fsfd, err := unix.Fsopen("mqueue", unix.FSOPEN_CLOEXEC)
	if err != nil {
		return -1
	}
	defer unix.Close(fsfd)
	if unix.FsconfigCreate(fsfd) != nil {
		return -1
	}
	mfd, err := unix.Fsmount(fsfd, unix.FSMOUNT_CLOEXEC, 0)
	if err != nil {
		return -1
	}
	defer unix.Close(mfd)
	fd, err := unix.Openat(mfd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1
	}
	return fd
}

// hostState is what Main compares before and after the tests.
func hostState() ([]string, error) {
	sysv, err := HostObjects()
	if err != nil {
		return nil, err
	}
	posix, err := HostPosix()
	if err != nil {
		return nil, err
	}
	all := append(sysv, posix...)
	sort.Strings(all)
	return all, nil
}

// mountsSysProcAttr adds what IsolateMounts needs to a's namespaces and
// credentials (see IsolateMounts).
func mountsSysProcAttr(a *syscall.SysProcAttr, mode Mode) {
	a.Cloneflags |= syscall.CLONE_NEWNS | syscall.CLONE_NEWPID
	if mode != Unprivileged {
		return
	}
	if os.Getuid() == 0 {
		a.Credential = nil // the child drops to nobody after mounting
		return
	}
	a.AmbientCaps = []uintptr{unix.CAP_SYS_ADMIN}
}
