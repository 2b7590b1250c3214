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

	once sync.Once
	ours bool // Root shows this process's pid namespace
}

func (p *LiveProcs) init() { p.ours = procfs.SameNamespace(p.Root) == nil }

// Alive implements Procs: a process runs under pid (kill(pid, 0) finds it)
// and is not a zombie, which can no longer use anything; the state comes
// from /proc/PID/stat when the proc mount is this pid namespace's.
func (p *LiveProcs) Alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	if err := syscall.Kill(pid, 0); err != nil && err != syscall.EPERM {
		return false
	}
	p.once.Do(p.init)
	if !p.ours {
		return true
	}
	b, err := os.ReadFile(p.Root + "/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return !os.IsNotExist(err) // gone meanwhile; unreadable counts as running
	}
	st, err := procfs.ParseStat(b)
	return err != nil || (st.State != 'Z' && st.State != 'X')
}

// Comm implements Procs: /proc/PID/comm.
func (p *LiveProcs) Comm(pid int) string {
	b, err := os.ReadFile(p.Root + "/" + strconv.Itoa(pid) + "/comm")
	if err != nil {
		return ""
	}
	return string(bytes.TrimSpace(b))
}

// Started implements Procs: field 22 of /proc/PID/stat, when the proc
// mount is this pid namespace's.
func (p *LiveProcs) Started(pid int) (time.Time, bool) {
	p.once.Do(p.init)
	if !p.ours {
		return time.Time{}, false
	}
	b, err := os.ReadFile(p.Root + "/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return time.Time{}, false
	}
	s, err := procfs.ParseStat(b)
	if err != nil {
		return time.Time{}, false
	}
	t := procfs.StartWall(s.Start)
	return t, !t.IsZero()
}
