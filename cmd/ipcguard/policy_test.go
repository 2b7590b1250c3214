package main_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/ipcguard/ipcguard/internal/guard"
	"github.com/ipcguard/ipcguard/internal/nstest"
)

// TestOnAlwaysLeavesDescendantsOfASuccess: under --on always a command
// that succeeds still gets its objects cleaned, but a descendant it left
// running is not killed, and the segment that descendant holds is kept.
func TestOnAlwaysLeavesDescendantsOfASuccess(t *testing.T) {
	if !nstest.Isolate(t, nstest.Root) {
		return
	}
	dir := t.TempDir()
	ready, ids, rep := filepath.Join(dir, "ready"), filepath.Join(dir, "ids"), filepath.Join(dir, "report.json")
	cmd := exec.Command(guardBin(), "--on", "always", "--quiet", "--state-dir", filepath.Join(dir, "state"),
		"--report", rep, "--", nstest.Binary(),
		"out="+ids, "sem:op", "spawn-setsid{", "shm:attach", "ready="+ready, "wait", "}", "await="+ready, "exit=0")
	cmd.Env = append(os.Environ(), nstest.HelperEnv("ipc"))
	// Output to a file: the descendant keeps a pipe open for as long as it
	// runs, and CombinedOutput would wait for it.
	out, err := os.Create(filepath.Join(dir, "out"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Run(); err != nil {
		b, _ := os.ReadFile(out.Name())
		t.Fatalf("ipcguard --on always: %v\n%s", err, b)
	}
	waitCond(t, "the descendant ready", func() bool { _, err := os.Stat(ready); return err == nil })
	b, _ := os.ReadFile(ready)
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	defer syscall.Kill(pid, syscall.SIGKILL)
	if syscall.Kill(pid, 0) != nil {
		t.Fatalf("--on always killed the descendant of a command that succeeded")
	}
	var r guard.Report
	rb, err := os.ReadFile(rep)
	if err != nil || json.Unmarshal(rb, &r) != nil {
		t.Fatalf("report: %v\n%s", err, rb)
	}
	got := map[string]string{}
	for _, o := range r.Objects {
		got[o.Type] = o.Action
	}
	if !r.Cleanup || got["sem"] != "removed" || got["shm"] != "kept" {
		t.Fatalf("want the sem removed and the held shm kept, got %+v", r)
	}
}
