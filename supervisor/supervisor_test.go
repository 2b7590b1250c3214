package supervisor

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ipcguard/ipcguard/internal/nstest"
	"golang.org/x/sys/unix"
)

// harness returns the supervise helper (a miniature ipcguard) with args.
// It runs in a session of its own, away from any terminal the tests were
// started from (the terminal tests are in tty_test.go).
func harness(args ...string) *exec.Cmd {
	cmd := nstest.HelperCmd("supervise", args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	cmd.WaitDelay = 10 * time.Second
	return cmd
}

// outcome is how a process ended and what it wrote.
type outcome struct {
	ws             syscall.WaitStatus
	stdout, stderr string
}

func (o outcome) String() string {
	return fmt.Sprintf("status %s, stdout %q, stderr %q", describe(o.ws), o.stdout, o.stderr)
}

func describe(ws syscall.WaitStatus) string {
	switch {
	case ws.Exited():
		return fmt.Sprintf("exit %d", ws.ExitStatus())
	case ws.Signaled():
		return fmt.Sprintf("killed by %v", ws.Signal())
	}
	return fmt.Sprintf("%#x", uint32(ws))
}

// run runs cmd to its end, collecting its output unless cmd already has
// somewhere to write it.
func run(t *testing.T, cmd *exec.Cmd) outcome {
	t.Helper()
	var stdout, stderr bytes.Buffer
	if cmd.Stdout == nil {
		cmd.Stdout = &stdout
	}
	if cmd.Stderr == nil {
		cmd.Stderr = &stderr
	}
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("%v: %v", cmd.Args, err)
	}
	return outcome{ws: cmd.ProcessState.Sys().(syscall.WaitStatus), stdout: stdout.String(), stderr: stderr.String()}
}

// inheritedIgnored reports whether this test process started with sig
// ignored (the Go runtime keeps that for SIGHUP and SIGINT): helpers then
// inherit it, and a test that needs the default action must skip.
func inheritedIgnored(sig syscall.Signal) bool { return signal.Ignored(sig) }

func TestExitCodes(t *testing.T) {
	t.Parallel()
	codes := make(chan int)
	var wg sync.WaitGroup
	for range min(max(runtime.NumCPU(), 4), 16) {
		wg.Go(func() {
			for n := range codes {
				o := run(t, harness("--", "sh", "-c", "exit "+strconv.Itoa(n)))
				if !o.ws.Exited() || o.ws.ExitStatus() != n || o.stdout != "" || o.stderr != "" {
					t.Errorf("exit %d: got %v", n, o)
				}
			}
		})
	}
	for n := range 256 {
		codes <- n
	}
	close(codes)
	wg.Wait()
}

func TestDeathBySignal(t *testing.T) {
	t.Parallel()
	for _, sig := range []syscall.Signal{unix.SIGKILL, unix.SIGTERM, unix.SIGINT, unix.SIGHUP, unix.SIGSEGV,
		unix.SIGABRT, unix.SIGQUIT, unix.SIGUSR1, unix.SIGPIPE, unix.SIGBUS, unix.SIGALRM, unix.SIGSYS} {
		name := unix.SignalName(sig)
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if inheritedIgnored(sig) {
				t.Skipf("the tests were started with %s ignored", name)
			}
			// ulimit -c 0: the command must not dump core in the test's
			// directory; the supervisor turns its own core dumps off.
			o := run(t, harness("--", "sh", "-c", "ulimit -c 0; kill -s "+name[3:]+" $$"))
			if !o.ws.Signaled() || o.ws.Signal() != sig || o.ws.CoreDump() {
				t.Fatalf("harness: %v, want killed by %v without core", o, sig)
			}
			if o.stdout != "" || o.stderr != "" {
				t.Fatalf("harness wrote: %v", o)
			}
		})
	}
	// What a shell reports for the supervisor: 128+N.
	for _, c := range []struct {
		sig  string
		want int
	}{{"KILL", 137}, {"INT", 130}, {"TERM", 143}, {"SEGV", 139}} {
		t.Run("shell-sees-"+c.sig, func(t *testing.T) {
			t.Parallel()
			if sig, _ := nstest.ParseSignal(c.sig); inheritedIgnored(sig) {
				t.Skipf("the tests were started with SIG%s ignored", c.sig)
			}
			cmd := exec.Command("sh", "-c", `"$0" -- sh -c 'ulimit -c 0; kill -s `+c.sig+` $$'; echo status=$?`, nstest.Binary())
			cmd.Env = append(os.Environ(), nstest.HelperEnv("supervise"))
			cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
			o := run(t, cmd)
			// stderr holds the shell's own news ("Killed"), nothing else.
			if want := fmt.Sprintf("status=%d\n", c.want); o.stdout != want || strings.Count(o.stderr, "\n") > 1 {
				t.Fatalf("got %v, want stdout %q", o, want)
			}
		})
	}
}

// recorder is a command that reports every signal it receives as a line
// "got N" (flushed), after a line "ready" once its handlers are in place,
// and exits 0 at the end of its input. Perl, not Go: a Go program receives
// its own runtime's SIGURG. It never blocks without a timeout: perl runs
// its handlers between operations, and a signal that comes just before a
// blocking read would wait for the read to end. It writes with syswrite:
// perl runs handlers of SIGBUS, SIGSEGV, SIGILL and SIGFPE at once, in the
// middle of whatever it does, and print's buffer is not reentrant.
const recorder = `
use strict; use warnings; use Config; use IO::Select;
$| = 1;
my @names = split ' ', $Config{sig_name};
for my $n (1 .. 64) {
	my $name = $names[$n];
	next if !defined $name || $name eq 'KILL' || $name eq 'STOP' || ($n >= 32 && $n <= 34);
	$SIG{$name} = sub { syswrite STDOUT, "got $n\n" };
}
syswrite STDOUT, "ready\n";
my $in = IO::Select->new(\*STDIN);
while (1) {
	next unless $in->can_read(0.02);
	my $n = sysread(STDIN, my $buf, 4096);
	last if defined $n && $n == 0;
}
exit 0;
`

// lines returns the lines r produces, on a channel closed at EOF.
func lines(r io.Reader) <-chan string {
	c := make(chan string, 100)
	go func() {
		defer close(c)
		s := bufio.NewScanner(r)
		for s.Scan() {
			c <- s.Text()
		}
	}()
	return c
}

// expectLine waits for the next line and checks that it is want.
func expectLine(t *testing.T, c <-chan string, want string, context ...any) {
	t.Helper()
	select {
	case l, ok := <-c:
		if !ok {
			t.Fatalf("%soutput ended, want %q", fmt.Sprint(context...), want)
		}
		if l != want {
			t.Fatalf("%sgot line %q, want %q", fmt.Sprint(context...), l, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("%sno line %q within 10s", fmt.Sprint(context...), want)
	}
}

func TestForwardSignals(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("perl"); err != nil {
		t.Skip("perl is not installed")
	}
	cmd := harness("--", "perl", "-e", recorder)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
	}()
	out := lines(stdout)
	expectLine(t, out, "ready")

	// The marker queues (real-time): a duplicate of the signal before it
	// would show up as an extra line.
	const marker = syscall.Signal(44)
	var sigs []syscall.Signal
	for n := syscall.Signal(1); n <= 31; n++ {
		switch n {
		case unix.SIGKILL, unix.SIGSTOP, unix.SIGCHLD, unix.SIGURG, unix.SIGPROF:
			continue // not forwarded (see forwarded)
		}
		// SIGHUP and SIGINT too when the tests started with them ignored:
		// the recorder installs its own handlers and must get them.
		sigs = append(sigs, n)
	}
	sigs = append(sigs, 35, 36, 37, 64)
	for _, sig := range sigs {
		if err := cmd.Process.Signal(sig); err != nil {
			t.Fatalf("sending %v: %v", sig, err)
		}
		at := fmt.Sprintf("after %v (%d): ", sig, sig)
		expectLine(t, out, fmt.Sprintf("got %d", sig), at)
		if err := cmd.Process.Signal(marker); err != nil {
			t.Fatal(err)
		}
		expectLine(t, out, fmt.Sprintf("got %d", marker), at)
	}
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("harness: %v, stderr %q", err, stderr.String())
	}
	for l := range out {
		t.Errorf("unexpected line after the end: %q", l)
	}
}

func TestTrappedTerm(t *testing.T) {
	t.Parallel()
	cmd := harness("--", "sh", "-c", `trap "exit 3" TERM; echo ready; while :; do sleep 0.02; done`)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	out := lines(stdout)
	expectLine(t, out, "ready")
	cmd.Process.Signal(syscall.SIGTERM)
	cmd.Wait()
	if ws := cmd.ProcessState.Sys().(syscall.WaitStatus); !ws.Exited() || ws.ExitStatus() != 3 {
		t.Fatalf("harness: %s, want exit 3", describe(ws))
	}
}

// TestSignalBeforeStart: a signal caught by Prepare before the command
// has started reaches the command once it has.
func TestSignalBeforeStart(t *testing.T) {
	t.Parallel()
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGUSR1} {
		// Were the signal lost, sleep would exit 0 after its hour (the
		// test's timeout ends it first): the status tells, not a clock.
		o := run(t, harness("-early", strconv.Itoa(int(sig)), "--", "sleep", "3600"))
		if !o.ws.Signaled() || o.ws.Signal() != sig {
			t.Errorf("%v sent before the start: %s, want the command killed by it", sig, o)
		}
	}
}

func TestExecFailures(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "plain"), []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		cmd, path string
		code      int
		msg       string
	}{
		{"no-such-command-ipcguard", "", 127, "no-such-command-ipcguard: command not found"},
		{"./missing", "", 127, "./missing: no such file or directory"},
		{"./plain", "", 126, "./plain: permission denied"},
		{"./sub", "", 126, "./sub: is a directory"},
		{"plain", dir, 126, "plain: permission denied"},
		{"sub", dir, 126, "sub: is a directory"},
		{"plain", "/nonexistent:" + dir, 126, "plain: permission denied"},
	} {
		t.Run(c.cmd+"-"+c.path, func(t *testing.T) {
			cmd := harness("--", c.cmd)
			cmd.Dir = dir
			if c.path != "" {
				cmd.Env = append(cmd.Env, "PATH="+c.path)
			}
			o := run(t, cmd)
			if want := "supervise: " + c.msg + "\n"; !o.ws.Exited() || o.ws.ExitStatus() != c.code || o.stderr != want {
				t.Fatalf("got %v, want exit %d and stderr %q", o, c.code, want)
			}
		})
	}
}

// TestExecNoShebang: an executable that execve(2) rejects with ENOEXEC (a
// script without "#!") runs through /bin/sh, as with execvp(3) and env(1).
func TestExecNoShebang(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "noshebang"), []byte("echo \"sh ran $0 $1\"; exit 5\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	// $0 is the path found, as execvp(3) passes it to the shell.
	for name, path := range map[string]string{"./noshebang": "./noshebang", "noshebang": dir + "/noshebang"} {
		cmd := harness("--", name, "arg")
		cmd.Dir = dir
		cmd.Env = append(cmd.Env, "PATH="+dir)
		o := run(t, cmd)
		if want := "sh ran " + path + " arg\n"; !o.ws.Exited() || o.ws.ExitStatus() != 5 || o.stdout != want {
			t.Errorf("%s: got %v, want exit 5 and stdout %q", name, o, want)
		}
	}
}

func TestLookPath(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	for _, d := range []string{a, b} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write := func(p string, mode os.FileMode) {
		if err := os.WriteFile(p, []byte("#!/bin/sh\n"), mode); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(a, "tool"), 0o644) // not executable: remembered, search goes on
	write(filepath.Join(b, "tool"), 0o755)
	write(filepath.Join(a, "only-a"), 0o644)
	for _, c := range []struct {
		name, path string
		want       string
		code       int
	}{
		{"tool", a + ":" + b, b + "/tool", 0},
		{"only-a", a + ":" + b, "", 126},
		{"nothing", a + ":" + b, "", 127},
		{"tool", ":" + b, b + "/tool", 0},
		{"sh", "", "", 127},           // PATH= (empty): the current directory only
		{"sh", "unset", "/bin/sh", 0}, // no PATH: /bin:/usr/bin
		{b + "/tool", "/nonexistent", b + "/tool", 0},
		{"", a, "", 127},
	} {
		env := []string{"HOME=/"}
		if c.path != "unset" {
			env = append(env, "PATH="+c.path)
		}
		got, err := LookPath(c.name, env)
		var ee *ExecError
		switch {
		case c.code == 0 && (err != nil || got != c.want):
			t.Errorf("LookPath(%q, PATH=%s) = %q, %v; want %q", c.name, c.path, got, err, c.want)
		case c.code != 0 && (!errors.As(err, &ee) || ee.Code != c.code):
			t.Errorf("LookPath(%q, PATH=%s) = %q, %v; want ExecError %d", c.name, c.path, got, err, c.code)
		}
	}
}

func TestStatusCode(t *testing.T) {
	for _, c := range []struct {
		ws   unix.WaitStatus
		want int
	}{{0, 0}, {3 << 8, 3}, {255 << 8, 255}, {9, 137}, {2, 130}, {15 | 0x80, 143}} {
		if got := StatusCode(c.ws); got != c.want {
			t.Errorf("StatusCode(%#x) = %d, want %d", uint32(c.ws), got, c.want)
		}
	}
}

func TestPassthrough(t *testing.T) {
	t.Parallel()
	t.Run("stdin-stdout", func(t *testing.T) {
		t.Parallel()
		data := bytes.Repeat([]byte("0123456789abcdef\n"), 1<<16)
		cmd := harness("--", "cat")
		cmd.Stdin = bytes.NewReader(data)
		o := run(t, cmd)
		if o.ws != 0 || o.stdout != string(data) {
			t.Fatalf("cat through the supervisor: status %s, %d bytes out of %d", describe(o.ws), len(o.stdout), len(data))
		}
	})
	t.Run("stderr", func(t *testing.T) {
		t.Parallel()
		o := run(t, harness("--", "sh", "-c", "echo to-stderr >&2"))
		if o.ws != 0 || o.stderr != "to-stderr\n" || o.stdout != "" {
			t.Fatalf("got %v", o)
		}
	})
	t.Run("environment", func(t *testing.T) {
		t.Parallel()
		env := append(os.Environ(), "IPCGUARD_PROBE=two words", "IPCGUARD_EMPTY=")
		direct := exec.Command("env")
		direct.Env = env
		via := harness("--", "env")
		via.Env = append(via.Env, "IPCGUARD_PROBE=two words", "IPCGUARD_EMPTY=")
		d, v := run(t, direct), run(t, via)
		if v.ws != 0 || sortedLines(d.stdout) != sortedLines(v.stdout) {
			t.Fatalf("environment differs:\ndirect:\n%s\nsupervised:\n%s", d.stdout, v.stdout)
		}
	})
	t.Run("directory", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		cmd := harness("--", "pwd", "-P")
		cmd.Dir = dir
		o := run(t, cmd)
		want, _ := filepath.EvalSymlinks(dir)
		if o.ws != 0 || o.stdout != want+"\n" {
			t.Fatalf("got %v, want %q", o, want)
		}
	})
	t.Run("umask", func(t *testing.T) {
		t.Parallel()
		cmd := exec.Command("sh", "-c", `umask 027; exec "$0" -- sh -c umask`, nstest.Binary())
		cmd.Env = append(os.Environ(), nstest.HelperEnv("supervise"))
		o := run(t, cmd)
		if o.ws != 0 || o.stdout != "0027\n" {
			t.Fatalf("got %v, want umask 0027", o)
		}
	})
	t.Run("rlimits", func(t *testing.T) {
		t.Parallel()
		// Go raises its own RLIMIT_NOFILE soft limit; the command must
		// get the one the supervisor started with.
		script := `ulimit -S -n 200; exec "$@"`
		probe := []string{"sh", "-c", "ulimit -S -n; ulimit -H -n; ulimit -S -c; ulimit -S -s"}
		d := run(t, exec.Command("sh", append([]string{"-c", script, "sh"}, probe...)...))
		via := exec.Command("sh", append([]string{"-c", script, "sh", nstest.Binary(), "--"}, probe...)...)
		via.Env = append(os.Environ(), nstest.HelperEnv("supervise"))
		v := run(t, via)
		if v.ws != 0 || d.stdout != v.stdout || !strings.HasPrefix(v.stdout, "200\n") {
			t.Fatalf("limits differ:\ndirect:     %q\nsupervised: %q (%v)", d.stdout, v.stdout, v)
		}
	})
	t.Run("descriptors", func(t *testing.T) {
		t.Parallel()
		// An inherited descriptor (fd 3) reaches the command, and no
		// descriptor of the supervisor's own (terminal, tracker events,
		// signal plumbing) does.
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		script := `echo via-fd3 >&3; exec ls /proc/self/fd`
		direct := exec.Command("sh", "-c", script)
		direct.ExtraFiles = []*os.File{w}
		via := harness("--", "sh", "-c", script)
		via.ExtraFiles = []*os.File{w}
		d, v := run(t, direct), run(t, via)
		w.Close()
		got, _ := io.ReadAll(r)
		if string(got) != "via-fd3\nvia-fd3\n" {
			t.Fatalf("fd 3 carried %q, want via-fd3 twice", got)
		}
		if v.ws != 0 || d.stdout != v.stdout {
			t.Fatalf("open descriptors differ: direct %q, supervised %q (%v)", d.stdout, v.stdout, v)
		}
	})
}

func sortedLines(s string) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	slices.Sort(l)
	return strings.Join(l, "\n")
}

// maskWrapper starts the rest of its arguments with SIGUSR1, SIGUSR2,
// SIGALRM, SIGWINCH and signal 40 blocked and SIGHUP and SIGINT ignored.
//
// Not SIGTERM and the like: the Go runtime unblocks SIGHUP, SIGINT,
// SIGQUIT, SIGILL, SIGTRAP, SIGABRT, SIGBUS, SIGFPE, SIGSEGV, SIGSTKFLT,
// SIGTERM, SIGCHLD, SIGPROF, SIGSYS and SIGURG in every thread at startup
// and keeps no trace of their inherited state: a command started by any
// Go program gets those unblocked (a documented limit).
const maskWrapper = `
use POSIX;
sigprocmask(SIG_BLOCK, POSIX::SigSet->new(10, 12, 14, 28, 40)) or die "sigprocmask: $!";
$SIG{HUP} = 'IGNORE';
$SIG{INT} = 'IGNORE';
exec @ARGV or die "exec: $!";
`

func TestSignalMaskAndIgnored(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("perl"); err != nil {
		t.Skip("perl is not installed")
	}
	probe := []string{"grep", "-E", "^Sig(Blk|Ign)", "/proc/self/status"}
	d := run(t, exec.Command("perl", append([]string{"-e", maskWrapper}, probe...)...))
	via := exec.Command("perl", append([]string{"-e", maskWrapper, nstest.Binary(), "--"}, probe...)...)
	via.Env = append(os.Environ(), nstest.HelperEnv("supervise"))
	via.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	v := run(t, via)
	if d.ws != 0 || v.ws != 0 || d.stdout != v.stdout {
		t.Fatalf("signal state differs:\ndirect:\n%s\nsupervised:\n%s(%v)", d.stdout, v.stdout, v)
	}
	// The wrapper's own state must really be there to be compared.
	// (The test's own environment may add bits: only these must be set.)
	if !hasBits(d.stdout, "SigBlk:", 0x8008002a00) || !hasBits(d.stdout, "SigIgn:", 0x3) {
		t.Fatalf("the wrapper did not block and ignore what it should:\n%s", d.stdout)
	}
}

func TestNohup(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("nohup"); err != nil {
		t.Skip("nohup is not installed")
	}
	cmd := exec.Command("nohup", nstest.Binary(), "--", "sh", "-c", "kill -HUP $$; echo alive")
	cmd.Env = append(os.Environ(), nstest.HelperEnv("supervise"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if o := run(t, cmd); o.ws != 0 || o.stdout != "alive\n" {
		t.Fatalf("nohup harness: %v, want the command to survive SIGHUP", o)
	}
}

// report runs cmd, which must be a harness with "-status FILE" first, and
// returns its outcome and report.
func report(t *testing.T, args ...string) (outcome, harnessReport) {
	t.Helper()
	file := filepath.Join(t.TempDir(), "status.json")
	o := run(t, harness(append([]string{"-status", file}, args...)...))
	var r harnessReport
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("no report (%v): %v", o, err)
	}
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	return o, r
}

func TestNoZombies(t *testing.T) {
	t.Parallel()
	// A subshell starts 100 short sleeps and exits: they are orphaned to
	// the supervisor. cat sees EOF when the last has exited; the command
	// then waits (bounded) until the supervisor has no child but itself,
	// i.e. it reaped every orphan while the command ran.
	script := `
( for i in $(seq 100); do sleep 0.0$((i % 5 + 1)) & done ) | cat >/dev/null
i=0
while [ "$(cat /proc/$PPID/task/*/children | tr -d ' \n')" != "$$" ]; do
	i=$((i + 1)); [ $i -gt 1000 ] && { cat /proc/$PPID/task/*/children >&2; exit 9; }
	sleep 0.01
done`
	o, r := report(t, "--", "sh", "-c", script)
	if o.ws != 0 {
		t.Fatalf("command: %v (exit 9: the supervisor left zombies while it ran)", o)
	}
	if len(r.Children) != 0 || len(r.Zombies) != 0 {
		t.Fatalf("after Run: children %v, zombies %v", r.Children, r.Zombies)
	}
	if r.Tracker == "" {
		t.Fatalf("Result.Tree is empty: %+v", r)
	}
}

// escapee is a command that starts a descendant in a session of its own
// that ignores SIGTERM, waits until it runs, and exits 1.
func escapee(pidfile string) []string {
	return []string{"sh", "-c",
		`IPCGUARD_TEST_HELPER=ignore-term setsid "$0" "$1" </dev/null >/dev/null 2>&1 & while [ ! -e "$1" ]; do sleep 0.01; done; exit 1`,
		nstest.Binary(), pidfile}
}

func pidFromFile(t *testing.T, file string) int {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(string(b))
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

func TestDescendantsTerminated(t *testing.T) {
	t.Parallel()
	pidfile := filepath.Join(t.TempDir(), "pid")
	begin := time.Now()
	o, r := report(t, append([]string{"-grace", "200ms", "--"}, escapee(pidfile)...)...)
	took := time.Since(begin)
	pid := pidFromFile(t, pidfile)
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) })
	if !o.ws.Exited() || o.ws.ExitStatus() != 1 {
		t.Fatalf("harness: %v, want exit 1", o)
	}
	if !slices.Contains(r.Terminated, pid) || !slices.Contains(r.Killed, pid) || len(r.Remaining) != 0 {
		t.Fatalf("descendant %d: terminated %v, killed %v, remaining %v", pid, r.Terminated, r.Killed, r.Remaining)
	}
	if took < 200*time.Millisecond {
		t.Fatalf("SIGKILL came after %v, before the grace period", took)
	}
	// Gone, or a zombie: dead. The harness reaps what it killed while it
	// is its child; one whose parent is the harness's own parent or init
	// (reparented before the harness saw it) stays a zombie until that
	// parent reaps it.
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		if st, serr := proc.Stat(pid); serr != nil || st.State != 'Z' {
			t.Fatalf("descendant %d still exists (kill 0: %v, state %q)", pid, err, st.State)
		}
	}
}

func TestDescendantsTermQuickly(t *testing.T) {
	t.Parallel()
	// Descendants that die of SIGTERM end the wait at once (default grace
	// 5s), and their own children (orphaned then) are found and reaped.
	// With a grace of an hour, a wait that is not event driven would last
	// the hour (the test's timeout ends it first): no clock needed.
	script := `sh -c 'sleep 60 & sleep 60 & wait' &
while [ "$(cat /proc/$!/task/*/children | wc -w)" -lt 2 ]; do sleep 0.01; done
exit 2`
	o, r := report(t, "-grace", "1h", "--", "sh", "-c", script)
	if !o.ws.Exited() || o.ws.ExitStatus() != 2 {
		t.Fatalf("harness: %v, want exit 2", o)
	}
	if len(r.Terminated) != 3 || len(r.Killed) != 0 || len(r.Children) != 0 || len(r.Zombies) != 0 {
		t.Fatalf("report %+v, want 3 terminated, none killed, no children left", r)
	}
}

func TestDescendantsKept(t *testing.T) {
	t.Parallel()
	pidfile := filepath.Join(t.TempDir(), "pid")
	o, r := report(t, append([]string{"-keep", "--"}, escapee(pidfile)...)...)
	pid := pidFromFile(t, pidfile)
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) })
	if !o.ws.Exited() || o.ws.ExitStatus() != 1 {
		t.Fatalf("harness: %v, want exit 1", o)
	}
	if !slices.Equal(r.Remaining, []int{pid}) || len(r.Terminated) != 0 || len(r.Killed) != 0 {
		t.Fatalf("report %+v, want only %d remaining", r, pid)
	}
	if err := syscall.Kill(pid, 0); err != nil {
		t.Fatalf("descendant %d is gone: %v", pid, err)
	}
}

func TestExitAsNamespaceInit(t *testing.T) {
	t.Parallel()
	// PID 1 of a PID namespace cannot kill itself with a signal it has no
	// handler for: the supervisor falls back to exit status 128+N.
	for _, c := range []struct {
		sig  string
		want int
	}{{"TERM", 143}, {"KILL", 137}} {
		t.Run(c.sig, func(t *testing.T) {
			t.Parallel()
			cmd := harness("--", "sh", "-c", "kill -s "+c.sig+" $$")
			cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Cloneflags: syscall.CLONE_NEWPID}
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			err := cmd.Run()
			var ee *exec.ExitError
			if err != nil && !errors.As(err, &ee) {
				if errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EINVAL) {
					nstest.Require(t, "cannot create a PID namespace: %v", err)
				}
				t.Fatal(err)
			}
			ws := cmd.ProcessState.Sys().(syscall.WaitStatus)
			if !ws.Exited() || ws.ExitStatus() != c.want || stderr.Len() != 0 {
				t.Fatalf("harness as PID 1: %s, stderr %q; want exit %d", describe(ws), stderr.String(), c.want)
			}
		})
	}
}

// hasBits reports whether the hex mask after field in status has all bits of want.
func hasBits(status, field string, want uint64) bool {
	for _, l := range strings.Split(status, "\n") {
		if v, ok := strings.CutPrefix(l, field); ok {
			got, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			return err == nil && got&want == want
		}
	}
	return false
}
