package ipcdiff

// Slots of the shm columns in a row.
const (
	shmKey = iota
	shmID
	shmPerms
	shmSize
	shmCPID
	shmLPID
	shmNattch
	shmUID
	shmGID
	shmCUID
	shmCGID
	shmAtime
	shmDtime
	shmCtime
	shmRSS
	shmSwap
)

// shmSchema describes /proc/sysvipc/shm. rss and swap appeared in Linux 4.6.
var shmSchema = schema{table: "shm", cols: []column{
	shmKey:    {"key", kindKey, false},
	shmID:     {"shmid", kindID, false},
	shmPerms:  {"perms", kindOctal, false},
	shmSize:   {"size", kindU64, false},
	shmCPID:   {"cpid", kindPid, false},
	shmLPID:   {"lpid", kindPid, false},
	shmNattch: {"nattch", kindU64, false},
	shmUID:    {"uid", kindU32, false},
	shmGID:    {"gid", kindU32, false},
	shmCUID:   {"cuid", kindU32, false},
	shmCGID:   {"cgid", kindU32, false},
	shmAtime:  {"atime", kindTime, false},
	shmDtime:  {"dtime", kindTime, false},
	shmCtime:  {"ctime", kindTime, false},
	shmRSS:    {"rss", kindU64, true},
	shmSwap:   {"swap", kindU64, true},
}}

// ShmList reads /proc/sysvipc/shm: the shared memory segments of the
// calling thread's IPC namespace, in the kernel's order (by index).
func (fs FS) ShmList() ([]Shm, error) { return readTable(fs, "shm", appendShm, 0) }

// parseShm parses the text of /proc/sysvipc/shm.
func parseShm(b []byte) ([]Shm, error) { return appendShm(b, nil) }

// appendShm parses the text of /proc/sysvipc/shm, appending to out.
func appendShm(b []byte, out []Shm) ([]Shm, error) {
	return appendTable(&shmSchema, b, func(r *row) Shm {
		return Shm{
			Key:    int32(r[shmKey]),
			ID:     int(r[shmID]),
			Perms:  uint32(r[shmPerms]),
			Size:   r[shmSize],
			CPID:   int(r[shmCPID]),
			LPID:   int(r[shmLPID]),
			Nattch: r[shmNattch],
			UID:    uint32(r[shmUID]),
			GID:    uint32(r[shmGID]),
			CUID:   uint32(r[shmCUID]),
			CGID:   uint32(r[shmCGID]),
			Atime:  int64(r[shmAtime]),
			Dtime:  int64(r[shmDtime]),
			Ctime:  int64(r[shmCtime]),
			RSS:    r[shmRSS],
			Swap:   r[shmSwap],
		}
	}, out)
}
