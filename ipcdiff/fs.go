package ipcdiff

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"
)

// DefaultProcRoot is where procfs is mounted on an ordinary system.
const DefaultProcRoot = "/proc"

// FS reads the files of one procfs mount: /proc/sysvipc/{shm,sem,msg} and
// /proc/PID/maps. It is a value with no mutable state; tests point it at
// fixtures with NewFS("../testdata/fixtures/proc").
//
// What /proc/sysvipc shows depends on the IPC namespace of the thread that
// reads it, so an FS reads in the calling goroutine only.
type FS struct {
	root string
}

// NewFS returns an FS for the procfs mounted at procRoot (usually "/proc").
// procRoot must be a directory.
func NewFS(procRoot string) (FS, error) {
	fi, err := os.Stat(procRoot)
	if err != nil {
		return FS{}, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	if !fi.IsDir() {
		return FS{}, fmt.Errorf("%w: %s is not a directory", ErrUnavailable, procRoot)
	}
	return FS{root: procRoot}, nil
}

// Root is the directory the FS reads from.
func (fs FS) Root() string { return fs.root }

// Path joins elem to the proc root: fs.Path("sysvipc", "shm").
func (fs FS) Path(elem ...string) string {
	return filepath.Join(append([]string{fs.root}, elem...)...)
}

// initialReadBuf is the first size of a read buffer; a full table at the
// kernel limits is a few MiB and the pool keeps grown buffers.
const initialReadBuf = 64 << 10

// maxPooledBuf bounds the buffers the pool keeps: a table at the kernel
// limits takes MiBs, and the two snapshots of a run are far apart in time,
// so a big buffer is better returned to the collector than kept.
const maxPooledBuf = 1 << 20

var readBufs = sync.Pool{New: func() any {
	b := make([]byte, 0, initialReadBuf)
	return &b
}}

func getBuf() *[]byte { return readBufs.Get().(*[]byte) }

func putBuf(b *[]byte) {
	if cap(*b) > maxPooledBuf {
		return
	}
	*b = (*b)[:0]
	readBufs.Put(b)
}

// readAll reads the file at path to EOF into buf (reset first) and returns
// the grown buffer. It never trusts the size stat reports: procfs files
// report 0 or a wrong size.
func readAll(path string, buf []byte) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return buf, err
	}
	defer f.Close()
	return readFile(f, buf)
}

// readFile reads f to EOF into buf (reset first).
func readFile(f *os.File, buf []byte) ([]byte, error) {
	buf = buf[:0]
	for {
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, cap(buf)+initialReadBuf)
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

// readTable reads /proc/sysvipc/name with a pooled buffer and hands the
// bytes to parse; parse must not keep references to them.
func readTable[T any](fs FS, name string, parse func([]byte) ([]T, error)) ([]T, error) {
	f, err := fs.openTable(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readOpenTable(f, name, parse)
}

// openTable opens /proc/sysvipc/name. The kernel binds the open file to the
// IPC namespace of the opening thread, so a file opened on the caller's
// goroutine may be read from any other.
func (fs FS) openTable(name string) (*os.File, error) {
	f, err := os.Open(fs.Path("sysvipc", name))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
		return nil, fmt.Errorf("ipcdiff: opening %s: %w", name, err)
	}
	return f, nil
}

func readOpenTable[T any](f *os.File, name string, parse func([]byte) ([]T, error)) ([]T, error) {
	bp := getBuf()
	defer putBuf(bp)
	b, err := readFile(f, *bp)
	*bp = b
	if err != nil {
		return nil, fmt.Errorf("ipcdiff: reading %s: %w", name, err)
	}
	return parse(b)
}
