package supervisor

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"github.com/ipcguard/ipcguard/internal/procfs"
	"golang.org/x/sys/unix"
)

// Creation seen without root (Options.CreationSeccomp): a seccomp filter
// with a user-notification listener (seccomp_unotify(2)), installed by the
// trampoline (listen_linux.go) in the command before its exec and so
// inherited by the whole tree, stops every semget(2) and msgget(2) of the
// tree that may create an object (key IPC_PRIVATE, or IPC_CREAT in the
// flags) until this process answers. Calls that cannot create pass
// without a stop (a client opening an existing set costs nothing).
//
// To learn whether a call creates, this process makes the same get
// itself, with the caller's key, count and flags plus IPC_EXCL, in the
// same IPC namespace and with the same credentials, and answers the
// caller with the new id: the object the caller would have made, made for
// it, and proof of creation (docs/evidence.md, "creation seen"). When the
// object exists (EEXIST) or the get fails otherwise, the caller's own call
// continues (SECCOMP_USER_NOTIF_FLAG_CONTINUE) and gets what the kernel
// gives it. It continues too whenever this process cannot act exactly as
// the caller would: another IPC namespace, another effective uid or gid,
// another cgroup (the kernel charges the object's memory to the creator's)
// or another security label; the tree's Note counts those.
//
// Segments are not stopped: the kernel records a segment's creator (its
// pid, shm_cprid, and the task, for kernel.shm_rmid_forced), which a get
// made here would change, and the creator pid already proves a segment's
// creation.
//
// What it costs the command: no_new_privs (prctl(2) PR_SET_NO_NEW_PRIVS,
// as systemd's NoNewPrivileges=): set-uid and set-gid programs and file
// capabilities in the tree run without their privilege. A process that
// already uses a seccomp listener cannot get a second one (EBUSY): the
// command then runs without this tracker (still with no_new_privs), and
// the Note says so. Once this process has exited, a tree process still
// running gets ENOSYS from a semget or msgget that may create (the kernel
// fails calls whose listener is gone).

// Kernel structures of include/uapi/linux/seccomp.h that x/sys/unix lacks.
type (
	// seccompData is struct seccomp_data.
	seccompData struct {
		Nr   int32
		Arch uint32
		IP   uint64
		Args [6]uint64
	}
	// seccompNotif is struct seccomp_notif.
	seccompNotif struct {
		ID    uint64
		Pid   uint32
		Flags uint32
		Data  seccompData
	}
	// seccompNotifResp is struct seccomp_notif_resp.
	seccompNotifResp struct {
		ID    uint64
		Val   int64
		Error int32
		Flags uint32
	}
	// seccompNotifSizes is struct seccomp_notif_sizes.
	seccompNotifSizes struct {
		Notif, Resp, Data uint16
	}
)

// seccompIoctlNotifIDValid is SECCOMP_IOCTL_NOTIF_ID_VALID,
// SECCOMP_IOW(2, __u64); kernels before 5.7 know only the older, wrong
// direction, SECCOMP_IOR(2, __u64), which later ones still accept.
const (
	seccompIoctlNotifIDValid    = 0x40082102
	seccompIoctlNotifIDValidOld = 0x80082102
)

// Classic BPF opcodes (include/uapi/linux/filter.h, bpf_common.h).
const (
	bpfLdWAbs  = unix.BPF_LD | unix.BPF_W | unix.BPF_ABS
	bpfJeqK    = unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K
	bpfJsetK   = unix.BPF_JMP | unix.BPF_JSET | unix.BPF_K
	bpfRetK    = unix.BPF_RET | unix.BPF_K
	dataNr     = 0  // offsetof(struct seccomp_data, nr)
	dataArch   = 4  // offsetof(struct seccomp_data, arch)
	dataArgs   = 16 // offsetof(struct seccomp_data, args)
	ipcPrivate = 0
)

// argLow is the offset of the low 32 bits of argument i in seccomp_data:
// keys and flags are ints, passed in a 64-bit slot.
func argLow(i int) uint32 {
	off := uint32(dataArgs + 8*i)
	if binary.NativeEndian.Uint16([]byte{0, 1}) == 1 { // big-endian
		off += 4
	}
	return off
}

var errNoSeccompArch = unix.ENOSYS

// seccompFilter is the filter program: native semget and msgget calls
// that may create (key IPC_PRIVATE, or IPC_CREAT in the flags, argument 2
// of semget and 1 of msgget) notify the listener; everything else is
// allowed.
func seccompFilter() ([]unix.SockFilter, error) {
	if seccompArch == 0 {
		return nil, errNoSeccompArch
	}
	st := func(code uint16, k uint32, jt, jf uint8) unix.SockFilter {
		return unix.SockFilter{Code: code, Jt: jt, Jf: jf, K: k}
	}
	const allow, notify = 13, 14 // indexes of the two returns
	p := []unix.SockFilter{
		/* 0 */ st(bpfLdWAbs, dataArch, 0, 0),
		/* 1 */ st(bpfJeqK, uint32(seccompArch), 0, allow-2),
		/* 2 */ st(bpfLdWAbs, dataNr, 0, 0),
		/* 3 */ st(bpfJeqK, uint32(seccompSemget), 1, 0), // to 5
		/* 4 */ st(bpfJeqK, uint32(seccompMsgget), 4, allow-5), // to 9
		/* 5 */ st(bpfLdWAbs, argLow(0), 0, 0),
		/* 6 */ st(bpfJeqK, ipcPrivate, notify-7, 0),
		/* 7 */ st(bpfLdWAbs, argLow(2), 0, 0),
		/* 8 */ st(bpfJsetK, unix.IPC_CREAT, notify-9, allow-9),
		/* 9 */ st(bpfLdWAbs, argLow(0), 0, 0),
		/* 10 */ st(bpfJeqK, ipcPrivate, notify-11, 0),
		/* 11 */ st(bpfLdWAbs, argLow(1), 0, 0),
		/* 12 */ st(bpfJsetK, unix.IPC_CREAT, notify-13, allow-13),
		/* 13 */ st(bpfRetK, unix.SECCOMP_RET_ALLOW, 0, 0),
		/* 14 */ st(bpfRetK, unix.SECCOMP_RET_USER_NOTIF, 0, 0),
	}
	return p, nil
}

// installCreationFilter sets no_new_privs on the calling thread and
// installs the filter with a listener, whose descriptor (close-on-exec) it
// returns. The filter covers the calling thread only: call it on the
// thread that then executes the command. WAIT_KILLABLE_RECV (Linux 5.19)
// keeps a signal from interrupting a call this process is answering (the
// restarted call would find the object made for it); older kernels go
// without.
func installCreationFilter() (int, error) {
	prog, err := seccompFilter()
	if err != nil {
		return -1, err
	}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return -1, err
	}
	fp := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
	flags := uintptr(unix.SECCOMP_FILTER_FLAG_NEW_LISTENER | unix.SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV)
	for {
		fd, _, e := unix.RawSyscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, flags, uintptr(unsafe.Pointer(&fp)))
		if e == 0 {
			return int(fd), nil
		}
		if e == unix.EINVAL && flags&unix.SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV != 0 {
			flags &^= unix.SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
			continue
		}
		return -1, e
	}
}

// filterError explains the errno with which installCreationFilter failed
// in the trampoline.
func filterError(e syscall.Errno) error {
	switch e {
	case unix.EBUSY:
		return fmt.Errorf("seccomp: %w (the command already has a seccomp listener: another ipcguard with this tracker around it, or a sandbox)", e)
	case unix.EINVAL:
		return fmt.Errorf("seccomp: %w (user notification needs Linux 5.5 or later)", e)
	case unix.ENOSYS:
		return fmt.Errorf("seccomp: %w (not built for this architecture, or a kernel without seccomp filters)", e)
	}
	return fmt.Errorf("seccomp: %w", e)
}

// creationWatch answers the notifications of one command's filter.
type creationWatch struct {
	fd   int // the listener
	got  func(typ string, id int, proven bool, at time.Time)
	self callerID
	buf  []byte // a seccomp_notif of the kernel's size

	mu      sync.Mutex
	closed  bool           // finish was called: answer "continue" from now on
	made    []member       // objects made for the tree (get, id)
	left    map[string]int // calls continued, by reason
	stopped int            // notifications answered
}

// callerID is what must match for a get made here to be the caller's own.
type callerID struct {
	ipcNS      string // "dev:ino" of /proc/PID/ns/ipc
	euid, egid string
	cgroup     string
	label      string // /proc/PID/attr/current ("" where there is none)
}

// callerIDOf reads the identity of thread tid ("self" for this
// process's). noLabel skips the security label (a kernel without a
// security module that labels processes: this process has none either).
func callerIDOf(tid string, noLabel bool) (callerID, error) {
	var id callerID
	dir, err := unix.Open(proc.Path(tid), unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return id, err
	}
	defer unix.Close(dir)
	var st unix.Stat_t
	if err := unix.Fstatat(dir, "ns/ipc", &st, 0); err != nil {
		return id, err
	}
	id.ipcNS = strconv.FormatUint(st.Dev, 10) + ":" + strconv.FormatUint(st.Ino, 10)
	var buf [4096]byte
	b, err := readAt(dir, "status", buf[:])
	if err != nil {
		return id, err
	}
	if id.euid, id.egid, err = procfs.StatusIDs(b); err != nil {
		return id, fmt.Errorf("%s: %w", proc.Path(tid, "status"), err)
	}
	if b, err = readAt(dir, "cgroup", buf[:]); err != nil {
		return id, err
	}
	id.cgroup = string(b)
	if !noLabel {
		if b, err = readAt(dir, "attr/current", buf[:]); err == nil {
			id.label = string(bytes.TrimRight(b, "\x00\n"))
		}
	}
	return id, nil
}

// readAt reads file name under directory dir into buf (what fits).
func readAt(dir int, name string, buf []byte) ([]byte, error) {
	fd, err := unix.Openat(dir, name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	n := 0
	for n < len(buf) {
		m, err := unix.Read(fd, buf[n:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, err
		}
		if m == 0 {
			break
		}
		n += m
	}
	return buf[:n], nil
}

// differs says how other differs from id ("" when it does not).
func (id callerID) differs(other callerID) string {
	switch {
	case id.ipcNS != other.ipcNS:
		return "another IPC namespace"
	case id.euid != other.euid || id.egid != other.egid:
		return "other credentials"
	case id.cgroup != other.cgroup:
		return "another cgroup"
	case id.label != other.label:
		return "another security label"
	}
	return ""
}

// startCreationWatch answers the notifications of listener fd (which it
// takes over) on a goroutine of its own; got, when not nil, is called for
// each object made for the tree.
func startCreationWatch(fd int, got func(typ string, id int, proven bool, at time.Time)) (*creationWatch, error) {
	self, err := callerIDOf("self", false)
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	var sizes seccompNotifSizes
	if _, _, e := unix.RawSyscall(unix.SYS_SECCOMP, unix.SECCOMP_GET_NOTIF_SIZES, 0, uintptr(unsafe.Pointer(&sizes))); e != 0 {
		unix.Close(fd)
		return nil, fmt.Errorf("SECCOMP_GET_NOTIF_SIZES: %w", e)
	}
	n := max(int(sizes.Notif), int(unsafe.Sizeof(seccompNotif{})))
	w := &creationWatch{fd: fd, got: got, self: self,
		buf: make([]byte, n), left: map[string]int{}}
	go w.loop()
	return w, nil
}

func (w *creationWatch) loop() {
	defer unix.Close(w.fd)
	pfds := []unix.PollFd{{Fd: int32(w.fd), Events: unix.POLLIN}}
	for {
		if _, err := unix.Poll(pfds, -1); err != nil && err != unix.EINTR {
			return
		}
		if pfds[0].Revents&unix.POLLIN != 0 {
			w.receive()
		} else if pfds[0].Revents&(unix.POLLHUP|unix.POLLERR|unix.POLLNVAL) != 0 {
			// No process uses the filter any more (Linux 5.8 and later
			// say so).
			return
		}
	}
}

// receive takes one notification and answers it.
func (w *creationWatch) receive() {
	clear(w.buf)
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(w.fd), unix.SECCOMP_IOCTL_NOTIF_RECV, uintptr(unsafe.Pointer(&w.buf[0]))); e != 0 {
		return // ENOENT: the caller went away (a signal) before we took it
	}
	n := *(*seccompNotif)(unsafe.Pointer(&w.buf[0]))
	resp := seccompNotifResp{ID: n.ID, Flags: unix.SECCOMP_USER_NOTIF_FLAG_CONTINUE}
	// The whole answer under mu: finish waits for one in progress, and
	// none makes an object after it.
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		unix.Syscall(unix.SYS_IOCTL, uintptr(w.fd), unix.SECCOMP_IOCTL_NOTIF_SEND, uintptr(unsafe.Pointer(&resp)))
		return
	}
	typ, id, why := w.answer(&n)
	if id >= 0 {
		resp.Val, resp.Flags = int64(id), 0
	}
	_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(w.fd), unix.SECCOMP_IOCTL_NOTIF_SEND, uintptr(unsafe.Pointer(&resp)))
	w.stopped++
	if why != "" {
		w.left[why]++
	}
	if id >= 0 {
		// Made for the tree, whether or not the caller is still there to
		// learn its id (killed meanwhile): its get made it.
		now := time.Now()
		w.made = append(w.made, member{get: typ, id: id, proven: true, at: now})
		if e != 0 {
			w.left["made for a caller killed before the answer"]++
		}
		// Under mu: once finish has returned, every object it lists has
		// reached the hook, and no other will.
		if w.got != nil {
			w.got(typ, id, true, now)
		}
	}
}

// answer makes the get of notification n when it can act exactly as the
// caller would (call with mu held); it returns the type and the id made (id -1 when the
// caller's call is to continue, with why).
func (w *creationWatch) answer(n *seccompNotif) (typ string, id int, why string) {
	a := n.Data.Args
	var nr uintptr
	var args [3]uintptr
	switch int(n.Data.Nr) {
	case seccompSemget:
		typ, nr = "sem", uintptr(seccompSemget)
		args = [3]uintptr{uintptr(int32(a[0])), uintptr(int32(a[1])), uintptr(int32(a[2]) | unix.IPC_EXCL)}
	case seccompMsgget:
		typ, nr = "msg", uintptr(seccompMsgget)
		args = [3]uintptr{uintptr(int32(a[0])), uintptr(int32(a[1]) | unix.IPC_EXCL), 0}
	default:
		return "", -1, "not a get"
	}
	caller, err := callerIDOf(strconv.FormatUint(uint64(n.Pid), 10), w.self.label == "")
	if err != nil {
		return typ, -1, "the caller could not be read"
	}
	// The caller read above is the one that made the call only if the
	// notification is still pending: its pid cannot have been reused.
	if !w.valid(n.ID) {
		return typ, -1, ""
	}
	if d := w.self.differs(caller); d != "" {
		return typ, -1, d
	}
	r, _, e := unix.Syscall(nr, args[0], args[1], args[2])
	switch {
	case e == unix.EEXIST:
		return typ, -1, "" // it exists: the caller opens it
	case e != 0:
		return typ, -1, "" // the caller's own call gets the error
	}
	return typ, int(r), ""
}

// valid reports whether notification id is still pending.
func (w *creationWatch) valid(id uint64) bool {
	_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(w.fd), seccompIoctlNotifIDValid, uintptr(unsafe.Pointer(&id)))
	if e == unix.EINVAL || e == unix.ENOTTY {
		_, _, e = unix.Syscall(unix.SYS_IOCTL, uintptr(w.fd), seccompIoctlNotifIDValidOld, uintptr(unsafe.Pointer(&id)))
	}
	return e == 0
}

// finish ends the watch's record: from now on every call continues, and
// the objects made so far are returned with a note on the calls left to
// the callers. The listener stays open and answered until no process uses
// the filter (the watch then ends by itself): processes of the tree still
// running keep working while this process lives.
func (w *creationWatch) finish() (made []member, note string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.closed = true
	made = append([]member(nil), w.made...)
	var why []string
	for k, n := range w.left {
		why = append(why, fmt.Sprintf("%d %s", n, k))
	}
	sort.Strings(why)
	note = fmt.Sprintf("seccomp: %d of %d creating gets made for the tree", len(made), w.stopped)
	defer func() {
		note += "; the command ran with no_new_privs: set-uid and set-gid programs in it ran without their privilege"
	}()
	if len(why) > 0 {
		note += " (left to the caller: " + strings.Join(why, ", ") + ")"
	}
	return made, note
}
