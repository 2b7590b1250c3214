package posixipc

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// mqueueMagic is the f_type of mqueue (ipc/mqueue.c, MQUEUE_MAGIC).
const mqueueMagic = 0x19800202

// Errors of OpenShm and OpenMqueue.
var (
	// ErrNoMqueue: no directory of the caller's mqueue instance could be
	// found (no mqueue mount and no privilege to make one, or only mounts of
	// other IPC namespaces). Queues can then not be listed.
	ErrNoMqueue = errors.New("posixipc: no mqueue directory of this IPC namespace")
	// ErrNotDir: the path is a symlink or not a directory.
	ErrNotDir = errors.New("posixipc: not a directory (or a symlink)")
)

// NS says whether a directory is known to show the objects of the
// caller's namespace.
type NS uint8

const (
	// NSOurs: the directory is the caller's (the shm directory given, or
	// our own mqueue instance, proven).
	NSOurs NS = iota + 1
	// NSUnknown: an mqueue mount whose namespace could not be proven; its
	// listing may be another namespace's.
	NSUnknown
	// NSForeign: an mqueue mount proven to be another IPC namespace's.
	NSForeign
)

func (n NS) String() string {
	switch n {
	case NSOurs:
		return "ours"
	case NSUnknown:
		return "unknown"
	case NSForeign:
		return "another IPC namespace's"
	}
	return fmt.Sprintf("NS(%d)", uint8(n))
}

// Dir is an open directory of objects: the shm directory, or an mqueue
// instance. Every operation works relative to its descriptor.
type Dir struct {
	fd int
	// Path is where the directory was found; "" for a detached mount of
	// our mqueue instance (messages name a mount point of it, if any).
	Path      string
	mountinfo string // for a detached mount: the mount table that names it
	// Dev is the st_dev of the directory's filesystem instance.
	Dev uint64
	// Magic is the filesystem's f_type (statfs(2)): unix.TMPFS_MAGIC for a
	// mounted /dev/shm, 0x19800202 for mqueue.
	Magic int64
	// Queues is true for an mqueue directory.
	Queues bool
	// NS says whether the listing is the caller's namespace's; NSWhy says
	// how that was decided.
	NS    NS
	NSWhy string
}

// Close releases the directory descriptor.
func (d *Dir) Close() error {
	if d.fd < 0 {
		return nil
	}
	err := unix.Close(d.fd)
	d.fd = -1
	return err
}

// OpenShm opens the shm directory at path (glibc: /dev/shm) with
// O_DIRECTORY|O_NOFOLLOW: a symlink in its place gives ErrNotDir. The
// directory need not be a tmpfs (Dir.Magic says what it is).
func OpenShm(path string) (*Dir, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR) {
			return nil, fmt.Errorf("%w: %s: %w", ErrNotDir, path, err)
		}
		return nil, fmt.Errorf("posixipc: open %s: %w", path, err)
	}
	d, err := newDir(fd, path)
	if err != nil {
		return nil, err
	}
	d.NS, d.NSWhy = NSOurs, "the shm directory given"
	return d, nil
}

func newDir(fd int, path string) (*Dir, error) {
	var st unix.Stat_t
	var sf unix.Statfs_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("posixipc: fstat %s: %w", path, err)
	}
	if err := unix.Fstatfs(fd, &sf); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("posixipc: fstatfs %s: %w", path, err)
	}
	return &Dir{fd: fd, Path: path, Dev: st.Dev, Magic: int64(sf.Type), Queues: sf.Type == mqueueMagic}, nil
}

// OpenMqueue finds the mqueue directory of the caller's IPC namespace (see
// the package doc, "Where"). proc is the proc mount ("/proc"); the mount
// table read is proc/thread-self/mountinfo, the calling thread's mount
// namespace. It returns ErrNoMqueue when it finds no directory that may be
// ours; a Dir with NS NSUnknown when it found a mount it could not prove.
func OpenMqueue(proc string) (*Dir, error) {
	// Our own instance, detached, needs no mount table: the table only
	// names it in messages (Dir.where), read then.
	d, err := detachedMqueue()
	if err == nil {
		d.mountinfo = filepath.Join(proc, "thread-self", "mountinfo")
		return d, nil
	}
	mounts, merr := mqueueMounts(filepath.Join(proc, "thread-self", "mountinfo"))
	if len(mounts) == 0 {
		if merr != nil {
			return nil, fmt.Errorf("%w: %w; mountinfo: %w", ErrNoMqueue, err, merr)
		}
		return nil, fmt.Errorf("%w: no mqueue mount, and %w", ErrNoMqueue, err)
	}
	var unknown *Dir
	var why []string
	for _, m := range mounts {
		fd, err := unix.Open(m.Point, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			why = append(why, fmt.Sprintf("%s: %v", m.Point, err))
			continue
		}
		d, err := newDir(fd, m.Point)
		if err != nil {
			why = append(why, err.Error())
			continue
		}
		if !d.Queues || d.Dev != m.Dev {
			why = append(why, m.Point+": another filesystem is there now")
			d.Close()
			continue
		}
		d.NS, d.NSWhy = proveMount(d)
		switch {
		case d.NS == NSOurs:
			if unknown != nil {
				unknown.Close()
			}
			return d, nil
		case d.NS == NSUnknown && unknown == nil:
			unknown = d
		default:
			why = append(why, m.Point+": "+d.NSWhy)
			d.Close()
		}
	}
	if unknown != nil {
		return unknown, nil
	}
	return nil, fmt.Errorf("%w: %v", ErrNoMqueue, why)
}

// detachedMqueue makes a detached mount of the caller's own mqueue
// instance (needs CAP_SYS_ADMIN over the IPC namespace's user namespace).
func detachedMqueue() (*Dir, error) {
	fsfd, err := unix.Fsopen("mqueue", unix.FSOPEN_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("fsopen(mqueue): %w", err)
	}
	defer unix.Close(fsfd)
	if err := unix.FsconfigCreate(fsfd); err != nil {
		return nil, fmt.Errorf("fsconfig(mqueue, create): %w", err)
	}
	mfd, err := unix.Fsmount(fsfd, unix.FSMOUNT_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("fsmount(mqueue): %w", err)
	}
	defer unix.Close(mfd)
	fd, err := unix.Openat(mfd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open detached mqueue mount: %w", err)
	}
	d, err := newDir(fd, "")
	if err != nil {
		return nil, err
	}
	d.NS, d.NSWhy = NSOurs, "a detached mount of this IPC namespace's instance"
	return d, nil
}

// Prove tries again to prove that d, an mqueue directory OpenMqueue could
// not prove (NSUnknown), is the caller's namespace's instance, the same
// way (package doc, "Where"): typically after the caller's command made
// queues there that it can open. On a verdict (NSOurs, NSForeign) it
// records it in d.NS and d.NSWhy; NSUnknown leaves d as it was. A directory
// that is not NSUnknown is left as it is and its NS returned.
//
// The descriptor pins the filesystem instance (a mount never changes its
// superblock, and the open mount keeps it alive; d.Dev is its device), so
// a proof holds for every listing made through d, those made before it
// too; it proves nothing about a mount at d.Path opened anew.
func (d *Dir) Prove() (NS, string) {
	if !d.Queues || d.NS != NSUnknown || d.fd < 0 {
		return d.NS, d.NSWhy
	}
	var st unix.Stat_t
	if err := unix.Fstat(d.fd, &st); err != nil || st.Dev != d.Dev {
		return d.NS, d.NSWhy
	}
	ns, why := proveMount(d)
	if ns != NSUnknown {
		d.NS, d.NSWhy = ns, why+" (proven after it was opened)"
	}
	return ns, why
}

// maxProbes bounds the entries proveMount tries.
const maxProbes = 64

// proveMount decides whether the mqueue mount d is the caller's namespace's
// instance by opening its names with mq_open (package doc, "Where").
func proveMount(d *Dir) (NS, string) {
	names, err := d.names()
	if err != nil {
		return NSUnknown, "its entries could not be read: " + err.Error()
	}
	tried := 0
	for _, name := range names {
		if tried == maxProbes {
			break
		}
		before, err := d.statName(name)
		if err != nil || before.Mode&unix.S_IFMT != unix.S_IFREG {
			continue
		}
		tried++
		k1 := FileKey{Dev: mkdev(before.Dev_major, before.Dev_minor), Ino: before.Ino}
		ours, err := mqOpenKey(name)
		if err == nil {
			if ours == k1 {
				return NSOurs, fmt.Sprintf("mq_open(%q) opened the inode the mount shows", name)
			}
		} else if !errors.Is(err, unix.ENOENT) {
			continue // not ours to open: no proof either way
		}
		// Our namespace has no queue NAME, or another inode under it. If
		// the mount's NAME is the same inode after, it existed
		// throughout (mqueue has no link or rename): another namespace.
		after, err := d.statName(name)
		if err == nil && after.Ino == before.Ino && mkdev(after.Dev_major, after.Dev_minor) == k1.Dev {
			return NSForeign, fmt.Sprintf("queue %q of the mount is not this namespace's", name)
		}
	}
	if tried == 0 {
		return NSUnknown, "the mount holds no queue to compare"
	}
	return NSUnknown, "no queue of the mount could be opened to compare"
}

// mqOpenKey opens queue name of the caller's IPC namespace, read-only or
// else write-only (opening has no effect on a queue: ipc/mqueue.c has no
// open hook, and its flush hook only drops a notification the caller
// registered), and returns its device and inode. ENOENT means our
// namespace has no queue of that name; an existing queue the caller may
// not open is probed with the invalid access mode O_WRONLY|O_RDWR, which
// the kernel refuses with EINVAL before any permission check, and gives
// EACCES.
func mqOpenKey(name string) (FileKey, error) {
	for _, mode := range []int{unix.O_RDONLY, unix.O_WRONLY} {
		fd, err := mqOpen(name, mode|unix.O_NONBLOCK)
		if err == nil {
			var st unix.Stat_t
			err = unix.Fstat(fd, &st)
			unix.Close(fd)
			if err != nil {
				return FileKey{}, err
			}
			return FileKey{Dev: st.Dev, Ino: st.Ino}, nil
		}
		if !errors.Is(err, unix.EACCES) {
			return FileKey{}, err
		}
	}
	if _, err := mqOpen(name, unix.O_WRONLY|unix.O_RDWR); errors.Is(err, unix.ENOENT) {
		return FileKey{}, err
	}
	return FileKey{}, unix.EACCES
}

// mqOpen is the mq_open system call without O_CREAT; name has no leading '/'.
func mqOpen(name string, flags int) (int, error) {
	p, err := unix.BytePtrFromString(name)
	if err != nil {
		return -1, err
	}
	fd, _, errno := unix.Syscall6(unix.SYS_MQ_OPEN, uintptr(unsafe.Pointer(p)), uintptr(flags&^unix.O_CREAT), 0, 0, 0, 0)
	if errno != 0 {
		return -1, errno
	}
	return int(fd), nil
}

// mqUnlink is the mq_unlink system call; name has no leading '/'.
func mqUnlink(name string) error {
	p, err := unix.BytePtrFromString(name)
	if err != nil {
		return err
	}
	if _, _, errno := unix.Syscall(unix.SYS_MQ_UNLINK, uintptr(unsafe.Pointer(p)), 0, 0); errno != 0 {
		return errno
	}
	return nil
}

// names reads the directory to EOF, through a descriptor of its own (so
// that the offset starts at 0), and returns the names but "." and "..".
func (d *Dir) names() ([]string, error) {
	fd, err := unix.Openat(d.fd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	var buf []byte
	return readNames(fd, &buf)
}

const statxMask = unix.STATX_BASIC_STATS | unix.STATX_BTIME

func (d *Dir) statName(name string) (unix.Statx_t, error) {
	var st unix.Statx_t
	err := unix.Statx(d.fd, name, unix.AT_SYMLINK_NOFOLLOW|unix.AT_NO_AUTOMOUNT, statxMask, &st)
	return st, err
}

// ListOptions says what List reads beyond the directory and the inodes.
type ListOptions struct {
	// QueueStatus reads each queue's file (QSIZE, NOTIFY_PID, ...). The
	// kernel stamps atime and ctime of a queue whose file is read; List
	// takes the times before reading.
	QueueStatus bool
	// Kind, when not 0, lists only the objects of that kind: in the shm
	// directory the name tells shared memory from a semaphore, so the
	// other kind's entries are not even looked at.
	Kind Kind
}

// List is a snapshot of the directory: every regular file of its own
// filesystem instance (entries that are symlinks, directories, fifos,
// sockets, devices, or mount points of another filesystem are left out),
// sorted by name. An entry removed while List runs is left out. The error
// is for the directory itself; a queue status that could not be read is
// in Object.QueueErr.
func (d *Dir) List(opt ListOptions) ([]Object, error) {
	names, err := d.names()
	if err != nil {
		return nil, fmt.Errorf("posixipc: reading %s: %w", d.where(), err)
	}
	slices.Sort(names)
	objs := make([]Object, 0, len(names))
	for _, name := range names {
		if opt.Kind != 0 && !d.Queues && kindOf(name) != opt.Kind {
			continue
		}
		st, err := d.statName(name)
		if err != nil {
			if errors.Is(err, unix.ENOENT) {
				continue
			}
			return nil, fmt.Errorf("posixipc: statx %s/%q: %w", d.where(), name, err)
		}
		if st.Mode&unix.S_IFMT != unix.S_IFREG {
			continue
		}
		o := Object{
			ID:    ID{FileKey: FileKey{Dev: mkdev(st.Dev_major, st.Dev_minor), Ino: st.Ino}, Name: name},
			UID:   st.Uid,
			GID:   st.Gid,
			Mode:  uint32(st.Mode) & 0o7777,
			Size:  int64(st.Size),
			Nlink: st.Nlink,
			Ctime: stxTime(st.Ctime),
			Mtime: stxTime(st.Mtime),
		}
		if o.Dev != d.Dev {
			continue
		}
		if st.Mask&unix.STATX_BTIME != 0 {
			o.Btime = stxTime(st.Btime)
		}
		if d.Queues {
			o.Kind = Msg
			if opt.QueueStatus {
				q, ct, err := d.queueStatus(o.ID)
				if err != nil {
					o.QueueErr = err
				} else {
					o.Queue, o.ReadCtime = &q, ct
				}
			}
		} else {
			o.Kind = kindOf(name)
		}
		objs = append(objs, o)
	}
	return objs, nil
}

// atHandleFID is AT_HANDLE_FID of include/uapi/linux/fcntl.h (Linux 6.5):
// name_to_handle_at encodes the handle as fanotify encodes FIDs, also
// for a filesystem that cannot decode handles (mqueue).
const atHandleFID = 0x200

// Handle is the file handle of object id's file (name_to_handle_at(2)),
// as fanotify reports it (Creation.File). The name is opened with
// O_PATH|O_NOFOLLOW and its device and inode checked first, and the
// handle taken from that descriptor (AT_EMPTY_PATH): it is the handle of
// id's file, or an error. ErrReplaced when the name names another file
// now; the errno of openat (ENOENT) when it is gone; EOPNOTSUPP (from
// name_to_handle_at) where the filesystem encodes no handle.
func (d *Dir) Handle(id ID) (Handle, error) {
	fd, err := unix.Openat(d.fd, id.Name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", err
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return "", err
	}
	if st.Dev != id.Dev || st.Ino != id.Ino {
		return "", ErrReplaced
	}
	fh, _, err := unix.NameToHandleAt(fd, "", unix.AT_EMPTY_PATH|atHandleFID)
	if errors.Is(err, unix.EINVAL) {
		// Before Linux 6.5: no AT_HANDLE_FID. A filesystem with export
		// operations (tmpfs) encodes FIDs as handles anyway.
		fh, _, err = unix.NameToHandleAt(fd, "", unix.AT_EMPTY_PATH)
	}
	if err != nil {
		return "", err
	}
	return NewHandle(fh.Type(), fh.Bytes()), nil
}

func stxTime(t unix.StatxTimestamp) time.Time { return time.Unix(t.Sec, int64(t.Nsec)) }

// ErrReplaced: the name names another inode than the one asked for.
var ErrReplaced = errors.New("posixipc: the name now names another file")

// QueueStatus reads the status of queue id of d (the content of its file,
// ipc/mqueue.c mqueue_read_file) and the queue's ctime right after the
// read, which stamps it. The name is opened without following a symlink
// and its inode checked before reading: ErrReplaced when the name names
// another file now; the errno of openat (ENOENT) when it is gone.
func (d *Dir) QueueStatus(id ID) (QueueStatus, time.Time, error) { return d.queueStatus(id) }

// queueStatus reads the status of queue id: the name is opened without
// following a symlink, and the inode checked before reading.
func (d *Dir) queueStatus(id ID) (QueueStatus, time.Time, error) {
	fd, err := unix.Openat(d.fd, id.Name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC|unix.O_NOCTTY, 0)
	if err != nil {
		return QueueStatus{}, time.Time{}, err
	}
	f := os.NewFile(uintptr(fd), id.Name)
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return QueueStatus{}, time.Time{}, err
	}
	if st.Dev != id.Dev || st.Ino != id.Ino {
		return QueueStatus{}, time.Time{}, ErrReplaced
	}
	b, err := io.ReadAll(io.LimitReader(f, 4096))
	if err != nil {
		return QueueStatus{}, time.Time{}, err
	}
	q, err := parseQueueStatus(b)
	if err != nil {
		return q, time.Time{}, err
	}
	if err := unix.Fstat(fd, &st); err != nil {
		return q, time.Time{}, err
	}
	return q, time.Unix(st.Ctim.Sec, st.Ctim.Nsec), nil
}

// where names d in messages: its path, or for a detached mount of our
// mqueue instance a mount point of the same instance, if the mount table
// shows one.
func (d *Dir) where() string {
	if d.Path != "" {
		return d.Path
	}
	if d.mountinfo != "" {
		mounts, _ := mqueueMounts(d.mountinfo)
		for _, m := range mounts {
			if m.Dev == d.Dev {
				return m.Point
			}
		}
	}
	return "mqueue (detached)"
}

// mqueueMounts lists the mounts of whole mqueue instances in the mount
// table at path (proc(5), /proc/PID/mountinfo).
func mqueueMounts(path string) ([]Mount, error) {
	b, err := readFile(path)
	if err != nil {
		return nil, err
	}
	all, err := parseMountinfo(b)
	var mounts []Mount
	for _, m := range all {
		if m.FSType == "mqueue" && m.Root == "/" {
			mounts = append(mounts, m)
		}
	}
	return mounts, err
}

// readFile reads a /proc file to EOF (its stat size is not its size).
func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(f)
}
