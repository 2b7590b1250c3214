package main_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/ipcguard/ipcguard/internal/nstest"
)

// TestScenario29CmdLikeSh: --cmd passes the words sh -c would pass for the
// same line; what needs a shell is refused with one line.
func TestScenario29CmdLikeSh(t *testing.T) {
	inBothModes(t, func(t *testing.T, _ nstest.Mode) {
		e := newEnv(t, "scenario 29")
		bin := filepath.Join(e.dir, "bin")
		if err := os.Mkdir(bin, 0o755); err != nil {
			e.fatalf("%v", err)
		}
		if err := os.Symlink(nstest.Binary(), filepath.Join(bin, "prog")); err != nil {
			e.fatalf("%v", err)
		}
		path := "PATH=" + bin + ":" + os.Getenv("PATH")
		for _, line := range []string{
			`prog "a\nb|%s" x`,
			`prog "\a" '\a' \a "\\" "\"" "\$" a\ b "" '' \`,
		} {
			r := e.guard("--cmd", line).withEnv(nstest.HelperEnv("argv"), path).run()
			e.wantExit(r, 0)
			var got, want []string
			if err := json.Unmarshal([]byte(r.Stdout), &got); err != nil {
				e.fatalf("--cmd %q: the command printed %q: %v", line, r.Stdout, err)
			}
			sh := exec.Command("sh", "-c", line)
			sh.Env = append(e.baseEnv(), nstest.HelperEnv("argv"), path)
			out, err := sh.Output()
			if err != nil {
				e.fatalf("sh -c %q: %v", line, err)
			}
			if err := json.Unmarshal(out, &want); err != nil {
				e.fatalf("sh -c %q printed %q: %v", line, out, err)
			}
			if !reflect.DeepEqual(got, want) {
				e.errorf("--cmd %q passes %q, sh -c passes %q", line, got, want)
			}
		}
		for _, line := range []string{`prog $HOME`, `prog | cat`, `prog *.c`, `X=1 prog`} {
			r := e.run("--cmd", line)
			if r.Signal != 0 || r.Code != 125 {
				e.errorf("--cmd %q: %v, want exit 125", line, r)
			}
			e.checkOneErrorLine("--cmd "+line, r.Stderr)
		}
	})
}

// TestAfterDashDashIsTheCommand: everything after -- is the command, even
// a word that names a subcommand or an option of ipcguard.
func TestAfterDashDashIsTheCommand(t *testing.T) {
	inModes(t, []nstest.Mode{nstest.Root}, func(t *testing.T, _ nstest.Mode) {
		e := newEnv(t, "after --")
		bin := filepath.Join(e.dir, "bin")
		if err := os.Mkdir(bin, 0o755); err != nil {
			e.fatalf("%v", err)
		}
		names := []string{"help", "h", "run", "ls", "rm", "sweep", "--help", "-h", "--version", "-v"}
		for _, n := range names {
			if err := os.Symlink(nstest.Binary(), filepath.Join(bin, n)); err != nil {
				e.fatalf("%v", err)
			}
		}
		path := "PATH=" + bin + ":" + os.Getenv("PATH")
		for _, n := range names {
			for _, args := range [][]string{{"--", n, "x"}, {"-q", "--", n, "x"}, {"run", "--", n, "x"}} {
				r := e.guard(args...).withEnv(nstest.HelperEnv("argv"), path).run()
				e.wantExit(r, 0)
				var argv []string
				if err := json.Unmarshal([]byte(r.Stdout), &argv); err != nil || !reflect.DeepEqual(argv, []string{n, "x"}) {
					e.errorf("ipcguard %q: the command printed %q, want the argv of %q", args, r.Stdout, []string{n, "x"})
				}
			}
		}
	})
}
