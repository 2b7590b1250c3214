package procfs

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
)

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

// ParsePidMax parses /proc/sys/kernel/pid_max: one positive decimal.
func ParsePidMax(b []byte) (int, error) {
	n, err := strconv.Atoi(string(bytes.TrimSpace(b)))
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("parsing pid_max %q", b)
	}
	return n, nil
}
