package supervisor

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"golang.org/x/sys/unix"
)

// Proc connector ABI (linux/connector.h, linux/cn_proc.h); x/sys/unix does
// not carry it.
const (
	cnIdxProc = 1 // CN_IDX_PROC
	cnValProc = 1 // CN_VAL_PROC

	procCnMcastListen = 1 // PROC_CN_MCAST_LISTEN

	procEventNone = 0x00000000
	procEventFork = 0x00000001
	procEventExit = 0x80000000

	cnMsgLen     = 20 // struct cn_msg: cb_id{idx,val}, seq, ack, len u16, flags u16
	procEventLen = 16 // struct proc_event header: what, cpu, timestamp_ns
)

// procConTracker follows the tree with the netlink proc connector: fork and
// exit events of every process on the host, in the order the kernel sent
// them (a fork event is sent before the child can run, so a child's events
// never precede its own fork). Membership follows parent_tgid; a fork of a
// former member's number by a process outside the tree marks pid reuse.
type procConTracker struct {
	trackBase
	fd     int
	off    int64 // wall ns minus CLOCK_MONOTONIC ns
	stopFd int
	done   chan struct{}
	buf    []byte

	// Under mu:
	root    int
	rooted  bool      // the root's fork event was seen: events apply
	early   []cnEvent // events not applied yet (before the root's fork)
	overrun bool      // ENOBUFS: events were dropped
	tree    *Tree
}

// cnEvent is one fork or exit event.
type cnEvent struct {
	what uint32
	ts   uint64 // CLOCK_MONOTONIC ns
	// fork: parent_pid, parent_tgid, child_pid, child_tgid;
	// exit: process_pid, process_tgid.
	a, b, c, d int
}

func newProcConTracker() *procConTracker { return &procConTracker{fd: -1, stopFd: -1} }

func (t *procConTracker) name() string { return string(TrackProcCon) }

func probeProcCon() error {
	t := newProcConTracker()
	err := t.open()
	t.closeAll()
	return err
}

// open creates the socket and starts listening; the kernel's ack to our
// listen request proves events will come (outside the initial user or pid
// namespace the request is ignored without a word).
func (t *procConTracker) open() error {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.NETLINK_CONNECTOR)
	if err != nil {
		return fmt.Errorf("netlink socket: %w", err)
	}
	t.fd = fd
	// A big receive buffer makes ENOBUFS (dropped events) rarer on busy hosts.
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 4<<20) != nil {
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 4<<20)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: cnIdxProc}); err != nil {
		return fmt.Errorf("netlink bind: %w", err)
	}
	var mono, real unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &mono)
	unix.ClockGettime(unix.CLOCK_REALTIME, &real)
	t.off = real.Nano() - mono.Nano()
	// The kernel multicasts its answer to every listener of the group
	// (drivers/connector/cn_proc.c, cn_proc_ack), and ignores our request
	// without a word outside the initial namespaces: the answer to another
	// process's request must not pass for ours. A sequence number of our
	// own tells them apart (its answer carries seq+1).
	seq := rand.Uint32()>>1 | 1
	if err := t.send(seq, procCnMcastListen); err != nil {
		return fmt.Errorf("proc connector listen: %w", err)
	}
	t.buf = make([]byte, 1<<16)
	acked, err := t.awaitAck(seq)
	if err != nil {
		return err
	}
	if !acked {
		return errors.New("proc connector listen: no answer (refused outside the initial user and pid namespaces)")
	}
	// Only fork and exit events, where the kernel can filter (6.6+; older
	// kernels ignore this request and send everything).
	t.send(seq+1, procCnMcastListen, procEventFork|procEventExit)
	return nil
}

func (t *procConTracker) send(seq uint32, data ...uint32) error {
	ne := binary.NativeEndian
	n := unix.SizeofNlMsghdr + cnMsgLen + 4*len(data)
	b := make([]byte, n)
	ne.PutUint32(b[0:], uint32(n))
	ne.PutUint16(b[4:], unix.NLMSG_DONE)
	ne.PutUint32(b[8:], seq)
	cn := b[unix.SizeofNlMsghdr:]
	ne.PutUint32(cn[0:], cnIdxProc)
	ne.PutUint32(cn[4:], cnValProc)
	ne.PutUint32(cn[8:], seq)
	ne.PutUint32(cn[12:], seq) // ack: ask for an answer
	ne.PutUint16(cn[16:], uint16(4*len(data)))
	for i, d := range data {
		ne.PutUint32(cn[cnMsgLen+4*i:], d)
	}
	return unix.Sendto(t.fd, b, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK})
}

// awaitAck reads until the answer to request seq arrives, keeping the fork
// and exit events read meanwhile. The kernel answers while handling the
// request, so the answer is normally queued already; wait a little for
// safety.
func (t *procConTracker) awaitAck(seq uint32) (bool, error) {
	deadline := time.Now().Add(20 * time.Millisecond)
	for {
		n, _, err := unix.Recvfrom(t.fd, t.buf, unix.MSG_DONTWAIT)
		switch {
		case errors.Is(err, unix.EAGAIN):
			left := time.Until(deadline)
			if left <= 0 {
				return false, nil
			}
			pfd := []unix.PollFd{{Fd: int32(t.fd), Events: unix.POLLIN}}
			unix.Poll(pfd, int(left/time.Millisecond)+1)
			continue
		case errors.Is(err, unix.ENOBUFS):
			t.overrun = true
			continue
		case errors.Is(err, unix.EINTR):
			continue
		case err != nil:
			return false, fmt.Errorf("netlink recv: %w", err)
		}
		var ack *int
		t.parse(t.buf[:n], func(ev cnEvent, ackSeq uint32, ackErr int) {
			if ev.what == procEventNone {
				if ackSeq == seq+1 {
					ack = &ackErr
				}
				return
			}
			t.early = append(t.early, ev)
		})
		if ack != nil {
			if *ack != 0 {
				return false, fmt.Errorf("proc connector listen: %w", unix.Errno(*ack))
			}
			return true, nil
		}
	}
}

// parse decodes the netlink messages in b; fn gets each fork/exit event,
// and each ack (what == procEventNone) with its cn_msg ack and error.
func (t *procConTracker) parse(b []byte, fn func(ev cnEvent, ackSeq uint32, ackErr int)) {
	ne := binary.NativeEndian
	for len(b) >= unix.SizeofNlMsghdr {
		l := int(ne.Uint32(b))
		if l < unix.SizeofNlMsghdr || l > len(b) {
			return
		}
		msg := b[unix.SizeofNlMsghdr:l]
		b = b[min(len(b), (l+unix.NLMSG_ALIGNTO-1)&^(unix.NLMSG_ALIGNTO-1)):]
		if len(msg) < cnMsgLen+procEventLen {
			continue
		}
		if ne.Uint32(msg) != cnIdxProc || ne.Uint32(msg[4:]) != cnValProc {
			continue
		}
		ackSeq := ne.Uint32(msg[12:])
		pe := msg[cnMsgLen:]
		ev := cnEvent{what: ne.Uint32(pe), ts: ne.Uint64(pe[8:])}
		d := pe[procEventLen:]
		switch ev.what {
		case procEventNone:
			if len(d) >= 4 {
				fn(ev, ackSeq, int(ne.Uint32(d)))
			}
		case procEventFork:
			if len(d) >= 16 {
				ev.a, ev.b, ev.c, ev.d = int(ne.Uint32(d)), int(ne.Uint32(d[4:])), int(ne.Uint32(d[8:])), int(ne.Uint32(d[12:]))
				fn(ev, 0, 0)
			}
		case procEventExit:
			if len(d) >= 8 {
				ev.a, ev.b = int(ne.Uint32(d)), int(ne.Uint32(d[4:]))
				fn(ev, 0, 0)
			}
		}
	}
}

func (t *procConTracker) beforeStart() error {
	if err := t.open(); err != nil {
		t.closeAll()
		return err
	}
	var err error
	if t.stopFd, err = unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK); err != nil {
		t.closeAll()
		return fmt.Errorf("eventfd: %w", err)
	}
	t.done = make(chan struct{})
	go t.loop()
	return nil
}

func (t *procConTracker) started(pid int, at time.Time) {
	t.mu.Lock()
	t.root = pid
	t.b = newBuilder(t.name(), pid)
	t.b.join(pid, at)
	early := t.early
	t.early = nil
	t.consume(early)
	joins := t.takeJoins()
	t.mu.Unlock()
	t.report(joins)
}

func (t *procConTracker) loop() {
	defer close(t.done)
	pfds := []unix.PollFd{
		{Fd: int32(t.stopFd), Events: unix.POLLIN},
		{Fd: int32(t.fd), Events: unix.POLLIN},
	}
	for {
		if _, err := unix.Poll(pfds, -1); err != nil && !errors.Is(err, unix.EINTR) {
			return
		}
		if pfds[0].Revents != 0 {
			return
		}
		if t.drain() != nil {
			return
		}
	}
}

// drain reads and applies every queued event.
func (t *procConTracker) drain() error {
	var evs []cnEvent
	var rerr error
	for {
		n, _, err := unix.Recvfrom(t.fd, t.buf, unix.MSG_DONTWAIT)
		if errors.Is(err, unix.EAGAIN) {
			break
		}
		if errors.Is(err, unix.ENOBUFS) {
			t.mu.Lock()
			t.overrun = true
			t.mu.Unlock()
			continue
		}
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			rerr = fmt.Errorf("netlink recv: %w", err)
			break
		}
		t.parse(t.buf[:n], func(ev cnEvent, _ uint32, _ int) {
			if ev.what != procEventNone {
				evs = append(evs, ev)
			}
		})
		if len(evs) >= 1024 {
			t.consumeLocked(evs)
			evs = evs[:0]
		}
	}
	t.consumeLocked(evs)
	return rerr
}

func (t *procConTracker) consumeLocked(evs []cnEvent) {
	t.mu.Lock()
	if t.root == 0 {
		t.early = append(t.early, evs...)
		t.mu.Unlock()
		return
	}
	t.consume(evs)
	joins := t.takeJoins()
	t.mu.Unlock()
	t.report(joins)
}

// consume applies events in order; call with mu held and root known.
// Events before the root's own fork event are about earlier holders of
// the numbers and are dropped.
func (t *procConTracker) consume(evs []cnEvent) {
	for _, ev := range evs {
		if !t.rooted {
			if ev.what == procEventFork && ev.b == selfPid && ev.d == t.root && ev.c == t.root {
				t.rooted = true
			}
			continue
		}
		at := time.Unix(0, int64(ev.ts)+t.off)
		switch ev.what {
		case procEventFork:
			if ev.c != ev.d { // a new thread of process ev.d
				t.b.thread(ev.d, ev.c, at)
				continue
			}
			if ev.b == selfPid && ev.d != t.root && t.selfChildren {
				// A child made with clone(CLONE_PARENT) by the tree: this
				// process forks nothing else once the command runs.
				t.b.join(ev.d, at)
				continue
			}
			t.b.fork(ev.b, ev.d, at)
		case procEventExit:
			t.b.exit(ev.b, ev.a, at)
		}
	}
	if !t.rooted {
		t.early = append(t.early, evs...)
	}
}

func (t *procConTracker) finish() *Tree {
	if t.done != nil {
		unix.Write(t.stopFd, []byte{1, 0, 0, 0, 0, 0, 0, 0})
		<-t.done
		t.done = nil
		if t.root != 0 {
			t.drain() // events of the tree's last exits are queued already
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.tree != nil {
		return t.tree
	}
	t.closeAll()
	if t.root == 0 {
		t.b = newBuilder(t.name(), 0)
	}
	tr := t.b.tree
	tr.Exact = !t.overrun
	var notes []string
	if t.root != 0 && !t.rooted {
		// The root's fork event never came (dropped): apply everything
		// seen, accepting events of an earlier holder of the root's number.
		tr.Exact = false
		early := t.early
		t.early = nil
		t.rooted = true
		t.consume(early)
		notes = append(notes, "proc-connector: the command's fork event was not seen")
	}
	if t.overrun {
		notes = append(notes, "proc-connector: events were dropped (ENOBUFS): the tree may be incomplete")
	}
	joins := t.takeJoins()
	tr.Note = joinNotes(notes...)
	t.tree = tr
	t.hookMu.Lock()
	if t.joined != nil {
		for _, m := range joins {
			t.joined(m.pid, m.at)
		}
	}
	t.hookMu.Unlock()
	return tr
}

func (t *procConTracker) closeAll() {
	if t.fd >= 0 {
		unix.Close(t.fd)
		t.fd = -1
	}
	if t.stopFd >= 0 {
		unix.Close(t.stopFd)
		t.stopFd = -1
	}
}
