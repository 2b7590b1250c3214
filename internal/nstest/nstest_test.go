package nstest

import (
	"os"
	"os/exec"
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

func TestRanAndPassed(t *testing.T) {
	sub := "=== RUN   TestX\n=== RUN   TestX/root\n=== PAUSE TestX/root\n=== CONT  TestX/root\n--- PASS: TestX (0.00s)\n    --- PASS: TestX/root (0.02s)\nPASS\n"
	for _, c := range []struct {
		name, text string
		want       bool
	}{
		{"TestX/root", sub, true},
		{"TestX/unprivileged", sub, false}, // the parent passed, the subtest never ran
		{"TestX", "=== RUN   TestX\n--- PASS: TestX (0.01s)\nPASS\n", true},
		{"TestX", "testing: warning: no tests to run\nPASS\n", false},
		{"TestX", "=== RUN   TestX\n--- SKIP: TestX (0.00s)\nPASS\n", false},
		{"TestX", "=== RUN   TestX\n--- PASS: TestXY (0.00s)\nPASS\n", false},
	} {
		if got := ranAndPassed(c.name, c.text); got != c.want {
			t.Errorf("ranAndPassed(%s, %q) = %v", c.name, c.text, got)
		}
	}
}

// TestRequireFailsUnderCI: a test that cannot run here is skipped, except
// under CI=true, where it fails.
func TestRequireFailsUnderCI(t *testing.T) {
	if os.Getenv("NSTEST_REQUIRE_CHILD") != "" {
		Require(t, "the thing this test needs is missing")
		return
	}
	for _, ci := range []string{"", "true"} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestRequireFailsUnderCI$", "-test.v")
		cmd.Env = append(os.Environ(), "NSTEST_REQUIRE_CHILD=1", "CI="+ci)
		out, err := cmd.CombinedOutput()
		skipped := strings.Contains(string(out), "--- SKIP: TestRequireFailsUnderCI")
		switch {
		case ci == "" && (err != nil || !skipped):
			t.Errorf("CI unset: %v, want a skip:\n%s", err, out)
		case ci == "true" && (err == nil || skipped || !strings.Contains(string(out), "CI=true")):
			t.Errorf("CI=true: %v, want a failure:\n%s", err, out)
		}
	}
}
