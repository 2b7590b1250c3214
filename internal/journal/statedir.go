package journal

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"github.com/ipcguard/ipcguard/internal/procfs"
	"golang.org/x/sys/unix"
)

// StateDir returns the state directory, creating it (mode 0700) when it is
// missing. The choice, in order: override when non-empty;
// $XDG_RUNTIME_DIR/ipcguard when XDG_RUNTIME_DIR is an absolute path to a
// directory owned by the effective uid; /run/ipcguard when running as root;
// else $TMPDIR/ipcguard-<uid>, or, when another user holds that name (a
// directory or link of theirs squats it), the fallback
// $HOME/.cache/ipcguard/boot-<boot id>. Within it, each IPC namespace has its
// own subdirectory "ipc-<inode>", which is what StateDir returns, with no
// symbolic link in it.
//
// The directory itself must be a real directory (a symlink is refused), owned
// by the effective uid and writable by nobody else: otherwise another user
// could plant journals that a later sweep would act on, or hide ours. The path
// to it is walked one component at a time with openat(2) and O_NOFOLLOW,
// missing directories made with mkdirat(2): a symbolic link on the way is
// followed only when it belongs to the effective uid or to root, and every
// directory on the way must belong to root or the effective uid and be
// writable by nobody else unless it is sticky (as /tmp). Nobody else can then
// rename or replace any component, so the path names the same directory for
// as long as the run lasts and files in it may be opened by path.
func StateDir(override string) (string, error) {
	dir, _, err := StateDirNote(override)
	return dir, err
}

// StateDirNote is StateDir that also returns a note for the user's stderr
// when the default directory was unsafe and the fallback was used ("" when
// not).
func StateDirNote(override string) (dir, note string, err error) {
	return stateDirNote(override, os.Geteuid())
}

func stateDirNote(override string, euid int) (dir, note string, err error) {
	if override != "" {
		dir, err = openStateDir(override, euid)
		return dir, "", err
	}
	def := defaultStateDir(euid)
	dir, err = openStateDir(def, euid)
	if err == nil || euid == 0 || def != tmpStateDir(euid) {
		return dir, "", err
	}
	fb, ferr := fallbackStateDir()
	if ferr == nil {
		dir, ferr = openStateDir(fb, euid)
	}
	if ferr != nil {
		return "", "", fmt.Errorf("%w; the fallback failed too: %v", err, ferr)
	}
	return dir, fmt.Sprintf("%v; using %s instead", err, fb), nil
}

// FallbackDirs returns the IPC namespace directories of the fallback state
// directory that exist and are safe, other than dir: journals written there
// while another user squatted the default are swept with the default's.
func FallbackDirs(dir string) []string {
	euid := os.Geteuid()
	fb, err := fallbackStateDir()
	if err != nil || euid == 0 {
		return nil
	}
	ns, err := ipcNamespace()
	if err != nil {
		return nil
	}
	sub := filepath.Join(fb, ns)
	if _, err := os.Lstat(sub); err != nil {
		return nil // never used: do not create it
	}
	got, err := safeDir(sub, euid)
	if err != nil || got == dir {
		return nil
	}
	return []string{got}
}

// openStateDir makes and checks dir and its IPC namespace subdirectory.
func openStateDir(dir string, euid int) (string, error) {
	dir, err := safeDir(dir, euid)
	if err != nil {
		return "", err
	}
	// Journals and the run sequence are per IPC namespace: runs in other
	// namespaces (containers sharing the directory) can neither contend
	// with ours nor be swept against our objects.
	ns, err := ipcNamespace()
	if err != nil {
		return "", fmt.Errorf("state directory: %w", err)
	}
	return safeDir(filepath.Join(dir, ns), euid)
}

// maxLinks bounds the symbolic links followed, as the kernel's MAXSYMLINKS.
const maxLinks = 40

// safeDir walks path from the root (see StateDir), making what is missing,
// and returns it with its links resolved.
func safeDir(path string, euid int) (string, error) {
	if !filepath.IsAbs(path) {
		abs, err := filepath.Abs(path)
		if err != nil {
			return "", fmt.Errorf("state directory %s: %w", path, err)
		}
		path = abs
	}
	given := filepath.Clean(path)
	path = given
	for links := 0; ; links++ {
		if links > maxLinks {
			return "", fmt.Errorf("state directory %s: %w", given, syscall.ELOOP)
		}
		resolved, next, err := walkDir(given, path, euid)
		if err != nil || next == "" {
			return resolved, err
		}
		path = next
	}
}

// walkDir walks path once. It returns the directory, or, when it met a
// symbolic link it may follow, the path to walk instead.
func walkDir(given, path string, euid int) (dir, next string, err error) {
	fd, err := unix.Open("/", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", "", fmt.Errorf("state directory: /: %w", err)
	}
	defer func() { unix.Close(fd) }()
	cur := "/"
	if err := checkAncestor(fd, cur, given, euid); err != nil {
		return "", "", err
	}
	names := strings.Split(strings.TrimPrefix(path, "/"), "/")
	for i, name := range names {
		if name == "" {
			continue
		}
		last := i == len(names)-1
		here := filepath.Join(cur, name)
		nfd, err := unix.Openat(fd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err == unix.ENOENT {
			if err := unix.Mkdirat(fd, name, 0o700); err != nil && err != unix.EEXIST {
				return "", "", fmt.Errorf("state directory: %s: %w", here, err)
			}
			nfd, err = unix.Openat(fd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		}
		if err == unix.ELOOP || err == unix.ENOTDIR {
			var st unix.Stat_t
			if serr := unix.Fstatat(fd, name, &st, unix.AT_SYMLINK_NOFOLLOW); serr != nil {
				return "", "", fmt.Errorf("state directory: %s: %w", here, serr)
			}
			switch {
			case st.Mode&unix.S_IFMT != unix.S_IFLNK:
				return "", "", fmt.Errorf("state directory %s: %s is not a directory", given, here)
			case last:
				return "", "", fmt.Errorf("state directory %s is a symbolic link: refusing to use it (another user could redirect or plant journals); remove it or choose another with --state-dir", here)
			case !trustedOwner(st.Uid, euid):
				return "", "", fmt.Errorf("state directory %s: %s is a symbolic link of uid %d: refusing to follow it (its owner could redirect the state directory); choose another with --state-dir", given, here, st.Uid)
			}
			to, err := readlinkat(fd, name)
			if err != nil {
				return "", "", fmt.Errorf("state directory: %s: %w", here, err)
			}
			if !filepath.IsAbs(to) {
				to = filepath.Join(cur, to)
			}
			return "", filepath.Join(append([]string{to}, names[i+1:]...)...), nil
		}
		if err != nil {
			return "", "", fmt.Errorf("state directory: %s: %w", here, err)
		}
		unix.Close(fd)
		fd, cur = nfd, here
		if last {
			break
		}
		if err := checkAncestor(fd, cur, given, euid); err != nil {
			return "", "", err
		}
	}
	return cur, "", checkStateDir(fd, cur, euid)
}

func readlinkat(dirfd int, name string) (string, error) {
	for n := 256; n <= 1<<16; n *= 2 {
		b := make([]byte, n)
		m, err := unix.Readlinkat(dirfd, name, b)
		if err != nil {
			return "", err
		}
		if m < n {
			return string(b[:m]), nil
		}
	}
	return "", syscall.ENAMETOOLONG
}

// checkAncestor refuses a directory on the way to the state directory that
// another user could change: one that belongs to neither root nor euid, or
// that others may write and that is not sticky.
func checkAncestor(fd int, dir, given string, euid int) error {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fmt.Errorf("state directory: %s: %w", dir, err)
	}
	switch {
	case !trustedOwner(st.Uid, euid):
		return fmt.Errorf("state directory %s: %s belongs to uid %d, who could redirect it: refusing to use it; choose another with --state-dir", given, dir, st.Uid)
	case st.Mode&0o022 != 0 && st.Mode&unix.S_ISVTX == 0:
		return fmt.Errorf("state directory %s: %s has mode %04o, writable by others and not sticky, who could redirect it: refusing to use it; choose another with --state-dir", given, dir, st.Mode&0o7777)
	}
	return nil
}

// trustedOwner reports whether a directory or link of uid on the way to the
// state directory may be trusted: it belongs to root or to euid. Inside a
// user namespace that does not map every uid, files of unmapped owners (the
// host's root among them) appear as the overflow uid, which no process of
// the namespace can be: they are trusted too.
func trustedOwner(uid uint32, euid int) bool {
	if uid == 0 || int(uid) == euid {
		return true
	}
	over, partial := overflowUID()
	return partial && uid == over
}

// proc is the caller's /proc: the journal's pids are the caller's pid
// namespace's.
var proc = procfs.Default()

// overflowUID: see procfs.FS.OverflowUID.
func overflowUID() (uint32, bool) { return proc.OverflowUID() }

// ipcNamespace names the IPC namespace of the calling thread, "ipc-<inode>"
// (procfs.FS.IPCNamespaceName).
func ipcNamespace() (string, error) { return proc.IPCNamespaceName() }

func defaultStateDir(euid int) string {
	if x := os.Getenv("XDG_RUNTIME_DIR"); x != "" && filepath.IsAbs(x) {
		var st syscall.Stat_t
		if syscall.Stat(x, &st) == nil && st.Mode&syscall.S_IFMT == syscall.S_IFDIR && int(st.Uid) == euid {
			return filepath.Join(x, "ipcguard")
		}
	}
	if euid == 0 {
		return "/run/ipcguard"
	}
	return tmpStateDir(euid)
}

func tmpStateDir(euid int) string {
	return filepath.Join(os.TempDir(), fmt.Sprintf("ipcguard-%d", euid))
}

// fallbackStateDir is where journals go when another user squats the
// default in $TMPDIR: under the home directory, which nobody else may write,
// one directory per boot (journals of an earlier boot name processes and
// objects that no longer exist, and must never be swept against new ones).
func fallbackStateDir() (string, error) {
	home := os.Getenv("HOME")
	if home == "" || !filepath.IsAbs(home) {
		return "", errors.New("no absolute $HOME for a fallback")
	}
	id, err := proc.BootID()
	if err != nil {
		return "", fmt.Errorf("boot id: %w", err)
	}
	if id == "" || strings.ContainsAny(id, "/.") {
		return "", fmt.Errorf("unexpected boot id %q", id)
	}
	return filepath.Join(home, ".cache", "ipcguard", "boot-"+id), nil
}

// checkStateDir checks the state directory open as fd.
func checkStateDir(fd int, dir string, euid int) error {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fmt.Errorf("state directory %s: %w", dir, err)
	}
	switch {
	case int(st.Uid) != euid:
		return fmt.Errorf("state directory %s is owned by uid %d, not by us (uid %d): refusing to use it (another user could plant journals); remove it or choose another with --state-dir", dir, st.Uid, euid)
	case st.Mode&0o022 != 0:
		return fmt.Errorf("state directory %s has mode %04o, writable by group or others: refusing to use it (another user could plant journals); chmod 700 it or choose another with --state-dir", dir, st.Mode&0o7777)
	}
	return nil
}

// openRegular opens path without following a final symbolic link and
// without blocking (a FIFO or device planted under a journal's name must not
// hang a run), and refuses anything but a regular file.
func openRegular(path string, flag int, perm uint32) (*os.File, error) {
	fd, err := unix.Open(path, flag|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, perm)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, &os.PathError{Op: "stat", Path: path, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		unix.Close(fd)
		return nil, fmt.Errorf("%s: not a regular file", path)
	}
	if err := unix.SetNonblock(fd, false); err != nil {
		unix.Close(fd)
		return nil, &os.PathError{Op: "fcntl", Path: path, Err: err}
	}
	return os.NewFile(uintptr(fd), path), nil
}

const (
	journalPrefix = "run-"
	journalSuffix = ".journal"
	seqName       = "seq"
	tempSuffix    = ".tmp"
)

func journalName(pid int, start uint64) string {
	b := make([]byte, 0, 48)
	b = append(b, journalPrefix...)
	b = strconv.AppendInt(b, int64(pid), 10)
	b = append(b, '-')
	b = strconv.AppendUint(b, start, 10)
	b = append(b, journalSuffix...)
	return string(b)
}

// parseJournalName returns the supervisor pid and start time encoded in a
// journal file name "run-<pid>-<start>.journal".
func parseJournalName(name string) (pid int, start uint64, ok bool) {
	if !strings.HasPrefix(name, journalPrefix) || !strings.HasSuffix(name, journalSuffix) {
		return 0, 0, false
	}
	mid := name[len(journalPrefix) : len(name)-len(journalSuffix)]
	p, s, found := strings.Cut(mid, "-")
	if !found {
		return 0, 0, false
	}
	pid64, err := strconv.ParseUint(p, 10, 31)
	if err != nil || pid64 == 0 {
		return 0, 0, false
	}
	start, err = strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, 0, false
	}
	return int(pid64), start, true
}

// List returns the paths of the journals in dir, sorted. Other files (the
// sequence file, temporary files of a Begin in progress) are ignored.
func List(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		if _, _, ok := parseJournalName(e.Name()); ok {
			out = append(out, filepath.Join(dir, e.Name()))
		}
	}
	sort.Strings(out)
	return out, nil
}

// RemoveStaleTemps removes the temporary files that a Begin killed before
// its rename left in dir (".run-<pid>-<start>.journal.tmp" whose process is
// dead) and returns how many it removed. The command had not started then, so
// there is nothing else to clean for them.
func RemoveStaleTemps(dir string) (int, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, e := range ents {
		name := e.Name()
		if !e.Type().IsRegular() || !strings.HasPrefix(name, ".") || !strings.HasSuffix(name, tempSuffix) {
			continue
		}
		pid, start, ok := parseJournalName(strings.TrimSuffix(name[1:], tempSuffix))
		if !ok || ProcessAlive(pid, start) {
			continue
		}
		if err := os.Remove(filepath.Join(dir, name)); err == nil {
			n++
		}
	}
	return n, nil
}

// ProcessAlive reports whether process pid exists and started at startTicks
// (field 22 of /proc/PID/stat, clock ticks since boot). A different start time
// means the pid was reused. A zombie counts as dead: it will never act again.
// Pids are those of the caller's pid namespace (procfs.FS.Running).
func ProcessAlive(pid int, startTicks uint64) bool { return proc.Running(pid, startTicks) }

// SelfStart returns the start time of the calling process in clock ticks
// since boot (field 22 of /proc/self/stat).
func SelfStart() (uint64, error) {
	s, err := proc.SelfStat()
	return s.Start, err
}

// ProcessStart returns the start time of process pid in clock ticks since
// boot (field 22 of /proc/PID/stat). The error is procfs.FS.Stat's.
func ProcessStart(pid int) (uint64, error) {
	if pid <= 0 {
		return 0, fmt.Errorf("invalid pid %d", pid)
	}
	return proc.StartTicks(pid)
}

// isNotExist reports a missing file, for callers that race with Done.
func isNotExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }
