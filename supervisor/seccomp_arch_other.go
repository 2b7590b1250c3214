//go:build linux && !amd64 && !arm64

package supervisor

// seccompArch is 0 where the creation filter is not built: the seccomp
// creation tracker reports itself unavailable (see seccompFilter).
const seccompArch = 0

// Numbers no system call has: never matched.
const (
	seccompSemget = 0x7ffffffe
	seccompMsgget = 0x7fffffff
)
