package supervisor

import (
	"encoding/binary"
	"os"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Catching the forwarded signals without os/signal.
//
// os/signal enables each signal with a round trip to the Go runtime's
// signal thread (runtime.sigenable: ensureSigM, enableSigChan,
// maskUpdatedChan), about 25 µs and four context switches each: 1 to 2 ms
// for the fifty or so signals a run forwards, the largest part of
// ipcguard's start-up (make bench, P1). Where rawHandler exists
// (rawsig_linux_amd64.s) it is installed instead, with rt_sigaction(2)
// behind the runtime's back, for every forwarded signal but those of
// osOnly and the fatal ones of isFatalEarly: one system call each. The handler writes the
// signal's number to a pipe; readRaw reads the numbers in the order the
// handler ran and hands them on as route does. The runtime keeps SIGPIPE
// (it raises it itself when ipcguard writes to a closed stdout or stderr,
// runtime.sigpipe, and must find it caught), the signals of faults (see
// rawSet), SIGCHLD, SIGURG, SIGPROF and the signals it answers with a
// goroutine dump.
//
// The command gets every caught signal's default handling back from
// execve(2), which resets caught signals. Between the fork and the exec
// the child resets only the signals the runtime installed a handler for
// at start (runtime.clearSignalHandlers, by handlingSig, which
// rt_sigaction behind its back leaves as it was): not SIGTSTP, SIGTTIN,
// SIGTTOU and SIGCONT, nor SIGHUP and SIGINT ignored at start. One of
// those that reaches the child in that moment runs rawHandler there (the
// child shares this process's memory until the exec, and has the pipe)
// and is forwarded to the command once it runs, instead of acting on the
// child at once.

// Flags of struct sigaction (asm-generic/signal-defs.h, x86 signal.h).
const (
	saSiginfo  = 0x4
	saRestorer = 0x04000000
	saOnstack  = 0x08000000
	saRestart  = 0x10000000
)

var raw struct {
	mu      sync.Mutex
	started bool                // the pipe and its reader exist
	on      []syscall.Signal    // the signals rawHandler is installed for
	old     [65]kernelSigaction // the runtime's actions it replaced
	drained chan struct{}       // readRaw got drainRaw's marker
	catcher chan func()         // runs functions on rawCatcher's thread
	blocked unix.Sigset_t       // the signals of on unblocked there
}

// rawSet is what rawHandler catches: notified without SIGPIPE and the
// signals a fault raises (SIGILL, SIGBUS, SIGFPE, SIGSEGV, and SIGSTKFLT,
// which the runtime treats alike). The runtime must keep those: it turns
// a fault into a panic or a crash report, and os/signal delivers only the
// ones sent with kill(2). A handler that just returns would re-run the
// faulting instruction forever.
var rawSet = sync.OnceValue(func() []syscall.Signal {
	var sigs []syscall.Signal
	for _, s := range notified() {
		switch s {
		case unix.SIGPIPE, unix.SIGILL, unix.SIGBUS, unix.SIGFPE, unix.SIGSEGV, unix.SIGSTKFLT:
			continue
		}
		sigs = append(sigs, s.(syscall.Signal))
	}
	return sigs
})

// osOnly is notified without rawSet: what os/signal still catches while
// rawHandler catches the rest.
var osOnly = sync.OnceValue(func() []os.Signal {
	var sigs []os.Signal
	for _, s := range notified() {
		if !slices.Contains(rawSet(), s.(syscall.Signal)) {
			sigs = append(sigs, s)
		}
	}
	return sigs
})

// rawOn reports whether rawHandler catches the forwarded signals now.
func rawOn() bool {
	raw.mu.Lock()
	defer raw.mu.Unlock()
	return len(raw.on) > 0
}

// rawAction is the struct sigaction that installs rawHandler: every signal
// blocked while it runs, interrupted system calls restarted, on the
// alternate signal stack.
func rawAction() kernelSigaction {
	h, r := rawAddrs()
	return kernelSigaction{handler: h, flags: saSiginfo | saOnstack | saRestart | saRestorer, restorer: r, mask: ^uint64(0)}
}

// installRaw installs rawHandler for rawSet and reports whether it did;
// false leaves every action as it was (no handler for this architecture,
// no pipe).
func installRaw() bool {
	if !haveRaw {
		return false
	}
	raw.mu.Lock()
	defer raw.mu.Unlock()
	if len(raw.on) > 0 {
		return true
	}
	if !raw.started {
		var p [2]int
		if err := unix.Pipe2(p[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
			return false
		}
		// The write end stays open for the life of the process: a
		// handler may run at any moment once installed.
		rawWriteFd = int64(p[1])
		raw.drained = make(chan struct{})
		raw.started = true
		go readRaw(os.NewFile(uintptr(p[0]), "signals"))
	}
	act := rawAction()
	for _, sig := range rawSet() {
		_, _, e := unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(sig),
			uintptr(unsafe.Pointer(&act)), uintptr(unsafe.Pointer(&raw.old[sig])), 8, 0, 0)
		if e != 0 {
			restoreRawLocked()
			return false
		}
		raw.on = append(raw.on, sig)
	}
	unblockRawLocked()
	return true
}

// unblockRawLocked unblocks, on the thread of rawCatcher, the signals of
// raw.on that this process started with blocked (raw.mu held). The
// runtime keeps them blocked on every thread (runtime.minitSignalMask:
// each thread starts with the mask the process started with, minus what
// the runtime must get), so the kernel would leave them pending on the
// process and rawHandler would never run for them; os/signal unblocks
// what it catches on a thread of its own (runtime.ensureSigM) for the
// same reason. A thread that forks the command sets its own mask
// (setStartMask): the command still starts with them blocked.
func unblockRawLocked() {
	var blocked []syscall.Signal
	for _, sig := range raw.on {
		if startState.Blocked.Has(sig) {
			blocked = append(blocked, sig)
		}
	}
	set := sigset(blocked...)
	if set == (unix.Sigset_t{}) {
		return
	}
	if raw.catcher == nil {
		raw.catcher = make(chan func())
		go rawCatcher(raw.catcher)
	}
	raw.blocked = set
	onCatcher(func() { unix.PthreadSigmask(unix.SIG_UNBLOCK, &set, nil) })
}

// rawCatcher runs the functions sent on c on one thread of its own, which
// it keeps: the thread where the signals unblockRawLocked unblocked are
// delivered.
func rawCatcher(c chan func()) {
	runtime.LockOSThread()
	for f := range c {
		f()
	}
}

// onCatcher runs f on rawCatcher's thread and returns when it is done
// (raw.mu held).
func onCatcher(f func()) {
	done := make(chan struct{})
	raw.catcher <- func() {
		f()
		close(done)
	}
	<-done
}

// restoreRawLocked gives the runtime its actions back (raw.mu held). The
// signals started with blocked are blocked again first: once the
// runtime's handlers are back, they stay pending, as they did before.
func restoreRawLocked() {
	if set := raw.blocked; set != (unix.Sigset_t{}) {
		raw.blocked = unix.Sigset_t{}
		onCatcher(func() { unix.PthreadSigmask(unix.SIG_BLOCK, &set, nil) })
	}
	for _, sig := range raw.on {
		restoreAction(sig, raw.old[sig])
	}
	raw.on = nil
}

// uninstallRaw gives the runtime back the signals installRaw took. It
// returns a channel that is closed once every number the handler wrote
// until then has been given to handOn (nil when nothing was installed):
// the caller must keep taking from the run's channel until then.
func uninstallRaw() <-chan struct{} {
	raw.mu.Lock()
	if len(raw.on) == 0 {
		raw.mu.Unlock()
		return nil
	}
	restoreRawLocked()
	raw.mu.Unlock()
	// The pipe is a queue: once the reader meets this marker (0 is no
	// signal), it has handed on everything written before it.
	done := make(chan struct{})
	var zero [4]byte
	if _, err := unix.Write(int(rawWriteFd), zero[:]); err != nil {
		close(done)
		return done
	}
	go func() {
		<-raw.drained
		close(done)
	}()
	return done
}

// rawReinstall installs rawHandler again for sigs, those of rawSet that
// ignoreForFork set to SIG_IGN.
func rawReinstall(sigs []syscall.Signal) {
	act := rawAction()
	for _, sig := range sigs {
		unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(sig), uintptr(unsafe.Pointer(&act)), 0, 8, 0, 0)
	}
}

// isRaw reports whether rawHandler catches sig now.
func isRaw(sig syscall.Signal) bool {
	raw.mu.Lock()
	defer raw.mu.Unlock()
	return slices.Contains(raw.on, sig)
}

// readRaw hands on the numbers rawHandler writes to f, in the order it
// wrote them (handOn): to the run's channel while a run has one, dropped
// once the run is over. While the channel is full they wait in the pipe;
// once the pipe is full (64 KiB, 16384 signals, pipe(7)) the handler
// drops real-time signals and marks standard ones in rawOverflow, which
// readRaw hands on after each read (takeOverflow): later than the numbers
// read before them, as the kernel, too, delivers the pending standard
// signals of a process before its real-time ones (signal(7)).
func readRaw(f *os.File) {
	var b [256]byte // a multiple of 4: every write is 4 bytes, atomic
	for {
		n, err := f.Read(b[:])
		if err != nil {
			return
		}
		for i := 0; i+4 <= n; i += 4 {
			sig := syscall.Signal(binary.NativeEndian.Uint32(b[i:]))
			switch {
			case sig == 0:
				takeOverflow()
				raw.drained <- struct{}{}
			case sig == rawWake:
			default:
				handOn(sig)
			}
		}
		takeOverflow()
	}
}

// rawWake is the word rawHandler writes after marking a standard signal
// in rawOverflow: no signal, it only makes readRaw read again.
const rawWake = syscall.Signal(0xffffffff)

// takeOverflow hands on the standard signals rawHandler marked in
// rawOverflow, lowest number first.
func takeOverflow() {
	bits := atomic.SwapUint32(&rawOverflow, 0)
	for n := 1; bits != 0; n++ {
		if bits&1 != 0 {
			handOn(syscall.Signal(n))
		}
		bits >>= 1
	}
}
