package supervisor

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/ipcguard/ipcguard/internal/procfs"
	"golang.org/x/sys/unix"
)

// errProcStat is wrapped by every /proc/PID/stat parse failure.
var errProcStat = procfs.ErrStat

// procFS is a mount point of procfs; tests point it at fixtures.
type procFS string

// defaultProc is the real /proc.
const defaultProc procFS = "/proc"

func (fs procFS) path(elem ...string) string {
	return filepath.Join(append([]string{string(fs)}, elem...)...)
}

// procStat is what the tree trackers need from one /proc/PID/stat.
type procStat = procfs.Stat

// stat reads /proc/PID/stat.
func (fs procFS) stat(pid int) (procStat, error) {
	b, err := os.ReadFile(fs.path(strconv.Itoa(pid), "stat"))
	if err != nil {
		return procStat{}, err
	}
	return parseProcStat(b)
}

// parseProcStat parses one /proc/PID/stat (see procfs.ParseStat).
func parseProcStat(b []byte) (procStat, error) { return procfs.ParseStat(b) }

// ticksToWall converts a start time in clock ticks after boot into wall
// time (see procfs.StartWall).
func ticksToWall(ticks uint64) time.Time { return procfs.StartWall(ticks) }

// procStartTime returns the start time of pid (ticks after boot), the
// identity of a pid against reuse: (pid, start) names one process.
func procStartTime(pid int) (uint64, error) {
	s, err := defaultProc.stat(pid)
	return s.Start, err
}

// children lists the children of every thread of pid, from
// /proc/PID/task/*/children (CONFIG_PROC_CHILDREN). A pid that is gone
// yields no children and no error.
func (fs procFS) children(pid int, into []int) ([]int, error) {
	dir := fs.path(strconv.Itoa(pid), "task")
	tasks, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, unix.ESRCH) {
			return into, nil
		}
		return into, err
	}
	for _, task := range tasks {
		b, err := os.ReadFile(filepath.Join(dir, task.Name(), "children"))
		if err != nil {
			if errors.Is(err, os.ErrNotExist) || errors.Is(err, unix.ESRCH) {
				continue // the thread exited meanwhile
			}
			return into, err
		}
		into = parseChildren(b, into)
	}
	return into, nil
}

// parseChildren appends the pids of one /proc/PID/task/TID/children file
// (space separated) to into; anything that is not a pid is skipped.
func parseChildren(b []byte, into []int) []int {
	for _, f := range bytes.Fields(b) {
		if n, err := strconv.Atoi(string(f)); err == nil && n > 0 {
			into = append(into, n)
		}
	}
	return into
}

// hasChildrenFiles reports whether this kernel has
// /proc/PID/task/TID/children.
func (fs procFS) hasChildrenFiles() bool {
	_, err := os.Stat(fs.path("thread-self", "children"))
	return err == nil
}
