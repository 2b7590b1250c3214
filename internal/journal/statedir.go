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
)

// StateDir returns the state directory, creating it (mode 0700) when it is
// missing. The choice, in order: override when non-empty;
// $XDG_RUNTIME_DIR/ipcguard when XDG_RUNTIME_DIR is an absolute path to a
// directory owned by the effective uid; /run/ipcguard when running as root;
// else $TMPDIR/ipcguard-<uid>. Within it, each IPC namespace has its own
// subdirectory "ipc-<inode>", which is what StateDir returns.
//
// The directory itself must be a real directory (a symlink is refused), owned
// by the effective uid and writable by nobody else: otherwise another user
// could plant journals that a later sweep would act on, or hide ours.
func StateDir(override string) (string, error) {
	euid := os.Geteuid()
	dir := override
	if dir == "" {
		dir = defaultStateDir(euid)
	}
	dir = filepath.Clean(dir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("state directory: %w", err)
	}
	if err := checkStateDir(dir, euid); err != nil {
		return "", err
	}
	// Journals and the run sequence are per IPC namespace: runs in other
	// namespaces (containers sharing the directory) can neither contend
	// with ours nor be swept against our objects.
	ns, err := ipcNamespace()
	if err != nil {
		return "", fmt.Errorf("state directory: %w", err)
	}
	sub := filepath.Join(dir, ns)
	if err := os.Mkdir(sub, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return "", fmt.Errorf("state directory: %w", err)
	}
	if err := checkStateDir(sub, euid); err != nil {
		return "", err
	}
	return sub, nil
}

// ipcNamespace names the IPC namespace of the calling thread, "ipc-<inode>".
func ipcNamespace() (string, error) {
	link, err := os.Readlink("/proc/thread-self/ns/ipc")
	if err != nil {
		return "", err
	}
	ino := strings.TrimSuffix(strings.TrimPrefix(link, "ipc:["), "]")
	if _, err := strconv.ParseUint(ino, 10, 64); err != nil {
		return "", fmt.Errorf("unexpected IPC namespace link %q", link)
	}
	return "ipc-" + ino, nil
}

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
	return filepath.Join(os.TempDir(), fmt.Sprintf("ipcguard-%d", euid))
}

func checkStateDir(dir string, euid int) error {
	var st syscall.Stat_t
	if err := syscall.Lstat(dir, &st); err != nil {
		return fmt.Errorf("state directory %s: %w", dir, err)
	}
	switch {
	case st.Mode&syscall.S_IFMT == syscall.S_IFLNK:
		return fmt.Errorf("state directory %s is a symbolic link: refusing to use it (another user could redirect or plant journals); remove it or choose another with --state-dir", dir)
	case st.Mode&syscall.S_IFMT != syscall.S_IFDIR:
		return fmt.Errorf("state directory %s is not a directory", dir)
	case int(st.Uid) != euid:
		return fmt.Errorf("state directory %s is owned by uid %d, not by us (uid %d): refusing to use it (another user could plant journals); remove it or choose another with --state-dir", dir, st.Uid, euid)
	case st.Mode&0o022 != 0:
		return fmt.Errorf("state directory %s has mode %04o, writable by group or others: refusing to use it (another user could plant journals); chmod 700 it or choose another with --state-dir", dir, st.Mode&0o7777)
	}
	return nil
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
// Pids are those of the caller's pid namespace.
func ProcessAlive(pid int, startTicks uint64) bool {
	if pid <= 0 {
		return false
	}
	state, start, err := readStat(strconv.Itoa(pid))
	if err != nil {
		return false
	}
	return start == startTicks && state != 'Z' && state != 'X' && state != 'x'
}

// SelfStart returns the start time of the calling process in clock ticks
// since boot (field 22 of /proc/self/stat).
func SelfStart() (uint64, error) {
	_, start, err := readStat("self")
	return start, err
}

// ProcessStart returns the start time of process pid in clock ticks since boot.
func ProcessStart(pid int) (uint64, error) {
	if pid <= 0 {
		return 0, fmt.Errorf("invalid pid %d", pid)
	}
	_, start, err := readStat(strconv.Itoa(pid))
	return start, err
}

func readStat(pid string) (state byte, start uint64, err error) {
	var buf [1024]byte
	f, err := os.Open("/proc/" + pid + "/stat")
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	n, err := f.Read(buf[:])
	if err != nil {
		return 0, 0, err
	}
	// comm (field 2) is in parentheses and may itself hold spaces and
	// parentheses, but it is at most 64 bytes: the fields after the last ')'
	// are numbers. The line is short, one read gets it all.
	return parseStat(buf[:n])
}

// parseStat returns field 3 (state) and field 22 (starttime) of a
// /proc/PID/stat line.
func parseStat(b []byte) (state byte, start uint64, err error) {
	s, err := procfs.ParseStat(b)
	return s.State, s.Start, err
}

// isNotExist reports a missing file, for callers that race with Done.
func isNotExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }
