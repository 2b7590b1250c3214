package supervisor

// haveRaw says whether this architecture has rawHandler
// (rawsig_linux_amd64.s).
const haveRaw = true

// rawWriteFd is the write end of the pipe rawHandler writes to; set before
// the handler is installed, never changed after.
var rawWriteFd int64 = -1

func rawHandler()
func rawRestorer()

// rawAddrs returns the entry addresses (ABI0) of rawHandler and
// rawRestorer, as rt_sigaction(2) takes them.
func rawAddrs() (handler, restorer uintptr)

// Referenced from assembly only.
var _, _ = rawHandler, rawRestorer
