package supervisor

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"unsafe"

	"github.com/ipcguard/ipcguard/internal/sigstart"
	"golang.org/x/sys/unix"
)

// Socket activation (sd_listen_fds(3)) hands a service its sockets as
// descriptors 3.. with LISTEN_FDS=N, LISTEN_FDNAMES=a:b, and
// LISTEN_PID=<the main process>: a process uses them only when LISTEN_PID
// is its own pid, so that its children, which inherit the environment,
// do not. Likewise sd_watchdog_enabled(3) honours WATCHDOG_USEC only in
// the process WATCHDOG_PID names. When these name ipcguard, the command
// must see its own pid there instead, and that pid exists only after the
// fork: the variable has to be set in the child, between fork and exec.
//
// Go's syscall.ForkExec runs no code of ours in the child, so the command
// is started through ipcguard's own executable (/proc/self/exe) as a
// trampoline: its package initialization (below) sets the variables to
// its pid, which the command keeps across exec, and executes the command.
// The trampoline holds the write end of a close-on-exec pipe: its
// closing (end of file, no bytes) tells Run that the command is running;
// an errno written there tells why the exec failed. Run therefore starts
// supervising exactly when it would have without the trampoline: signals
// caught meanwhile wait and are forwarded to the command itself.
//
// The cost, a second start of the Go runtime before the command's exec
// (about 1 ms), is paid only when one of the variables names ipcguard.
// Descriptors, LISTEN_FDS and LISTEN_FDNAMES reach the command untouched:
// the trampoline neither opens nor closes any but its pipe. When
// LISTEN_PID names another process, nothing is changed.

// pidVars are the variables rewritten to the command's pid when they
// hold ipcguard's.
var pidVars = []string{"LISTEN_PID", "WATCHDOG_PID"}

// pidfdIDVar accompanies LISTEN_PID since systemd 258 (sd_listen_fds(3)):
// the inode number of the main process's pidfd on pidfs. The trampoline
// sets it to its own, or removes it where pidfs is missing (the check is
// then skipped by sd_listen_fds, as without the variable).
const pidfdIDVar = "LISTEN_PIDFDID"

// trampolineArg0 marks a trampoline start: argv is
// trampolineArg0 FD NAMES MODE IGN PATH ARGV0 ARGS..., where FD is the
// pipe's write end, NAMES the comma-separated variables to set (may be
// empty), IGN the signals the command must start with ignored (a
// sigstart.Set in hex: those this process started with ignored), and
// MODE "-" or "seccomp". With "seccomp" the trampoline also installs
// the creation filter (seccomp_linux.go) and FD is a SOCK_SEQPACKET
// socket instead of a pipe: before the exec it sends one message, "S"
// with the listener's descriptor (SCM_RIGHTS), or "N" and the errno of
// the failure (the command then runs without the filter).
const trampolineArg0 = "ipcguard[exec]"

// trampolineSeccomp is the MODE of a trampoline that installs the filter.
const trampolineSeccomp = "seccomp"

func init() {
	if len(os.Args) >= 7 && os.Args[0] == trampolineArg0 {
		os.Exit(trampoline(os.Args[1:]))
	}
}

// trampoline sets the variables to this process's pid and executes the
// command; it returns only when that fails, with 127 after writing the
// errno to the pipe.
func trampoline(args []string) int {
	fd, err := strconv.Atoi(args[0])
	if err != nil || fd < 3 {
		fmt.Fprintln(os.Stderr, "ipcguard: internal error: bad trampoline descriptor")
		return 125
	}
	unix.CloseOnExec(fd)
	names := strings.Split(args[1], ",")
	mode, path, argv := args[2], args[4], args[5:]
	ignored, err := strconv.ParseUint(args[3], 16, 64)
	if err != nil {
		fmt.Fprintln(os.Stderr, "ipcguard: internal error: bad trampoline signal set")
		return 125
	}
	pid := strconv.Itoa(os.Getpid())
	env := os.Environ()
	if mode == trampolineSeccomp {
		// Package initialization runs on the main thread, locked to it:
		// the filter, which covers the calling thread only, is on the
		// thread that executes the command.
		sendListener(fd)
	}
	for _, name := range names {
		if name == "" {
			continue
		}
		if i := envIndex(env, name); i >= 0 {
			env[i] = name + "=" + pid
		}
		if name == "LISTEN_PID" {
			env = setPidfdID(env)
		}
	}
	startSignals(sigstart.Set(ignored))
	err = syscall.Exec(path, argv, env)
	if err == syscall.ENOEXEC {
		// A script without "#!": /bin/sh runs it, as in forkExecDirect.
		err = syscall.Exec(shell, append([]string{shell, path}, argv[1:]...), env)
	}
	var errno syscall.Errno
	if !errors.As(err, &errno) {
		errno = syscall.EINVAL
	}
	var b [4]byte
	binary.NativeEndian.PutUint32(b[:], uint32(errno))
	unix.Write(fd, b[:])
	return 127
}

// sendListener installs the creation filter and sends its listener, or
// why it could not, on socket fd.
func sendListener(fd int) {
	lfd, err := installCreationFilter()
	if err != nil {
		var errno syscall.Errno
		if !errors.As(err, &errno) {
			errno = syscall.ENOSYS
		}
		var b [5]byte
		b[0] = 'N'
		binary.NativeEndian.PutUint32(b[1:], uint32(errno))
		unix.Write(fd, b[:])
		return
	}
	unix.Sendmsg(fd, []byte{'S'}, unix.UnixRights(lfd), nil, 0)
	unix.Close(lfd)
}

// pidfsMagic is PID_FS_MAGIC (include/uapi/linux/magic.h): pidfds live on
// pidfs (Linux 6.9 and later), where each has an inode number unique to
// its process.
const pidfsMagic = 0x50494446

// setPidfdID sets LISTEN_PIDFDID, when env has it, to the pidfd inode
// number of this process, or removes it where that number is not unique.
func setPidfdID(env []string) []string {
	i := envIndex(env, pidfdIDVar)
	if i < 0 {
		return env
	}
	if fd, err := unix.PidfdOpen(os.Getpid(), 0); err == nil {
		var fs unix.Statfs_t
		var st unix.Stat_t
		ok := unix.Fstatfs(fd, &fs) == nil && fs.Type == pidfsMagic && unix.Fstat(fd, &st) == nil
		unix.Close(fd)
		if ok {
			env[i] = pidfdIDVar + "=" + strconv.FormatUint(st.Ino, 10)
			return env
		}
	}
	return append(env[:i], env[i+1:]...)
}

// selfPidVars returns the variables of pidVars that env sets to this
// process's pid.
func selfPidVars(env []string) []string {
	var names []string
	self := strconv.Itoa(os.Getpid())
	for _, name := range pidVars {
		if i := envIndex(env, name); i >= 0 && strings.TrimSpace(env[i][len(name)+1:]) == self {
			names = append(names, name)
		}
	}
	return names
}

// viaTrampoline describes a start through the trampoline.
type viaTrampoline struct {
	names   []string // variables to set to the command's pid
	seccomp bool     // install the creation filter

	// Set by forkExec with seccomp: the filter's listener (-1 when none),
	// or why the trampoline could not install it.
	listener  int
	filterErr error
}

// forkExec starts the command: directly, or through the trampoline when
// t is not nil, in which case it returns once the command itself is
// running (or failed to exec, with the exec's errno; the trampoline has
// then been reaped).
func forkExec(path string, args []string, attr *syscall.ProcAttr, t *viaTrampoline) (int, error) {
	if t == nil {
		return forkExecDirect(path, args, attr)
	}
	var p [2]int
	mode := "-"
	t.listener, t.filterErr = -1, nil
	if t.seccomp {
		mode = trampolineSeccomp
		sp, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return 0, &trampolineError{fmt.Errorf("socketpair: %w", err)}
		}
		p = sp
	} else if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		return 0, fmt.Errorf("trampoline pipe: %w", err)
	}
	r, w := p[0], p[1]
	defer unix.Close(r)
	// The write end must reach the trampoline at its own number, and
	// ForkExec can only place descriptors at 0..len(Files)-1, which
	// would disturb the activated ones from 3 on: clear its
	// close-on-exec instead. Run is the only code that forks meanwhile.
	if _, err := unix.FcntlInt(uintptr(w), unix.F_SETFD, 0); err != nil {
		unix.Close(w)
		return 0, fmt.Errorf("trampoline pipe: %w", err)
	}
	targv := append([]string{trampolineArg0, strconv.Itoa(w), strings.Join(t.names, ","), mode,
		strconv.FormatUint(uint64(startState.Ignored), 16), path}, args...)
	pid, err := syscall.ForkExec("/proc/self/exe", targv, attr)
	unix.Close(w)
	if err != nil {
		return 0, &trampolineError{err}
	}
	var b [4]byte
	n := 0
	if t.seccomp {
		n = t.readSeccomp(r, b[:])
	} else {
		for n < len(b) {
			m, err := unix.Read(r, b[n:])
			if err == unix.EINTR {
				continue
			}
			if err != nil || m == 0 {
				break
			}
			n += m
		}
	}
	if n == 0 {
		return pid, nil // end of file: the command was executed
	}
	if t.listener >= 0 {
		unix.Close(t.listener) // the command never ran
		t.listener = -1
	}
	var ws unix.WaitStatus
	for {
		if _, err := unix.Wait4(pid, &ws, 0, nil); err != unix.EINTR {
			break
		}
	}
	if n < len(b) {
		return 0, &trampolineError{fmt.Errorf("trampoline ended with %v", ws)}
	}
	return 0, syscall.Errno(binary.NativeEndian.Uint32(b[:]))
}

// readSeccomp reads the messages of a seccomp trampoline from socket r:
// the listener (or why there is none) into t, then an exec's errno into b
// (4 bytes), whose length it returns: 0 at the end of file (the command
// was executed).
func (t *viaTrampoline) readSeccomp(r int, b []byte) int {
	oob := make([]byte, unix.CmsgSpace(4))
	var msg [8]byte
	for {
		m, oobn, _, _, err := unix.Recvmsg(r, msg[:], oob, unix.MSG_CMSG_CLOEXEC)
		if err == unix.EINTR {
			continue
		}
		if err != nil || m == 0 {
			return 0
		}
		switch {
		case m == 1 && msg[0] == 'S':
			if cms, err := unix.ParseSocketControlMessage(oob[:oobn]); err == nil && len(cms) == 1 {
				if fds, err := unix.ParseUnixRights(&cms[0]); err == nil && len(fds) == 1 {
					t.listener = fds[0]
					continue
				}
			}
			t.filterErr = errors.New("the trampoline sent no listener")
		case m == 5 && msg[0] == 'N':
			t.filterErr = filterError(syscall.Errno(binary.NativeEndian.Uint32(msg[1:])))
		default:
			return copy(b, msg[:m])
		}
	}
}

// trampolineError is a failure of the trampoline itself (not of the
// command's exec): Run then starts the command directly.
type trampolineError struct{ err error }

func (e *trampolineError) Error() string {
	return "starting through " + trampolineArg0 + ": " + e.err.Error()
}
func (e *trampolineError) Unwrap() error { return e.err }

// startSignals gives the calling thread, just before it executes the
// command, the signal state the command must start with: ignored, the
// signals of ignored (those the supervisor started with ignored, whatever
// handler the Go runtime put here: execve resets handled ones to the
// default and keeps ignored ones), and the mask this process started with
// (see package sigstart). Nothing of the runtime runs after it but the
// exec, or a failed exec's exit.
func startSignals(ignored sigstart.Set) {
	ign := kernelSigaction{handler: 1} // SIG_IGN
	for n := 1; n <= 64; n++ {
		sig := syscall.Signal(n)
		if ignored.Has(sig) && sig != unix.SIGKILL && sig != unix.SIGSTOP {
			unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(n), uintptr(unsafe.Pointer(&ign)), 0, 8, 0, 0)
		}
	}
	restoreMask := setStartMask()
	_ = restoreMask // the exec replaces this process, or it exits
}
