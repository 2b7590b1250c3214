package supervisor

// haveRaw says whether this architecture has rawHandler
// (rawsig_linux_amd64.s).
const haveRaw = true

// rawWriteFd is the write end of the pipe rawHandler writes to; set before
// the handler is installed, never changed after.
var rawWriteFd int64 = -1

// rawOverflow has bit n-1 set when rawHandler found the pipe full for the
// standard signal n (1..31): readRaw hands it on (takeOverflow). Written
// by the handler with a locked OR, read with atomic operations.
var rawOverflow uint32

func rawHandler()
func rawRestorer()

// rawAddrs returns the entry addresses (ABI0) of rawHandler and
// rawRestorer, as rt_sigaction(2) takes them.
func rawAddrs() (handler, restorer uintptr)

// Referenced from assembly only.
var _, _ = rawHandler, rawRestorer
