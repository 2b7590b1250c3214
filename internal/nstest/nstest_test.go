package nstest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestMain(m *testing.M) { Main(m, nil) }

// TestIsolation proves that an isolated body sees an empty, private IPC
// namespace, runs with the mode's privileges, and that what it creates there
// never reaches the host (Main checks the host after the run).
func TestIsolation(t *testing.T) {
	for _, mode := range []Mode{Root, Unprivileged} {
		t.Run(mode.String(), func(t *testing.T) {
			t.Parallel()
			if !Isolate(t, mode) {
				return
			}
			objs, err := HostObjects()
			if err != nil {
				t.Fatal(err)
			}
			if len(objs) != 0 {
				t.Fatalf("a fresh namespace holds objects: %v", objs)
			}
			if got := CurrentMode(); got != mode {
				t.Fatalf("mode %v, want %v", got, mode)
			}
			if mode == Unprivileged && os.Geteuid() == 0 {
				t.Fatalf("unprivileged body runs as root")
			}
			out := filepath.Join(t.TempDir(), "ids")
			cmd := IPCCmd("out="+out, "shm:attach", "sem:n=3:op", "msg:key=0x1234:send", "exit=3")
			err = cmd.Run()
			if cmd.ProcessState.ExitCode() != 3 {
				t.Fatalf("helper: %v, want exit 3", err)
			}
			ids, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			if n := strings.Count(string(ids), "\n"); n != 3 {
				t.Fatalf("helper recorded %d objects, want 3: %q", n, ids)
			}
			objs, _ = HostObjects()
			if len(objs) != 3 || !strings.Contains(strings.Join(objs, " "), "key=4660") {
				t.Fatalf("namespace objects = %v, want shm, sem and msg key 0x1234", objs)
			}
		})
	}
}

func TestRunPattern(t *testing.T) {
	if got := runPattern("TestA/b.c"); got != `^TestA$/^b\.c$` {
		t.Fatalf("runPattern = %q", got)
	}
}
