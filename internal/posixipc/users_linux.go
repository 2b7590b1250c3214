package posixipc

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"

	"github.com/ipcguard/ipcguard/internal/procfs"
	"golang.org/x/sys/unix"
)

// Use is one process's use of an object (package doc, "Users").
type Use struct {
	Pid int
	// Start is the process's start time in clock ticks after boot
	// (/proc/PID/stat field 22): with Pid, its identity.
	Start uint64
	Comm  string
	// FD: a descriptor of the object is open in the process; Tid is the
	// thread whose own fd table holds it when that is not the leader's
	// table (0 otherwise).
	FD  bool
	Tid int
	// Mapped: the process maps the object; Deleted: the mapping's path
	// ends in " (deleted)" (the name was unlinked since it was mapped).
	Mapped  bool
	Deleted bool
}

// Unreadable is a process whose use of objects is unknown.
type Unreadable struct {
	Pid   int
	Start uint64
	Comm  string
	// What could not be read: "fd", "task fd", "maps".
	What string
	Err  error
}

// Users is the result of FindUsers.
type Users struct {
	// Uses lists, for each object that has users, who uses it.
	Uses map[FileKey][]Use
	// Unreadable lists the processes whose fd tables or maps could not be
	// read (permission): each may use any of the objects.
	Unreadable []Unreadable
}

var errPidChurn = errors.New("the pid named another process at every reading")

// kcmpFiles is KCMP_FILES of include/uapi/linux/kcmp.h.
const kcmpFiles = 2

// FindUsers finds, in one pass over the processes proc shows ("/proc"),
// which live processes hold a descriptor of or map any of the objects keys
// (package doc, "Users"). The error is for proc itself; a process that
// cannot be read is in Users.Unreadable. The pass costs, per process, a
// read of stat (twice), of the fd directory with one stat per descriptor,
// and of maps.
func FindUsers(proc string, keys []FileKey) (Users, error) {
	u := Users{Uses: map[FileKey][]Use{}}
	want := make(map[FileKey]struct{}, len(keys))
	for _, k := range keys {
		want[k] = struct{}{}
	}
	pids, err := procfs.Tgids(proc)
	if err != nil {
		return u, fmt.Errorf("posixipc: listing %s: %w", proc, err)
	}
	pfd, err := unix.Open(proc, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return u, fmt.Errorf("posixipc: %w", err)
	}
	defer unix.Close(pfd)
	s := &scanner{proc: pfd, want: want, buf: make([]byte, 64<<10)}
	for _, pid := range pids {
		// A pid reused while it was read is read again for its new holder.
		again := true
		for try := 0; try < 3 && again; try++ {
			again = s.process(pid, &u)
		}
		if again {
			u.Unreadable = append(u.Unreadable, Unreadable{Pid: pid, What: "process", Err: errPidChurn})
		}
	}
	return u, nil
}

type scanner struct {
	proc int
	want map[FileKey]struct{}
	buf  []byte
	dent []byte
}

// process reads one process; it returns true when the process under pid
// changed while it was read (read it again).
func (s *scanner) process(pid int, u *Users) (again bool) {
	p := strconv.Itoa(pid)
	st, ok := s.stat(p)
	if !ok {
		return false
	}
	found := map[FileKey]*Use{}
	use := func(k FileKey) *Use {
		x := found[k]
		if x == nil {
			x = &Use{Pid: pid, Start: st.Start, Comm: st.Comm}
			found[k] = x
		}
		return x
	}
	var unread []Unreadable
	note := func(what string, err error) {
		unread = append(unread, Unreadable{Pid: pid, Start: st.Start, Comm: st.Comm, What: what, Err: err})
	}
	fdErr := s.fds(p+"/fd", func(k FileKey) { use(k).FD = true })
	if fdErr != nil && !gone(fdErr) {
		note("fd", fdErr)
	}
	tasks, _ := s.tasks(p)
	for _, tid := range tasks {
		if tid == pid || (fdErr != nil && !gone(fdErr)) {
			// The leader's, or refused already (a thread's table has
			// the same ptrace check).
			continue
		}
		r, _, errno := unix.Syscall6(unix.SYS_KCMP, uintptr(pid), uintptr(tid), kcmpFiles, 0, 0, 0)
		if errno == 0 && r == 0 {
			continue // the leader's table
		}
		t := tid
		if err := s.fds(p+"/task/"+strconv.Itoa(tid)+"/fd", func(k FileKey) {
			x := use(k)
			if !x.FD {
				x.FD, x.Tid = true, t
			}
		}); err != nil && !gone(err) {
			note("task fd", err)
		}
	}
	n, err := s.maps(p+"/maps", use)
	if err == nil && n == 0 && len(tasks) > 1 {
		// An exited leader has no address space any more; its threads
		// share one.
		for _, tid := range tasks {
			if tid != pid {
				if n, err = s.maps(p+"/task/"+strconv.Itoa(tid)+"/maps", use); err == nil && n > 0 {
					break
				}
			}
		}
	}
	if err != nil && !gone(err) {
		note("maps", err)
	}
	st2, ok := s.stat(p)
	if !ok {
		return false // exited meanwhile: it uses nothing now
	}
	if st2.Start != st.Start {
		return true
	}
	for k, x := range found {
		u.Uses[k] = append(u.Uses[k], *x)
	}
	u.Unreadable = append(u.Unreadable, unread...)
	return false
}

// gone reports whether err means the process or thread no longer exists.
func gone(err error) bool {
	return errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ESRCH)
}

func (s *scanner) read(path string) ([]byte, error) {
	fd, err := unix.Openat(s.proc, path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	n := 0
	for {
		if n == len(s.buf) {
			s.buf = append(s.buf, make([]byte, len(s.buf))...)
		}
		m, err := unix.Read(fd, s.buf[n:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, err
		}
		if m == 0 {
			return s.buf[:n], nil
		}
		n += m
	}
}

func (s *scanner) stat(p string) (procfs.Stat, bool) {
	b, err := s.read(p + "/stat")
	if err != nil {
		return procfs.Stat{}, false
	}
	st, err := procfs.ParseStat(b)
	return st, err == nil
}

func (s *scanner) tasks(p string) ([]int, error) {
	names, err := s.dirNames(p + "/task")
	if err != nil {
		return nil, err
	}
	tids := make([]int, 0, len(names))
	for _, n := range names {
		if t, err := strconv.Atoi(n); err == nil {
			tids = append(tids, t)
		}
	}
	return tids, nil
}

func (s *scanner) dirNames(path string) ([]string, error) {
	fd, err := unix.Openat(s.proc, path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	return readNames(fd, &s.dent)
}

// readNames reads the directory fd to EOF from its offset and returns the
// names but "." and "..", reading into *buf (allocated on first use).
func readNames(fd int, buf *[]byte) ([]string, error) {
	if *buf == nil {
		*buf = make([]byte, 16<<10)
	}
	var names []string
	for {
		n, err := unix.Getdents(fd, *buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, err
		}
		if n <= 0 {
			return names, nil
		}
		_, _, names = unix.ParseDirent((*buf)[:n], -1, names)
	}
}

// fds stats every descriptor of the fd directory path (relative to proc)
// through its link and calls hit for those of a wanted object.
func (s *scanner) fds(path string, hit func(FileKey)) error {
	fd, err := unix.Openat(s.proc, path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	names, err := readNames(fd, &s.dent)
	if err != nil {
		return err
	}
	var st unix.Stat_t
	for _, n := range names {
		if err := unix.Fstatat(fd, n, &st, 0); err != nil {
			if gone(err) {
				continue // closed meanwhile
			}
			return err
		}
		k := FileKey{Dev: st.Dev, Ino: st.Ino}
		if _, ok := s.want[k]; ok {
			hit(k)
		}
	}
	return nil
}

var deleted = []byte(" (deleted)")

// maps reads a maps file and marks the wanted objects it maps; it returns
// the number of lines.
func (s *scanner) maps(path string, use func(FileKey) *Use) (int, error) {
	b, err := s.read(path)
	if err != nil {
		return 0, err
	}
	lines := 0
	for len(b) > 0 {
		var line []byte
		line, b, _ = bytes.Cut(b, []byte{'\n'})
		lines++
		k, ok, err := mapsKey(line)
		if err != nil || !ok {
			continue
		}
		if _, w := s.want[k]; w {
			x := use(k)
			x.Mapped = true
			if bytes.HasSuffix(line, deleted) {
				x.Deleted = true
			}
		}
	}
	return lines, nil
}
