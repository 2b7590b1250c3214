package supervisor

import (
	"os"
	"os/signal"
	"runtime"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestRawHandler: rawHandler hands the signals sent to this process on in
// the order they were sent; a fault is still the runtime's (a nil
// dereference panics, it does not re-run forever); once uninstalled,
// os/signal catches the signals again.
func TestRawHandler(t *testing.T) {
	if !haveRaw {
		t.Skip("no rawHandler for this architecture: os/signal catches every signal")
	}
	sink := make(chan os.Signal, 16)
	router.mu.Lock()
	router.sink, router.drop = sink, false
	router.mu.Unlock()
	defer func() {
		router.mu.Lock()
		router.sink = nil
		router.mu.Unlock()
	}()
	if !installRaw() {
		t.Fatal("installRaw failed")
	}
	uninstalled := false
	defer func() {
		if !uninstalled {
			uninstallRaw()
		}
	}()

	// Each is sent to this thread, which has them unblocked: it is handled
	// on the way out of tgkill(2), before the next is sent. (Sent to the
	// process, several pending at once would be taken lowest number
	// first, signal(7).)
	sent := []syscall.Signal{unix.SIGUSR2, 40, unix.SIGWINCH, unix.SIGUSR1, 35, unix.SIGUSR2}
	runtime.LockOSThread()
	for _, sig := range sent {
		if err := unix.Tgkill(os.Getpid(), unix.Gettid(), sig); err != nil {
			t.Fatal(err)
		}
	}
	runtime.UnlockOSThread()
	for i, want := range sent {
		select {
		case got := <-sink:
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

	uninstallRaw()
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
