package nstest

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Stand-ins for what systemd gives a service: a notification socket
// ($NOTIFY_SOCKET, sd_notify(3)) and activated sockets (fds 3.. with
// LISTEN_PID, LISTEN_FDS, LISTEN_FDNAMES, sd_listen_fds(3)). No systemd
// is needed.

func init() {
	builtinHelpers["main-pid"] = mainPidHelper
}

// MainPidCmd returns a command that runs the "main-pid" helper: it sets
// each variable of vars to its own pid and executes argv, as systemd
// does for a service's main process between fork and exec (LISTEN_PID,
// WATCHDOG_PID).
func MainPidCmd(vars []string, argv ...string) *exec.Cmd {
	return HelperCmd("main-pid", append([]string{strings.Join(vars, ","), "--"}, argv...)...)
}

func mainPidHelper(args []string) int {
	if len(args) < 3 || args[1] != "--" {
		fmt.Fprintln(os.Stderr, "usage: main-pid VAR[,VAR...] -- COMMAND [ARGS...]")
		return 2
	}
	pid := strconv.Itoa(os.Getpid())
	for _, v := range strings.Split(args[0], ",") {
		os.Setenv(v, pid)
	}
	path, err := exec.LookPath(args[2])
	if err != nil {
		fmt.Fprintf(os.Stderr, "main-pid: %v\n", err)
		return 127
	}
	err = syscall.Exec(path, args[2:], os.Environ())
	fmt.Fprintf(os.Stderr, "main-pid: %v\n", err)
	return 126
}

// systemdStep runs the steps of the "ipc" helper that speak to the stand-ins:
//
//	notify=TEXT              send TEXT ("\n" for newlines) to $NOTIFY_SOCKET
//	notify-fd=TOKEN:TEXT     the same with one descriptor: the read end of a
//	                         pipe that holds TOKEN (FDSTORE=1)
//	notify-barrier           sd_notify_barrier(3): send BARRIER=1 with the
//	                         write end of a pipe, wait (a minute at most)
//	                         until the receiver has closed it
//	activated=PATH           write an Activation of this process to PATH,
//	                         then serve one connection on fd 3, if
//	                         LISTEN_PID is this process, writing its pid
//
// It reports false for any other step.
func systemdStep(name, val string) (bool, error) {
	switch name {
	case "notify":
		return true, sendNotify(strings.ReplaceAll(val, `\n`, "\n"), nil)
	case "notify-fd":
		token, text, _ := strings.Cut(val, ":")
		var p [2]int
		if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
			return true, err
		}
		defer unix.Close(p[0])
		_, err := unix.Write(p[1], []byte(token))
		unix.Close(p[1])
		if err != nil {
			return true, err
		}
		return true, sendNotify(strings.ReplaceAll(text, `\n`, "\n"), []int{p[0]})
	case "notify-barrier":
		var p [2]int
		if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
			return true, err
		}
		defer unix.Close(p[0])
		err := sendNotify("BARRIER=1", []int{p[1]})
		unix.Close(p[1])
		if err != nil {
			return true, err
		}
		fds := []unix.PollFd{{Fd: int32(p[0])}}
		deadline := time.Now().Add(time.Minute)
		for time.Now().Before(deadline) {
			n, err := unix.Poll(fds, 1000)
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				return true, err
			}
			if n > 0 && fds[0].Revents&unix.POLLHUP != 0 {
				return true, nil
			}
		}
		return true, errors.New("notify-barrier: the receiver did not close the barrier within a minute")
	case "activated":
		return true, serveActivated(val)
	}
	return false, nil
}

func sendNotify(text string, fds []int) error {
	addr := os.Getenv("NOTIFY_SOCKET")
	if addr == "" {
		return errors.New("NOTIFY_SOCKET is not set")
	}
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	var oob []byte
	if len(fds) > 0 {
		oob = unix.UnixRights(fds...)
	}
	if err := unix.Sendmsg(fd, []byte(text), oob, &unix.SockaddrUnix{Name: addr}, unix.MSG_NOSIGNAL); err != nil {
		return fmt.Errorf("sending to NOTIFY_SOCKET=%s: %w", addr, err)
	}
	return nil
}

// Activation is what the "activated" step saw of socket activation.
type Activation struct {
	Pid          int
	ListenPid    string // $LISTEN_PID
	ListenFDs    string // $LISTEN_FDS
	ListenNames  string // $LISTEN_FDNAMES
	WatchdogPid  string // $WATCHDOG_PID
	PidfdID      string // $LISTEN_PIDFDID
	OwnPidfdID   string // this process's pidfd inode number on pidfs, "" without pidfs
	FD3Listening bool   // fd 3 is a listening socket
	Served       bool   // a connection on fd 3 was served
}

func serveActivated(path string) error {
	a := Activation{Pid: os.Getpid(), ListenPid: os.Getenv("LISTEN_PID"), ListenFDs: os.Getenv("LISTEN_FDS"),
		ListenNames: os.Getenv("LISTEN_FDNAMES"), WatchdogPid: os.Getenv("WATCHDOG_PID"),
		PidfdID: os.Getenv("LISTEN_PIDFDID"), OwnPidfdID: ownPidfdID()}
	acc, err := unix.GetsockoptInt(3, unix.SOL_SOCKET, unix.SO_ACCEPTCONN)
	a.FD3Listening = err == nil && acc == 1
	mine := a.ListenPid == strconv.Itoa(a.Pid)
	a.Served = mine && a.FD3Listening
	b, _ := json.Marshal(a)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	if !a.Served {
		return nil
	}
	c, _, err := unix.Accept4(3, unix.SOCK_CLOEXEC)
	if err != nil {
		return fmt.Errorf("accept on fd 3: %w", err)
	}
	defer unix.Close(c)
	_, err = unix.Write(c, []byte(strconv.Itoa(a.Pid)))
	return err
}

// ownPidfdID is the inode number of a pidfd of this process where pidfds
// live on pidfs (PID_FS_MAGIC), "" elsewhere.
func ownPidfdID() string {
	fd, err := unix.PidfdOpen(os.Getpid(), 0)
	if err != nil {
		return ""
	}
	defer unix.Close(fd)
	var fs unix.Statfs_t
	var st unix.Stat_t
	if unix.Fstatfs(fd, &fs) != nil || fs.Type != 0x50494446 || unix.Fstat(fd, &st) != nil {
		return ""
	}
	return strconv.FormatUint(st.Ino, 10)
}

// NotifySocket is a stand-in for systemd's notification socket: a unix
// datagram socket that receives with SO_PASSCRED, so that each message
// carries the sender's pid as the kernel saw it.
type NotifySocket struct {
	fd   int
	Addr string // the $NOTIFY_SOCKET value: a path, or "@name"
}

// Notification is one datagram received on a NotifySocket.
type Notification struct {
	Pid   int32 // SCM_CREDENTIALS: the sending process
	Text  string
	Files []*os.File // the descriptors passed (SCM_RIGHTS)
}

// ListenNotify binds a NotifySocket: at a path in dir, or, with dir
// empty, at an abstract address the kernel picks. It is closed when tb
// ends.
func ListenNotify(tb testing.TB, dir string) *NotifySocket {
	tb.Helper()
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { unix.Close(fd) })
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_PASSCRED, 1); err != nil {
		tb.Fatal(err)
	}
	sa := &unix.SockaddrUnix{}
	if dir != "" {
		sa.Name = dir + "/notify"
	}
	if err := unix.Bind(fd, sa); err != nil {
		tb.Fatal(err)
	}
	got, err := unix.Getsockname(fd)
	if err != nil {
		tb.Fatal(err)
	}
	if dir != "" {
		// Like /run/systemd/notify: any process may send, credentials
		// tell who did.
		os.Chmod(sa.Name, 0o777)
	}
	return &NotifySocket{fd: fd, Addr: got.(*unix.SockaddrUnix).Name}
}

// Receive waits up to timeout (0: does not wait) for the next
// notification; ok is false if none came.
func (s *NotifySocket) Receive(tb testing.TB, timeout time.Duration) (n Notification, ok bool) {
	tb.Helper()
	fds := []unix.PollFd{{Fd: int32(s.fd), Events: unix.POLLIN}}
	deadline := time.Now().Add(timeout)
	for {
		left := max(time.Until(deadline), 0)
		c, err := unix.Poll(fds, int((left+time.Millisecond-1)/time.Millisecond))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			tb.Fatal(err)
		}
		if c > 0 {
			break
		}
		if left == 0 {
			return n, false
		}
	}
	buf := make([]byte, 1<<16)
	oob := make([]byte, unix.CmsgSpace(253*4)+unix.CmsgSpace(unix.SizeofUcred))
	k, oobn, _, _, err := unix.Recvmsg(s.fd, buf, oob, unix.MSG_CMSG_CLOEXEC)
	if err != nil {
		tb.Fatal(err)
	}
	n.Text = string(buf[:k])
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil {
		tb.Fatal(err)
	}
	n.Pid = -1
	for i := range msgs {
		switch msgs[i].Header.Type {
		case unix.SCM_CREDENTIALS:
			if c, err := unix.ParseUnixCredentials(&msgs[i]); err == nil {
				n.Pid = c.Pid
			}
		case unix.SCM_RIGHTS:
			fds, err := unix.ParseUnixRights(&msgs[i])
			if err != nil {
				tb.Fatal(err)
			}
			for _, fd := range fds {
				f := os.NewFile(uintptr(fd), "passed")
				tb.Cleanup(func() { f.Close() })
				n.Files = append(n.Files, f)
			}
		}
	}
	return n, true
}

// ListenTCP returns a listening TCP socket on the loopback address and its
// port, as a file to hand on as fd 3 (exec.Cmd.ExtraFiles). It is closed
// when tb ends.
func ListenTCP(tb testing.TB) (*os.File, int) {
	tb.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		tb.Fatal(err)
	}
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		unix.Close(fd)
		tb.Fatal(err)
	}
	if err := unix.Listen(fd, 8); err != nil {
		unix.Close(fd)
		tb.Fatal(err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		unix.Close(fd)
		tb.Fatal(err)
	}
	f := os.NewFile(uintptr(fd), "listener")
	tb.Cleanup(func() { f.Close() })
	return f, sa.(*unix.SockaddrInet4).Port
}
