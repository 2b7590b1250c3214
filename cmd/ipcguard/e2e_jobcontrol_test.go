package main_test

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/ipcguard/ipcguard/internal/nstest"
)

// perlSystem runs its arguments with perl's system() and exits as they
// did: ipcguard is not the job leader, perl is (as with make's sh -c).
const perlSystem = `perl -e 'system @ARGV; exit($? & 127 ? 128 + ($? & 127) : $? >> 8)'`

// TestScenario27JobControlThroughParent: in an interactive shell, with an
// intermediate process between the shell and ipcguard, Ctrl-Z stops the
// whole job and the prompt returns, fg resumes the command with the
// terminal, Ctrl-C ends it.
func TestScenario27JobControlThroughParent(t *testing.T) {
	slow(t, "scenario 27")
	for _, tool := range []string{"tmux", "perl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("scenario 27: %s is not installed", tool)
		}
	}
	inBothModes(t, func(t *testing.T, _ nstest.Mode) {
		e := newEnv(t, "scenario 27")
		tm := startTmux(e)

		tm.line(perlSystem + ` "$G" -- sh -c 'echo reader waiting; read line; echo "got=$line"'`)
		tm.waitScreen("the reader", `(?m)^reader waiting$`)
		tm.keys("C-z")
		tm.waitScreen("the job to stop", `(?m)Stopped`)
		tm.line(`echo prompt-back`)
		tm.waitScreen("the shell to have its terminal back", `(?m)^prompt-back$`)
		tm.line("fg")
		tm.waitScreen("fg to resume the job", `(?m)^perl -e 'system @ARGV`)
		// bash reads no more input once fg resumed the job: the line is
		// the command's.
		tm.line("hello from the terminal")
		if m := tm.waitScreen("the line read", `(?m)^got=(.*)$`); strings.TrimSpace(m[1]) != "hello from the terminal" {
			e.errorf("after fg the command read %q", m[1])
		}
		tm.waitScreen("the prompt", `(?m)^\$ ?$`)
		tm.line(`echo status-a=$?`)
		if m := tm.waitScreen("the status", `(?m)^status-a=(\d+)$`); m[1] != "0" {
			e.errorf("after Ctrl-Z and fg the shell saw status %s, want 0", m[1])
		}

		tm.line(perlSystem + ` "$G" -- sh -c 'echo sleeper started; exec sleep 1000'`)
		tm.waitScreen("the sleeper", `(?m)^sleeper started$`)
		tm.keys("C-c")
		// perl exits 130 (it ignores SIGINT in system()): bash prints no
		// newline after the echoed ^C, as with the same line without
		// ipcguard.
		tm.waitScreen("the prompt after Ctrl-C", `(?m)^(\^C)?\$ ?$`)
		tm.line(`echo status-b=$?`)
		if m := tm.waitScreen("the status", `(?m)^status-b=(\d+)$`); m[1] != "130" {
			e.errorf("after Ctrl-C the shell saw status %s, want 130", m[1])
		}
	})
}
