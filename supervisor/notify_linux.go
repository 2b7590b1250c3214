package supervisor

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// The service manager's notification protocol (sd_notify(3)): a process
// sends datagrams of newline-separated VAR=VALUE assignments (READY=1,
// STATUS=..., FDSTORE=1 with descriptors in SCM_RIGHTS...) to the unix
// datagram socket named by $NOTIFY_SOCKET, a path or, with a leading "@",
// an abstract name. systemd identifies the sender by the kernel's
// SCM_CREDENTIALS and, with the default NotifyAccess=main, accepts only
// the main process: ipcguard, not the command. So ipcguard gives the
// command a socket of its own and sends on what arrives there, as itself.

// notifyVar is the environment variable of the protocol.
const notifyVar = "NOTIFY_SOCKET"

// notifyMaxMessage bounds one datagram. systemd reads at most PIPE_BUF
// (4096) bytes per message and drops longer ones; 64 KiB passes on
// whatever a client sends, and the manager decides.
const notifyMaxMessage = 64 << 10

// notifyMaxFDs is SCM_MAX_FD (include/net/scm.h): the kernel's limit of
// descriptors in one SCM_RIGHTS message.
const notifyMaxFDs = 253

// notifySendTimeout bounds the wait for room on the manager's socket (a
// datagram socket queues net.unix.max_dgram_qlen messages); a message
// that finds none within it is dropped.
const notifySendTimeout = 10 * time.Second

// mainPIDFields are the assignments that name another main process
// (sd_notify(3): MAINPID=, MAINPIDFDID=, MAINPIDFD=1 with a pidfd): passed
// on, they would make systemd watch the command instead of ipcguard, which
// would then be killed as a stray and never clean up.
var mainPIDFields = []string{"MAINPID=", "MAINPIDFDID=", "MAINPIDFD="}

// notifyRelay receives the command's notifications on a socket of its
// own and sends them on to the real one from this process.
type notifyRelay struct {
	fd     int // the command's socket: abstract, SO_PASSCRED, close-on-exec
	out    int // unbound datagram socket the messages leave from
	target unix.Sockaddr
	addr   string // the command's NOTIFY_SOCKET value ("@" + abstract name)
	uid    int    // this process's effective uid
	logf   func(format string, args ...any)
	done   chan struct{}
	once   sync.Once

	// Each kind of trouble is reported once per run.
	saidMainPID, saidStranger, saidSend, saidTrunc bool
}

// parseNotifySocket checks a $NOTIFY_SOCKET value: an absolute path or an
// "@" abstract name, as sd_notify(3) documents for AF_UNIX. Other forms
// (vsock:CID:PORT for virtual machines) are not relayed.
func parseNotifySocket(v string) (unix.Sockaddr, error) {
	switch {
	case v == "":
		return nil, errors.New("empty")
	case v[0] != '/' && v[0] != '@':
		return nil, fmt.Errorf("%q is neither an absolute path nor an @abstract name", v)
	case len(v) >= len(unix.RawSockaddrUnix{}.Path):
		return nil, fmt.Errorf("%q is longer than a unix socket address", v)
	}
	return &unix.SockaddrUnix{Name: v}, nil
}

// startNotifyRelay opens the command's socket and starts relaying to the
// socket target names (a $NOTIFY_SOCKET value). The command's socket has
// an abstract address that the kernel picks (autobind): nothing to remove
// from a file system, even if this process is killed. Any process of the
// network namespace can send to it: what arrives is passed on only from
// a sender of this process's uid, root, or a process of the command's
// tree (see accept).
func startNotifyRelay(target string, logf func(format string, args ...any)) (*notifyRelay, error) {
	to, err := parseNotifySocket(target)
	if err != nil {
		return nil, err
	}
	r := &notifyRelay{fd: -1, out: -1, target: to, uid: os.Geteuid(), logf: logf, done: make(chan struct{})}
	fail := func(what string, err error) (*notifyRelay, error) {
		r.closeFDs()
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if r.fd, err = unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0); err != nil {
		return fail("socket", err)
	}
	if err := unix.SetsockoptInt(r.fd, unix.SOL_SOCKET, unix.SO_PASSCRED, 1); err != nil {
		return fail("SO_PASSCRED", err)
	}
	if err := unix.Bind(r.fd, &unix.SockaddrUnix{}); err != nil {
		return fail("bind", err)
	}
	sa, err := unix.Getsockname(r.fd)
	if err != nil {
		return fail("getsockname", err)
	}
	un, ok := sa.(*unix.SockaddrUnix)
	if !ok || !strings.HasPrefix(un.Name, "@") {
		return fail("getsockname", fmt.Errorf("unexpected address %v", sa))
	}
	r.addr = un.Name
	if r.out, err = unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0); err != nil {
		return fail("socket", err)
	}
	// A manager that does not read its socket must not hold the relay,
	// and ipcguard's exit after it, forever.
	tv := unix.NsecToTimeval(notifySendTimeout.Nanoseconds())
	if err := unix.SetsockoptTimeval(r.out, unix.SOL_SOCKET, unix.SO_SNDTIMEO, &tv); err != nil {
		return fail("SO_SNDTIMEO", err)
	}
	go r.loop()
	return r, nil
}

func (r *notifyRelay) closeFDs() {
	for _, fd := range []*int{&r.fd, &r.out} {
		if *fd >= 0 {
			unix.Close(*fd)
			*fd = -1
		}
	}
}

// stop relays what is still queued on the command's socket, then closes
// both sockets. Senders get ECONNREFUSED or EPIPE from then on.
func (r *notifyRelay) stop() {
	if r == nil {
		return
	}
	r.once.Do(func() {
		// Shutting down the reading side wakes the loop's recvmsg; it
		// returns the datagrams still queued, then end of file.
		unix.Shutdown(r.fd, unix.SHUT_RD)
		<-r.done
		r.closeFDs()
	})
}

// loop receives datagrams until stop.
func (r *notifyRelay) loop() {
	defer close(r.done)
	buf := make([]byte, notifyMaxMessage)
	oob := make([]byte, unix.CmsgSpace(notifyMaxFDs*4)+unix.CmsgSpace(unix.SizeofUcred))
	for {
		n, oobn, flags, _, err := unix.Recvmsg(r.fd, buf, oob, unix.MSG_CMSG_CLOEXEC)
		if err == unix.EINTR {
			continue
		}
		if err != nil || (n == 0 && oobn == 0) {
			// End of file after stop (an empty datagram carries nothing
			// worth relaying either way).
			if err == nil {
				return
			}
			r.logf("notify relay: receiving: %v", err)
			return
		}
		r.relay(buf[:n], oob[:oobn], flags)
	}
}

// relay passes one received datagram on.
func (r *notifyRelay) relay(msg, oob []byte, flags int) {
	cred, fds := parseNotifyControl(oob)
	defer func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	}()
	switch {
	case flags&(unix.MSG_TRUNC|unix.MSG_CTRUNC) != 0:
		if !r.saidTrunc {
			r.saidTrunc = true
			r.logf("notify relay: a message longer than %d bytes or with more than %d descriptors was dropped", notifyMaxMessage, notifyMaxFDs)
		}
		return
	case !r.accept(cred):
		if !r.saidStranger {
			r.saidStranger = true
			pid, uid := 0, -1
			if cred != nil {
				pid, uid = int(cred.Pid), int(cred.Uid)
			}
			r.logf("notify relay: dropped a message from pid %d (uid %d), neither of this user nor of the command's tree", pid, uid)
		}
		return
	}
	out, dropped, pidfd := filterNotify(msg)
	if dropped != "" && !r.saidMainPID {
		r.saidMainPID = true
		r.logf("notify relay: %s not passed on: ipcguard stays the main process of the service (it must outlive the command to clean up)", dropped)
	}
	if pidfd && len(fds) == 1 {
		// MAINPIDFD=1 comes with exactly one descriptor, the pidfd.
		unix.Close(fds[0])
		fds = nil
	}
	if len(out) == 0 && len(fds) == 0 {
		return
	}
	var rights []byte
	if len(fds) > 0 {
		rights = unix.UnixRights(fds...)
	}
	for {
		err := unix.Sendmsg(r.out, out, rights, r.target, unix.MSG_NOSIGNAL)
		if err == unix.EINTR {
			continue
		}
		if err != nil && !r.saidSend {
			r.saidSend = true
			r.logf("notify relay: sending to %s: %v", r.target.(*unix.SockaddrUnix).Name, err)
		}
		return
	}
}

// accept decides whether a datagram with credentials cred is passed on:
// when it comes from this process's uid or root (a process that could
// signal or trace this one anyway; also systemd-notify(1), which may have
// exited before its message is read), or from a live member of the tree
// (a command that changed its uid). Without credentials it is refused.
func (r *notifyRelay) accept(cred *unix.Ucred) bool {
	if cred == nil {
		return false
	}
	if int(cred.Uid) == r.uid || cred.Uid == 0 {
		return true
	}
	return isDescendant(int(cred.Pid))
}

// isDescendant reports whether pid is a live descendant of this process,
// following parents in /proc/PID/stat.
func isDescendant(pid int) bool {
	self := os.Getpid()
	for i := 0; pid > 1 && i < 4096; i++ {
		st, err := proc.Stat(pid)
		if err != nil {
			return false
		}
		if st.Ppid == self {
			return true
		}
		pid = st.Ppid
	}
	return false
}

// parseNotifyControl extracts the sender's credentials and the passed
// descriptors from the control messages of one datagram. Descriptors
// are received close-on-exec.
func parseNotifyControl(oob []byte) (*unix.Ucred, []int) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, nil
	}
	var cred *unix.Ucred
	var fds []int
	for i := range msgs {
		m := &msgs[i]
		if m.Header.Level != unix.SOL_SOCKET {
			continue
		}
		switch m.Header.Type {
		case unix.SCM_CREDENTIALS:
			if c, err := unix.ParseUnixCredentials(m); err == nil {
				cred = c
			}
		case unix.SCM_RIGHTS:
			if f, err := unix.ParseUnixRights(m); err == nil {
				fds = append(fds, f...)
			}
		}
	}
	return cred, fds
}

// filterNotify removes the assignments of mainPIDFields from a message.
// It returns the message to pass on (msg itself when nothing was
// removed; empty when nothing is left), the first assignment removed
// ("" if none), and whether MAINPIDFD=1 was among them.
func filterNotify(msg []byte) (out []byte, dropped string, pidfd bool) {
	if !bytes.Contains(msg, []byte("MAINPID")) {
		return msg, "", false
	}
	lines := bytes.Split(msg, []byte("\n"))
	kept := lines[:0]
	for _, l := range lines {
		name := ""
		for _, f := range mainPIDFields {
			if bytes.HasPrefix(l, []byte(f)) {
				name = f
				break
			}
		}
		if name == "" {
			kept = append(kept, l)
			continue
		}
		if dropped == "" {
			dropped = string(l)
		}
		if name == "MAINPIDFD=" {
			pidfd = true
		}
	}
	out = bytes.Join(kept, []byte("\n"))
	if len(bytes.TrimSpace(out)) == 0 {
		out = nil
	}
	return out, dropped, pidfd
}

// withNotifyRelay starts a relay when env has a usable $NOTIFY_SOCKET and
// returns env with the command's socket in its place. Without the
// variable it costs one scan of env. When the relay cannot be set up the
// command gets the variable unchanged (and notifies as itself), and the
// reason goes to logf.
func withNotifyRelay(env []string, logf func(format string, args ...any)) ([]string, *notifyRelay) {
	i := envIndex(env, notifyVar)
	if i < 0 {
		return env, nil
	}
	_, v, _ := strings.Cut(env[i], "=")
	r, err := startNotifyRelay(v, logf)
	if err != nil {
		logf("no notify relay (%v): the command notifies %s as itself", err, notifyVar)
		return env, nil
	}
	out := append([]string(nil), env...)
	out[i] = notifyVar + "=" + r.addr
	return out, r
}

// envIndex returns the index of the first assignment of name in env (the
// one getenv(3) of glibc and musl and Go's os.Getenv see), or -1.
func envIndex(env []string, name string) int {
	for i, kv := range env {
		if len(kv) > len(name) && kv[len(name)] == '=' && kv[:len(name)] == name {
			return i
		}
	}
	return -1
}
