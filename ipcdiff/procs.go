package ipcdiff

import (
	"sync"
	"time"

	"github.com/ipcguard/ipcguard/internal/procfs"
)

// LiveProcs answers Procs questions from a proc mount (internal/procfs).
type LiveProcs struct {
	Root string // proc mount, "/proc"

	once sync.Once
	fs   procfs.FS
	ok   bool // Root is a directory
}

func (p *LiveProcs) init() {
	var err error
	p.fs, err = procfs.NewFS(p.Root)
	p.ok = err == nil
}

// Alive implements Procs: a process runs under pid (kill(pid, 0) finds it)
// and is not a zombie, which can no longer use anything; the state comes
// from /proc/PID/stat when the proc mount is this pid namespace's
// (procfs.FS.Alive).
func (p *LiveProcs) Alive(pid int) bool {
	p.once.Do(p.init)
	if !p.ok {
		return procfs.Exists(pid) // no proc mount: its state is unknown
	}
	return p.fs.Alive(pid)
}

// Comm implements Procs: /proc/PID/comm.
func (p *LiveProcs) Comm(pid int) string {
	p.once.Do(p.init)
	if !p.ok {
		return ""
	}
	return p.fs.Comm(pid)
}

// Started implements Procs: field 22 of /proc/PID/stat in wall time, when
// the proc mount is this pid namespace's (procfs.FS.Started).
func (p *LiveProcs) Started(pid int) (time.Time, bool) {
	p.once.Do(p.init)
	if !p.ok {
		return time.Time{}, false
	}
	return p.fs.Started(pid)
}
