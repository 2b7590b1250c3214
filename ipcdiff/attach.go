package ipcdiff

import (
	"bytes"
	"fmt"
	"slices"
	"strconv"

	"github.com/ipcguard/ipcguard/internal/procfs"
)

// Attachers finds the live processes that map the segments shmids: it reads
// /proc/PID/maps of every process and looks for lines whose path is
// "/SYSV%08x" (the segment's key, " (deleted)" after it) and whose inode
// column is the shmid. Only processes in the IPC namespace of the calling
// thread count (/proc/PID/ns/ipc): shmids of other namespaces are other
// segments. It returns shmid -> sorted pids for the segments
// someone maps, and the sorted pids whose maps could not be read (EACCES for
// another user's processes when not root): when unreadable is not empty the
// map is incomplete, and an absent shmid does not mean "attached by nobody".
// Processes that exit during the scan are skipped. err is set only when
// /proc itself cannot be listed.
//
// It reads every process's maps, so it is meant for the few candidates
// that need it, not for every snapshot.
func (fs FS) Attachers(shmids map[int]bool) (attachers map[int][]int, unreadable []int, err error) {
	attachers = make(map[int][]int)
	if len(shmids) == 0 {
		return attachers, nil, nil
	}
	pids, err := fs.proc.Tgids()
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	// Processes of other IPC namespaces (containers, parallel tests) share
	// the pid namespace but not the ids: keep only those in ours, as seen by
	// the calling thread. Without the link (old kernels, fixtures) no filter.
	self, selfErr := fs.proc.NamespaceLink("thread-self", "ipc")
	bp := getBuf()
	defer putBuf(bp)
	var found []int // reused per process
	for _, pid := range pids {
		if selfErr == nil {
			ns, err := fs.proc.NamespaceLink(strconv.Itoa(pid), "ipc")
			switch {
			case err == nil:
			case procfs.Gone(err):
				continue // exited
			default:
				unreadable = append(unreadable, pid)
				continue
			}
			if ns != self {
				continue
			}
		}
		b, err := fs.proc.Maps(pid, *bp)
		*bp = b
		switch {
		case err == nil:
		case procfs.Gone(err):
			continue // exited
		default:
			unreadable = append(unreadable, pid)
			continue
		}
		found = mapsSegments(b, shmids, found[:0])
		for _, id := range found {
			attachers[id] = append(attachers[id], pid)
		}
	}
	for id, pids := range attachers {
		slices.Sort(pids)
		attachers[id] = slices.Compact(pids)
	}
	slices.Sort(unreadable)
	return attachers, unreadable, nil
}

var sysvPrefix = []byte("/SYSV")

// mapsSegments appends to found the ids in want of the SysV segments mapped
// in maps, the text of a /proc/PID/maps (each id once). It looks only at
// lines holding "/SYSV", and of those only at the inode and path columns:
//
//	7f3e2e22b000-7f3e2e22d000 rw-s 00000000 00:01 32768   /SYSV12345678 (deleted)
func mapsSegments(maps []byte, want map[int]bool, found []int) []int {
	for len(maps) > 0 {
		at := bytes.Index(maps, sysvPrefix)
		if at < 0 {
			break
		}
		start := bytes.LastIndexByte(maps[:at], '\n') + 1
		end := bytes.IndexByte(maps[at:], '\n')
		if end < 0 {
			end = len(maps)
		} else {
			end += at
		}
		if id, ok := mapsSysvInode(maps[start:end], at-start); ok && want[id] && !slices.Contains(found, id) {
			found = append(found, id)
		}
		if end == len(maps) {
			break
		}
		maps = maps[end+1:]
	}
	return found
}

// mapsSysvInode returns the inode of a maps line whose path column starts at
// offset at and is "/SYSV" followed by 8 hex digits (then end of line or a
// blank, as in " (deleted)").
func mapsSysvInode(line []byte, at int) (int, bool) {
	// Fields: address perms offset dev inode path.
	i, f := 0, 0
	inode := -1
	for f < 5 {
		for i < len(line) && isBlank(line[i]) {
			i++
		}
		start := i
		for i < len(line) && !isBlank(line[i]) {
			i++
		}
		if start == i {
			return 0, false
		}
		if f == 4 {
			n, err := strconv.ParseUint(string(line[start:i]), 10, 31)
			if err != nil {
				return 0, false
			}
			inode = int(n)
		}
		f++
	}
	for i < len(line) && isBlank(line[i]) {
		i++
	}
	if i != at {
		return 0, false // "/SYSV" is not where the path starts
	}
	p := line[at+len(sysvPrefix):]
	if len(p) < 8 || (len(p) > 8 && !isBlank(p[8])) {
		return 0, false
	}
	for _, c := range p[:8] {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return 0, false
		}
	}
	return inode, true
}
