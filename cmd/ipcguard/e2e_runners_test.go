package main_test

// CI runners stop jobs in their own ways; each test plays one runner's
// sequence with real processes, real signals and real objects, using the
// recipe README gives for it.

import (
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ipcguard/ipcguard/internal/nstest"
	"golang.org/x/sys/unix"
)

// githubShell is the `shell:` line README gives for GitHub Actions; the
// runner writes the step's script to a file and puts its path for {0}.
const githubShell = `ipcguard --kill-after 5s -- bash -e {0}`

// stubbornJob creates a segment (its id in $1), starts a background child,
// then ignores SIGINT and SIGTERM and waits: the worst a cancelled step
// can do.
const stubbornJob = `trap '' INT TERM
ipcmk -M 4096 > "$IDS"
sleep 1000 &
: > "$READY"
sleep 1000
`

func TestREADMERunnerRecipes(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "shell: "+githubShell) {
		t.Errorf("README lacks the GitHub Actions recipe the tests run: shell: %s", githubShell)
	}
}

// TestRunnerGitHubActions: SIGINT to the entry process (ipcguard) only,
// SIGTERM 7.5 s later, SIGKILL of the whole tree 2.5 s after that; the job
// ignores SIGINT and SIGTERM. Its segment must be gone, removed by
// ipcguard before the final SIGKILL.
func TestRunnerGitHubActions(t *testing.T) {
	slow(t, "GitHub Actions")
	inBothModes(t, func(t *testing.T, _ nstest.Mode) {
		e := newEnv(t, "GitHub Actions")
		script := e.path("step.sh")
		if err := os.WriteFile(script, []byte(stubbornJob), 0o644); err != nil {
			e.fatalf("%v", err)
		}
		argv := strings.Fields(strings.ReplaceAll(githubShell, "{0}", script))[1:]
		g := e.guard(argv...).withEnv("IDS="+e.path("ids"), "READY="+e.path("ready"))
		g.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		g.start()
		e.waitFile(e.path("ready"))
		ids := e.ipcmkIDs(e.path("ids"))

		unix.Kill(g.pid(), unix.SIGINT)
		ended := make(chan guardResult, 1)
		go func() { ended <- g.wait() }()
		var r guardResult
		select {
		case r = <-ended:
		case <-time.After(7500 * time.Millisecond):
			unix.Kill(g.pid(), unix.SIGTERM)
			select {
			case r = <-ended:
			case <-time.After(2500 * time.Millisecond):
				killTree(g.pid())
				e.errorf("ipcguard still ran when the runner killed the tree")
				r = <-ended
			}
		}
		e.wantGone("a cancelled step", ids)
		if r.Signal != unix.SIGKILL || !strings.Contains(r.Stderr, "killing it and its descendants") || !strings.Contains(r.Stderr, "removed 1") {
			e.errorf("a cancelled step: %v, want the stop budget to kill the job and ipcguard to remove its segment", r)
		}
	})
}

// killTree SIGKILLs pid and its descendants, as a runner does at the end.
func killTree(pid int) {
	for _, c := range childrenOf(pid) {
		killTree(c)
	}
	unix.Kill(pid, unix.SIGKILL)
}

// countingJob counts the SIGTERMs it gets (and says it had one in
// $TERMED); on SIGWINCH (a marker, sent after them) it writes the count to
// $COUNT and exits 1, having created a segment ($IDS) and said it is ready
// ($READY).
const countingJob = `$| = 1; my $n = 0;
$SIG{TERM} = sub { $n++; open my $t, ">", $ENV{TERMED}; close $t };
$SIG{WINCH} = sub { open my $f, ">", $ENV{COUNT}; print $f $n; close $f; exit 1 };
system("ipcmk -M 4096 > $ENV{IDS}") == 0 or die;
open my $r, ">", $ENV{READY}; close $r;
sleep 1 while 1;`

// TestRunnerProcessGroup: GitLab's shell executor, Buildkite and systemd's
// KillMode=process (and mixed) signal the job's process group, where the
// job's shell and ipcguard are; the command gets each signal once.
func TestRunnerProcessGroup(t *testing.T) {
	if _, err := exec.LookPath("perl"); err != nil {
		t.Skip("perl is not installed")
	}
	inBothModes(t, func(t *testing.T, _ nstest.Mode) {
		e := newEnv(t, "process-group runner")
		// The job's shell runs ipcguard as one of its commands.
		cmd := exec.Command("sh", "-c", `"$G" -- perl -e "$JOB"; echo "job shell: $?"`)
		cmd.Env = append(e.baseEnv(), "G="+guardBin(), "JOB="+countingJob,
			"IDS="+e.path("ids"), "READY="+e.path("ready"), "COUNT="+e.path("count"), "TERMED="+e.path("termed"))
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := cmd.Start(); err != nil {
			e.fatalf("%v", err)
		}
		defer killTree(cmd.Process.Pid)
		e.waitFile(e.path("ready"))
		ids := e.ipcmkIDs(e.path("ids"))
		pgid := cmd.Process.Pid
		unix.Kill(-pgid, unix.SIGTERM)
		// SIGWINCH only once the command has had its SIGTERM, and a moment
		// after, for a second copy to arrive if there were one: two
		// signals sent to ipcguard back to back are caught by different
		// threads of the Go runtime and may reach the command in either
		// order on a loaded machine (README, known limits).
		e.waitFile(e.path("termed"))
		time.Sleep(100 * time.Millisecond)
		unix.Kill(-pgid, unix.SIGWINCH)
		cmd.Wait()
		e.waitFor("ipcguard to finish", 20*time.Second, func() bool { return len(e.journals()) == 0 })
		if n := strings.TrimSpace(e.waitFile(e.path("count"))); n != "1" {
			e.errorf("SIGTERM to the job's process group reached the command %s times, want 1", n)
		}
		e.wantGone("a job stopped through its process group", ids)
	})
}

// TestRunnerJenkins: Jenkins sends SIGTERM to the children first (the
// command and its descendants), then to ipcguard, and never SIGKILL. A
// SIGTERM that arrives once the command is gone means "finish, then exit".
func TestRunnerJenkins(t *testing.T) {
	inBothModes(t, func(t *testing.T, _ nstest.Mode) {
		e := newEnv(t, "Jenkins")
		g := e.guard("--", "sh", "-c", `ipcmk -M 4096 > "$IDS"; sleep 1000 & : > "$READY"; wait $!`).
			withEnv("IDS="+e.path("ids"), "READY="+e.path("ready"))
		g.start()
		e.waitFile(e.path("ready"))
		ids := e.ipcmkIDs(e.path("ids"))
		var tree []int
		var walk func(int)
		walk = func(p int) {
			for _, c := range childrenOf(p) {
				tree = append(tree, c)
				walk(c)
			}
		}
		walk(g.pid())
		for i := len(tree) - 1; i >= 0; i-- {
			unix.Kill(tree[i], unix.SIGTERM)
		}
		unix.Kill(g.pid(), unix.SIGTERM)
		r := g.wait()
		// The shell dies from its SIGTERM, or first sees its child die
		// from one (143): either way the command failed.
		if r.Signal != unix.SIGTERM && r.Code != 143 {
			e.errorf("Jenkins' SIGTERMs: ipcguard %v, want death by SIGTERM or 143, as the command", r)
		}
		e.wantGone("a job Jenkins stopped", ids)
		for _, p := range tree {
			if alive(p) {
				e.errorf("process %d of the job still runs", p)
			}
		}
	})
}
