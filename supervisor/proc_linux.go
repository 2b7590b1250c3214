package supervisor

import "github.com/ipcguard/ipcguard/internal/procfs"

// proc is the proc mount every tracker and the supervision read: the
// caller's /proc (pids of the supervisor's pid namespace).
var proc = procfs.Default()
