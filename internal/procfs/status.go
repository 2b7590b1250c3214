package procfs

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
)

// ErrStatus is wrapped by every /proc/PID/status parse failure.
var ErrStatus = errors.New("parsing /proc/PID/status")

// StatusIDs returns the effective uid and gid of a /proc/PID/status, the
// second numbers of its "Uid:" and "Gid:" lines (real, effective, saved,
// filesystem; proc(5)), as the decimal text the kernel wrote. The error
// wraps ErrStatus when either line is missing or short.
func StatusIDs(b []byte) (euid, egid string, err error) {
	for len(b) > 0 && (euid == "" || egid == "") {
		var l []byte
		l, b, _ = bytes.Cut(b, []byte{'\n'})
		f := bytes.Fields(l)
		if len(f) >= 3 && string(f[0]) == "Uid:" {
			euid = string(f[2])
		} else if len(f) >= 3 && string(f[0]) == "Gid:" {
			egid = string(f[2])
		}
	}
	if euid == "" || egid == "" {
		return "", "", fmt.Errorf("%w: no Uid or Gid line", ErrStatus)
	}
	return euid, egid, nil
}

// Status is what ipcguard reads of /proc/PID/status (proc_pid_status(5)):
// the thread group, and the real, effective, saved and filesystem uids.
type Status struct {
	Tgid int
	Uids [4]uint32
}

// ParseStatus parses the "Tgid:" and "Uid:" lines of a /proc/PID/status.
// The error wraps ErrStatus when either is missing or malformed.
func ParseStatus(b []byte) (Status, error) {
	var st Status
	var tgid, uid bool
	for len(b) > 0 && !(tgid && uid) {
		var l []byte
		l, b, _ = bytes.Cut(b, []byte{'\n'})
		k, v, ok := bytes.Cut(l, []byte{':'})
		switch {
		case !ok:
		case string(k) == "Tgid":
			n, err := strconv.Atoi(string(bytes.TrimSpace(v)))
			if err != nil || n <= 0 {
				return st, fmt.Errorf("%w: Tgid line %q", ErrStatus, l)
			}
			st.Tgid, tgid = n, true
		case string(k) == "Uid":
			f := bytes.Fields(v)
			if len(f) != 4 {
				return st, fmt.Errorf("%w: Uid line %q", ErrStatus, l)
			}
			for i := range st.Uids {
				n, err := strconv.ParseUint(string(f[i]), 10, 32)
				if err != nil {
					return st, fmt.Errorf("%w: Uid line %q: %w", ErrStatus, l, err)
				}
				st.Uids[i] = uint32(n)
			}
			uid = true
		}
	}
	if !tgid || !uid {
		return st, fmt.Errorf("%w: no Tgid or Uid line", ErrStatus)
	}
	return st, nil
}

// Status reads and parses /proc/PID/status.
func (fs FS) Status(pid int) (Status, error) {
	b, err := ReadAll(fs.pidPath(pid, "status"), nil)
	if err != nil {
		return Status{}, err
	}
	return ParseStatus(b)
}
