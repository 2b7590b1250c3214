package supervisor

import (
	"os"
	"os/signal"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"

	"github.com/ipcguard/ipcguard/internal/sigstart"
	"golang.org/x/sys/unix"
)

// startState is the signal mask and the ignored signals this process
// started with (see package sigstart): the command gets them back.
var startState = sigstart.Start()

// router handles the signals the Go runtime answers with a goroutine dump
// and exit status 2 until os/signal catches them: SIGQUIT, SIGABRT,
// SIGTRAP and SIGSYS (runtime/sigtab_linux_generic.go: _SigThrow;
// isFatalEarly). Package sigstart catches them from its initialization
// on; route decides: before a run is prepared, such a signal ends this
// process as its default action would; from Prepare on, it is forwarded
// like every other signal; once the run is over, it is dropped.
var router struct {
	mu   sync.Mutex
	c    chan os.Signal // where os/signal delivers them (sigstart.Fatal)
	sink chan os.Signal // the run's forwarding channel; nil before Prepare
	drop bool           // the run is over: drop
	// changed is closed, and made anew, when sink or drop change
	// (setRoute): it wakes a handOn waiting for room in the old sink.
	changed chan struct{}
}

// setRoute points the router at sink (nil: none) and drop. The marks of
// queued were the old sink's: what it still holds is never taken (the run
// is over, or was called off), and a signal handed on from now on queues
// anew.
func setRoute(sink chan os.Signal, drop bool) {
	router.mu.Lock()
	defer router.mu.Unlock()
	router.sink, router.drop = sink, drop
	queued.Store(0)
	if router.changed != nil {
		close(router.changed)
	}
	router.changed = make(chan struct{})
}

// queued has bit n-1 set while the standard signal n (1..31) that handOn
// gave the run's channel has not been taken from it (taken; setRoute
// clears every bit when the channel changes): a
// repeat meanwhile merges with it, as the kernel merges a pending
// standard signal with itself (signal(7)), so that a flood of one signal
// never crowds another out of the channel. Real-time signals queue, each
// one, as the kernel queues them.
var queued atomic.Uint32

// handOn gives sig to the run's channel in the order handOn is called,
// waiting while the channel is full (the callers' own queues, the pipe of
// rawHandler and os/signal's, hold what comes meanwhile). Once the run is
// over, sig is dropped; with no run's channel (none yet, or the run was
// called off meanwhile: Unprepare) it is dropped too, and handled is
// false, for route to handle it as with no run.
func handOn(sig os.Signal) (handled bool) {
	bit := standardBit(sig)
	if bit != 0 && queued.Or(bit)&bit != 0 {
		return true
	}
	for {
		router.mu.Lock()
		sink, drop, changed := router.sink, router.drop, router.changed
		router.mu.Unlock()
		if sink == nil || drop {
			queued.And(^bit)
			return drop
		}
		select {
		case sink <- sig:
			return true
		case <-changed:
		}
	}
}

// taken tells handOn that sig left the run's channel: a repeat of it is
// queued again. Every reader of the channel calls it.
func taken(sig os.Signal) { queued.And(^standardBit(sig)) }

// standardBit is sig's bit in queued: bit n-1 for a standard signal n
// (1..31), 0 for a real-time one.
func standardBit(sig os.Signal) uint32 {
	if n, ok := sig.(syscall.Signal); ok && n >= 1 && n <= 31 {
		return 1 << (n - 1)
	}
	return 0
}

// sigset is the kernel signal set (rt_sigprocmask(2)) of sigs.
func sigset(sigs ...syscall.Signal) unix.Sigset_t {
	var set unix.Sigset_t
	for _, sig := range sigs {
		set.Val[(sig-1)/64] |= 1 << ((uint(sig) - 1) % 64)
	}
	return set
}

func init() {
	_, router.c = sigstart.Fatal()
	go route()
}

func route() {
	for sig := range router.c {
		router.mu.Lock()
		sink, drop := router.sink, router.drop
		router.mu.Unlock()
		switch {
		case drop:
		case sink != nil && handOn(sig):
		case startState.Ignored.Has(sig.(syscall.Signal)):
			// This process started with it ignored: so does the signal.
		default:
			dieFrom(sig.(syscall.Signal))
		}
	}
}

// isFatalEarly reports whether sig is one of the signals router handles.
func isFatalEarly(sig syscall.Signal) bool {
	return sig == unix.SIGQUIT || sig == unix.SIGABRT || sig == unix.SIGTRAP || sig == unix.SIGSYS
}

// forwarded lists the signals Run catches and forwards to the command:
// 1..31 but SIGKILL and SIGSTOP (uncatchable), SIGCHLD (it drives the
// reaper), SIGURG (the Go runtime sends it to its own threads for
// preemption and Notify cannot tell those from a user's) and SIGPROF (the
// runtime keeps it for its profiler and never delivers it to Notify), and
// the real-time signals 35..64 (32..34 are reserved by the C libraries
// and the Go runtime). Signals ignored when this process started are
// forwarded too: the command inherits them ignored, and gets them only if
// it installed a handler, as it would have without ipcguard. The signals
// of isFatalEarly are in the list but reach Run through route.
// The lists are made once: Run reads them at its start and at its end.
var forwarded = sync.OnceValue(func() []os.Signal {
	var sigs []os.Signal
	for n := 1; n <= 64; n++ {
		s := syscall.Signal(n)
		switch {
		case s == unix.SIGKILL, s == unix.SIGSTOP, s == unix.SIGCHLD, s == unix.SIGURG, s == unix.SIGPROF:
			continue
		case n >= 32 && n <= 34:
			continue
		}
		sigs = append(sigs, s)
	}
	return sigs
})

// notified is forwarded without those of isFatalEarly: what notify asks
// os/signal to deliver on signals.c.
var notified = sync.OnceValue(func() []os.Signal {
	var sigs []os.Signal
	for _, s := range forwarded() {
		if !isFatalEarly(s.(syscall.Signal)) {
			sigs = append(sigs, s)
		}
	}
	return sigs
})

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
	sigs  *signals      // nil: nothing prepared
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
	s, ready := newSignals(), make(chan struct{})
	pending.sigs, pending.ready = s, ready
	go func() {
		s.notify()
		close(ready)
	}()
}

// catch returns the signals Prepare caught, waiting for them if need be,
// or catches them now.
func catch() *signals {
	pending.mu.Lock()
	s, ready := pending.sigs, pending.ready
	pending.sigs, pending.ready = nil, nil
	pending.mu.Unlock()
	if s != nil {
		<-ready
		return s
	}
	s = newSignals()
	s.notify()
	return s
}

// Unprepare undoes a Prepare that no Run followed (the command line asked
// for something else, or was wrong): the signals are handled as they were
// before it, and each one caught meanwhile is raised again, to meet that
// handling as if it had arrived a moment later, before Unprepare returns
// (raiseAgain). Call it as soon as it is clear that no run follows,
// before anything that may block (a message to a full pipe): until then,
// signals wait. Without a pending Prepare it does nothing.
func Unprepare() {
	pending.mu.Lock()
	s, ready := pending.sigs, pending.ready
	pending.sigs, pending.ready = nil, nil
	pending.mu.Unlock()
	if s == nil {
		return
	}
	<-ready
	// What rawHandler wrote before it was uninstalled reaches s.c (the
	// reader may be waiting for room in it) before drained is closed.
	var again []syscall.Signal
	take := func(sig os.Signal) {
		taken(sig)
		again = append(again, sig.(syscall.Signal))
	}
	for drained := uninstallRaw(); drained != nil; {
		select {
		case sig := <-s.c:
			take(sig)
		case <-drained:
			drained = nil
		}
	}
	setRoute(nil, false)
	signal.Stop(s.c)
	signal.Stop(s.chld)
	for len(s.c) > 0 {
		take(<-s.c)
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	for _, sig := range again {
		raiseAgain(sig)
	}
}

// raiseAgain raises sig, caught for a run that does not follow, again, so
// that it has met the handling it has now when raiseAgain returns: a kill(2)
// of this process may be delivered on another thread after the caller has
// exited. The caller must have locked the OS thread. A signal this
// process started with blocked is blocked on every thread: it stays
// pending, as it would have. Those of isFatalEarly are handled as route
// handles them with no run (route would get them on its own goroutine,
// later).
func raiseAgain(sig syscall.Signal) {
	switch {
	case isFatalEarly(sig):
		if !startState.Ignored.Has(sig) {
			dieFrom(sig)
		}
	case startState.Blocked.Has(sig):
		unix.Kill(unix.Getpid(), sig)
	default:
		// Directed at this thread, which does not block it, it is
		// delivered before tgkill(2) returns.
		unix.Tgkill(unix.Getpid(), unix.Gettid(), sig)
	}
}

// newSignals makes the channels of a run and routes isFatalEarly's
// signals to it.
func newSignals() *signals {
	s := &signals{c: make(chan os.Signal, 256), chld: make(chan os.Signal, 1)}
	setRoute(s.c, false)
	return s
}

func (s *signals) notify() {
	signal.Notify(s.chld, unix.SIGCHLD)
	if installRaw() {
		signal.Notify(s.c, osOnly()...)
		return
	}
	signal.Notify(s.c, notified()...)
}

// osNotified is what os/signal delivers on signals.c: notified, or osOnly
// while rawHandler catches the others (rawsig_linux.go).
func osNotified() []os.Signal {
	if rawOn() {
		return osOnly()
	}
	return notified()
}

// stop ends the delivery to s. The signals stay caught and are dropped
// from then on: a SIGTERM that arrives while the caller cleans up after the
// command must not kill it halfway.
func (s *signals) stop() {
	dropOnce.Do(func() {
		drop := make(chan os.Signal, 16)
		signal.Notify(drop, osNotified()...)
		go func() {
			for range drop {
			}
		}()
	})
	setRoute(nil, true)
	// signal.Stop waits for os/signal's delivery to go idle
	// (runtime.signalWaitUntilIdle), and for SIGCHLD, no longer wanted,
	// for a round trip to the runtime's signal thread: a third of a
	// millisecond the end of every run would wait for. Nothing reads the
	// two channels any more, and a full one drops what os/signal sends
	// it: they are released meanwhile.
	go func() {
		signal.Stop(s.c)
		signal.Stop(s.chld)
	}()
}

var dropOnce sync.Once

// inheritIgnored lists the signals that this process started with ignored
// and that the command can inherit ignored: os/signal can set SIG_IGN for
// them (ignoreForFork). Not SIGCHLD (this process would lose its children's
// exit statuses while it is ignored), SIGPROF (the runtime keeps it), nor
// the signals os/signal cannot ignore (SIGILL, SIGTRAP, SIGBUS, SIGFPE,
// SIGSEGV, SIGSTKFLT, SIGSYS): those reach the command with their default
// action.
func inheritIgnored() []syscall.Signal {
	var sigs []syscall.Signal
	for n := 1; n <= 64; n++ {
		s := syscall.Signal(n)
		if !startState.Ignored.Has(s) {
			continue
		}
		switch s {
		case unix.SIGKILL, unix.SIGSTOP, unix.SIGCHLD, unix.SIGPROF,
			unix.SIGILL, unix.SIGTRAP, unix.SIGBUS, unix.SIGFPE, unix.SIGSEGV, unix.SIGSTKFLT, unix.SIGSYS:
			continue
		}
		if n >= 32 && n <= 34 {
			continue
		}
		sigs = append(sigs, s)
	}
	return sigs
}

// ignoreForFork sets SIG_IGN for sigs, so that a child forked now inherits
// them ignored (the runtime resets every signal it handles to SIG_DFL in
// the child: syscall.forkAndExecInChild, runtime.clearSignalHandlers), and
// returns what undoes it. A signal of sigs that arrives meanwhile is
// discarded: the command, which is not running yet, would have ignored it
// too.
func (s *signals) ignoreForFork(sigs []syscall.Signal) (undo func()) {
	if len(sigs) == 0 {
		return func() {}
	}
	var raws []syscall.Signal
	for _, sig := range sigs {
		if isRaw(sig) {
			// The runtime sets SIG_IGN and forgets its handler, so
			// that the child keeps the signal ignored.
			raws = append(raws, sig)
		}
		signal.Ignore(sig)
	}
	return func() {
		rawReinstall(raws)
		for _, sig := range sigs {
			switch {
			case slices.Contains(raws, sig): // reinstalled above
			case isFatalEarly(sig):
				signal.Notify(router.c, sig)
			case sig == unix.SIGURG:
				// Give the runtime its handler back (for preemption);
				// nothing is to be delivered.
				c := make(chan os.Signal, 1)
				signal.Notify(c, sig)
				signal.Stop(c)
			default:
				signal.Notify(s.c, sig)
			}
		}
	}
}

// setStartMask sets the calling thread's signal mask to the one this
// process started with, and returns what restores the previous one. The
// caller must have locked the OS thread: a child forked from this thread
// execs with this mask (syscall.forkAndExecInChild restores the forking
// thread's mask in the child).
func setStartMask() (restore func()) {
	var set, old unix.Sigset_t
	set.Val[0] = uint64(startState.Blocked)
	unix.RawSyscall6(unix.SYS_RT_SIGPROCMASK, unix.SIG_SETMASK, uintptr(unsafe.Pointer(&set)), uintptr(unsafe.Pointer(&old)), 8, 0, 0)
	return func() {
		unix.RawSyscall6(unix.SYS_RT_SIGPROCMASK, unix.SIG_SETMASK, uintptr(unsafe.Pointer(&old)), 0, 8, 0, 0)
	}
}

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
	set, old := sigset(sig), unix.Sigset_t{}
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
