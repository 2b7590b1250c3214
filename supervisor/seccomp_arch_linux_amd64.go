package supervisor

import "golang.org/x/sys/unix"

// seccompArch is the AUDIT_ARCH_* value seccomp_data.arch holds for this
// architecture's native system calls (include/uapi/linux/audit.h). x32
// calls (nr | __X32_SYSCALL_BIT) carry the same value and other numbers:
// the filter lets them pass unseen.
const seccompArch = unix.AUDIT_ARCH_X86_64

// seccompSemget and seccompMsgget are the native numbers of semget(2) and
// msgget(2).
const (
	seccompSemget = unix.SYS_SEMGET
	seccompMsgget = unix.SYS_MSGGET
)
