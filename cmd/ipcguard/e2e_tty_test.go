package main_test

// Scenario 16: ipcguard in a terminal, driven through tmux.

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ipcguard/ipcguard/internal/nstest"
)

// tmux is a private tmux server running an interactive bash.
type tmux struct {
	e    *env
	sock string
}

func startTmux(e *env) *tmux {
	e.t.Helper()
	tm := &tmux{e: e, sock: e.path("tmux.sock")}
	rc := e.path("bashrc")
	if err := os.WriteFile(rc, []byte("PS1='$ '\nunset HISTFILE\n"), 0o644); err != nil {
		e.fatalf("%v", err)
	}
	// tmux starts the pane's command with $SHELL -c, or else the user's
	// login shell, which for nobody is nologin: name a real shell.
	sh, err := exec.LookPath("sh")
	if err != nil {
		e.fatalf("%v", err)
	}
	cmd := tm.command("new-session", "-d", "-s", "e2e", "-x", "160", "-y", "50",
		"exec bash --noprofile --rcfile "+rc+" -i")
	cmd.Env = append(e.baseEnv(), "G="+guardBin(), "TMUX=", "TERM=xterm", "SHELL="+sh)
	if out, err := cmd.CombinedOutput(); err != nil {
		e.fatalf("starting tmux: %v: %s", err, out)
	}
	e.t.Cleanup(func() { tm.command("kill-server").Run() })
	tm.waitScreen("the shell prompt", `(?m)^\$ ?$`)
	return tm
}

func (tm *tmux) command(args ...string) *exec.Cmd {
	cmd := exec.Command("tmux", append([]string{"-S", tm.sock, "-f", "/dev/null"}, args...)...)
	cmd.Env = tm.e.baseEnv()
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// keys sends keys (tmux key names such as C-c, Enter) to the pane.
func (tm *tmux) keys(keys ...string) {
	tm.e.t.Helper()
	if out, err := tm.command(append([]string{"send-keys", "-t", "e2e"}, keys...)...).CombinedOutput(); err != nil {
		tm.e.fatalf("tmux send-keys %q: %v: %s", keys, err, out)
	}
}

// line types a line of text and Enter.
func (tm *tmux) line(text string) {
	tm.e.t.Helper()
	tm.keys("-l", text)
	tm.keys("Enter")
}

func (tm *tmux) screen() string {
	out, err := tm.command("capture-pane", "-p", "-J", "-S", "-500", "-t", "e2e").CombinedOutput()
	if err != nil {
		return fmt.Sprintf("(tmux capture-pane: %v: %s)", err, bytes.TrimSpace(out))
	}
	return string(out)
}

// waitScreen waits until the pane matches the regular expression pattern
// and returns the submatches of the last match.
func (tm *tmux) waitScreen(what, pattern string) []string {
	tm.e.t.Helper()
	re := regexp.MustCompile(pattern)
	var m []string
	if !poll(20*time.Second, func() bool {
		all := re.FindAllStringSubmatch(tm.screen(), -1)
		if len(all) > 0 {
			m = all[len(all)-1]
		}
		return len(all) > 0
	}) {
		tm.e.fatalf("timed out waiting for %s (/%s/) on the terminal:\n%s", what, pattern, tm.screen())
	}
	return m
}

// perlCountINT counts SIGINTs; on the line "quit" it prints the count and
// dies from SIGINT itself.
const perlCountINT = `$| = 1; my $n = 0;
$SIG{INT} = sub { $n++; print "got INT $n\n"; };
print "counter ready\n";
my $buf = "";
while (1) {
  my $r = sysread(STDIN, $buf, 100, length $buf);
  if (!defined $r) { next if $!{EINTR}; die "read: $!"; }
  last if $r == 0;
  if ($buf =~ /quit/) { print "total INT $n\n"; $SIG{INT} = "DEFAULT"; kill INT => $$; sleep 5; }
}`

func TestScenario16Terminal(t *testing.T) {
	slow(t, "scenario 16")
	if _, err := exec.LookPath("tmux"); err != nil {
		nstest.Require(t, "scenario 16: tmux is not installed")
	}
	inBothModes(t, func(t *testing.T, _ nstest.Mode) {
		e := newEnv(t, "scenario 16")
		tm := startTmux(e)

		// Ctrl-C interrupts the command, ipcguard dies from SIGINT: 130.
		tm.line(`"$G" -- sh -c 'echo sleeper started; exec sleep 1000'`)
		tm.waitScreen("the command to start", `(?m)^sleeper started$`)
		tm.keys("C-c")
		tm.waitScreen("the prompt after Ctrl-C", `(?m)^\$ ?$`)
		tm.line(`echo status-a=$?`)
		if m := tm.waitScreen("the status", `(?m)^status-a=(\d+)$`); m[1] != "130" {
			e.errorf("after Ctrl-C the shell saw status %s, want 130", m[1])
		}

		// Exactly one SIGINT reaches a command that catches it.
		tm.line(`"$G" -- perl -e '` + strings.ReplaceAll(perlCountINT, "\n", " ") + `'`)
		tm.waitScreen("the counter", `(?m)^counter ready$`)
		tm.keys("C-c")
		tm.waitScreen("the first SIGINT", `(?m)got INT 1$`)
		tm.line("quit")
		if m := tm.waitScreen("the count", `(?m)total INT (\d+)$`); m[1] != "1" {
			e.errorf("one Ctrl-C delivered %s SIGINTs to the command, want 1", m[1])
		}
		tm.waitScreen("the prompt", `(?m)^\$ ?$`)
		tm.line(`echo status-b=$?`)
		if m := tm.waitScreen("the status", `(?m)^status-b=(\d+)$`); m[1] != "130" {
			e.errorf("the command died from SIGINT, the shell saw status %s, want 130", m[1])
		}

		// Ctrl-Z suspends, fg resumes, the command reads the terminal.
		tm.line(`"$G" -- sh -c 'echo reader waiting; read line; echo "got=$line"'`)
		tm.waitScreen("the reader", `(?m)^reader waiting$`)
		tm.keys("C-z")
		tm.waitScreen("the job to stop", `(?m)Stopped`)
		tm.line("fg")
		// bash prints the job's command line when it resumes it.
		tm.waitScreen("fg to resume the job", `(?m)^"\$G" -- sh -c 'echo reader waiting`)
		tm.line("hello from the terminal")
		if m := tm.waitScreen("the line read", `(?m)^got=(.*)$`); strings.TrimSpace(m[1]) != "hello from the terminal" {
			e.errorf("after fg the command read %q", m[1])
		}
		tm.waitScreen("the prompt", `(?m)^\$ ?$`)
		tm.line(`echo status-c=$?`)
		if m := tm.waitScreen("the status", `(?m)^status-c=(\d+)$`); m[1] != "0" {
			e.errorf("after Ctrl-Z and fg the shell saw status %s, want 0", m[1])
		}

		// Started in the background, ipcguard leaves the terminal to the shell.
		tm.line(`"$G" -- sleep 1000 &`)
		tm.waitScreen("the background job", `(?m)^\[1\] \d+$`)
		tm.line(`echo still-mine`)
		tm.waitScreen("the shell to keep the terminal", `(?m)^still-mine$`)
		tm.line(`kill %1; wait %1; echo status-d=$?`)
		if m := tm.waitScreen("the status", `(?m)^status-d=(\d+)$`); m[1] != "143" {
			e.errorf("background ipcguard killed by SIGTERM: the shell saw status %s, want 143", m[1])
		}
	})
}
