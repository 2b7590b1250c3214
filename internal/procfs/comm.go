package procfs

import (
	"bytes"
	"os"
)

// Comm returns the command name of pid, /proc/PID/comm without its
// newline (at most 15 bytes, TASK_COMM_LEN - 1; proc(5)); "" when it
// cannot be read.
func (fs FS) Comm(pid int) string {
	b, err := os.ReadFile(fs.pidPath(pid, "comm"))
	if err != nil {
		return ""
	}
	return string(bytes.TrimSpace(b))
}
