package supervisor

import (
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ipcguard/ipcguard/internal/nstest"
)

func TestSelfPidVars(t *testing.T) {
	self := strconv.Itoa(os.Getpid())
	env := []string{"LISTEN_PID=" + self, "WATCHDOG_PID=1", "LISTEN_FDS=1"}
	if got := selfPidVars(env); !reflect.DeepEqual(got, []string{"LISTEN_PID"}) {
		t.Errorf("selfPidVars(%q) = %q, want LISTEN_PID only", env, got)
	}
	env = []string{"LISTEN_PID=1", "WATCHDOG_PID=" + self, "LISTEN_PID=" + self}
	if got := selfPidVars(env); !reflect.DeepEqual(got, []string{"WATCHDOG_PID"}) {
		t.Errorf("selfPidVars(%q) = %q, want WATCHDOG_PID only (the first LISTEN_PID counts)", env, got)
	}
	if got := selfPidVars([]string{"LISTEN_PIDX=" + self}); got != nil {
		t.Errorf("selfPidVars took LISTEN_PIDX for LISTEN_PID: %q", got)
	}
}

// viaMainPid runs the supervise helper with args through nstest's
// main-pid helper, which sets vars to its own pid (the supervisor's, once
// it has executed it).
func viaMainPid(vars []string, args ...string) *exec.Cmd {
	cmd := nstest.MainPidCmd(vars, append([]string{"env", nstest.HelperEnv("supervise"), nstest.Binary()}, args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	cmd.WaitDelay = 10 * time.Second
	return cmd
}

// TestListenPidRewritten: LISTEN_PID and WATCHDOG_PID naming the
// supervisor reach the command as the command's own pid; descriptors and
// LISTEN_FDS pass unchanged; a LISTEN_PID naming another process is left
// alone.
func TestListenPidRewritten(t *testing.T) {
	t.Parallel()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	script := `echo "$LISTEN_PID $WATCHDOG_PID $LISTEN_FDS $$"; echo through-fd-3 >&3`
	cmd := viaMainPid([]string{"LISTEN_PID", "WATCHDOG_PID"}, "--", "sh", "-c", script)
	cmd.Env = append(cmd.Env, "LISTEN_FDS=1")
	cmd.ExtraFiles = []*os.File{w}
	o := run(t, cmd)
	w.Close()
	f := strings.Fields(o.stdout)
	if o.ws != 0 || len(f) != 4 || f[0] != f[3] || f[1] != f[3] || f[2] != "1" {
		t.Errorf("the command saw LISTEN_PID WATCHDOG_PID LISTEN_FDS and its pid %q (%v), want its own pid twice and 1", o.stdout, o)
	}
	b := make([]byte, 64)
	n, _ := r.Read(b)
	if string(b[:n]) != "through-fd-3\n" {
		t.Errorf("fd 3 of the command: read %q from the pipe, want through-fd-3", b[:n])
	}

	other := harness("--", "sh", "-c", `echo "$LISTEN_PID"`)
	other.Env = append(other.Env, "LISTEN_PID=1")
	if o := run(t, other); o.ws != 0 || o.stdout != "1\n" {
		t.Errorf("LISTEN_PID of another process: the command saw %v, want 1 unchanged", o)
	}
}

// TestTrampolineTransparent: started through the trampoline, the command
// inherits the same ignored and blocked signals and the same resource
// limits as started directly, and an exec failure reads the same.
func TestTrampolineTransparent(t *testing.T) {
	t.Parallel()
	// The command reads its own state: a shell's child reading the shell's
	// could catch it inside a fork, with every signal blocked for a moment.
	probe := []string{"--", "grep", "-h", "-E", "^(SigIgn|SigBlk|Max)", "/proc/self/status", "/proc/self/limits"}
	// The same chain of processes both times, but for the trampoline.
	direct := run(t, viaMainPid([]string{"UNRELATED_PID"}, probe...))
	via := run(t, viaMainPid([]string{"LISTEN_PID"}, probe...))
	if direct.ws != 0 || via.ws != 0 || direct.stdout != via.stdout {
		t.Errorf("the command's signals and limits differ through the trampoline:\ndirect: %v\nvia:    %v", direct, via)
	}

	bad := filepath.Join(t.TempDir(), "bad")
	if err := os.WriteFile(bad, []byte("#!/bin/sh\necho no\n"), 0o644); err != nil { // not executable
		t.Fatal(err)
	}
	direct = run(t, viaMainPid([]string{"UNRELATED_PID"}, "--", bad))
	via = run(t, viaMainPid([]string{"LISTEN_PID"}, "--", bad))
	if !direct.ws.Exited() || direct.ws.ExitStatus() != 126 || direct.ws != via.ws || direct.stderr != via.stderr {
		t.Errorf("not executable: direct %v, through the trampoline %v; want 126 and the same message", direct, via)
	}
}
