#include "textflag.h"

// func rawHandler()
//
// The handler rawsig_linux.go installs with rt_sigaction(2) for the
// signals a run forwards (SA_SIGINFO|SA_ONSTACK|SA_RESTART|SA_RESTORER,
// every signal blocked while it runs). The kernel calls it with the
// signal number in DI (the C calling convention of a signal handler) on
// the thread's alternate signal stack, which the Go runtime gives every
// thread. It touches neither the Go stack nor the runtime: it writes the
// number, 4 bytes, to the non-blocking pipe rawWriteFd (a write of at most
// PIPE_BUF bytes is atomic, pipe(7)) and returns. A full pipe drops it.
TEXT ·rawHandler(SB),NOSPLIT|NOFRAME,$0
	SUBQ	$16, SP
	MOVL	DI, 0(SP)
	MOVQ	$1, AX			// SYS_write
	MOVQ	·rawWriteFd(SB), DI
	MOVQ	SP, SI
	MOVQ	$4, DX
	SYSCALL
	ADDQ	$16, SP
	RET

// func rawRestorer()
//
// The sa_restorer of rawHandler: returning from a handler goes through
// rt_sigreturn(2), which restores the interrupted context.
TEXT ·rawRestorer(SB),NOSPLIT|NOFRAME,$0
	MOVQ	$15, AX			// SYS_rt_sigreturn
	SYSCALL
	INT	$3

// func rawAddrs() (handler, restorer uintptr)
TEXT ·rawAddrs(SB),NOSPLIT,$0-16
	LEAQ	·rawHandler(SB), AX
	MOVQ	AX, handler+0(FP)
	LEAQ	·rawRestorer(SB), AX
	MOVQ	AX, restorer+8(FP)
	RET
