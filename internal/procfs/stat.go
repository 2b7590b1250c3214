// Package procfs parses the /proc files that more than one part of ipcguard
// reads. There is one parser of /proc/PID/stat, whose command name may hold
// spaces and parentheses.
package procfs

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
)

// ErrStat is wrapped by every /proc/PID/stat parse failure.
var ErrStat = errors.New("parsing /proc/PID/stat")

// Stat is what ipcguard needs from one /proc/PID/stat.
type Stat struct {
	Pid   int
	Comm  string
	State byte
	Ppid  int
	// Start is the start time in clock ticks after boot (field 22).
	Start uint64
}

// ParseStat parses one /proc/PID/stat. The command name is between the
// first '(' and the LAST ')': it may itself hold parentheses and spaces.
func ParseStat(b []byte) (Stat, error) {
	var s Stat
	open := bytes.IndexByte(b, '(')
	closing := bytes.LastIndexByte(b, ')')
	if open < 0 || closing < open {
		return s, fmt.Errorf("%w: no (comm)", ErrStat)
	}
	pid, err := strconv.Atoi(string(bytes.TrimSpace(b[:open])))
	if err != nil {
		return s, fmt.Errorf("%w: pid: %w", ErrStat, err)
	}
	s.Pid = pid
	s.Comm = string(b[open+1 : closing])
	// Fields after comm, numbered from 3 (state).
	f := bytes.Fields(b[closing+1:])
	if len(f) < 20 { // through field 22, starttime
		return s, fmt.Errorf("%w: %d fields after comm, want >= 20", ErrStat, len(f))
	}
	if len(f[0]) != 1 {
		return s, fmt.Errorf("%w: state %q", ErrStat, f[0])
	}
	s.State = f[0][0]
	if s.Ppid, err = strconv.Atoi(string(f[1])); err != nil {
		return s, fmt.Errorf("%w: ppid: %w", ErrStat, err)
	}
	if s.Start, err = strconv.ParseUint(string(f[19]), 10, 64); err != nil {
		return s, fmt.Errorf("%w: starttime: %w", ErrStat, err)
	}
	return s, nil
}
