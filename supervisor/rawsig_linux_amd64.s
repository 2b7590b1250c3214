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
// PIPE_BUF bytes is atomic, pipe(7)) and returns. A full pipe drops a
// real-time signal; a standard one (1..31) is marked in rawOverflow
// instead, as the kernel keeps one of each pending, and a wake word
// (rawWake) follows it into the pipe: whether that write succeeds or
// finds the pipe still full, readRaw reads again after the mark was made.
TEXT ·rawHandler(SB),NOSPLIT|NOFRAME,$0
	SUBQ	$16, SP
	MOVL	DI, 0(SP)
	MOVQ	$1, AX			// SYS_write
	MOVQ	·rawWriteFd(SB), DI
	MOVQ	SP, SI
	MOVQ	$4, DX
	SYSCALL
	CMPQ	AX, $0
	JGE	done			// written
	MOVL	0(SP), CX
	CMPL	CX, $31
	JHI	done			// a real-time signal: dropped
	DECL	CX
	MOVL	$1, DX
	SHLL	CX, DX
	LOCK
	ORL	DX, ·rawOverflow(SB)
	MOVL	$0xffffffff, 0(SP)	// rawWake
	MOVQ	$1, AX			// SYS_write
	MOVQ	·rawWriteFd(SB), DI
	MOVQ	SP, SI
	MOVQ	$4, DX
	SYSCALL
done:
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
