package supervisor

import (
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/ipcguard/ipcguard/internal/nstest"
	"golang.org/x/sys/unix"
)

// TestRawOverflowKeepsStandard: a flood of a real-time signal larger than
// the pipe of rawHandler holds (64 KiB, 16384 numbers) while the run does
// not read its channel, then a SIGTERM: the kernel keeps a standard signal
// pending whatever happened to the real-time ones before it (a full
// real-time queue fails sigqueue(3), it never drops a standard signal), so
// the SIGTERM must reach the run. Real-time signals past the pipe's room
// may be dropped, as the kernel refuses them past RLIMIT_SIGPENDING.
func TestRawOverflowKeepsStandard(t *testing.T) {
	sink := rawRun(t, 8, true)
	const n = 17000 // more than the pipe and the channel hold
	toThread(t, append(repeat(40, n), unix.SIGTERM)...)

	// The run reads its channel from now on.
	got := map[os.Signal]int{}
	collected := make(chan map[os.Signal]int)
	stop := make(chan struct{})
	go func() {
		for {
			select {
			case sig := <-sink:
				taken(sig)
				got[sig]++
			case <-stop:
				for len(sink) > 0 {
					sig := <-sink
					taken(sig)
					got[sig]++
				}
				collected <- got
				return
			}
		}
	}()
	<-uninstallRaw() // closed at once when its marker found the pipe full
	// Nothing writes to the pipe any more but this marker: once readRaw
	// reaches it, every number before it has been handed on.
	var zero [4]byte
	for {
		if _, err := unix.Write(int(rawWriteFd), zero[:]); err == nil {
			break
		}
		time.Sleep(time.Millisecond)
	}
	<-raw.drained
	close(stop)
	got = <-collected
	if got[unix.SIGTERM] != 1 {
		t.Fatalf("%d signals 40 then SIGTERM, the run's channel not read meanwhile: got %d SIGTERM (and %d of signal 40), want 1",
			n, got[unix.SIGTERM], got[syscall.Signal(40)])
	}
}

func init() { helpers["two-runs"] = twoRunsHelper }

// twoRunsHelper runs `true` under Run, and, once it is reaped (Exited),
// sends itself a SIGTERM that the run's channel gets but nobody takes
// (the run is over: it is dropped). It then runs args under a second Run,
// sends itself a SIGTERM once the command started, and ends like it.
func twoRunsHelper(args []string) int {
	first, err := Run(Options{Path: "/bin/true", Args: []string{"true"},
		Exited: func(unix.WaitStatus) {
			unix.Kill(os.Getpid(), unix.SIGTERM)
			for {
				router.mu.Lock()
				n := len(router.sink)
				router.mu.Unlock()
				if n > 0 {
					return
				}
				time.Sleep(time.Millisecond)
			}
		}})
	if err != nil {
		return execFailure(err)
	}
	if !first.Status.Exited() || first.Status.ExitStatus() != 0 {
		return 124
	}
	path, err := LookPath(args[0], nil)
	if err != nil {
		return execFailure(err)
	}
	res, err := Run(Options{Path: path, Args: args,
		Started: func(int, time.Time) { unix.Kill(os.Getpid(), unix.SIGTERM) }})
	if err != nil {
		return execFailure(err)
	}
	Exit(res.Status)
	return 125
}

// TestSecondRunGetsSignal: a signal that reached the run's channel after
// the command was reaped, and so was never taken, does not keep the same
// signal from reaching the command of a later Run in the same process
// (package supervisor is a library: nothing says a process runs once).
func TestSecondRunGetsSignal(t *testing.T) {
	t.Parallel()
	// Were the second SIGTERM lost, sleep would exit 0 after its 30 s.
	o := run(t, nstest.HelperCmd("two-runs", "sleep", "30"))
	if !o.ws.Signaled() || o.ws.Signal() != unix.SIGTERM {
		t.Errorf("a SIGTERM left in the first run's channel, then one sent during a second run: %s, want its command killed by SIGTERM", o)
	}
}
