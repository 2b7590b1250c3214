package supervisor

import (
	"os"
	"os/signal"
	"runtime"
	"sync"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Inherited SIG_IGN of SIGHUP and SIGINT: the Go runtime keeps these two
// ignored when the process started with them ignored (nohup), and Notify
// would replace that. Read at package initialization, before anyone calls
// Notify. Every other signal ignored at startup has already been given the
// runtime's handler before main runs, and the runtime keeps the original
// disposition out of reach: the command gets those with SIG_DFL.
var (
	hupIgnored = signal.Ignored(unix.SIGHUP)
	intIgnored = signal.Ignored(unix.SIGINT)
)

// forwarded lists the signals Run catches and forwards to the command:
// 1..31 but SIGKILL and SIGSTOP (uncatchable), SIGCHLD (it drives the
// reaper), SIGURG (the Go runtime sends it to its own threads for
// preemption and Notify cannot tell those from a user's) and SIGPROF (the
// runtime keeps it for its profiler and never delivers it to Notify);
// SIGHUP and SIGINT unless inherited ignored; and the real-time signals
// 35..64 (32..34 are reserved by the C libraries and the Go runtime).
func forwarded() []os.Signal {
	var sigs []os.Signal
	for n := 1; n <= 64; n++ {
		s := syscall.Signal(n)
		switch {
		case s == unix.SIGKILL, s == unix.SIGSTOP, s == unix.SIGCHLD, s == unix.SIGURG, s == unix.SIGPROF:
			continue
		case n >= 32 && n <= 34:
			continue
		case s == unix.SIGHUP && hupIgnored, s == unix.SIGINT && intIgnored:
			continue
		}
		sigs = append(sigs, s)
	}
	return sigs
}

// signals is what Run receives: forwardable signals on c, SIGCHLD on chld.
// chld has room for one: a pending SIGCHLD already promises a full reap, so
// dropping more loses nothing.
type signals struct {
	c    chan os.Signal
	chld chan os.Signal
}

// pending holds the catching that Prepare started ahead of Run.
var pending struct {
	mu    sync.Mutex
	sigs  chan *signals // nil: nothing prepared
	ready chan struct{} // closed once the signals are caught
}

// Prepare starts catching, in the background, the signals that Run
// forwards. The Go runtime installs a handler with one round trip to its
// signal thread per signal, a few milliseconds for the sixty or so Run
// catches: started early, that work overlaps with the caller's own
// preparation of the run. A signal that arrives once it is caught and
// before the command has started is forwarded to the command as soon as
// it has started, as if it had arrived a moment later. Call Prepare only
// when Run is to follow: until then, such signals wait.
func Prepare() {
	pending.mu.Lock()
	defer pending.mu.Unlock()
	if pending.sigs != nil {
		return
	}
	sigs, ready := make(chan *signals, 1), make(chan struct{})
	pending.sigs, pending.ready = sigs, ready
	go func() {
		sigs <- notify()
		close(ready)
	}()
}

// catch returns the signals Prepare caught, waiting for them if need be,
// or catches them now.
func catch() *signals {
	pending.mu.Lock()
	sigs := pending.sigs
	pending.sigs, pending.ready = nil, nil
	pending.mu.Unlock()
	if sigs != nil {
		return <-sigs
	}
	return notify()
}

func notify() *signals {
	s := &signals{c: make(chan os.Signal, 256), chld: make(chan os.Signal, 1)}
	signal.Notify(s.chld, unix.SIGCHLD)
	signal.Notify(s.c, forwarded()...)
	return s
}

// stop ends the delivery to s. The signals stay caught and are dropped
// from then on: a SIGTERM that arrives while the caller cleans up after the
// command must not kill it halfway.
func (s *signals) stop() {
	dropOnce.Do(func() {
		drop := make(chan os.Signal, 16)
		signal.Notify(drop, forwarded()...)
		go func() {
			for range drop {
			}
		}()
	})
	signal.Stop(s.c)
	signal.Stop(s.chld)
}

var dropOnce sync.Once

// kernelSigaction is struct sigaction as rt_sigaction(2) takes it on Linux
// (handler, flags, restorer, mask). The runtime's handler is saved and
// restored as an opaque value, so only the size has to be large enough.
type kernelSigaction struct {
	handler  uintptr
	flags    uint64
	restorer uintptr
	mask     uint64
}

// setDefault sets the disposition of sig to SIG_DFL with a raw
// rt_sigaction, behind the Go runtime's back (signal.Reset keeps the
// runtime's handler for SIGQUIT, SIGABRT, SIGSEGV...), and returns the
// previous one for restoreAction.
func setDefault(sig syscall.Signal) (kernelSigaction, error) {
	var dfl, old kernelSigaction // handler 0 is SIG_DFL
	_, _, e := unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(sig),
		uintptr(unsafe.Pointer(&dfl)), uintptr(unsafe.Pointer(&old)), 8, 0, 0)
	if e != 0 {
		return old, e
	}
	return old, nil
}

func restoreAction(sig syscall.Signal, act kernelSigaction) {
	unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(sig), uintptr(unsafe.Pointer(&act)), 0, 8, 0, 0)
}

// raiseDefault delivers sig to the calling thread with its default action:
// the caller must have locked the OS thread. With the signal unblocked on
// this thread and directed at it (tgkill), the default action (stop or
// death) takes effect before the syscall returns: a stop holds the
// thread until the process is continued.
func raiseDefault(sig syscall.Signal) {
	var set, old unix.Sigset_t
	set.Val[(sig-1)/64] |= 1 << ((uint(sig) - 1) % 64)
	unix.PthreadSigmask(unix.SIG_UNBLOCK, &set, &old)
	unix.Tgkill(unix.Getpid(), unix.Gettid(), sig)
	unix.PthreadSigmask(unix.SIG_SETMASK, &old, nil)
}

// stopSelf stops this process with the job-control signal sig (as the
// kernel would have stopped a process without a handler), and returns once
// the process is continued. The kernel discards SIGTSTP, SIGTTIN and
// SIGTTOU in an orphaned process group; then stopSelf returns at once.
func stopSelf(sig syscall.Signal) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		old, err := setDefault(sig)
		if err != nil {
			unix.Kill(unix.Getpid(), unix.SIGSTOP)
			return
		}
		raiseDefault(sig)
		restoreAction(sig, old)
	}()
	<-done
}
