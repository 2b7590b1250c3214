package ipcdiff

import "errors"

var (
	// ErrParse means a /proc/sysvipc file did not have the expected form.
	ErrParse = errors.New("ipcdiff: parse error")
	// ErrUsage means a bad value from the user (type list, key).
	ErrUsage = errors.New("ipcdiff: bad value")
	// ErrUnavailable means /proc/sysvipc cannot be read (no SysV IPC in the
	// kernel, or /proc not mounted).
	ErrUnavailable = errors.New("ipcdiff: /proc/sysvipc unavailable")
)
