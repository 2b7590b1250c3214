package nstest

import (
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// builtinHelpers are helper commands every test binary that calls Main has.
var builtinHelpers = map[string]func(args []string) int{
	"ipc": ipcHelper,
}

// IPCCmd returns a command running the "ipc" helper: a small step
// interpreter that creates and uses IPC objects, then exits, raises a
// signal, spawns a holder or waits. Steps, run in order:
//
//	out=PATH            append "TYPE ID" for each object created below to PATH
//	shm[:key=K][:size=N][:attach]   create (or open) a segment; attach keeps it mapped
//	sem[:key=K][:n=N][:op]          create (or open) a set; op does semop +1 on each
//	msg[:key=K][:send][:recv]       create (or open) a queue; send/recv one message
//	pshm:name=N[:size=S][:open][:map][:hold][:unlink][:mode=M]   POSIX shared memory in ShmDir
//	psem:name=N[:open][:unlink][:mode=M]                          a named semaphore, as glibc makes it
//	pmsg:name=N[:open][:send][:notify][:unlink][:mode=M]          a message queue (mq_open)
//	ready=PATH          create PATH holding this process's pid (a readiness mark)
//	await=PATH          wait (up to a minute) until PATH exists
//	sleep=DURATION      sleep
//	wait                sleep until killed
//	exit=N              exit with status N
//	raise=SIG           die from signal SIG (number or name without SIG)
//	spawn{ STEPS... }   start a child running STEPS and go on without waiting
//	spawn-setsid{ ... } the same, the child in a new session
//	notify=, notify-fd=, notify-barrier, activated=   see systemdStep
//
// Keys are decimal or 0x hex; without key the object is IPC_PRIVATE. The
// POSIX steps create unless open or unlink is given (see posixObject); a
// shm object's descriptor is closed after map unless hold is given, a
// queue's stays open.
func IPCCmd(steps ...string) *exec.Cmd { return HelperCmd("ipc", steps...) }

func ipcHelper(args []string) int {
	h := &helper{}
	if err := h.run(args); err != nil {
		fmt.Fprintf(os.Stderr, "ipc helper: %v\n", err)
		return 99
	}
	return 0
}

type helper struct {
	out string
}

func (h *helper) record(typ string, id int) error {
	if h.out == "" {
		return nil
	}
	f, err := os.OpenFile(h.out, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(f, "%s %d\n", typ, id)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func (h *helper) run(args []string) error {
	for i := 0; i < len(args); i++ {
		step := args[i]
		name, val, _ := strings.Cut(step, "=")
		switch {
		case strings.HasPrefix(step, "spawn{") || strings.HasPrefix(step, "spawn-setsid{"):
			end, err := closing(args, i)
			if err != nil {
				return err
			}
			cmd := IPCCmd(args[i+1 : end]...)
			cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
			if strings.HasPrefix(step, "spawn-setsid") {
				cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
			}
			if err := cmd.Start(); err != nil {
				return err
			}
			i = end
		case name == "out":
			h.out = val
		case name == "ready":
			// Atomically: whoever sees the file sees the pid in it.
			tmp := val + ".tmp"
			if err := os.WriteFile(tmp, []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
				return err
			}
			if err := os.Rename(tmp, val); err != nil {
				return err
			}
		case name == "await":
			deadline := time.Now().Add(time.Minute)
			for {
				if _, err := os.Stat(val); err == nil {
					break
				}
				if time.Now().After(deadline) {
					return fmt.Errorf("await %s: timed out", val)
				}
				time.Sleep(2 * time.Millisecond)
			}
		case name == "sleep":
			d, err := time.ParseDuration(val)
			if err != nil {
				return err
			}
			time.Sleep(d)
		case name == "wait":
			for {
				time.Sleep(time.Hour)
			}
		case name == "exit":
			n, err := strconv.Atoi(val)
			if err != nil {
				return err
			}
			os.Exit(n)
		case name == "raise":
			return raise(val)
		default:
			if ok, err := systemdStep(name, val); ok {
				if err != nil {
					return fmt.Errorf("%s: %w", step, err)
				}
				continue
			}
			if err := h.object(step); err != nil {
				return fmt.Errorf("%s: %w", step, err)
			}
		}
	}
	return nil
}

func closing(args []string, open int) (int, error) {
	depth := 0
	for j := open; j < len(args); j++ {
		if strings.HasSuffix(args[j], "{") {
			depth++
		}
		if args[j] == "}" {
			depth--
			if depth == 0 {
				return j, nil
			}
		}
	}
	return 0, fmt.Errorf("unclosed %s", args[open])
}

func raise(name string) error {
	sig, err := ParseSignal(name)
	if err != nil {
		return err
	}
	signal.Reset(sig)
	unix.Setrlimit(unix.RLIMIT_CORE, &unix.Rlimit{})
	if err := unix.Kill(os.Getpid(), sig); err != nil {
		return err
	}
	time.Sleep(5 * time.Second)
	return fmt.Errorf("still alive after raising %v", sig)
}

// ParseSignal parses "9", "KILL" or "SIGKILL".
func ParseSignal(s string) (syscall.Signal, error) {
	if n, err := strconv.Atoi(s); err == nil {
		return syscall.Signal(n), nil
	}
	sig := unix.SignalNum("SIG" + strings.TrimPrefix(strings.ToUpper(s), "SIG"))
	if sig == 0 {
		return 0, fmt.Errorf("unknown signal %q", s)
	}
	return sig, nil
}

func (h *helper) object(step string) error {
	parts := strings.Split(step, ":")
	if ok, err := h.posixObject(parts); ok {
		return err
	}
	key := 0 // IPC_PRIVATE
	size, n := 4096, 1
	flags := map[string]bool{}
	for _, p := range parts[1:] {
		k, v, _ := strings.Cut(p, "=")
		switch k {
		case "key":
			x, err := strconv.ParseInt(v, 0, 64)
			if err != nil {
				return err
			}
			key = int(int32(uint32(x)))
		case "size":
			x, err := strconv.Atoi(v)
			if err != nil {
				return err
			}
			size = x
		case "n":
			x, err := strconv.Atoi(v)
			if err != nil {
				return err
			}
			n = x
		default:
			flags[k] = true
		}
	}
	const perm = unix.IPC_CREAT | 0o600
	switch parts[0] {
	case "shm":
		id, err := unix.SysvShmGet(key, size, perm)
		if err != nil {
			return err
		}
		if err := h.record("shm", id); err != nil {
			return err
		}
		if flags["attach"] {
			if _, err := unix.SysvShmAttach(id, 0, 0); err != nil {
				return err
			}
		}
	case "sem":
		id, _, errno := unix.Syscall(unix.SYS_SEMGET, uintptr(key), uintptr(n), perm)
		if errno != 0 {
			return errno
		}
		if err := h.record("sem", int(id)); err != nil {
			return err
		}
		if flags["op"] {
			ops := make([]sembuf, n)
			for i := range ops {
				ops[i] = sembuf{num: uint16(i), op: 1}
			}
			if _, _, errno := unix.Syscall(unix.SYS_SEMOP, id, uintptr(unsafe.Pointer(&ops[0])), uintptr(n)); errno != 0 {
				return errno
			}
		}
	case "msg":
		id, _, errno := unix.Syscall(unix.SYS_MSGGET, uintptr(key), perm, 0)
		if errno != 0 {
			return errno
		}
		if err := h.record("msg", int(id)); err != nil {
			return err
		}
		msg := msgbuf{mtype: 1}
		copy(msg.text[:], "hello")
		if flags["send"] {
			if _, _, errno := unix.Syscall6(unix.SYS_MSGSND, id, uintptr(unsafe.Pointer(&msg)), 5, 0, 0, 0); errno != 0 {
				return errno
			}
		}
		if flags["recv"] {
			if _, _, errno := unix.Syscall6(unix.SYS_MSGRCV, id, uintptr(unsafe.Pointer(&msg)), uintptr(len(msg.text)), 0, unix.IPC_NOWAIT, 0); errno != 0 {
				return errno
			}
		}
	default:
		return fmt.Errorf("unknown step")
	}
	return nil
}

type sembuf struct {
	num uint16
	op  int16
	flg int16
}

type msgbuf struct {
	mtype int64
	text  [64]byte
}
