package main_test

// Signals at the edges: at the very start of ipcguard, ignored or blocked
// when it starts (scenario 28, tini's signal-configuration check).

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ipcguard/ipcguard/internal/nstest"
	"golang.org/x/sys/unix"
)

// journals lists the run journals in the state directory of e.
func (e *env) journals() []string {
	var out []string
	filepath.WalkDir(e.state, func(path string, d fs.DirEntry, err error) error {
		if err == nil && strings.HasSuffix(path, ".journal") {
			out = append(out, path)
		}
		return nil
	})
	return out
}

// TestEarlyFatalSignals (docs/supervisor.md, signals): SIGQUIT, SIGABRT, SIGTRAP and SIGSYS
// sent to ipcguard while it prepares the run (its journal exists, the
// command may not have started yet) end it as they end the command:
// death by that signal, no Go goroutine dump, no run journal left behind.
// (Before ipcguard's own code runs, during the Go runtime's start, the
// runtime still answers with its dump: README, known limits.)
func TestEarlyFatalSignals(t *testing.T) {
	inBothModes(t, func(t *testing.T, _ nstest.Mode) {
		e := newEnv(t, "early signals")
		for _, sig := range []syscall.Signal{unix.SIGQUIT, unix.SIGABRT, unix.SIGTRAP, unix.SIGSYS} {
			g := e.guard("--", "sh", "-c", "ulimit -c 0; exec sleep 100").start()
			e.waitFor("the run journal", 20*time.Second, func() bool { return len(e.journals()) > 0 })
			if err := unix.Kill(g.pid(), sig); err != nil {
				e.fatalf("kill: %v", err)
			}
			r := g.wait()
			if r.Signal != sig {
				e.errorf("%v sent during the run: %v, want death by it", unix.SignalName(sig), r)
			}
			if strings.Contains(r.Stderr, "goroutine ") || strings.Contains(r.Stderr, "PC=") {
				e.errorf("%v sent during the run: a Go crash dump on stderr:\n%s", unix.SignalName(sig), r.Stderr)
			}
			if j := e.journals(); len(j) > 0 {
				e.errorf("%v sent during the run: run journals left behind: %v", unix.SignalName(sig), j)
			}
		}
	})
}

// blockedStderr returns a pipe whose buffer is full: a process that writes
// to w blocks in write(2) until r is read.
func (e *env) blockedStderr() (r, w *os.File) {
	e.t.Helper()
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		e.fatalf("pipe2: %v", err)
	}
	unix.FcntlInt(uintptr(p[1]), unix.F_SETPIPE_SZ, 4096)
	fill := make([]byte, 4096)
	for {
		if _, err := unix.Write(p[1], fill); err != nil {
			break // EAGAIN: full
		}
	}
	for _, fd := range p {
		if err := unix.SetNonblock(fd, false); err != nil {
			e.fatalf("%v", err)
		}
	}
	return os.NewFile(uintptr(p[0]), "pipe-r"), os.NewFile(uintptr(p[1]), "pipe-w")
}

// inWrite reports whether a thread of pid is blocked in write(2).
func inWrite(pid int) bool {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/syscall", pid))
	for _, f := range tasks {
		b, err := os.ReadFile(f)
		if err == nil && strings.HasPrefix(string(b), strconv.Itoa(unix.SYS_WRITE)+" ") {
			return true
		}
	}
	return false
}

// TestFatalSignalsBeforeRun (docs/supervisor.md, signals): the same signals sent once
// ipcguard's own code runs, before any run is prepared (here while it
// writes a usage error to a full pipe), end it as their default action
// would, with no goroutine dump. So does SIGTERM. The command line has a
// "--", so the signals were caught early for a run (package prestart)
// that the usage error then called off (supervisor.Unprepare).
func TestFatalSignalsBeforeRun(t *testing.T) {
	inBothModes(t, func(t *testing.T, _ nstest.Mode) {
		e := newEnv(t, "signals before the run")
		for _, sig := range []syscall.Signal{unix.SIGQUIT, unix.SIGABRT, unix.SIGTRAP, unix.SIGSYS, unix.SIGTERM} {
			r, w := e.blockedStderr()
			cmd := exec.Command(guardBin(), "--bogus-option", "--", "true")
			cmd.Env = e.baseEnv()
			cmd.Stderr = w
			if err := cmd.Start(); err != nil {
				e.fatalf("%v", err)
			}
			w.Close()
			e.waitFor("ipcguard to block writing its usage error", 20*time.Second, func() bool { return inWrite(cmd.Process.Pid) })
			unix.Kill(cmd.Process.Pid, sig)
			// The signal must end ipcguard while its write is still
			// blocked: only then is the pipe read (a crash dump would
			// block on it too, and show up once it is read).
			exited := make(chan struct{})
			go func() {
				cmd.Wait()
				close(exited)
			}()
			select {
			case <-exited:
			case <-time.After(20 * time.Second):
			}
			out := make(chan string, 1)
			go func() {
				b, _ := io.ReadAll(r)
				out <- string(b)
			}()
			<-exited
			r.Close()
			ws := cmd.ProcessState.Sys().(syscall.WaitStatus)
			text := <-out
			if !ws.Signaled() || ws.Signal() != sig {
				e.errorf("%v while ipcguard writes: status %#x, want death by it", unix.SignalName(sig), uint32(ws))
			}
			if strings.Contains(text, "goroutine ") || strings.Contains(text, "PC=") {
				e.errorf("%v while ipcguard writes: a Go crash dump on stderr:\n%s", unix.SignalName(sig), strings.TrimLeft(text, "\x00"))
			}
		}
	})
}

// sigState is the SigBlk and SigIgn lines of a process started by shell
// (the command is "$@" of the shell, a probe that prints its own lines).
func sigState(e *env, script string, args ...string) (blk, ign uint64) {
	e.t.Helper()
	cmd := exec.Command("perl", append([]string{"-e", script}, args...)...)
	cmd.Env = e.baseEnv()
	out, err := cmd.Output()
	if err != nil {
		e.fatalf("%q: %v: %s", cmd.Args, err, out)
	}
	for _, l := range lines(string(out)) {
		name, val, _ := strings.Cut(l, ":")
		v, err := strconv.ParseUint(strings.TrimSpace(val), 16, 64)
		if err != nil {
			continue
		}
		switch name {
		case "SigBlk":
			blk = v
		case "SigIgn":
			ign = v
		}
	}
	return blk, ign
}

func bit(sig syscall.Signal) uint64 { return 1 << (sig - 1) }

// configWrapper blocks and ignores a set of signals, then runs its
// arguments: tini's signal-configuration check (SIGTTOU and SIGSEGV
// ignored, SIGILL and SIGTERM blocked), with more of each kind: signals
// the Go runtime unblocks or handles itself, one it leaves alone, a
// real-time one.
const configWrapper = `
use POSIX;
sigprocmask(SIG_BLOCK, POSIX::SigSet->new(4, 15, 21, 10, 3, 6, 40)) or die "sigprocmask: $!";
for my $s (qw(TTOU SEGV INT QUIT USR2 PIPE TERM ALRM WINCH HUP)) { $SIG{$s} = 'IGNORE'; }
sigaction(45, POSIX::SigAction->new('IGNORE')) or die "sigaction: $!";
exec @ARGV or die "exec: $!";
`

// TestSignalConfiguration: the mask and the ignored signals ipcguard
// started with reach the command, except what README's known limits say.
func TestSignalConfiguration(t *testing.T) {
	if _, err := exec.LookPath("perl"); err != nil {
		t.Skip("perl is not installed")
	}
	inBothModes(t, func(t *testing.T, _ nstest.Mode) {
		e := newEnv(t, "signal configuration")
		probe := []string{"grep", "-E", "^Sig(Blk|Ign)", "/proc/self/status"}
		dBlk, dIgn := sigState(e, configWrapper, probe...)
		vBlk, vIgn := sigState(e, configWrapper, append([]string{guardBin(), "--"}, probe...)...)
		// The set-up itself: what the wrapper did must be there.
		for _, s := range []syscall.Signal{4, 15, 21, 10, 3, 6, 40} {
			if dBlk&bit(s) == 0 {
				e.fatalf("the wrapper did not block %v: SigBlk %x", s, dBlk)
			}
		}
		for _, s := range []syscall.Signal{unix.SIGTTOU, unix.SIGINT, unix.SIGQUIT, unix.SIGUSR2, unix.SIGPIPE, unix.SIGTERM, 45} {
			if dIgn&bit(s) == 0 {
				e.fatalf("the wrapper did not ignore %v: SigIgn %x", s, dIgn)
			}
		}
		// Ignored signals os/signal cannot ignore again for the fork
		// reach the command with their default action (README).
		lost := bit(unix.SIGILL) | bit(unix.SIGTRAP) | bit(unix.SIGBUS) | bit(unix.SIGFPE) | bit(unix.SIGSEGV) |
			bit(unix.SIGSTKFLT) | bit(unix.SIGSYS) | bit(unix.SIGCHLD) | bit(unix.SIGPROF)
		if runtime.GOARCH != "amd64" {
			t.Skipf("the exact start state is recorded on amd64 only (internal/sigstart); SigBlk %x/%x SigIgn %x/%x", dBlk, vBlk, dIgn, vIgn)
		}
		if vBlk != dBlk {
			e.errorf("SigBlk of the command: %016x under ipcguard, %016x without", vBlk, dBlk)
		}
		if vIgn != dIgn&^lost {
			e.errorf("SigIgn of the command: %016x under ipcguard, %016x without (%016x expected)", vIgn, dIgn, dIgn&^lost)
		}
	})
}

// perlIntHandler installs its own SIGINT handler, says so in file $ARGV[0]
// and waits; on SIGINT it writes "INT" to $ARGV[1] and exits 7.
const perlIntHandler = `$SIG{INT} = sub { open my $f, ">", $ARGV[1]; print $f "INT"; close $f; exit 7 };
open my $r, ">", $ARGV[0]; close $r; sleep 1 while 1;`

// perlKeepsIgnore keeps the inherited dispositions; it says it is ready
// in $ARGV[0] and exits 0 on SIGUSR1.
const perlKeepsIgnore = `$SIG{USR1} = sub { exit 0 };
open my $r, ">", $ARGV[0]; close $r; sleep 1 while 1;`

// TestScenario28IgnoredInBackground: in a non-interactive script,
// "ipcguard -- cmd &" starts with SIGINT ignored; kill -INT of ipcguard
// reaches a command that installed its own handler, and a command that
// keeps the inherited SIG_IGN ignores it.
func TestScenario28IgnoredInBackground(t *testing.T) {
	if _, err := exec.LookPath("perl"); err != nil {
		t.Skip("perl is not installed")
	}
	inBothModes(t, func(t *testing.T, _ nstest.Mode) {
		e := newEnv(t, "scenario 28")
		script := `"$G" -- perl -e "$1" "$2" "$3" & p=$!
while [ ! -e "$2" ]; do sleep 0.01; done
kill -INT $p
[ -n "$4" ] && kill -USR1 $p
wait $p; echo status=$?`
		sh := func(perl, extra string) string {
			e.t.Helper()
			os := strconv.Itoa(len(extra))
			ready, got := e.path("ready"+os+extra), e.path("got"+os+extra)
			// A signal that does not reach the command leaves it running:
			// the script is then killed (with ipcguard, its own group).
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, "sh", "-c", script, "sh", perl, ready, got, extra)
			cmd.Env = append(e.baseEnv(), "G="+guardBin())
			cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
			cmd.Cancel = func() error { return unix.Kill(-cmd.Process.Pid, unix.SIGKILL) }
			cmd.WaitDelay = 5 * time.Second
			out, err := cmd.CombinedOutput()
			if ctx.Err() != nil {
				return "timed out: " + string(out)
			}
			if err != nil {
				e.fatalf("%v: %s", err, out)
			}
			got2 := strings.Join(scanLines(got), "")
			return strings.TrimSpace(string(out)) + " " + got2
		}
		if out := sh(perlIntHandler, ""); out != "status=7 INT" {
			e.errorf("a command with its own SIGINT handler under `ipcguard -- cmd &`: %q, want status=7 and the handler run", out)
		}
		if out := sh(perlKeepsIgnore, "usr1"); out != "status=0 " {
			e.errorf("a command that keeps SIGINT ignored under `ipcguard -- cmd &`: %q, want status=0 (SIGINT ignored, then SIGUSR1)", out)
		}
	})
}

// TestSignalsWhenNoRunFollows (docs/supervisor.md, signals): command lines
// with a "--" whose run never starts: a command that is not found, a
// report file that cannot be written, a "--" that is an option's value
// (then --help prints the help). A signal sent while ipcguard writes what
// it has to say (blocked on a full pipe) ends it at once as its default
// action would, as it did before the signals were caught from package
// initialization: not later, not never (a caught signal raised again
// with kill(2) may be delivered only after the exit).
func TestSignalsWhenNoRunFollows(t *testing.T) {
	inBothModes(t, func(t *testing.T, _ nstest.Mode) {
		e := newEnv(t, "signals when no run follows")
		for _, args := range [][]string{
			{"--", "/nonexistent/command"},
			{"--report", e.path("no/such/dir/r.json"), "--", "true"},
			{"--report", "--", "--help"},
		} {
			for _, sig := range []syscall.Signal{unix.SIGTERM, unix.SIGQUIT} {
				r, w := e.blockedStderr()
				cmd := exec.Command(guardBin(), args...)
				cmd.Env = e.baseEnv()
				cmd.Stdout, cmd.Stderr = w, w
				if err := cmd.Start(); err != nil {
					e.fatalf("%v", err)
				}
				w.Close()
				e.waitFor("ipcguard to block writing", 20*time.Second, func() bool { return inWrite(cmd.Process.Pid) })
				unix.Kill(cmd.Process.Pid, sig)
				exited := make(chan struct{})
				go func() {
					cmd.Wait()
					close(exited)
				}()
				early := true
				select {
				case <-exited:
				case <-time.After(20 * time.Second):
					early = false
				}
				go io.Copy(io.Discard, r)
				<-exited
				r.Close()
				ws := cmd.ProcessState.Sys().(syscall.WaitStatus)
				if !early || !ws.Signaled() || ws.Signal() != sig {
					e.errorf("ipcguard %q, %v while it writes: status %#x, ended while blocked %v; want death by it at once", args, unix.SignalName(sig), uint32(ws), early)
				}
			}
		}
	})
}
