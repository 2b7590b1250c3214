package posixipc

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ErrParse is wrapped by every parse failure of this package.
var ErrParse = errors.New("posixipc: parse")

// Kind is the kind of a POSIX IPC object.
type Kind uint8

const (
	// Shm is POSIX shared memory (shm_open(3)): a regular file of the shm
	// directory whose name does not begin with "sem.".
	Shm Kind = iota + 1
	// Sem is a named semaphore (sem_open(3)): a regular file "sem.NAME" of
	// the shm directory (glibc).
	Sem
	// Msg is a message queue (mq_open(3)): a regular file of mqueue.
	Msg
)

func (k Kind) String() string {
	switch k {
	case Shm:
		return "pshm"
	case Sem:
		return "psem"
	case Msg:
		return "pmsg"
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// FileKey is what users are matched by: st_dev (as unix.Mkdev gives it)
// and the inode number.
type FileKey struct {
	Dev uint64
	Ino uint64
}

// ID is the identity of an object: its file and its name in the directory
// (the name without a leading '/': shm_open("/x") makes "x", sem_open("/x")
// makes "sem.x", mq_open("/x") makes "x").
type ID struct {
	FileKey
	Name string
}

func (id ID) String() string {
	return fmt.Sprintf("%q (dev %d:%d ino %d)", id.Name, major(id.Dev), minor(id.Dev), id.Ino)
}

// Handle is a file handle of a file (struct file_handle of
// name_to_handle_at(2), fanotify(7) FID records) as text: the handle type
// in decimal, ':', the handle bytes in lowercase hex ("1:fd90ec59..."),
// comparable and printable; "" is no handle. tmpfs encodes its files as
// type 1, the generation and the 64-bit inode number (mm/shmem.c,
// shmem_encode_fh); a filesystem without export operations, as mqueue,
// gets type 0x81, FILEID_INO64_GEN, where the kernel encodes FIDs for it
// (fs/exportfs/expfs.c, exportfs_encode_fid: fanotify, and
// name_to_handle_at with AT_HANDLE_FID, Linux 6.5). The same file gives
// the same handle through both while it lives. Two files share an inode
// number at different times (tmpfs and mqueue take numbers from counters
// that wrap), not a handle, unless their generations agree too (tmpfs
// draws the generation at random; mqueue's is 0).
type Handle string

// NewHandle is the Handle of type typ and bytes b; "" when b is empty.
func NewHandle(typ int32, b []byte) Handle {
	if len(b) == 0 {
		return ""
	}
	return Handle(strconv.FormatInt(int64(typ), 10) + ":" + hex.EncodeToString(b))
}

// ParseHandle checks that s is a Handle as NewHandle makes it (a decimal
// type, ':', an even, non-zero number of lowercase hex digits, at most
// MAX_HANDLE_SZ, 128, bytes) and returns it.
func ParseHandle(s string) (Handle, bool) {
	typ, b, ok := strings.Cut(s, ":")
	if !ok || len(b) == 0 || len(b)%2 != 0 || len(b) > 2*128 {
		return "", false
	}
	if _, err := strconv.ParseInt(typ, 10, 32); err != nil {
		return "", false
	}
	for i := range len(b) {
		if c := b[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return "", false
		}
	}
	return Handle(s), true
}

// Object is one entry of a snapshot (Dir.List).
type Object struct {
	Kind Kind
	ID
	UID, GID uint32
	// Mode is the permission bits (st_mode & 07777).
	Mode uint32
	// Size in bytes: the segment size of shared memory and semaphores; 80
	// for every queue (ipc/mqueue.c, FILENT_SIZE), whose fill is QueueStatus.QSize.
	Size  int64
	Nlink uint32
	// Ctime and Mtime to the nanosecond. A queue's are set at its creation
	// and at every send and receive (and by reading its file).
	Ctime, Mtime time.Time
	// Btime is the birth time when the filesystem records one (tmpfs does,
	// mqueue does not): zero otherwise.
	Btime time.Time
	// Queue is the status of a queue, read when ListOptions.QueueStatus
	// asked for it; nil otherwise, or when it could not be read (QueueErr).
	Queue    *QueueStatus
	QueueErr error
	// ReadCtime is the queue's ctime right after List read its status
	// (the read stamps it): Remove re-checks against it rather than Ctime.
	ReadCtime time.Time
}

// QueueStatus is the content of a queue's file in mqueue (ipc/mqueue.c,
// mqueue_read_file).
type QueueStatus struct {
	// QSize is the number of bytes of the messages queued.
	QSize uint64
	// Notify is the sigev_notify of the registration (SIGEV_SIGNAL 0,
	// SIGEV_NONE 1, SIGEV_THREAD 2), 0 when none.
	Notify int
	// Signo is the signal of a SIGEV_SIGNAL registration, else 0.
	Signo int
	// NotifyPid is the process registered with mq_notify(3), in the
	// reader's pid namespace; 0 when none or invisible from here.
	NotifyPid int
}

// parseQueueStatus parses the content of a queue's file: fields
// "KEY:VALUE" separated by blanks, ending in a newline. Unknown keys are
// ignored; QSIZE, NOTIFY, SIGNO and NOTIFY_PID are required.
func parseQueueStatus(b []byte) (QueueStatus, error) {
	var s QueueStatus
	var seen uint8
	line, rest, ok := bytes.Cut(b, []byte{'\n'})
	if !ok || len(bytes.TrimSpace(rest)) != 0 {
		return s, fmt.Errorf("%w: queue status: want one line ending in a newline, got %q", ErrParse, b)
	}
	for _, f := range bytes.Fields(line) {
		k, v, ok := bytes.Cut(f, []byte{':'})
		if !ok {
			return s, fmt.Errorf("%w: queue status: field %q has no ':'", ErrParse, f)
		}
		var bit uint8
		var err error
		switch string(k) {
		case "QSIZE":
			bit = 1
			s.QSize, err = strconv.ParseUint(string(v), 10, 64)
		case "NOTIFY":
			bit = 2
			s.Notify, err = strconv.Atoi(string(v))
		case "SIGNO":
			bit = 4
			s.Signo, err = strconv.Atoi(string(v))
		case "NOTIFY_PID":
			bit = 8
			s.NotifyPid, err = strconv.Atoi(string(v))
			if err == nil && s.NotifyPid < 0 {
				err = errors.New("negative")
			}
		default:
			continue
		}
		if err != nil {
			return s, fmt.Errorf("%w: queue status %s: %w", ErrParse, k, err)
		}
		if seen&bit != 0 {
			return s, fmt.Errorf("%w: queue status: %s twice", ErrParse, k)
		}
		seen |= bit
	}
	if seen != 15 {
		return s, fmt.Errorf("%w: queue status %q: QSIZE, NOTIFY, SIGNO and NOTIFY_PID required", ErrParse, line)
	}
	return s, nil
}

// Mount is one line of /proc/PID/mountinfo (proc_pid_mountinfo(5)), the
// fields this package uses.
type Mount struct {
	ID     int
	Dev    uint64 // major:minor of the superblock, as unix.Mkdev
	Root   string // the root of the mount within its filesystem
	Point  string // the mount point, unescaped
	FSType string
}

// parseMountinfo parses /proc/PID/mountinfo. Fields: mount ID, parent ID,
// major:minor, root, mount point, options, optional fields ending in "-",
// fstype, source, super options. Paths escape space, tab, newline and
// backslash as \ooo (fs/proc_namespace.c, show_mountinfo and mangle).
func parseMountinfo(b []byte) ([]Mount, error) {
	var ms []Mount
	for len(b) > 0 {
		var line []byte
		line, b, _ = bytes.Cut(b, []byte{'\n'})
		if len(line) == 0 {
			continue
		}
		f := strings.Fields(string(line))
		sep := -1
		for i := 6; i < len(f); i++ {
			if f[i] == "-" {
				sep = i
				break
			}
		}
		if len(f) < 7 || sep < 0 || sep+1 >= len(f) {
			return nil, fmt.Errorf("%w: mountinfo line %q", ErrParse, line)
		}
		id, err := strconv.Atoi(f[0])
		if err != nil {
			return nil, fmt.Errorf("%w: mountinfo id %q: %w", ErrParse, f[0], err)
		}
		maj, min, ok := strings.Cut(f[2], ":")
		ma, err1 := strconv.ParseUint(maj, 10, 32)
		mi, err2 := strconv.ParseUint(min, 10, 32)
		if !ok || err1 != nil || err2 != nil {
			return nil, fmt.Errorf("%w: mountinfo device %q", ErrParse, f[2])
		}
		root, err := unescapeMount(f[3])
		if err != nil {
			return nil, err
		}
		point, err := unescapeMount(f[4])
		if err != nil {
			return nil, err
		}
		ms = append(ms, Mount{ID: id, Dev: mkdev(uint32(ma), uint32(mi)), Root: root, Point: point, FSType: f[sep+1]})
	}
	return ms, nil
}

func unescapeMount(s string) (string, error) {
	if !strings.Contains(s, `\`) {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' {
			if i+4 > len(s) {
				return "", fmt.Errorf("%w: mountinfo escape in %q", ErrParse, s)
			}
			n, err := strconv.ParseUint(s[i+1:i+4], 8, 8)
			if err != nil {
				return "", fmt.Errorf("%w: mountinfo escape in %q", ErrParse, s)
			}
			b.WriteByte(byte(n))
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String(), nil
}

// mapsKey parses one line of /proc/PID/maps (proc_pid_maps(5)):
// "start-end perms offset MM:mm inode [path]", the device in hex as
// "%02x:%02x" (fs/proc/task_mmu.c, show_map_vma), the inode in decimal. It
// returns the file key of a file mapping; ok is false for an anonymous
// mapping (inode 0) and err is set for a line of another shape.
func mapsKey(line []byte) (k FileKey, ok bool, err error) {
	// Skip the first three fields.
	rest := line
	for i := 0; i < 3; i++ {
		j := bytes.IndexByte(rest, ' ')
		if j < 0 {
			return k, false, fmt.Errorf("%w: maps line %q", ErrParse, line)
		}
		rest = rest[j+1:]
	}
	j := bytes.IndexByte(rest, ' ')
	if j < 0 {
		return k, false, fmt.Errorf("%w: maps line %q", ErrParse, line)
	}
	dev := rest[:j]
	rest = rest[j+1:]
	c := bytes.IndexByte(dev, ':')
	if c < 0 {
		return k, false, fmt.Errorf("%w: maps device %q", ErrParse, dev)
	}
	ma, ok1 := parseHex(dev[:c])
	mi, ok2 := parseHex(dev[c+1:])
	if !ok1 || !ok2 {
		return k, false, fmt.Errorf("%w: maps device %q", ErrParse, dev)
	}
	end := bytes.IndexByte(rest, ' ')
	if end < 0 {
		end = len(rest)
	}
	ino, ok3 := parseDec(rest[:end])
	if !ok3 {
		return k, false, fmt.Errorf("%w: maps inode %q", ErrParse, rest[:end])
	}
	if ino == 0 {
		return k, false, nil
	}
	return FileKey{Dev: mkdev(uint32(ma), uint32(mi)), Ino: ino}, true, nil
}

func parseHex(b []byte) (uint64, bool) {
	if len(b) == 0 || len(b) > 8 {
		return 0, false
	}
	var n uint64
	for _, c := range b {
		switch {
		case c >= '0' && c <= '9':
			n = n<<4 | uint64(c-'0')
		case c >= 'a' && c <= 'f':
			n = n<<4 | uint64(c-'a'+10)
		default:
			return 0, false
		}
	}
	return n, true
}

func parseDec(b []byte) (uint64, bool) {
	if len(b) == 0 || len(b) > 20 {
		return 0, false
	}
	n, err := strconv.ParseUint(string(b), 10, 64)
	return n, err == nil
}

// mkdev, major and minor encode st_dev as glibc's makedev does (the same
// as unix.Mkdev, here so that the parsers build on every OS).
func mkdev(ma, mi uint32) uint64 {
	return uint64(ma&0x00000fff)<<8 | uint64(ma&0xfffff000)<<32 |
		uint64(mi&0x000000ff) | uint64(mi&0xffffff00)<<12
}

func major(dev uint64) uint32 {
	return uint32((dev&0x00000000000fff00)>>8 | (dev&0xfffff00000000000)>>32)
}
func minor(dev uint64) uint32 { return uint32(dev&0x00000000000000ff | (dev&0x00000ffffff00000)>>12) }

// kindOf classifies a regular file of the shm directory by its name.
func kindOf(name string) Kind {
	if strings.HasPrefix(name, "sem.") {
		return Sem
	}
	return Shm
}

// validName reports whether name can be a single entry of a directory.
func validName(name string) bool {
	return name != "" && name != "." && name != ".." && !strings.ContainsRune(name, '/') && !strings.ContainsRune(name, 0)
}
