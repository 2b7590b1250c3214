package ipcdiff

// Slots of the sem columns in a row.
const (
	semKey = iota
	semID
	semPerms
	semNSems
	semUID
	semGID
	semCUID
	semCGID
	semOtime
	semCtime
)

// semSchema describes /proc/sysvipc/sem. It has no pid column: the
// per-semaphore pids come from semctl (see SemStates).
var semSchema = schema{table: "sem", cols: []column{
	semKey:   {"key", kindKey, false},
	semID:    {"semid", kindID, false},
	semPerms: {"perms", kindOctal, false},
	semNSems: {"nsems", kindID, false},
	semUID:   {"uid", kindU32, false},
	semGID:   {"gid", kindU32, false},
	semCUID:  {"cuid", kindU32, false},
	semCGID:  {"cgid", kindU32, false},
	semOtime: {"otime", kindTime, false},
	semCtime: {"ctime", kindTime, false},
}}

// SemList reads /proc/sysvipc/sem: the semaphore sets of the calling
// thread's IPC namespace, in the kernel's order (by index).
func (fs FS) SemList() ([]Sem, error) { return readTable(fs, "sem", appendSem, 0) }

// parseSem parses the text of /proc/sysvipc/sem.
func parseSem(b []byte) ([]Sem, error) { return appendSem(b, nil) }

// appendSem parses the text of /proc/sysvipc/sem, appending to out.
func appendSem(b []byte, out []Sem) ([]Sem, error) {
	return appendTable(&semSchema, b, func(r *row) Sem {
		return Sem{
			Key:   int32(r[semKey]),
			ID:    int(r[semID]),
			Perms: uint32(r[semPerms]),
			NSems: int(r[semNSems]),
			UID:   uint32(r[semUID]),
			GID:   uint32(r[semGID]),
			CUID:  uint32(r[semCUID]),
			CGID:  uint32(r[semCGID]),
			Otime: int64(r[semOtime]),
			Ctime: int64(r[semCtime]),
		}
	}, out)
}
