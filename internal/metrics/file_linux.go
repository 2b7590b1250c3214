package metrics

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// maxOld bounds how much of an existing file is read to carry its
// counters over: a file of this package's is a few KiB.
const maxOld = 1 << 20

// File is a metrics file whose directory was opened and checked: the
// directory is held by descriptor, so what Write replaces is in the
// directory that was checked, whatever happens to the path later.
type File struct {
	path string
	dir  *os.File // O_RDONLY|O_DIRECTORY, for flock and the *at calls
	name string
}

// ErrUnsafePath is returned for a path another user could redirect: a
// symbolic link on the way that is owned by a user other than this
// process's effective uid and root, or a directory on the way that every
// user may write and that lacks the sticky bit.
var ErrUnsafePath = errors.New("unsafe path")

// Open checks path's directory and holds it open for Write. The file
// itself need not exist. Errors: ErrUnsafePath; the errno of a lookup
// (ENOENT for a missing directory, EACCES, ENOTDIR); EISDIR when path
// names no file ("", "dir/", "..").
func Open(path string) (*File, error) {
	dir, name := filepath.Split(path)
	if name == "" || name == "." || name == ".." {
		return nil, fmt.Errorf("%s: %w", path, unix.EISDIR)
	}
	if dir == "" {
		dir = "."
	}
	fd, err := openDir(dir)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &File{path: path, dir: os.NewFile(uintptr(fd), dir), name: name}, nil
}

// Close releases the directory.
func (f *File) Close() error { return f.dir.Close() }

// Path is the path Open was given.
func (f *File) Path() string { return f.path }

// openDir opens dir (O_RDONLY|O_DIRECTORY) walking it one component at a
// time from a descriptor: a symbolic link is followed only when its owner
// is the effective uid or root (the rule of fs.protected_symlinks, applied
// everywhere), and no directory on the way may be writable by every user
// without the sticky bit (anyone could swap its entries).
func openDir(dir string) (int, error) {
	euid := uint32(os.Geteuid())
	start := "."
	if filepath.IsAbs(dir) {
		start = "/"
	}
	fd, err := unix.Open(start, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	closeFd := func() { unix.Close(fd) }
	if err := checkDir(fd, start); err != nil {
		closeFd()
		return -1, err
	}
	comps := strings.Split(dir, "/")
	links := 0
	walked := start
	for len(comps) > 0 {
		c := comps[0]
		comps = comps[1:]
		if c == "" || c == "." {
			continue
		}
		var st unix.Stat_t
		if err := unix.Fstatat(fd, c, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			closeFd()
			return -1, err
		}
		if st.Mode&unix.S_IFMT == unix.S_IFLNK {
			if st.Uid != euid && st.Uid != 0 {
				closeFd()
				return -1, fmt.Errorf("%w: %s is a symbolic link owned by uid %d", ErrUnsafePath, filepath.Join(walked, c), st.Uid)
			}
			if links++; links > 40 {
				closeFd()
				return -1, unix.ELOOP
			}
			buf := make([]byte, unix.PathMax)
			n, err := unix.Readlinkat(fd, c, buf)
			if err != nil {
				closeFd()
				return -1, err
			}
			target := string(buf[:n])
			if strings.HasPrefix(target, "/") {
				nfd, err := unix.Open("/", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
				if err != nil {
					closeFd()
					return -1, err
				}
				closeFd()
				fd, walked = nfd, "/"
			}
			comps = append(strings.Split(target, "/"), comps...)
			continue
		}
		// O_NOFOLLOW|O_DIRECTORY: a link swapped in since the check
		// fails (ENOTDIR) instead of being followed.
		nfd, err := unix.Openat(fd, c, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			closeFd()
			return -1, err
		}
		closeFd()
		fd = nfd
		walked = filepath.Join(walked, c)
		if err := checkDir(fd, walked); err != nil {
			closeFd()
			return -1, err
		}
	}
	rfd, err := unix.Openat(fd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	closeFd()
	return rfd, err
}

func checkDir(fd int, name string) error {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	if st.Mode&0o002 != 0 && st.Mode&unix.S_ISVTX == 0 {
		return fmt.Errorf("%w: every user may write to %s", ErrUnsafePath, name)
	}
	return nil
}

// Write adds run to the file: under an exclusive lock of the directory
// (flock), it reads the counters of the file as it is (if it is a regular
// file owned by this process's effective uid; anything else is replaced
// without being read), adds run's, and replaces the file atomically: a
// new file (mode 0644, as node_exporter's textfile collector reads it) in
// the same directory, written, synced, then renamed over the old one. A
// symbolic link at the path is replaced, never followed.
func (f *File) Write(run Run) error {
	dfd := int(f.dir.Fd())
	if err := unix.Flock(dfd, unix.LOCK_EX); err != nil {
		return fmt.Errorf("%s: locking the directory: %w", f.path, err)
	}
	defer unix.Flock(dfd, unix.LOCK_UN)

	old := f.readOld()
	var set Set
	if old != nil {
		var err error
		if set, err = Parse(old); err != nil {
			set = Set{} // not ours, or damaged: start again
		}
	}
	set.Add(run)
	var b bytes.Buffer
	set.WriteTo(&b)

	tmp, tfd, err := f.createTemp()
	if err != nil {
		return fmt.Errorf("%s: %w", f.path, err)
	}
	tf := os.NewFile(uintptr(tfd), tmp)
	fail := func(err error) error {
		tf.Close()
		unix.Unlinkat(dfd, tmp, 0)
		return fmt.Errorf("%s: %w", f.path, err)
	}
	if err := unix.Fchmod(tfd, 0o644); err != nil {
		return fail(err)
	}
	if _, err := tf.Write(b.Bytes()); err != nil {
		return fail(err)
	}
	if err := tf.Sync(); err != nil {
		return fail(err)
	}
	if err := tf.Close(); err != nil {
		unix.Unlinkat(dfd, tmp, 0)
		return fmt.Errorf("%s: %w", f.path, err)
	}
	if err := unix.Renameat(dfd, tmp, dfd, f.name); err != nil {
		unix.Unlinkat(dfd, tmp, 0)
		return fmt.Errorf("%s: %w", f.path, err)
	}
	unix.Fsync(dfd)
	return nil
}

// readOld returns the current file's bytes if it is a regular file of
// ours, else nil.
func (f *File) readOld() []byte {
	fd, err := unix.Openat(int(f.dir.Fd()), f.name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil
	}
	file := os.NewFile(uintptr(fd), f.name)
	defer file.Close()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG || st.Uid != uint32(os.Geteuid()) {
		return nil
	}
	b, err := io.ReadAll(io.LimitReader(file, maxOld+1))
	if err != nil || len(b) > maxOld {
		return nil
	}
	return b
}

// createTemp makes ".NAME.tmp-PID-RANDOM" in the directory; node_exporter
// reads only *.prom, so a temporary file is never collected.
func (f *File) createTemp() (string, int, error) {
	for i := 0; ; i++ {
		name := fmt.Sprintf(".%s.tmp-%d-%x", f.name, os.Getpid(), rand.Uint64())
		fd, err := unix.Openat(int(f.dir.Fd()), name,
			unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		if err == nil {
			return name, fd, nil
		}
		if err != unix.EEXIST || i > 10 {
			return "", -1, err
		}
	}
}
