package ipcdiff

import (
	"bytes"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/ipcguard/ipcguard/internal/procfs"
)

// LiveProcs answers Procs questions from a proc mount.
type LiveProcs struct {
	Root string // proc mount, "/proc"

	once  sync.Once
	btime time.Time // boot time, from /proc/stat
}

// Alive implements Procs.
func (p *LiveProcs) Alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	err := syscall.Kill(pid, 0)
	return err == nil || err == syscall.EPERM
}

// Comm implements Procs: /proc/PID/comm.
func (p *LiveProcs) Comm(pid int) string {
	b, err := os.ReadFile(p.Root + "/" + strconv.Itoa(pid) + "/comm")
	if err != nil {
		return ""
	}
	return string(bytes.TrimSpace(b))
}

// Started implements Procs: field 22 of /proc/PID/stat (clock ticks since
// boot), converted with the boot time of /proc/stat.
func (p *LiveProcs) Started(pid int) (time.Time, bool) {
	b, err := os.ReadFile(p.Root + "/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return time.Time{}, false
	}
	ticks, ok := StatStartTicks(b)
	if !ok {
		return time.Time{}, false
	}
	p.once.Do(func() { p.btime = bootTime(p.Root) })
	if p.btime.IsZero() {
		return time.Time{}, false
	}
	const hz = 100 // USER_HZ: the unit of /proc/PID/stat times on Linux
	return p.btime.Add(time.Duration(ticks) * time.Second / hz), true
}

// StatStartTicks extracts the start time (field 22) from /proc/PID/stat.
func StatStartTicks(stat []byte) (uint64, bool) {
	s, err := procfs.ParseStat(stat)
	return s.Start, err == nil
}

func bootTime(root string) time.Time {
	b, err := os.ReadFile(root + "/stat")
	if err != nil {
		return time.Time{}
	}
	for _, line := range bytes.Split(b, []byte("\n")) {
		if v, ok := bytes.CutPrefix(line, []byte("btime ")); ok {
			s, err := strconv.ParseInt(string(bytes.TrimSpace(v)), 10, 64)
			if err == nil {
				return time.Unix(s, 0)
			}
		}
	}
	return time.Time{}
}
