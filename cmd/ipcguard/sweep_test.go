package main_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ipcguard/ipcguard/internal/guard"
	"github.com/ipcguard/ipcguard/internal/journal"
	"github.com/ipcguard/ipcguard/internal/nstest"
)

// TestSweepAfterSupervisorKilled: ipcguard is SIGKILLed while its command
// holds objects of all three types; a sweep while the command still runs
// touches nothing; once the command is gone, `ipcguard sweep` removes
// exactly that command's objects — nothing of a concurrent live run, of a
// stranger, or of what existed before — and deletes only its journal. A
// corrupt journal is reported and skipped; normal runs leave no journal.
//
// IPCGUARD_SWEEP_ROUNDS repeats it (default 2).
func TestSweepAfterSupervisorKilled(t *testing.T) {
	rounds := 2
	if s := os.Getenv("IPCGUARD_SWEEP_ROUNDS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("IPCGUARD_SWEEP_ROUNDS=%q", s)
		}
		rounds = n
	}
	for _, mode := range []nstest.Mode{nstest.Root, nstest.Unprivileged} {
		t.Run(mode.String(), func(t *testing.T) {
			t.Parallel()
			if !nstest.Isolate(t, mode) {
				return
			}
			for r := 0; r < rounds; r++ {
				sweepRound(t, r)
				if t.Failed() {
					t.Fatalf("sweep: round %d of %d failed", r+1, rounds)
				}
			}
		})
	}
}

// holder starts `ipcguard --state-dir S -- <ipc helper>` whose command
// creates and uses one object of each type, then waits. It returns the
// ipcguard process, the command's pid and the "TYPE ID" of its objects.
func holder(t *testing.T, dir, state, name string) (*exec.Cmd, int, []string) {
	t.Helper()
	ids, ready := filepath.Join(dir, name+".ids"), filepath.Join(dir, name+".ready")
	cmd := exec.Command(guardBin(), "--quiet", "--grace", "1s", "--state-dir", state, "--",
		nstest.Binary(), "out="+ids, "shm:attach", "sem:n=2:op", "msg:send", "ready="+ready, "wait")
	cmd.Env = append(os.Environ(), nstest.HelperEnv("ipc"))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	waitCond(t, name+" ready", func() bool { _, err := os.Stat(ready); return err == nil })
	b, err := os.ReadFile(ready)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("%s: ready file %q", name, b)
	}
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) })
	return cmd, pid, tortureIDs(t, ids)
}

// sweepOut is one journal's outcome in the sweep's report.
type sweepOut = guard.SweepReport

// sweep runs `ipcguard sweep` and checks its exit status: 1 when a journal
// was corrupt (or an object could not be removed), else 0.
func sweep(t *testing.T, state, report string, code int) []sweepOut {
	t.Helper()
	out, err := exec.Command(guardBin(), "sweep", "--state-dir", state, "--report", report).CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil && code == 0:
	case errors.As(err, &ee) && ee.ExitCode() == code:
	default:
		t.Fatalf("sweep: %v, want exit %d\n%s", err, code, out)
	}
	b, err := os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	var res []sweepOut
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatalf("sweep report: %v\n%s", err, b)
	}
	return res
}

func sweepRound(t *testing.T, round int) {
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	nsDir, err := journal.StateDir(state)
	if err != nil {
		t.Fatal(err)
	}

	// What must survive: an object from before, a stranger's, a live run's.
	pre := nstest.IPCCmd("out="+filepath.Join(dir, "pre.ids"), fmt.Sprintf("sem:key=%d:op", 0x4a000000+round))
	if out, err := pre.CombinedOutput(); err != nil {
		t.Fatalf("pre-existing object: %v\n%s", err, out)
	}
	keep := tortureIDs(t, filepath.Join(dir, "pre.ids"))

	guardA, cmdA, objsA := holder(t, dir, state, "a")
	_, _, objsB := holder(t, dir, state, "b")
	keep = append(keep, objsB...)
	stranger := nstest.IPCCmd("out="+filepath.Join(dir, "stranger.ids"), "shm", "msg:send")
	if out, err := stranger.CombinedOutput(); err != nil {
		t.Fatalf("stranger: %v\n%s", err, out)
	}
	keep = append(keep, tortureIDs(t, filepath.Join(dir, "stranger.ids"))...)
	if len(objsA) != 3 || len(objsB) != 3 {
		t.Fatalf("holders made %d and %d objects, want 3 each", len(objsA), len(objsB))
	}
	corrupt := filepath.Join(nsDir, "run-999999-1.journal")
	if err := os.WriteFile(corrupt, []byte("ipcguard-journal 1 garbage\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	// ipcguard A dies; its command lives on.
	if err := guardA.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	guardA.Wait()
	res := sweep(t, state, filepath.Join(dir, "sweep1.json"), 1) // the corrupt journal
	statuses := map[string]int{}
	for _, r := range res {
		statuses[r.Status]++
		if r.Status == "swept" {
			t.Errorf("sweep while the command still runs swept %s", r.Journal)
		}
	}
	if statuses["running"] != 1 || statuses["live"] != 1 || statuses["corrupt"] != 1 {
		t.Errorf("first sweep: statuses %v, want running 1, live 1, corrupt 1", statuses)
	}
	now := tortureObjects(t)
	for _, o := range append(objsA, keep...) {
		if !now[o] {
			t.Errorf("sweep removed %s while its tree still ran", o)
		}
	}

	// The command goes too; now the sweep finishes A's work.
	if err := syscall.Kill(cmdA, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitCond(t, "command A gone", func() bool { return syscall.Kill(cmdA, 0) == syscall.ESRCH })
	res = sweep(t, state, filepath.Join(dir, "sweep2.json"), 1)
	swept := 0
	for _, r := range res {
		if r.Status != "swept" {
			continue
		}
		swept++
		// The swept run's window saw B's and the stranger's objects too:
		// those must be kept, A's removed.
		actions := map[string]string{}
		for _, o := range r.Run.Objects {
			actions[fmt.Sprintf("%s %d", o.Type, o.ID)] = o.Action + ": " + o.Reason
		}
		for _, o := range objsA {
			if !strings.HasPrefix(actions[o], "removed") {
				t.Errorf("sweep did not remove %s of the killed run: %q", o, actions[o])
			}
		}
		for _, o := range keep {
			if a, ok := actions[o]; ok && !strings.HasPrefix(a, "kept") {
				t.Errorf("sweep decided %q for %s, not the killed run's", a, o)
			}
		}
	}
	if swept != 1 {
		t.Errorf("second sweep swept %d journals, want 1: %+v", swept, res)
	}
	now = tortureObjects(t)
	for _, o := range objsA {
		if now[o] {
			t.Errorf("LEAK: sweep left %s of the killed run", o)
		}
	}
	for _, o := range keep {
		if !now[o] {
			t.Errorf("FALSE REMOVAL: sweep removed %s", o)
		}
	}
	if _, err := os.Stat(corrupt); err != nil {
		t.Errorf("the corrupt journal was not left alone: %v", err)
	}
	os.Remove(corrupt)

	// B ends normally: it cleans up after itself and leaves no journal.
	var left []string
	for _, r := range res {
		if r.Status == "live" {
			left = append(left, r.Journal)
		}
	}
	if len(left) != 1 {
		t.Fatalf("want B's live journal, have %v", left)
	}
	bPid := sweepCommandOf(t, left[0])
	syscall.Kill(bPid, syscall.SIGTERM)
	waitCond(t, "run B's journal gone", func() bool { _, err := os.Stat(left[0]); return os.IsNotExist(err) })
	paths, err := journal.List(nsDir)
	if err != nil || len(paths) != 0 {
		t.Errorf("journals left after normal runs: %v %v", paths, err)
	}
	// Nothing corrupt, nothing left: a sweep that succeeds.
	if res := sweep(t, state, filepath.Join(dir, "sweep3.json"), 0); len(res) != 0 {
		t.Errorf("third sweep: %+v, want nothing to do", res)
	}
	tortureClean(t, tortureObjects(t))
}

func sweepCommandOf(t *testing.T, path string) int {
	t.Helper()
	var rec *journal.Record
	waitCond(t, "journal names its command", func() bool {
		r, err := journal.Load(path)
		rec = r
		return err == nil && r.CommandPid > 0
	})
	return rec.CommandPid
}

// TestSweepAfterCompaction: the command makes one object of each type in a
// short-lived child, then forks until the journal has been compacted (the
// child's stay among thousands); ipcguard is SIGKILLed, the tree killed.
// The sweep of the compacted journal removes the objects made before the
// compaction and keeps a stranger's made during the run.
func TestSweepAfterCompaction(t *testing.T) {
	for _, mode := range []nstest.Mode{nstest.Root, nstest.Unprivileged} {
		t.Run(mode.String(), func(t *testing.T) {
			t.Parallel()
			if !nstest.Isolate(t, mode) {
				return
			}
			dir := t.TempDir()
			state := filepath.Join(dir, "state")
			nsDir, err := journal.StateDir(state)
			if err != nil {
				t.Fatal(err)
			}
			ids := filepath.Join(dir, "tree.ids")
			script := `"$0" out="$1" shm sem:n=2:op msg:send || exit 9; while :; do (:); done`
			cmd := exec.Command(guardBin(), "--quiet", "--state-dir", state, "--", "sh", "-c", script, nstest.Binary(), ids)
			cmd.Env = append(os.Environ(), nstest.HelperEnv("ipc"))
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
			path := ""
			var rec *journal.Record
			waitLong(t, "the journal compacted", func() bool {
				if path == "" {
					ps, _ := journal.List(nsDir)
					if len(ps) != 1 {
						return false
					}
					path = ps[0]
				}
				r, err := journal.Load(path)
				rec = r
				return err == nil && r.Compacted.Times > 0 && r.Compacted.Stays > 0
			})
			t.Cleanup(func() { syscall.Kill(rec.CommandPid, syscall.SIGKILL) })
			objs := tortureIDs(t, ids)
			if len(objs) != 3 {
				t.Fatalf("the command made %v, want 3 objects", objs)
			}
			stranger := nstest.IPCCmd("out="+filepath.Join(dir, "stranger.ids"), "shm", "msg:send")
			if out, err := stranger.CombinedOutput(); err != nil {
				t.Fatalf("stranger: %v\n%s", err, out)
			}
			keep := tortureIDs(t, filepath.Join(dir, "stranger.ids"))

			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			cmd.Wait()
			if err := syscall.Kill(rec.CommandPid, syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			waitCond(t, "the command gone", func() bool { return syscall.Kill(rec.CommandPid, 0) == syscall.ESRCH })
			final, err := journal.Load(path)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("journal: %d members, %d watch records, compaction %+v", len(final.Members), len(final.Watch), final.Compacted)

			res := sweep(t, state, filepath.Join(dir, "sweep.json"), 0)
			if len(res) != 1 || res[0].Status != "swept" {
				t.Fatalf("sweep: %+v", res)
			}
			actions := map[string]string{}
			for _, o := range res[0].Run.Objects {
				actions[fmt.Sprintf("%s %d", o.Type, o.ID)] = o.Action + ": " + o.Reason
			}
			now := tortureObjects(t)
			for _, o := range objs {
				if now[o] {
					t.Errorf("LEAK: the sweep of the compacted journal left %s: %q", o, actions[o])
				}
			}
			for _, o := range keep {
				if !now[o] {
					t.Errorf("FALSE REMOVAL: the sweep removed the stranger's %s", o)
				}
			}
			tortureClean(t, tortureObjects(t))
		})
	}
}

// waitLong waits for cond, for up to five minutes (thousands of forks on
// a loaded machine).
func waitLong(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
