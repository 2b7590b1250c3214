#include "textflag.h"

// func entry()
//
// The process entry point when the program is linked with
// -ldflags=-E=github.com/ipcguard/ipcguard/internal/sigstart.entry (see
// the Makefile). It runs before the Go runtime: it records the signal mask
// (rt_sigprocmask) and the disposition of signals 1..64 (rt_sigaction)
// into startMask and startActs, sets captured, and jumps to the runtime's
// own entry with the stack (argc, argv, envp, auxv) untouched.
TEXT ·entry(SB),NOSPLIT|NOFRAME,$0
	MOVQ	$14, AX			// SYS_rt_sigprocmask
	MOVQ	$0, DI			// SIG_BLOCK, with no set: a query
	MOVQ	$0, SI
	LEAQ	·startMask(SB), DX
	MOVQ	$8, R10			// sizeof(kernel sigset_t)
	SYSCALL
	MOVQ	$1, R12
next:
	MOVQ	$13, AX			// SYS_rt_sigaction
	MOVQ	R12, DI
	MOVQ	$0, SI			// no new action: a query
	MOVQ	R12, DX
	SHLQ	$5, DX			// 32 bytes per struct sigaction
	LEAQ	·startActs(SB), R13
	ADDQ	R13, DX
	MOVQ	$8, R10
	SYSCALL
	INCQ	R12
	CMPQ	R12, $65
	JNE	next
	MOVB	$1, ·captured(SB)
	JMP	_rt0_amd64_linux(SB)
