package supervisor

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ipcguard/ipcguard/internal/nstest"
	"golang.org/x/sys/unix"
)

// TestRawHandler: rawHandler hands the signals sent to this process on in
// the order they were sent; a fault is still the runtime's (a nil
// dereference panics, it does not re-run forever); once uninstalled,
// os/signal catches the signals again.
func TestRawHandler(t *testing.T) {
	sink := rawRun(t, 16, true)
	uninstalled := false
	defer func() {
		if !uninstalled {
			<-uninstallRaw()
		}
	}()

	// Sent to this thread, one after the other (toThread). A real-time
	// signal queues, each one (40 twice); a repeated standard one merges
	// with the one not yet taken (see TestRawMergesStandard).
	sent := []syscall.Signal{unix.SIGUSR2, 40, unix.SIGWINCH, unix.SIGUSR1, 35, 40}
	toThread(t, sent...)
	for i, want := range sent {
		select {
		case got := <-sink:
			taken(got)
			if got != want {
				t.Fatalf("signal %d: got %v, want %v (sent %v)", i, got, want, sent)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("signal %d (%v) not handed on within 10s", i, want)
		}
	}

	faulted := make(chan any, 1)
	go func() {
		defer func() { faulted <- recover() }()
		var p *int
		_ = *p
	}()
	select {
	case r := <-faulted:
		if r == nil {
			t.Fatal("a nil dereference did not panic")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a nil dereference did not panic within 10s: the fault is not the runtime's")
	}

	<-uninstallRaw()
	uninstalled = true
	c := make(chan os.Signal, 1)
	signal.Notify(c, unix.SIGUSR1)
	defer signal.Stop(c)
	unix.Kill(os.Getpid(), unix.SIGUSR1)
	select {
	case <-c:
	case <-time.After(10 * time.Second):
		t.Fatal("os/signal did not get SIGUSR1 after uninstallRaw")
	}
	select {
	case sig := <-sink:
		t.Fatalf("%v reached the run's channel after uninstallRaw", sig)
	default:
	}
}

// blockWrapper blocks the signal $ARGV[0] and executes the rest of its
// arguments.
const blockWrapper = `
use POSIX;
my $sig = shift @ARGV;
sigprocmask(SIG_BLOCK, POSIX::SigSet->new($sig)) or die "sigprocmask: $!";
exec @ARGV or die "exec: $!";
`

// pendingProbe says "ready", then waits until the signal $ARGV[0], which
// it started with blocked, is pending for it, and says "pending".
const pendingProbe = `
$| = 1;
my $bit = 1 << ($ARGV[0] - 1);
print "ready\n";
my $until = time + 30; # never outlive a failed test for long
while (time < $until) {
	open my $s, "<", "/proc/self/status" or die "status: $!";
	while (<$s>) {
		if (/^(SigPnd|ShdPnd):\s*([0-9a-f]+)/ && (hex($2) & $bit)) { print "pending\n"; exit 0 }
	}
	close $s;
	select(undef, undef, undef, 0.01);
}
`

// TestBlockedAtStartForwarded: a signal that the supervisor started with
// blocked is forwarded all the same, as os/signal forwarded it (its
// thread unblocks what it catches): the command, which starts with the
// same mask, finds it pending, as it would have run directly. Signals the
// Go runtime leaves blocked: SIGUSR1, SIGWINCH, SIGTSTP, a real-time one.
func TestBlockedAtStartForwarded(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("perl"); err != nil {
		t.Skip("perl is not installed")
	}
	for _, sig := range []syscall.Signal{unix.SIGUSR1, unix.SIGWINCH, unix.SIGTSTP, 40} {
		n := strconv.Itoa(int(sig))
		cmd := harness("--", "perl", "-e", pendingProbe, n)
		cmd.Args = append([]string{"perl", "-e", blockWrapper, n, cmd.Path}, cmd.Args[1:]...)
		perl, err := exec.LookPath("perl")
		if err != nil {
			t.Fatal(err)
		}
		cmd.Path = perl
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		out := lines(stdout)
		expectLine(t, out, "ready", sig, ": ")
		if err := cmd.Process.Signal(sig); err != nil {
			t.Fatal(err)
		}
		select {
		case l := <-out:
			if l != "pending" {
				t.Errorf("%v blocked at start: line %q, want %q", sig, l, "pending")
			}
		case <-time.After(10 * time.Second):
			st, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", cmd.Process.Pid))
			var pnd []string
			for _, l := range strings.Split(string(st), "\n") {
				if strings.HasPrefix(l, "ShdPnd:") || strings.HasPrefix(l, "SigBlk:") {
					pnd = append(pnd, l)
				}
			}
			t.Errorf("%v blocked at start, sent to the supervisor: not pending for the command within 10s (supervisor %s)", sig, strings.Join(pnd, ", "))
		}
		cmd.Process.Kill()
		cmd.Wait()
	}
}

// prepared prepares a run (Prepare) and returns its signals once they are
// caught.
func prepared() *signals {
	Prepare()
	pending.mu.Lock()
	ready, sigs := pending.ready, pending.sigs
	pending.mu.Unlock()
	<-ready
	return sigs
}

func init() { helpers["unprepare"] = unprepareHelper }

// unprepareHelper prepares a run, sends itself the signal args[0] and
// waits until it is caught, calls the run off (Unprepare) and exits 0 at
// once.
func unprepareHelper(args []string) int {
	n, err := strconv.Atoi(args[0])
	if err != nil {
		return 125
	}
	sigs := prepared()
	unix.Kill(os.Getpid(), syscall.Signal(n))
	for len(sigs.c) == 0 {
		time.Sleep(time.Millisecond)
	}
	Unprepare()
	return 0
}

// TestUnprepareRaisesBeforeReturning: a signal caught for a run that
// does not follow has met its default handling when Unprepare returns:
// an exit right after it does not win (a kill(2) of the process may be
// delivered on another thread, after the exit).
func TestUnprepareRaisesBeforeReturning(t *testing.T) {
	t.Parallel()
	for i := 0; i < 20; i++ {
		for _, sig := range []syscall.Signal{unix.SIGTERM, unix.SIGHUP, unix.SIGQUIT} {
			if inheritedIgnored(sig) {
				continue
			}
			cmd := nstest.HelperCmd("unprepare", strconv.Itoa(int(sig)))
			o := run(t, cmd)
			if !o.ws.Signaled() || o.ws.Signal() != sig {
				t.Fatalf("%v caught, then Unprepare and exit 0 (round %d): %s, want death by it", sig, i, o)
			}
		}
	}
}

func init() { helpers["flood-early"] = floodEarlyHelper }

// floodEarlyHelper prepares a run, sends its thread args[0] SIGWINCHes and
// then a SIGTERM, waits until each has been handed on (or dropped), and
// runs args[1:] under Run.
func floodEarlyHelper(args []string) int {
	n, err := strconv.Atoi(args[0])
	if err != nil {
		return 125
	}
	prepared()
	// Directed at this thread, each is handled before tgkill returns: the
	// kernel coalesces none of them.
	runtime.LockOSThread()
	for range n {
		unix.Tgkill(os.Getpid(), unix.Gettid(), unix.SIGWINCH)
	}
	unix.Tgkill(os.Getpid(), unix.Gettid(), unix.SIGTERM)
	runtime.UnlockOSThread()
	if rawOn() {
		// readRaw has handled every number before this marker.
		var zero [4]byte
		if _, err := unix.Write(int(rawWriteFd), zero[:]); err == nil {
			<-raw.drained
		}
	}
	path, err := LookPath(args[1], nil)
	if err != nil {
		return execFailure(err)
	}
	res, err := Run(Options{Path: path, Args: args[1:]})
	if err != nil {
		return execFailure(err)
	}
	Exit(res.Status)
	return 125
}

// TestFloodBeforeStart: a SIGTERM that follows a flood of another signal
// (a terminal resized again and again while ipcguard prepares the run)
// reaches the command. The kernel keeps one of each standard signal
// pending, and os/signal's queue is one bit per signal: a flood of one
// never crowded out another. (The run's channel holds 256.)
func TestFloodBeforeStart(t *testing.T) {
	t.Parallel()
	for _, n := range []int{0, 300} {
		// Were SIGTERM lost, sleep would exit 0 after its 30 s.
		o := run(t, nstest.HelperCmd("flood-early", strconv.Itoa(n), "sleep", "30"))
		if !o.ws.Signaled() || o.ws.Signal() != unix.SIGTERM {
			t.Errorf("%d SIGWINCH, then SIGTERM before the start: %s, want the command killed by SIGTERM", n, o)
		}
	}
}

// TestRawMergesStandard: a standard signal repeated before the run has
// taken it from its channel merges with it, as the kernel merges a
// pending one; a real-time signal queues, each one; once taken, the
// standard signal is handed on again.
func TestRawMergesStandard(t *testing.T) {
	sink := rawRun(t, 16, false)
	got := func(sent ...syscall.Signal) []os.Signal {
		t.Helper()
		if !installRaw() {
			t.Fatal("installRaw failed")
		}
		toThread(t, sent...)
		<-uninstallRaw() // all handed on
		var out []os.Signal
		for {
			select {
			case sig := <-sink:
				out = append(out, sig)
				continue
			default:
			}
			return out
		}
	}
	first := got(unix.SIGUSR1, unix.SIGUSR1, 40, 40, unix.SIGUSR1)
	if want := []os.Signal{unix.SIGUSR1, syscall.Signal(40), syscall.Signal(40)}; !slices.Equal(first, want) {
		t.Fatalf("got %v, want %v", first, want)
	}
	// Not taken yet: merged.
	if again := got(unix.SIGUSR1); len(again) != 0 {
		t.Fatalf("SIGUSR1 not taken yet, sent again: got %v, want it merged", again)
	}
	taken(unix.SIGUSR1)
	if again := got(unix.SIGUSR1); !slices.Equal(again, []os.Signal{unix.SIGUSR1}) {
		t.Fatalf("SIGUSR1 taken, sent again: got %v, want it handed on", again)
	}
	taken(unix.SIGUSR1)
}

// TestRawFloodWaits: more signals than the run's channel holds wait,
// in order, until it is read: a flood of a real-time signal (which never
// merges) does not crowd out the SIGTERM sent after it.
func TestRawFloodWaits(t *testing.T) {
	sink := rawRun(t, 8, true)
	const n = 100
	toThread(t, append(repeat(40, n), unix.SIGTERM)...)
	done := uninstallRaw()
	var got []os.Signal
	take := func(sig os.Signal) {
		taken(sig)
		got = append(got, sig)
	}
	for done != nil {
		select {
		case sig := <-sink:
			take(sig)
		case <-done:
			done = nil
		}
	}
	for len(sink) > 0 {
		take(<-sink)
	}
	if len(got) != n+1 || got[n] != unix.SIGTERM {
		t.Fatalf("got %d signals, last %v; want %d of signal 40, then SIGTERM", len(got), got[len(got)-1], n)
	}
	for _, sig := range got[:n] {
		if sig != syscall.Signal(40) {
			t.Fatalf("got %v among the signals 40", sig)
		}
	}
}

// rawRun skips without rawHandler, points the router at a new channel of
// size n for the test's life, and installs rawHandler (unless install is
// false: the caller installs it).
func rawRun(t *testing.T, n int, install bool) chan os.Signal {
	t.Helper()
	if !haveRaw {
		t.Skip("no rawHandler for this architecture: os/signal catches every signal")
	}
	sink := make(chan os.Signal, n)
	setRoute(sink, false)
	t.Cleanup(func() { setRoute(nil, false) })
	if install && !installRaw() {
		t.Fatal("installRaw failed")
	}
	return sink
}

// toThread sends sigs, in order, to the calling thread, which has them
// unblocked: each is handled on the way out of tgkill(2), before the next
// is sent (sent to the process, several pending at once would be taken
// lowest number first, signal(7)).
func toThread(t *testing.T, sigs ...syscall.Signal) {
	t.Helper()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	for _, sig := range sigs {
		if err := unix.Tgkill(os.Getpid(), unix.Gettid(), sig); err != nil {
			t.Fatal(err)
		}
	}
}

// repeat is n times sig.
func repeat(sig syscall.Signal, n int) []syscall.Signal {
	out := make([]syscall.Signal, n)
	for i := range out {
		out[i] = sig
	}
	return out
}
