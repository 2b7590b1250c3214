package ipcdiff

import "github.com/ipcguard/ipcguard/internal/posixipc"

// POSIX shared memory (shm_open(3), shm_overview(7)): the regular files
// of the shm directory (/dev/shm, a tmpfs: mm/shmem.c) other than "sem.*".
// shm_open("/NAME") makes the file NAME; its family is "/NAME".
var pshmKind = &posixKind{t: TypePshm, n: "pshm", pk: posixipc.Shm,
	family: func(name string) string { return "/" + name }}
