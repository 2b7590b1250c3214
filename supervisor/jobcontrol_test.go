package supervisor

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// waitState waits until process pid is in state want (a /proc stat state
// letter) and fails after a generous bound.
func waitState(t *testing.T, what string, pid int, want byte) {
	t.Helper()
	for end := time.Now().Add(20 * time.Second); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
		if st, err := proc.Stat(pid); err == nil && st.State == want {
			return
		}
	}
	st, err := proc.Stat(pid)
	t.Fatalf("%s: process %d in state %q (%v), want %q", what, pid, st.State, err, want)
}

// TestStopWithoutTerminal: without a terminal no shell does job control:
// kill -TSTP of the supervisor stops the command and the supervisor keeps
// running; kill -CONT continues the command.
func TestStopWithoutTerminal(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	pidfile := filepath.Join(dir, "pid")
	cmd := harness("--", "sh", "-c", `echo $$ > "$0.tmp" && mv "$0.tmp" "$0"; while :; do sleep 0.02; done`, pidfile)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
	}()
	var pid int
	for end := time.Now().Add(20 * time.Second); pid == 0 && time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
		if b, err := readString(pidfile); err == nil {
			pid, _ = strconv.Atoi(strings.TrimSpace(b))
		}
	}
	if pid == 0 {
		t.Fatal("the command did not start")
	}
	cmd.Process.Signal(syscall.SIGTSTP)
	waitState(t, "after SIGTSTP", pid, 'T')
	if st, err := proc.Stat(cmd.Process.Pid); err != nil || st.State == 'T' {
		t.Fatalf("the supervisor is in state %q (%v), want it running", st.State, err)
	}
	cmd.Process.Signal(syscall.SIGCONT)
	for end := time.Now().Add(20 * time.Second); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
		if st, err := proc.Stat(pid); err == nil && st.State != 'T' {
			cmd.Process.Signal(syscall.SIGTERM)
			cmd.Wait()
			if ws := cmd.ProcessState.Sys().(syscall.WaitStatus); !ws.Signaled() || ws.Signal() != unix.SIGTERM {
				t.Fatalf("harness: %s, want killed by SIGTERM", describe(ws))
			}
			return
		}
	}
	t.Fatal("the command stayed stopped after SIGCONT")
}

func readString(path string) (string, error) {
	b, err := os.ReadFile(path)
	return string(b), err
}
