package procfs

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"syscall"
)

// DefaultRoot is where procfs is mounted on an ordinary system.
const DefaultRoot = "/proc"

// FS reads the files of one procfs mount. Copies of an FS share what it
// learned of the mount (see Ours). Tests point it at fixtures with
// NewFS(dir).
type FS struct {
	root string
	ns   *nsCache
}

// nsCache remembers, once asked, whether the mount shows the caller's pid
// namespace.
type nsCache struct {
	once sync.Once
	ours bool
}

// NewFS returns an FS for the procfs mounted at root (usually "/proc").
// root must be a directory; the error is os.Stat's, or says it is not one.
func NewFS(root string) (FS, error) {
	fi, err := os.Stat(root)
	if err != nil {
		return FS{}, err
	}
	if !fi.IsDir() {
		return FS{}, fmt.Errorf("%s is not a directory", root)
	}
	return mount(root), nil
}

// Default returns an FS for /proc without checking that it is mounted
// (reads then fail one by one). Each call returns an FS that learns the
// mount's pid namespace afresh.
func Default() FS { return mount(DefaultRoot) }

func mount(root string) FS { return FS{root: root, ns: new(nsCache)} }

// Root is the directory the FS reads from.
func (fs FS) Root() string { return fs.root }

// Path joins elem to the proc root: fs.Path("sys", "kernel", "pid_max").
func (fs FS) Path(elem ...string) string {
	return filepath.Join(append([]string{fs.root}, elem...)...)
}

// pidPath is fs.Path(strconv.Itoa(pid), name) without the variadic join.
func (fs FS) pidPath(pid int, name string) string {
	return fs.root + "/" + strconv.Itoa(pid) + "/" + name
}

// Gone reports whether err, from reading a /proc/PID file, says the process
// is gone: ENOENT once its directory is removed, ESRCH for a file opened
// while it exited (fs/proc/base.c).
func Gone(err error) bool {
	return errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ESRCH)
}

// ReadAll reads the file at path to EOF into buf (reset first) and returns
// the grown buffer. It never trusts the size stat reports: procfs files
// report 0 or a wrong size. The error is os.Open's or read(2)'s.
func ReadAll(path string, buf []byte) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return buf[:0], err
	}
	defer f.Close()
	return readFile(f, buf)
}

// readChunk is how much a read buffer grows at a time.
const readChunk = 64 << 10

// readFile reads f to EOF into buf (reset first) and returns the grown
// buffer.
func readFile(f io.Reader, buf []byte) ([]byte, error) {
	buf = buf[:0]
	for {
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, cap(buf)+readChunk)
		}
		n, err := f.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}
