package procfs

import (
	"bytes"
	"os"
	"strconv"
)

// Children appends to into the children of every thread of pid, from
// /proc/PID/task/TID/children (CONFIG_PROC_CHILDREN; proc(5)). A pid that
// is gone yields no children and no error, a thread that exits meanwhile
// is skipped; other errors are os.ReadDir's or os.ReadFile's.
func (fs FS) Children(pid int, into []int) ([]int, error) {
	dir := fs.pidPath(pid, "task")
	tasks, err := os.ReadDir(dir)
	if err != nil {
		if Gone(err) {
			return into, nil
		}
		return into, err
	}
	for _, task := range tasks {
		b, err := os.ReadFile(dir + "/" + task.Name() + "/children")
		if err != nil {
			if Gone(err) {
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

// HasChildrenFiles reports whether this kernel has
// /proc/PID/task/TID/children (CONFIG_PROC_CHILDREN), looking at the
// calling thread's.
func (fs FS) HasChildrenFiles() bool {
	_, err := os.Stat(fs.Path("thread-self", "children"))
	return err == nil
}
