package main_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/ipcguard/ipcguard/internal/nstest"
)

// TestSweepFinishesCreationTracking: a run with --track-creation, as root,
// SIGKILLed while its command holds a set it made and never used (no pid
// evidence at all, and a sweep never uses window evidence): the journal
// holds what the creation tracker saw, so `ipcguard sweep` removes that set
// once the command is gone, as the run itself would have. A live run's
// set and a stranger's, made in the same window, are kept.
func TestSweepFinishesCreationTracking(t *testing.T) {
	if !nstest.Isolate(t, nstest.Root) {
		return
	}
	if os.Geteuid() != 0 {
		nstest.Require(t, "creation tracking needs real root")
	}
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	start := func(name string) (*exec.Cmd, int, []string) {
		ids, ready := filepath.Join(dir, name+".ids"), filepath.Join(dir, name+".ready")
		cmd := exec.Command(guardBin(), "--quiet", "--track-creation", "--state-dir", state, "--",
			nstest.Binary(), "out="+ids, "sem", "ready="+ready, "wait")
		cmd.Env = append(os.Environ(), nstest.HelperEnv("ipc"))
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		waitCond(t, name+" ready", func() bool { _, err := os.Stat(ready); return err == nil })
		b, _ := os.ReadFile(ready)
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil {
			t.Fatalf("%s: ready file %q", name, b)
		}
		t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) })
		return cmd, pid, tortureIDs(t, ids)
	}
	guardA, cmdA, objsA := start("a")
	_, _, objsB := start("b")
	if out, err := nstest.IPCCmd("out="+filepath.Join(dir, "stranger.ids"), "sem").CombinedOutput(); err != nil {
		t.Fatalf("stranger: %v\n%s", err, out)
	}
	keep := append(objsB, tortureIDs(t, filepath.Join(dir, "stranger.ids"))...)
	if len(objsA) != 1 || len(objsB) != 1 {
		t.Fatalf("runs made %v and %v, want one set each", objsA, objsB)
	}

	// The tracker hands what it saw to the journal within ~50 ms: kill
	// once the get is on record (what a sweep can use is what was written).
	id := strings.Fields(objsA[0])[1]
	waitCond(t, "the get in the journal", func() bool {
		js, _ := filepath.Glob(filepath.Join(state, "ipc-*", "run-"+strconv.Itoa(guardA.Process.Pid)+"-*.journal"))
		for _, j := range js {
			if b, _ := os.ReadFile(j); strings.Contains(string(b), "\nG sem "+id+" 1 ") {
				return true
			}
		}
		return false
	})
	guardA.Process.Signal(syscall.SIGKILL)
	guardA.Wait()
	syscall.Kill(cmdA, syscall.SIGKILL)
	waitCond(t, "the command of the killed run to end", func() bool {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(cmdA) + "/stat")
		return err != nil || strings.Contains(string(b), ") Z ")
	})
	waitCond(t, "the command to be reaped", func() bool { return syscall.Kill(cmdA, 0) != nil })

	res := sweep(t, state, filepath.Join(dir, "sweep.json"), 0)
	now := tortureObjects(t)
	for _, o := range objsA {
		if now[o] {
			t.Errorf("LEAK: the sweep left %s, which the killed run's creation tracker saw it make (%+v)", o, res)
		}
	}
	for _, o := range keep {
		if !now[o] {
			t.Errorf("FALSE REMOVAL: the sweep removed %s (a live run's, or a stranger's)", o)
		}
	}
}
