package procfs

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// Alive reports whether a process runs under pid in the caller's pid
// namespace (kill(pid, 0) finds it, EPERM included) and is not a zombie,
// which can no longer use anything. The state comes from /proc/PID/stat
// only when the mount shows the caller's pid namespace (Ours); a stat that
// cannot be read or parsed, other than a missing one, counts as running.
func (fs FS) Alive(pid int) bool {
	if !Exists(pid) {
		return false
	}
	if !fs.Ours() {
		return true
	}
	st, err := fs.Stat(pid)
	if err != nil {
		return !errors.Is(err, os.ErrNotExist) // gone meanwhile; unreadable counts as running
	}
	return st.State != 'Z' && st.State != 'X'
}

// Exists reports whether kill(pid, 0) finds a process, zombies included,
// in the caller's pid namespace (EPERM: it exists, another user's).
func Exists(pid int) bool {
	if pid <= 0 {
		return false
	}
	err := unix.Kill(pid, 0)
	return err == nil || err == unix.EPERM
}

// Running reports whether the process pid that started at startTicks
// (field 22 of /proc/PID/stat) exists and is not a zombie: a different
// start time means the pid was reused. Pids are those of the mount's pid
// namespace.
func (fs FS) Running(pid int, startTicks uint64) bool {
	if pid <= 0 {
		return false
	}
	st, err := fs.Stat(pid)
	if err != nil {
		return false
	}
	return st.Start == startTicks && st.State != 'Z' && st.State != 'X' && st.State != 'x'
}

// Ours reports whether the mount shows the caller's pid namespace (see
// SameNamespace). It is asked once per FS (copies share the answer).
func (fs FS) Ours() bool {
	if fs.ns == nil {
		return fs.SameNamespace() == nil
	}
	fs.ns.once.Do(func() { fs.ns.ours = fs.SameNamespace() == nil })
	return fs.ns.ours
}
