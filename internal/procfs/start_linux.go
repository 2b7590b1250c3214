package procfs

import (
	"time"

	"golang.org/x/sys/unix"
)

// UserHZ is the unit of the times in /proc/PID/stat (USER_HZ: 100 on every
// architecture Go supports on Linux; include/asm-generic/param.h).
const UserHZ = 100

// StartWall converts a start time in clock ticks after boot (field 22 of
// /proc/PID/stat) into wall time: the one such conversion of ipcguard. The
// kernel takes that time after the pid is allocated and truncates it to a
// tick, so the result is at most one tick (10 ms) before the process
// began. The boot time is measured on each call from CLOCK_BOOTTIME, which
// keeps running through suspend as start times do. It returns the zero
// time when the clocks cannot be read (clock_gettime(2)).
func StartWall(ticks uint64) time.Time {
	var boot, real unix.Timespec
	if unix.ClockGettime(unix.CLOCK_BOOTTIME, &boot) != nil || unix.ClockGettime(unix.CLOCK_REALTIME, &real) != nil {
		return time.Time{}
	}
	sinceBoot := time.Duration(ticks) * (time.Second / UserHZ)
	return time.Unix(0, real.Nano()-boot.Nano()+int64(sinceBoot))
}

// Started returns when process pid started, in wall time (StartWall of
// field 22 of /proc/PID/stat), when the mount shows the caller's pid
// namespace (Ours): ok is false otherwise, or when the process is gone or
// its stat unreadable.
func (fs FS) Started(pid int) (t time.Time, ok bool) {
	if !fs.Ours() {
		return time.Time{}, false
	}
	s, err := fs.Stat(pid)
	if err != nil {
		return time.Time{}, false
	}
	t = StartWall(s.Start)
	return t, !t.IsZero()
}
