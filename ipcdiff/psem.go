package ipcdiff

import (
	"strings"

	"github.com/ipcguard/ipcguard/internal/posixipc"
)

// POSIX named semaphores (sem_open(3), sem_overview(7)): glibc's regular
// files "sem.NAME" of the shm directory, made as a temporary file and
// link(2)ed to the name. sem_open("/NAME") makes "sem.NAME"; its family
// is "/NAME", the name the program opens it by.
var psemKind = &posixKind{t: TypePsem, n: "psem", pk: posixipc.Sem,
	family: func(name string) string { return "/" + strings.TrimPrefix(name, "sem.") }}
