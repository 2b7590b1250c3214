package posixipc

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// ErrNotTracked: creations in the directory cannot be watched here (no
// fanotify, or the filesystem does not report names); the reason is wrapped.
var ErrNotTracked = errors.New("posixipc: creations not tracked")

// Creation is one name made in a watched directory.
type Creation struct {
	Name string
	// Pid is the process (thread-group id) that made it, in the watcher's
	// pid namespace; 0 when hidden (Record.PidsHidden) or outside it.
	Pid int
	// Time is when the watcher read the event: the creation was not later.
	Time time.Time
	// Moved: renamed into the directory (FAN_MOVED_TO), not created there.
	Moved bool
	// File is the handle of the file the name was made for (the event's
	// child FID, FAN_REPORT_TARGET_FID): the same as Dir.Handle gives for
	// that file. "" when the kernel reported none (before Linux 5.17, or
	// an encoding that failed).
	File Handle
}

// Change is a change of the owner, group, mode or times of an entry of a
// watched directory (FAN_ATTRIB: chown, chmod, utimes), by name.
type Change struct {
	Name string
	// Pid is the process that made the change; 0 when hidden.
	Pid int
	// Time is when the watcher read the event.
	Time time.Time
}

// Record is what a Watch saw.
type Record struct {
	Creations []Creation
	// Changes are the changes of owner, mode or times of its entries
	// (complete under the same condition as Creations: not Lost).
	Changes []Change
	// Lost: the kernel's event queue overflowed (FAN_Q_OVERFLOW) or events
	// could not be read: creations are missing; the record is not complete.
	Lost    bool
	LostWhy string
	// PidsHidden: the watcher has no CAP_SYS_ADMIN, so the kernel reports
	// the pid of no process but the watcher's own (fanotify(7)).
	PidsHidden bool
}

// Watch records the creations in a directory (package doc, "Creation
// seen"), and the changes of owner, mode or times of its entries, from
// Start until Stop.
type Watch struct {
	// fan is the fanotify group, non-blocking, waited on by the Go
	// runtime's poller: a watch pins no thread of its own.
	fan      *os.File
	hidden   bool
	done     chan struct{}
	mu       sync.Mutex
	rec      Record
	onCreate func(Creation)
	onLost   func()
	stopped  bool // Stop was called
	closed   bool
}

// PidsHidden reports whether the kernel hides the creators' pids from
// this watch (Record.PidsHidden).
func (w *Watch) PidsHidden() bool { return w.hidden }

// Follow calls create with each creation the watch records and lost once
// when it starts to lose events, from now on and for what it recorded
// already (so a journal kept by the caller holds what the record holds).
// The calls come from the watch's goroutine, under its lock: they must be
// quick and must not call the Watch.
func (w *Watch) Follow(create func(Creation), lost func()) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.onCreate, w.onLost = create, lost
	for _, c := range w.rec.Creations {
		create(c)
	}
	if w.rec.Lost {
		lost()
	}
}

// lostLocked marks the record lost (w.mu held).
func (w *Watch) lostLocked(why string) {
	if w.rec.Lost {
		return
	}
	w.rec.Lost, w.rec.LostWhy = true, why
	if w.onLost != nil {
		w.onLost()
	}
}

// Watch starts recording the creations in d. Every creation made before
// Watch returns and before Stop is called is in the record (fanotify
// queues the event within the system call that creates), unless the record
// says Lost. It returns an error wrapping ErrNotTracked where fanotify
// cannot watch d.
func (d *Dir) Watch() (*Watch, error) {
	const base = unix.FAN_CLASS_NOTIF | unix.FAN_CLOEXEC | unix.FAN_NONBLOCK
	w := &Watch{done: make(chan struct{})}
	fan, hidden, err := fanInit(base | unix.FAN_REPORT_DFID_NAME_TARGET)
	if errors.Is(err, unix.EINVAL) {
		// Before Linux 5.17: names without the files they name.
		fan, hidden, err = fanInit(base | unix.FAN_REPORT_DFID_NAME)
	}
	w.hidden = hidden
	if err != nil {
		return nil, fmt.Errorf("%w: fanotify_init: %w", ErrNotTracked, err)
	}
	if err := unix.FanotifyMark(fan, unix.FAN_MARK_ADD, unix.FAN_CREATE|unix.FAN_MOVED_TO|unix.FAN_ATTRIB|unix.FAN_EVENT_ON_CHILD, d.fd, ""); err != nil {
		unix.Close(fan)
		return nil, fmt.Errorf("%w: fanotify_mark on %s: %w", ErrNotTracked, d.where(), err)
	}
	w.fan = os.NewFile(uintptr(fan), "fanotify")
	w.rec.PidsHidden = w.hidden
	rc, err := w.fan.SyscallConn()
	if err != nil {
		w.fan.Close()
		return nil, fmt.Errorf("%w: fanotify descriptor: %w", ErrNotTracked, err)
	}
	go w.loop(rc)
	return w, nil
}

// fanInit makes a fanotify group with flags, an unlimited queue where
// allowed; without CAP_SYS_ADMIN (EPERM) a bounded one, whose events hide
// the pids (hidden).
func fanInit(flags uint) (fan int, hidden bool, err error) {
	fan, err = unix.FanotifyInit(flags|unix.FAN_UNLIMITED_QUEUE, unix.O_RDONLY|unix.O_CLOEXEC)
	if errors.Is(err, unix.EPERM) {
		hidden = true
		fan, err = unix.FanotifyInit(flags, unix.O_RDONLY|unix.O_CLOEXEC)
	}
	return fan, hidden, err
}

// loop reads the group's events as the poller reports them, until Stop
// sets a read deadline in the past; then it drains the queue once more:
// every event queued before Stop was called.
func (w *Watch) loop(rc syscall.RawConn) {
	defer close(w.done)
	buf := make([]byte, 64<<10)
	var rerr error
	drain := func(fd uintptr) bool {
		for {
			n, err := unix.Read(int(fd), buf)
			if err == unix.EINTR {
				continue
			}
			if err == unix.EAGAIN {
				return false // wait for more
			}
			if err != nil || n == 0 {
				if err == nil {
					err = io.ErrUnexpectedEOF
				}
				rerr = err
				return true
			}
			w.add(buf[:n])
		}
	}
	err := rc.Read(drain)
	if rerr == nil && errors.Is(err, os.ErrDeadlineExceeded) {
		// Stopped: the last drain, past the poller.
		err = rc.Control(func(fd uintptr) { drain(fd) })
	}
	switch {
	case rerr != nil:
		w.lose("read: " + rerr.Error())
	case err != nil:
		w.lose("poll: " + err.Error())
	}
}

func (w *Watch) lose(why string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.lostLocked(why)
}

func (w *Watch) add(b []byte) {
	now := time.Now()
	evs, err := parseFanEvents(b, binary.NativeEndian)
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, ev := range evs {
		if ev.mask&fanQOverflow != 0 {
			w.lostLocked("the fanotify queue overflowed")
		}
		if ev.mask&(fanCreate|fanMovedTo|fanAttrib) == 0 || !ev.hasName {
			continue
		}
		pid := int(ev.pid)
		if pid < 0 {
			pid = 0
		}
		if ev.mask&fanAttrib != 0 {
			w.rec.Changes = append(w.rec.Changes, Change{Name: ev.name, Pid: pid, Time: now})
			if ev.mask&(fanCreate|fanMovedTo) == 0 {
				continue
			}
		}
		c := Creation{Name: ev.name, Pid: pid, Time: now, Moved: ev.mask&fanCreate == 0, File: ev.file}
		w.rec.Creations = append(w.rec.Creations, c)
		if w.onCreate != nil {
			w.onCreate(c)
		}
	}
	if err != nil {
		w.lostLocked(err.Error())
	}
}

// Stop ends the watch and returns the record: every creation before the
// call (in the order the kernel queued them), unless Lost says otherwise.
// It also takes the watch's mark off the directory; the descriptors stay
// open until Close. Later calls return the same record.
//
// Why two steps: closing a fanotify group whose marks are still attached
// waits in the kernel until they are destroyed, an SRCU grace period
// (fs/notify/group.c, fsnotify_destroy_group: fsnotify_wait_marks_destroyed),
// 13 ms here for each group, run after run. A mark removed first is
// destroyed in the background: the close a moment later finds nothing to
// wait for (0.1 ms).
func (w *Watch) Stop() Record {
	w.mu.Lock()
	stopped := w.stopped
	w.stopped = true
	w.mu.Unlock()
	if !stopped {
		if err := w.fan.SetReadDeadline(time.Unix(1, 0)); err != nil {
			w.lose("stopping the watch: " + err.Error())
		}
		<-w.done
		// FAN_MARK_FLUSH with no object type removes the group's inode
		// marks (fanotify_mark(2)): the one on the directory.
		if rc, err := w.fan.SyscallConn(); err == nil {
			rc.Control(func(fd uintptr) { unix.FanotifyMark(int(fd), unix.FAN_MARK_FLUSH, 0, 0, "") })
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.rec
}

// Close stops the watch if Stop was not called and releases its
// descriptors. Later calls do nothing.
func (w *Watch) Close() {
	w.Stop()
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.closed {
		w.fan.Close()
		w.closed = true
	}
}
