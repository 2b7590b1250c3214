package supervisor

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// daemonize is a start command that daemonizes: a child in a new session
// writes its pid to $1, runs body, and the start command exits 0 at once.
func daemonize(pidfile, body string) []string {
	return []string{"sh", "-c", `setsid sh -c 'echo $$ >"$0.tmp" && mv "$0.tmp" "$0"; ` + body + `' "$1" </dev/null >/dev/null 2>&1 & exit 0`,
		"start", pidfile}
}

// TestWaitDescendantsDaemon: the supervisor stays after a daemonizing
// start command has exited, until the daemon is gone, and reports how it
// ended; its own status is the start command's.
func TestWaitDescendantsDaemon(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	pidfile := filepath.Join(dir, "daemon.pid")
	// The daemon waits for a file that the test creates only once it has
	// seen the start command gone: the supervisor must still be there.
	script := `while [ ! -e "$0.go" ]; do sleep 0.01; done; exit 3`
	file := filepath.Join(dir, "status.json")
	cmd := harness(append([]string{"-wait-all", "-status", file, "--"}, daemonize(pidfile, script)...)...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	daemon := waitPidFile(t, pidfile)
	waitUntil(t, "the start command to be reaped", func() bool {
		kids, _ := proc.Children(cmd.Process.Pid, nil)
		return len(kids) == 1 && kids[0] == daemon
	})
	select {
	case err := <-done:
		t.Fatalf("the supervisor ended (%v) while the daemon %d runs", err, daemon)
	default:
	}
	if err := os.WriteFile(pidfile+".go", nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("supervisor: %v, want exit 0 (the start command's)", err)
	}
	r := readHarnessReport(t, file)
	if !slices.Equal(r.Outlived, [][2]int{{daemon, 3}}) || len(r.Children) != 0 {
		t.Errorf("outlived %v, children %v; want the daemon %d with status 3, no child left", r.Outlived, r.Children, daemon)
	}
}

// TestWaitDescendantsSignals: a SIGTERM sent to the supervisor after the
// start command has exited reaches the daemon it left.
func TestWaitDescendantsSignals(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	pidfile, file := filepath.Join(dir, "daemon.pid"), filepath.Join(dir, "status.json")
	cmd := harness(append([]string{"-wait-all", "-status", file, "--"}, daemonize(pidfile, "exec sleep 1000")...)...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	daemon := waitPidFile(t, pidfile)
	t.Cleanup(func() { syscall.Kill(daemon, syscall.SIGKILL) })
	waitUntil(t, "the daemon to run sleep, the start command to be reaped", func() bool {
		kids, _ := proc.Children(cmd.Process.Pid, nil)
		st, err := proc.Stat(daemon)
		return len(kids) == 1 && kids[0] == daemon && err == nil && st.Comm == "sleep"
	})
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("supervisor: %v, want exit 0", err)
	}
	r := readHarnessReport(t, file)
	if !slices.Equal(r.Outlived, [][2]int{{daemon, 128 + int(syscall.SIGTERM)}}) {
		t.Errorf("outlived %v, want the daemon %d killed by SIGTERM", r.Outlived, daemon)
	}
}

// TestWaitDescendantsFailedStart: when the start command fails, what it
// left is terminated as without waiting.
func TestWaitDescendantsFailedStart(t *testing.T) {
	t.Parallel()
	pidfile := filepath.Join(t.TempDir(), "escapee.pid")
	o, r := report(t, append([]string{"-wait-all", "-grace", "100ms", "--"}, escapee(pidfile)...)...)
	if !o.ws.Exited() || o.ws.ExitStatus() != 1 {
		t.Fatalf("supervisor: %v, want exit 1", o)
	}
	pid := pidFromFile(t, pidfile)
	if !slices.Contains(r.Killed, pid) || len(r.Outlived) != 0 || len(r.Children) != 0 {
		t.Errorf("report %+v: want the escapee %d killed, nothing outlived, no child left", r, pid)
	}
}

func readHarnessReport(t *testing.T, file string) harnessReport {
	t.Helper()
	var r harnessReport
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	return r
}

func waitPidFile(t *testing.T, file string) int {
	t.Helper()
	waitUntil(t, file+" to appear", func() bool { _, err := os.Stat(file); return err == nil })
	b, _ := os.ReadFile(file)
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		t.Fatalf("%s holds %q", file, b)
	}
	return pid
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
