package ipcdiff

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sync"

	"github.com/ipcguard/ipcguard/internal/procfs"
)

// DefaultProcRoot is where procfs is mounted on an ordinary system.
const DefaultProcRoot = procfs.DefaultRoot

// FS reads the files of one procfs mount: /proc/sysvipc/{shm,sem,msg}
// itself, and /proc/PID/maps and the namespace links through
// internal/procfs; with OpenPosix, also the POSIX IPC directories (the
// shm directory and the mqueue instance). It is a value; its one shared
// mutable state is the verdict on an mqueue mount OpenPosix could not
// prove ours at first (PosixDir may prove it later, for every copy).
// Tests point it at fixtures with NewFS("../testdata/fixtures/proc").
//
// What /proc/sysvipc shows depends on the IPC namespace of the thread that
// reads it, so an FS reads in the calling goroutine only.
type FS struct {
	proc  procfs.FS
	posix *posixDirs // the POSIX directories (OpenPosix); nil: none
	// unproven: snapshots also list an mqueue mount not proven ours yet
	// (Unproven).
	unproven bool
	// textOnly: System V tables are read from /proc/sysvipc, never
	// scanned with *_STAT_ANY (tests compare the two).
	textOnly bool
}

// NewFS returns an FS for the procfs mounted at procRoot (usually "/proc").
// procRoot must be a directory.
// The error wraps ErrUnavailable.
func NewFS(procRoot string) (FS, error) {
	p, err := procfs.NewFS(procRoot)
	if err != nil {
		return FS{}, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return FS{proc: p}, nil
}

// Path joins elem to the proc root: fs.Path("sysvipc", "shm").
func (fs FS) Path(elem ...string) string { return fs.proc.Path(elem...) }

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

// hint is the number of rows expected (0: unknown); it sizes the result.
func readOpenTable[T any](f *os.File, name string, parse func([]byte, []T) ([]T, error), hint int) ([]T, error) {
	return readTableChunks(f, name, parse, tableChunk, hint)
}

// tableChunk is how much of a table is read and parsed at a time: a table
// at the kernel limits is MiBs, and holding it whole (three of them at once
// while a snapshot reads in parallel) would dominate ipcguard's memory.
const tableChunk = 128 << 10

// readTableChunks reads a table chunk by chunk and parses each run of
// complete lines with the header in front of it, so that parse sees a
// table of its own every time. A line longer than the buffer grows it.
func readTableChunks[T any](r io.Reader, name string, parse func([]byte, []T) ([]T, error), chunk, hint int) ([]T, error) {
	bp := getBuf()
	defer putBuf(bp)
	buf := slices.Grow((*bp)[:0], chunk)
	defer func() { *bp = buf[:0] }()
	var out []T
	if hint > 0 {
		out = make([]T, 0, hint+hint/8+16) // room for objects made while we read
	}
	head := -1 // length of the header line, newline included, once read
	for {
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, cap(buf))
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		eof := err == io.EOF
		if err != nil && !eof {
			return nil, fmt.Errorf("ipcdiff: reading %s: %w", name, err)
		}
		if head < 0 {
			i := bytes.IndexByte(buf, '\n')
			if i < 0 && !eof {
				continue
			}
			head = len(buf)
			if i >= 0 {
				head = i + 1
			}
		}
		end := len(buf)
		if !eof {
			end = bytes.LastIndexByte(buf, '\n') + 1
		}
		if end > head || (eof && len(out) == 0) {
			if out, err = parse(buf[:end], out); err != nil {
				return nil, err
			}
		}
		if eof {
			if out == nil {
				out = []T{}
			}
			return out, nil
		}
		// Keep the header and the partial last line; read on after them.
		if end > head {
			buf = append(buf[:head], buf[end:]...)
		}
	}
}
