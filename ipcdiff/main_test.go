package ipcdiff

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ipcguard/ipcguard/internal/nstest"
)

func TestMain(m *testing.M) {
	nstest.Main(m, map[string]func([]string) int{
		helperRemove: removeHelper,
	})
}

// The helpers below run in isolated bodies (nstest.Isolate) only.

// ipcHelper is a running (or finished) nstest ipc helper and what it made.
type ipcHelper struct {
	pid  int
	ids  map[Type][]int
	done chan struct{} // closed once a started helper is reaped
}

// runIPC runs the ipc helper with steps to completion.
func runIPC(t *testing.T, steps ...string) ipcHelper {
	t.Helper()
	out := filepath.Join(t.TempDir(), "ids")
	cmd := nstest.IPCCmd(append([]string{"out=" + out}, steps...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("ipc helper %v: %v\n%s", steps, err, stderr.String())
	}
	return ipcHelper{pid: cmd.Process.Pid, ids: readIDs(t, out)}
}

// startIPC starts the ipc helper with steps, then lets it wait until the
// test ends; it returns once the steps are done. (It sleeps rather than
// using the helper's "wait" step: that one is a bare select{}, which the Go
// runtime kills at once as a deadlock.)
func startIPC(t *testing.T, steps ...string) ipcHelper {
	t.Helper()
	dir := t.TempDir()
	out, ready := filepath.Join(dir, "ids"), filepath.Join(dir, "ready")
	cmd := nstest.IPCCmd(append(append([]string{"out=" + out}, steps...), "ready="+ready, "sleep=1h")...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var werr error
	go func() {
		werr = cmd.Wait()
		close(done)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
	})
	waitFor(t, "helper ready", func() bool {
		select {
		case <-done:
			t.Fatalf("ipc helper %v exited early: %v\n%s", steps, werr, stderr.String())
		default:
		}
		_, err := os.Stat(ready)
		return err == nil
	})
	return ipcHelper{pid: cmd.Process.Pid, ids: readIDs(t, out), done: done}
}

// stopIPC kills a helper started by startIPC and waits until it is reaped:
// then all its threads have exited and the kernel has detached what it had
// attached. (A zombie group leader is not enough: other threads may still
// hold the address space.)
func stopIPC(t *testing.T, h ipcHelper) {
	t.Helper()
	if err := syscall.Kill(h.pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case <-h.done:
	case <-time.After(10 * time.Second):
		t.Fatalf("helper %d not reaped 10 s after SIGKILL", h.pid)
	}
}

func readIDs(t *testing.T, path string) map[Type][]int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	ids := map[Type][]int{}
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var typ string
		var id int
		if _, err := fmt.Sscan(l, &typ, &id); err != nil {
			t.Fatalf("helper ids %q: %v", b, err)
		}
		ty, err := ParseType(typ)
		if err != nil {
			t.Fatal(err)
		}
		ids[ty] = append(ids[ty], id)
	}
	return ids
}

// waitFor polls cond until it holds, failing the test after 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func procFS(t *testing.T) FS {
	t.Helper()
	fs, err := NewFS(DefaultProcRoot)
	if err != nil {
		t.Fatal(err)
	}
	return fs
}

func snap(t *testing.T, fs FS) *Snapshot {
	t.Helper()
	s, err := fs.Snapshot(AllTypes)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

var modes = []nstest.Mode{nstest.Root, nstest.Unprivileged}
