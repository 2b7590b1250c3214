package procfs

import (
	"bytes"
	"encoding/binary"
	"os"
	"slices"

	"golang.org/x/sys/unix"
)

// Tgids lists the thread-group ids (processes) <root> shows, sorted: the
// numeric entries of the proc root directory.
func Tgids(root string) ([]int, error) { return mount(root).Tgids() }

// Tgids is the package's Tgids for the FS's mount. It reads the directory
// with getdents64(2) into one buffer and parses the entries in place:
// os.File.Readdirnames makes a string of every name, and the directory
// of every process costs the kernel a dentry anyway (fs/proc/base.c,
// proc_pid_readdir).
func (fs FS) Tgids() ([]int, error) {
	fd, err := unix.Open(fs.root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: fs.root, Err: err}
	}
	defer unix.Close(fd)
	buf := make([]byte, 16<<10)
	var pids []int
	for {
		n, err := unix.Getdents(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, &os.PathError{Op: "getdents64", Path: fs.root, Err: err}
		}
		if n <= 0 {
			break
		}
		pids = appendPidDirents(pids, buf[:n])
	}
	slices.Sort(pids)
	return pids, nil
}

// appendPidDirents appends to pids the entries of buf (struct
// linux_dirent64 records: d_ino, d_off, d_reclen, d_type, d_name; see
// getdents64(2)) whose names PidName takes.
func appendPidDirents(pids []int, buf []byte) []int {
	const nameOff = 19 // 8 + 8 + 2 + 1
	for len(buf) >= nameOff {
		reclen := int(binary.NativeEndian.Uint16(buf[16:18]))
		if reclen < nameOff || reclen > len(buf) {
			break
		}
		name := buf[nameOff:reclen]
		if i := bytes.IndexByte(name, 0); i >= 0 {
			name = name[:i]
		}
		if p, ok := pidName(name); ok {
			pids = append(pids, p)
		}
		buf = buf[reclen:]
	}
	return pids
}

// PidName parses an entry of the proc root that names a process: a
// positive decimal without leading zeros.
func PidName(s string) (int, bool) { return pidName([]byte(s)) }

func pidName(s []byte) (int, bool) {
	if len(s) == 0 || len(s) > 10 || s[0] < '1' || s[0] > '9' {
		return 0, false
	}
	n := 0
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, n > 0 && n <= 1<<31-1
}
