package procfs

// Maps reads /proc/PID/maps into buf (reset first, grown as needed) and
// returns it: one line per mapping, "address perms offset dev inode
// path" (proc(5)). The error is the open's or read's: EACCES for another
// user's process when the caller may not ptrace it, see Gone for a process
// that exited.
func (fs FS) Maps(pid int, buf []byte) ([]byte, error) {
	return ReadAll(fs.pidPath(pid, "maps"), buf)
}
