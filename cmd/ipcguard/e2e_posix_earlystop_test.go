package main_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ipcguard/ipcguard/internal/journal"
	"github.com/ipcguard/ipcguard/internal/nstest"
	"github.com/ipcguard/ipcguard/ipcdiff"
)

// TestEarlyStopSweepKeepsStranger: a run that will not clean up (--on
// failure, the command exits 0) stops its POSIX creation watchers as soon
// as the command is reaped, while its journal stays until the run ends.
// ipcguard is held right after that (its stderr is a full pipe when it
// warns that creation tracking was incomplete) and SIGKILLed there. Meanwhile
// a leftover descendant unlinks the queue "q" it made, a process
// outside the tree makes a queue "q" of its own, and the pid watch goes on
// recording past it. The journal was compacted (eight thousand creations of
// one name), so a sweep judges POSIX objects by their names: the last
// creation of "q" it holds is the command's. The sweep must keep the
// stranger's queue: nothing watched the name after the watchers stopped,
// and the journal says so.
func TestEarlyStopSweepKeepsStranger(t *testing.T) {
	rootOnly(t, "early stop of the creation watchers, then a sweep", func(p *px) {
		if os.Geteuid() != 0 {
			nstest.Require(t, "creation watchers need real root")
		}
		// A child of the command makes the names: its pid was handed out
		// during the run, and so is the tree's over the whole run.
		steps := []string{"spawn{"}
		for range 8000 {
			steps = append(steps, "pshm:name=junk", "pshm:name=junk:unlink")
		}
		steps = append(steps, "pmsg:name=q", "ready="+p.path("made"),
			"await="+p.path("go"), "pmsg:name=q:unlink", "ready="+p.path("unlinked"), "}",
			"await="+p.path("made"), "ready="+p.path("ready"), "await="+p.path("exit"), "exit=0")
		r, w, err := os.Pipe()
		if err != nil {
			p.fatalf("%v", err)
		}
		defer r.Close()
		defer w.Close()
		g := p.ipc([]string{"--tracker", "poll", "--track-creation", "--types", "pshm,pmsg"}, steps...)
		g.cmd.Stderr = w
		g.start()
		cmdPid := p.waitPidFile(p.path("ready"))

		// Fill the pipe through a descriptor of its own (O_NONBLOCK is a
		// flag of the open file, not of the pipe): ipcguard's next line to
		// stderr blocks.
		fd, err := syscall.Open(fmt.Sprintf("/proc/self/fd/%d", w.Fd()), syscall.O_WRONLY|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
		if err != nil {
			p.fatalf("%v", err)
		}
		fill := make([]byte, 4096)
		for _, n := range []int{4096, 1} {
			for {
				if _, err := syscall.Write(fd, fill[:n]); err != nil {
					if err != syscall.EAGAIN {
						p.fatalf("filling the pipe: %v", err)
					}
					break
				}
			}
		}
		syscall.Close(fd)

		if err := os.WriteFile(p.path("exit"), nil, 0o644); err != nil {
			p.fatalf("%v", err)
		}
		waitCond(t, "ipcguard held writing to its stderr after the command", func() bool {
			return syscall.Kill(cmdPid, 0) == syscall.ESRCH && inPipeWrite(g.pid())
		})
		if err := os.WriteFile(p.path("go"), nil, 0o644); err != nil {
			p.fatalf("%v", err)
		}
		descPid := p.waitPidFile(p.path("unlinked"))
		p.outside("pmsg:name=q")
		made := time.Now()
		strangerIno := inode(filepath.Join(nstest.MqueueDir, "q"))
		if strangerIno == 0 {
			p.fatalf("the stranger's queue q is not there")
		}

		nsDir, err := journal.StateDir(p.state)
		if err != nil {
			p.fatalf("%v", err)
		}
		var rec *journal.Record
		waitCond(t, "the pid watch recording past the stranger's queue", func() bool {
			p.outside() // a fork for the pid watch to see
			ps, _ := journal.List(nsDir)
			if len(ps) != 1 {
				return false
			}
			r, err := journal.Load(ps[0])
			if err != nil || len(r.Watch) == 0 {
				return false
			}
			rec = r
			return r.Watch[len(r.Watch)-1].To.After(made)
		})
		t.Logf("journal: %d creations, %d watch records, compaction %+v, watched %v, lost %v", len(rec.Created), len(rec.Watch), rec.Compacted, rec.Watched, rec.WatchLost)
		if rec.Compacted.Times == 0 {
			p.fatalf("the journal was not compacted (%+v): the sweep would judge by files", rec.Compacted)
		}
		// The early stop is on record: the watched types' record ends
		// there, as a watcher's that lost events.
		for _, ty := range []ipcdiff.Type{ipcdiff.TypePshm, ipcdiff.TypePmsg} {
			if !rec.WatchLost.Has(ty) {
				p.errorf("the journal does not say the %s creation record ended when the watchers stopped (lost %v)", ty, rec.WatchLost)
			}
		}
		g.cmd.Process.Signal(syscall.SIGKILL)
		g.wait()
		p.reap(descPid)

		rep := p.path("sweep.json")
		res := p.guard("sweep", "--report", rep).run()
		if res.Signal != 0 || res.Code != 0 {
			p.fatalf("sweep: %v", res)
		}
		b, _ := os.ReadFile(rep)
		t.Logf("sweep report: %s", b)
		if inode(filepath.Join(nstest.MqueueDir, "q")) != strangerIno {
			p.errorf("FALSE REMOVAL: the sweep removed the queue q a process outside the tree made after the watchers stopped; sweep report:\n%s", b)
		}
	})
}

// inPipeWrite reports whether a thread of process pid sleeps writing to a
// full pipe.
func inPipeWrite(pid int) bool {
	tasks, _ := filepath.Glob("/proc/" + strconv.Itoa(pid) + "/task/*/wchan")
	for _, w := range tasks {
		// pipe_write, anon_pipe_write from Linux 6.15 on (fs/pipe.c).
		if b, err := os.ReadFile(w); err == nil && strings.HasSuffix(strings.TrimSpace(string(b)), "pipe_write") {
			return true
		}
	}
	return false
}
