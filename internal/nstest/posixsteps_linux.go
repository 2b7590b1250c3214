package nstest

import (
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// posixObject runs a POSIX step of the ipc helper (see IPCCmd):
//
//	pshm:name=N[:size=S][:open][:map][:hold][:unlink][:mode=M]
//	psem:name=N[:open][:unlink][:mode=M]
//	pmsg:name=N[:open][:send][:notify][:unlink][:mode=M]
//
// Without open or unlink the step creates the object and fails if the name
// exists; it records "pshm N", "psem sem.N" or "pmsg N" (the name as the
// shm directory or the mqueue mount lists it). Names are given without the
// leading '/'. It reports false for a step that is not one of these.
func (h *helper) posixObject(parts []string) (bool, error) {
	kind := parts[0]
	if kind != "pshm" && kind != "psem" && kind != "pmsg" {
		return false, nil
	}
	var name string
	size, mode := 4096, uint32(0o600)
	flags := map[string]bool{}
	for _, p := range parts[1:] {
		k, v, _ := strings.Cut(p, "=")
		switch k {
		case "name":
			name = strings.TrimPrefix(v, "/")
		case "size":
			x, err := strconv.Atoi(v)
			if err != nil {
				return true, err
			}
			size = x
		case "mode":
			x, err := strconv.ParseUint(v, 8, 32)
			if err != nil {
				return true, err
			}
			mode = uint32(x)
		default:
			flags[k] = true
		}
	}
	if name == "" || strings.Contains(name, "/") {
		return true, fmt.Errorf("name %q: want one path component", name)
	}
	// The mode is exact, as the tests ask for it.
	old := unix.Umask(0)
	defer unix.Umask(old)
	switch kind {
	case "pshm":
		return true, h.pshm(name, size, mode, flags)
	case "psem":
		return true, h.psem(name, mode, flags)
	}
	return true, h.pmsg(name, mode, flags)
}

// held keeps what the helper's objects must stay held by: descriptors
// are plain numbers (no finalizer closes them) and mappings stay until exit.
var held [][]byte

func (h *helper) recordName(typ, name string) error {
	if h.out == "" {
		return nil
	}
	f, err := os.OpenFile(h.out, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(f, "%s %s\n", typ, name)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// pshm is shm_open(3) as glibc does it: open(2) of a file of the shm
// directory, O_NOFOLLOW|O_CLOEXEC; a new object is sized with ftruncate.
func (h *helper) pshm(name string, size int, mode uint32, flags map[string]bool) error {
	path := ShmDir + "/" + name
	if flags["unlink"] {
		return unix.Unlink(path)
	}
	of := unix.O_RDWR | unix.O_NOFOLLOW | unix.O_CLOEXEC
	if !flags["open"] {
		of |= unix.O_CREAT | unix.O_EXCL
	}
	fd, err := unix.Open(path, of, mode)
	if err != nil {
		return err
	}
	if !flags["open"] {
		if err := unix.Ftruncate(fd, int64(size)); err != nil {
			return err
		}
		if err := h.recordName("pshm", name); err != nil {
			return err
		}
	}
	if flags["map"] {
		if err := mapFd(fd); err != nil {
			return err
		}
	}
	if !flags["hold"] {
		return unix.Close(fd)
	}
	return nil
}

// mapFd maps the whole file (at least a page) shared.
func mapFd(fd int) error {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	n := int(max(st.Size, 4096))
	b, err := unix.Mmap(fd, 0, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return err
	}
	held = append(held, b)
	return nil
}

// semSize is sizeof(sem_t) of glibc on 64-bit Linux.
const semSize = 32

// psem is sem_open(3) as glibc (sysdeps/pthread/sem_open.c) does it: an
// existing semaphore is opened and mapped; a new one is written to a
// temporary file "sem.XXXXXX" of the shm directory, mapped, link(2)ed to
// "sem.NAME" and the temporary name unlinked. The mapping stays, the
// descriptor is closed.
func (h *helper) psem(name string, mode uint32, flags map[string]bool) error {
	path := ShmDir + "/sem." + name
	if flags["unlink"] {
		return unix.Unlink(path)
	}
	if flags["open"] {
		fd, err := unix.Open(path, unix.O_RDWR|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		return mapFd(fd)
	}
	var fd int
	var tmp string
	for {
		var r [6]byte
		rand.Read(r[:])
		const letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
		for i := range r {
			r[i] = letters[int(r[i])%len(letters)]
		}
		tmp = ShmDir + "/sem." + string(r[:])
		var err error
		fd, err = unix.Open(tmp, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, mode)
		if err == nil {
			break
		}
		if !errors.Is(err, unix.EEXIST) {
			return err
		}
	}
	defer unix.Close(fd)
	if _, err := unix.Write(fd, make([]byte, semSize)); err != nil {
		unix.Unlink(tmp)
		return err
	}
	if err := mapFd(fd); err != nil {
		unix.Unlink(tmp)
		return err
	}
	err := unix.Link(tmp, path)
	unix.Unlink(tmp)
	if err != nil {
		return err
	}
	return h.recordName("psem", "sem."+name)
}

// mqAttr is struct mq_attr (mq_open(3)).
type mqAttr struct {
	flags, maxmsg, msgsize, curmsgs int64
	_                               [4]int64
}

// sigevent is struct sigevent (sigevent(7)) on 64-bit Linux: 64 bytes.
type sigevent struct {
	value  uint64
	signo  int32
	notify int32
	_      [48]byte
}

// pmsg is mq_open(3): the system call takes the name without its '/'. The
// queue descriptor stays open until the helper exits. send queues
// "hello"; notify registers the helper with mq_notify(SIGEV_NONE), which
// makes it the queue's NOTIFY_PID.
func (h *helper) pmsg(name string, mode uint32, flags map[string]bool) error {
	p, err := unix.BytePtrFromString(name)
	if err != nil {
		return err
	}
	if flags["unlink"] {
		if _, _, e := unix.Syscall(unix.SYS_MQ_UNLINK, uintptr(unsafe.Pointer(p)), 0, 0); e != 0 {
			return e
		}
		return nil
	}
	of := unix.O_RDWR | unix.O_CLOEXEC
	if !flags["open"] {
		of |= unix.O_CREAT | unix.O_EXCL
	}
	attr := mqAttr{maxmsg: 4, msgsize: 16}
	fd, _, e := unix.Syscall6(unix.SYS_MQ_OPEN, uintptr(unsafe.Pointer(p)), uintptr(of), uintptr(mode),
		uintptr(unsafe.Pointer(&attr)), 0, 0)
	if e != 0 {
		return fmt.Errorf("mq_open: %w", e)
	}
	if !flags["open"] {
		if err := h.recordName("pmsg", name); err != nil {
			return err
		}
	}
	if flags["send"] {
		msg := []byte("hello")
		if _, _, e := unix.Syscall6(unix.SYS_MQ_TIMEDSEND, fd, uintptr(unsafe.Pointer(&msg[0])), uintptr(len(msg)), 0, 0, 0); e != 0 {
			return fmt.Errorf("mq_send: %w", e)
		}
	}
	if flags["notify"] {
		ev := sigevent{notify: 1} // SIGEV_NONE
		if _, _, e := unix.Syscall(unix.SYS_MQ_NOTIFY, fd, uintptr(unsafe.Pointer(&ev)), 0); e != 0 {
			return fmt.Errorf("mq_notify: %w", e)
		}
	}
	return nil
}
