package supervisor

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ipcguard/ipcguard/internal/nstest"
)

// pane is one tmux session on a private server, with an interactive
// shell in a 120x40 terminal. In it, $H is the supervise harness (a
// miniature ipcguard, see superviseHelper).
type pane struct {
	t    *testing.T
	sock string
}

func newPane(t *testing.T, shell ...string) *pane {
	t.Helper()
	if _, err := exec.LookPath("tmux"); err != nil {
		nstest.Require(t, "tmux is not installed: the terminal tests need it")
	}
	if _, err := exec.LookPath(shell[0]); err != nil {
		nstest.Require(t, "%s is not installed", shell[0])
	}
	p := &pane{t: t, sock: fmt.Sprintf("ipcguard-test-%d-%s", os.Getpid(), regexp.MustCompile(`\W`).ReplaceAllString(t.Name(), "_"))}
	line := []string{"env", nstest.HelperEnv("supervise"), "H=" + nstest.Binary(), "PS1='$ '", "ENV=/dev/null", "TERM=xterm"}
	line = append(line, shell...)
	p.tmux("-f", "/dev/null", "new-session", "-d", "-x", "120", "-y", "40", strings.Join(line, " "))
	t.Cleanup(func() { exec.Command("tmux", "-L", p.sock, "kill-server").Run() })
	p.waitFor("a prompt", func(l []string) bool { return len(l) > 0 && strings.HasPrefix(l[len(l)-1], "$") })
	return p
}

func (p *pane) tmux(args ...string) string {
	p.t.Helper()
	out, err := exec.Command("tmux", append([]string{"-L", p.sock}, args...)...).CombinedOutput()
	if err != nil {
		p.t.Fatalf("tmux %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// typeLine types text and Enter.
func (p *pane) typeLine(text string) {
	p.t.Helper()
	p.tmux("send-keys", "-t", "0", "-l", text)
	p.tmux("send-keys", "-t", "0", "Enter")
}

// key sends one key, such as C-c.
func (p *pane) key(k string) {
	p.t.Helper()
	p.tmux("send-keys", "-t", "0", k)
}

// screen returns the non-empty lines of the pane, history included,
// without trailing blanks.
func (p *pane) screen() []string {
	p.t.Helper()
	var lines []string
	for _, l := range strings.Split(p.tmux("capture-pane", "-p", "-t", "0", "-S", "-200"), "\n") {
		if l = strings.TrimRight(l, " "); l != "" {
			lines = append(lines, l)
		}
	}
	return lines
}

// waitFor polls the screen until cond holds, for 15 seconds at most.
func (p *pane) waitFor(what string, cond func(lines []string) bool) []string {
	p.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		l := p.screen()
		if cond(l) {
			return l
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("no %s on the screen within 15s:\n%s", what, strings.Join(l, "\n"))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitLine waits for a line that is exactly want.
func (p *pane) waitLine(want string) []string {
	p.t.Helper()
	return p.waitFor(strconv.Quote(want), func(l []string) bool { return count(l, want) > 0 })
}

func count(lines []string, want string) int {
	n := 0
	for _, l := range lines {
		if l == want {
			n++
		}
	}
	return n
}

func countSuffix(lines []string, want string) int {
	n := 0
	for _, l := range lines {
		if strings.HasSuffix(l, want) {
			n++
		}
	}
	return n
}

// pid is the pid of the pane's shell.
func (p *pane) pid() int {
	p.t.Helper()
	pid, err := strconv.Atoi(strings.TrimSpace(p.tmux("display-message", "-p", "-t", "0", "#{pane_pid}")))
	if err != nil {
		p.t.Fatal(err)
	}
	return pid
}

// grandchild follows first children down from the shell: 1 is the
// supervisor the shell runs, 2 its command.
func (p *pane) grandchild(depth int) int {
	p.t.Helper()
	pid := p.pid()
	for range depth {
		kids, err := proc.Children(pid, nil)
		if err != nil || len(kids) == 0 {
			p.t.Fatalf("no child of %d (%v)", pid, err)
		}
		pid = kids[0]
	}
	return pid
}

// waitUntil polls cond for 15 seconds at most; on failure it shows the
// state of pids.
func (p *pane) waitUntil(what string, cond func() bool, pids ...int) {
	p.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			var states []string
			for _, pid := range pids {
				st, err := proc.Stat(pid)
				states = append(states, fmt.Sprintf("%d: %c %v", pid, st.State, err))
			}
			p.t.Fatalf("no %s within 15s (foreground %d; %s):\n%s", what, p.foreground(),
				strings.Join(states, ", "), strings.Join(p.screen(), "\n"))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// foreground is the terminal's foreground process group, seen from the
// shell's /proc/PID/stat (tpgid).
func (p *pane) foreground() int {
	p.t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.pid()))
	if err != nil {
		p.t.Fatal(err)
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	tpgid, err := strconv.Atoi(f[5])
	if err != nil {
		p.t.Fatal(err)
	}
	return tpgid
}

func TestTerminalInterrupt(t *testing.T) {
	t.Parallel()
	p := newPane(t, "sh")
	p.typeLine(`$H -- sh -c 'trap "echo got-INT; exit 130" INT; echo ready; while :; do sleep 0.05; done'; echo status=$?`)
	p.waitLine("ready")
	// The command's own group has the terminal, not the supervisor's.
	if fg, cmd := p.foreground(), p.grandchild(2); fg != cmd {
		t.Fatalf("foreground group %d, want the command's %d", fg, cmd)
	}
	p.key("C-c")
	l := p.waitLine("status=130")
	// The terminal echoes ^C in front of the trap's line.
	if n := countSuffix(l, "got-INT"); n != 1 {
		t.Fatalf("the command saw %d SIGINTs, want 1:\n%s", n, strings.Join(l, "\n"))
	}
	// The shell has its terminal back.
	p.typeLine("echo after-$((6 * 7))")
	p.waitLine("after-42")
	if fg, sh := p.foreground(), p.pid(); fg != sh {
		t.Fatalf("foreground group %d, want the shell's %d", fg, sh)
	}
}

func TestTerminalSuspend(t *testing.T) {
	t.Parallel()
	p := newPane(t, "bash", "--norc", "--noprofile", "-i")
	p.typeLine(`$H -- sh -c 'echo ready; read x; echo read=$x'`)
	p.waitLine("ready")
	p.key("C-z")
	p.waitFor("the job stopped", func(l []string) bool {
		return len(l) > 0 && strings.Contains(strings.Join(l, "\n"), "Stopped")
	})
	if fg, sh := p.foreground(), p.pid(); fg != sh {
		t.Fatalf("while the job is stopped the foreground group is %d, want the shell's %d", fg, sh)
	}
	harness := p.grandchild(1)
	cmd := p.grandchild(2)
	p.typeLine("fg")
	// Type only once the command runs with the terminal: input typed
	// while bash itself reads the terminal may go to bash.
	p.waitUntil("the command running in the foreground", func() bool {
		st, err := proc.Stat(cmd)
		return err == nil && st.State != 'T' && p.foreground() == cmd
	}, harness, cmd)
	p.typeLine("hello")
	p.waitLine("read=hello")
	p.typeLine("echo status=$?")
	p.waitLine("status=0")
}

func TestTerminalBackground(t *testing.T) {
	t.Parallel()
	p := newPane(t, "bash", "--norc", "--noprofile", "-i")
	flag := filepath.Join(t.TempDir(), "go")
	p.typeLine(fmt.Sprintf(`$H -- sh -c 'while [ ! -e %s ]; do sleep 0.02; done; echo bg-done' &`, flag))
	// The shell keeps the terminal: it reads and runs the next line.
	p.typeLine("echo alive-$((6 * 7))")
	p.waitLine("alive-42")
	if fg, sh := p.foreground(), p.pid(); fg != sh {
		t.Fatalf("with a job in the background the foreground group is %d, want the shell's %d", fg, sh)
	}
	if err := os.WriteFile(flag, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	p.typeLine("wait; echo status=$?")
	// The job may write while the line above is being typed.
	p.waitFor(`"bg-done"`, func(l []string) bool { return countSuffix(l, "bg-done") > 0 })
	p.waitLine("status=0")
}

func TestTerminalBackgroundRead(t *testing.T) {
	t.Parallel()
	// A backgrounded command that reads the terminal is stopped (SIGTTIN);
	// the shell shows the job stopped, and fg lets it read.
	p := newPane(t, "bash", "--norc", "--noprofile", "-i")
	p.typeLine("set -b")
	p.typeLine(`$H -- sh -c 'read x; echo read=$x' &`)
	// bash says "Stopped", or "Stopped (tty input)" where strsignal does.
	p.waitFor("the job stopped", func(l []string) bool {
		return strings.Contains(strings.Join(l, "\n"), "Stopped")
	})
	harness := p.grandchild(1)
	cmd := p.grandchild(2)
	p.typeLine("fg")
	p.waitUntil("the command running in the foreground", func() bool {
		st, err := proc.Stat(cmd)
		return err == nil && st.State != 'T' && p.foreground() == cmd
	}, harness, cmd)
	p.typeLine("world")
	p.waitLine("read=world")
	p.typeLine("echo status=$?")
	p.waitLine("status=0")
}

func TestTerminalOrphaned(t *testing.T) {
	t.Parallel()
	// A supervisor whose process group is orphaned (its shell's subshell
	// exited) cannot stop: the kernel would discard the stop. A SIGTSTP
	// stop of its command is undone, as if discarded too.
	p := newPane(t, "bash", "--norc", "--noprofile", "-i")
	p.typeLine(`( $H -- sh -c 'kill -s TSTP $$; echo resumed-$((1 + 1))' & )`)
	p.waitFor(`"resumed-2"`, func(l []string) bool { return countSuffix(l, "resumed-2") > 0 })
}
