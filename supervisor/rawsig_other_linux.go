//go:build linux && !amd64

package supervisor

// haveRaw is false: without a handler written for this architecture, the
// signals a run forwards are caught with os/signal only.
const haveRaw = false

var rawWriteFd int64 = -1

var rawOverflow uint32

func rawAddrs() (handler, restorer uintptr) { return 0, 0 }
