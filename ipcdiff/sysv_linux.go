package ipcdiff

import (
	"fmt"
	"os"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Commands of shmctl, semctl and msgctl (linux/ipc.h, shm.h, sem.h, msg.h);
// x/sys/unix lacks most of them.
const (
	ipcRMID = 0
	ipcStat = 2
	ipcInfo = 3

	shmStat    = 13
	shmInfo    = 14
	shmStatAny = 15 // Linux 4.17

	cmdGetPid   = 11
	cmdGetNcnt  = 14
	cmdGetZcnt  = 15
	semStat     = 18
	semInfo     = 19
	semStatAny  = 20 // Linux 4.17
	msgStat     = 11
	msgInfo     = 12
	msgStatAny  = 13 // Linux 4.17
	ipc64Flag   = 0x100
	ipcmniShift = 15 // index bits of an id; 24 with the ipcmni_extend boot option
)

// statBuf is big enough for shmid64_ds, semid64_ds, msqid64_ds and the
// *info structs on every architecture, and aligned for all of them. Every
// one begins with a struct ipc64_perm.
type statBuf [32]uint64

func (b *statBuf) perm() *unix.SysvIpcPerm { return (*unix.SysvIpcPerm)(unsafe.Pointer(b)) }

// ipcVersion is ORed into the cmd of the calls that fill a struct. Only
// architectures whose native syscalls parse an IPC version (32-bit x86, arm,
// mips, powerpc, ...) want IPC_64 (0x100) there; on amd64 and arm64 the
// 64-bit layout is the only one and the kernel refuses the flag with EINVAL
// (checked on 6.18/amd64). Probe instead of keeping a list of architectures:
// IPC_INFO needs no object.
var ipcVersion = sync.OnceValue(func() int {
	var b statBuf
	if _, _, e := unix.Syscall(unix.SYS_SHMCTL, 0, ipcInfo|ipc64Flag, uintptr(unsafe.Pointer(&b))); e == 0 {
		return ipc64Flag
	}
	return 0
})

// ctl calls shmctl, semctl or msgctl on id with cmd and arg (semctl's union
// semun is passed by value: a pointer or nothing). The commands that only
// read (every one but IPC_RMID) never block: they are raw syscalls,
// without telling the scheduler, which costs about as much as the call
// itself (a snapshot makes one per object, a removal several).
func ctl(t Type, id, semnum, cmd int, arg unsafe.Pointer) (int, unix.Errno) {
	var nr uintptr
	switch t {
	case TypeShm:
		nr = unix.SYS_SHMCTL
	case TypeSem:
		nr = unix.SYS_SEMCTL
	case TypeMsg:
		nr = unix.SYS_MSGCTL
	default:
		return 0, unix.EINVAL
	}
	// shmctl and msgctl take (id, cmd, buf), semctl (id, semnum, cmd, arg).
	var r uintptr
	var e unix.Errno
	rm := cmd&^ipc64Flag == ipcRMID
	switch {
	case t == TypeSem && rm:
		r, _, e = unix.Syscall6(nr, uintptr(id), uintptr(semnum), uintptr(cmd), uintptr(arg), 0, 0)
	case t == TypeSem:
		r, _, e = unix.RawSyscall6(nr, uintptr(id), uintptr(semnum), uintptr(cmd), uintptr(arg), 0, 0)
	case rm:
		r, _, e = unix.Syscall(nr, uintptr(id), uintptr(cmd), uintptr(arg))
	default:
		r, _, e = unix.RawSyscall(nr, uintptr(id), uintptr(cmd), uintptr(arg))
	}
	return int(r), e
}

// statAnyCmd is the *_STAT_ANY command per type.
var statAnyCmd = [numTypes]int{TypeShm: shmStatAny, TypeSem: semStatAny, TypeMsg: msgStatAny}

// ipcStatID fills b for the object with this id (IPC_STAT): EINVAL or EIDRM
// when no object has this id, EACCES when the caller may not read it.
func ipcStatID(t Type, id int, b *statBuf) unix.Errno {
	_, e := ctl(t, id, 0, ipcStat|ipcVersion(), unsafe.Pointer(b))
	return e
}

// statIndex fills b for the object at kernel index idx with *_STAT_ANY
// (no read permission needed) and returns its id. EINVAL when the index is
// free, and also on kernels before 4.17 that lack the command.
func statIndex(t Type, idx int, b *statBuf) (int, unix.Errno) {
	return ctl(t, idx, 0, statAnyCmd[t]|ipcVersion(), unsafe.Pointer(b))
}

// semCtl is semctl(id, semnum, cmd) for the commands that return a number.
func semCtl(id, semnum, cmd int) (int, error) {
	r, e := ctl(TypeSem, id, semnum, cmd, nil)
	if e != 0 {
		return 0, e
	}
	return r, nil
}

// semGetPid is semctl(id, semnum, GETPID): the pid of the last process to
// change semaphore semnum (semop, SETVAL, SETALL, SEM_UNDO at exit).
func semGetPid(id, semnum int) (int, error) { return semCtl(id, semnum, cmdGetPid) }

// semGetNcnt is semctl(id, semnum, GETNCNT): processes waiting for an increase.
func semGetNcnt(id, semnum int) (int, error) { return semCtl(id, semnum, cmdGetNcnt) }

// semGetZcnt is semctl(id, semnum, GETZCNT): processes waiting for zero.
func semGetZcnt(id, semnum int) (int, error) { return semCtl(id, semnum, cmdGetZcnt) }

// semStates returns the per-semaphore state (semctl GETPID, GETNCNT,
// GETZCNT) of the nsems semaphores of set id. Errors wrap the errno:
// EINVAL or EIDRM when the set is gone, EACCES when the caller may not read it.
func semStates(id, nsems int) ([]SemState, error) {
	if nsems < 0 {
		return nil, fmt.Errorf("%w: nsems %d", ErrUsage, nsems)
	}
	st := make([]SemState, nsems)
	for n := range st {
		var err error
		if st[n].Pid, err = semGetPid(id, n); err != nil {
			return nil, fmt.Errorf("semctl(%d, %d, GETPID): %w", id, n, err)
		}
		if st[n].NCnt, err = semGetNcnt(id, n); err != nil {
			return nil, fmt.Errorf("semctl(%d, %d, GETNCNT): %w", id, n, err)
		}
		if st[n].ZCnt, err = semGetZcnt(id, n); err != nil {
			return nil, fmt.Errorf("semctl(%d, %d, GETZCNT): %w", id, n, err)
		}
	}
	return st, nil
}

// rmid is IPC_RMID on id; it returns the errno, or nil.
func rmid(t Type, id int) error {
	if _, e := ctl(t, id, 0, ipcRMID, nil); e != 0 {
		return e
	}
	return nil
}

// rmFuncs are the removal primitives by type.
var rmFuncs = [numTypes]func(id int) error{TypeShm: rmShm, TypeSem: rmSem, TypeMsg: rmMsg}

// rmShm marks segment id for destruction (IPC_RMID): destroyed at once when
// nothing is attached, else at the last detach.
func rmShm(id int) error { return rmid(TypeShm, id) }

// rmSem removes semaphore set id at once, waking its waiters with EIDRM.
func rmSem(id int) error { return rmid(TypeSem, id) }

// rmMsg removes message queue id at once, waking its waiters with EIDRM.
func rmMsg(id int) error { return rmid(TypeMsg, id) }

// enrichSems fills Sems (semctl GETPID, GETNCNT, GETZCNT of every semaphore)
// of the semaphore sets among objs, normally the new objects Diff found.
// A set that is gone (EINVAL, EIDRM) or unreadable (EACCES) keeps Sems nil
// and gets an ObjectError (wrapping ErrVanished for a set that is gone, so
// errors.Is(err, ErrVanished) tells the two apart); the others are still
// filled.
func enrichSems(objs []Object) []ObjectError {
	var errs []ObjectError
	for i := range objs {
		o := &objs[i]
		if o.Type != TypeSem || o.Sem == nil {
			continue
		}
		st, err := semStates(o.ID, o.Sem.NSems)
		if err != nil {
			o.Sems = nil
			if isGone(err) {
				err = fmt.Errorf("%w: %w", ErrVanished, err)
			}
			errs = append(errs, ObjectError{Ident: o.Ident, Err: err})
			continue
		}
		o.Sems = st
	}
	return errs
}

// inUse is the number of objects of type t in the calling thread's IPC
// namespace (SHM_INFO used_ids, SEM_INFO semusz, MSG_INFO msgpool), or -1
// when the kernel will not say. It only sizes buffers and chooses how to
// read.
func inUse(t Type) int {
	n, _ := info(t)
	return n
}

// info is inUse, and the highest index in use in the namespace, which
// *_INFO returns (ipc/util.c ipc_get_maxidx; -1 when the kernel will not
// say, or holds none).
func info(t Type) (n, maxIdx int) {
	var b statBuf
	i32 := (*[64]int32)(unsafe.Pointer(&b))
	var cmd, field int
	switch t {
	case TypeShm:
		cmd, field = shmInfo, 0 // struct shm_info: int used_ids first
	case TypeSem:
		cmd, field = semInfo, 7 // struct seminfo: semusz, the 8th int
	case TypeMsg:
		cmd, field = msgInfo, 0 // struct msginfo: msgpool first
	default:
		return -1, -1
	}
	r, e := ctl(t, 0, 0, cmd, unsafe.Pointer(&b))
	if e != 0 {
		return -1, -1
	}
	return int(i32[field]), max(r, -1)
}

// nsIdent names a namespace: the device and inode of its nsfs file.
type nsIdent struct{ dev, ino uint64 }

// threadIPC names the IPC namespace of the calling thread, from
// /proc/thread-self/ns/ipc of fs's procfs (an error when that procfs does
// not show the thread: another pid namespace's).
func (fs FS) threadIPC() (nsIdent, error) {
	var st unix.Stat_t
	if err := unix.Stat(fs.Path("thread-self", "ns", "ipc"), &st); err != nil {
		return nsIdent{}, err
	}
	return nsIdent{st.Dev, st.Ino}, nil
}

// onProcfs reports whether f is a file of a procfs (not a fixture).
func onProcfs(f *os.File) bool {
	var st unix.Statfs_t
	return unix.Fstatfs(int(f.Fd()), &st) == nil && st.Type == unix.PROC_SUPER_MAGIC
}
