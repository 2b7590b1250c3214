package procfs

import (
	"bytes"
	"errors"
	"fmt"
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
