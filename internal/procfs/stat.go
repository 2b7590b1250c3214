package procfs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
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

// Stat reads /proc/PID/stat. The error is the open's or read's (see Gone),
// or wraps ErrStat.
func (fs FS) Stat(pid int) (Stat, error) { return readStat(fs.pidPath(pid, "stat")) }

// SelfStat reads /proc/self/stat: the calling process as the mount names it.
func (fs FS) SelfStat() (Stat, error) { return readStat(fs.root + "/self/stat") }

// StartTicks returns the start time of pid in clock ticks after boot
// (field 22 of /proc/PID/stat): with the pid, the identity of a process
// against pid reuse.
func (fs FS) StartTicks(pid int) (uint64, error) {
	s, err := fs.Stat(pid)
	return s.Start, err
}

// statMax bounds the bytes of /proc/PID/stat read: 52 fields, none longer
// than 20 digits, and the command name (at most 64 bytes):
// field 22 comes well within it.
const statMax = 2048

func readStat(path string) (Stat, error) {
	f, err := os.Open(path)
	if err != nil {
		return Stat{}, err
	}
	defer f.Close()
	var buf [statMax]byte
	n, err := io.ReadFull(f, buf[:])
	if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
		return Stat{}, err
	}
	return ParseStat(buf[:n])
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
