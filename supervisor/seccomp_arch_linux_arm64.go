package supervisor

import "golang.org/x/sys/unix"

// seccompArch is the AUDIT_ARCH_* value seccomp_data.arch holds for this
// architecture's native system calls (include/uapi/linux/audit.h); arm32
// calls carry another value and pass unseen.
const seccompArch = unix.AUDIT_ARCH_AARCH64

// seccompSemget and seccompMsgget are the native numbers of semget(2) and
// msgget(2).
const (
	seccompSemget = unix.SYS_SEMGET
	seccompMsgget = unix.SYS_MSGGET
)
