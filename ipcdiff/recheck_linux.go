package ipcdiff

import (
	"fmt"
	"runtime"
	"slices"
	"unsafe"

	"golang.org/x/sys/unix"
)

// msqid64 is struct msqid64_ds on 64-bit Linux (arch/x86/include/uapi/asm/msgbuf.h
// and include/uapi/asm-generic/msgbuf.h agree there).
type msqid64 struct {
	Perm                 unix.SysvIpcPerm
	Stime, Rtime, Ctime  int64
	Cbytes, Qnum, Qbytes uint64
	Lspid, Lrpid         int32
}

// fromStat turns what IPC_STAT (or *_STAT_ANY) wrote into b into the
// fields /proc/sysvipc shows, for the object o names; ok is false where
// this architecture's layout is not known here (then only /proc tells).
func fromStat(o *Object, b *statBuf) (cur Object, ok bool) {
	if unsafe.Sizeof(uintptr(0)) != 8 {
		return cur, false
	}
	cur.Ident = o.Ident
	switch o.Type {
	case TypeShm:
		d := (*unix.SysvShmDesc)(unsafe.Pointer(b))
		cur.Shm = &Shm{Key: d.Perm.Key, ID: o.ID, Perms: uint32(d.Perm.Mode), Size: d.Segsz, CPID: int(d.Cpid), LPID: int(d.Lpid),
			Nattch: d.Nattch, UID: d.Perm.Uid, GID: d.Perm.Gid, CUID: d.Perm.Cuid, CGID: d.Perm.Cgid,
			Atime: d.Atime, Dtime: d.Dtime, Ctime: d.Ctime}
	case TypeSem:
		// struct semid64_ds: x86_64 pads each time with an unused long.
		w := (*[32]int64)(unsafe.Pointer(b))
		base := int(unsafe.Sizeof(unix.SysvIpcPerm{})) / 8
		otime, ctime, nsems := w[base], w[base+1], w[base+2]
		switch runtime.GOARCH {
		case "amd64":
			ctime, nsems = w[base+2], w[base+4]
		case "arm64", "riscv64", "loong64":
		default:
			return cur, false
		}
		p := b.perm()
		cur.Sem = &Sem{Key: p.Key, ID: o.ID, Perms: uint32(p.Mode), NSems: int(nsems), UID: p.Uid, GID: p.Gid,
			CUID: p.Cuid, CGID: p.Cgid, Otime: otime, Ctime: ctime}
	case TypeMsg:
		d := (*msqid64)(unsafe.Pointer(b))
		cur.Msg = &Msg{Key: d.Perm.Key, ID: o.ID, Perms: uint32(d.Perm.Mode), CBytes: d.Cbytes, QNum: d.Qnum,
			LSPID: int(d.Lspid), LRPID: int(d.Lrpid), UID: d.Perm.Uid, GID: d.Perm.Gid, CUID: d.Perm.Cuid, CGID: d.Perm.Cgid,
			Stime: d.Stime, Rtime: d.Rtime, Ctime: d.Ctime}
	}
	return cur, true
}

// changed says what of the evidence the decision on o rested on differs
// in cur, the same object read again ("" when nothing does): who is
// attached and who acted last, and when, and for a set the pids and
// waiters of each semaphore.
func changed(o, cur *Object) string {
	switch {
	case o.Shm != nil && cur.Shm != nil:
		a, b := o.Shm, cur.Shm
		switch {
		case b.Nattch != a.Nattch:
			return fmt.Sprintf("nattch %d, was %d", b.Nattch, a.Nattch)
		case b.CPID != a.CPID || b.LPID != a.LPID:
			return fmt.Sprintf("cpid/lpid %d/%d, were %d/%d", b.CPID, b.LPID, a.CPID, a.LPID)
		case b.Atime != a.Atime || b.Dtime != a.Dtime || b.Ctime != a.Ctime:
			return "attached, detached or changed since"
		}
	case o.Sem != nil && cur.Sem != nil:
		if cur.Sem.Otime != o.Sem.Otime || cur.Sem.Ctime != o.Sem.Ctime {
			return "operated on or changed since"
		}
		if cur.Sems != nil && !slices.Equal(cur.Sems, o.Sems) {
			return "its semaphores' last pids or waiters changed"
		}
	case o.Msg != nil && cur.Msg != nil:
		a, b := o.Msg, cur.Msg
		switch {
		case b.LSPID != a.LSPID || b.LRPID != a.LRPID:
			return fmt.Sprintf("lspid/lrpid %d/%d, were %d/%d", b.LSPID, b.LRPID, a.LSPID, a.LRPID)
		case b.Stime != a.Stime || b.Rtime != a.Rtime || b.Ctime != a.Ctime || b.QNum != a.QNum:
			return "sent to, received from or changed since"
		}
	case o.Shm == nil && o.Sem == nil && o.Msg == nil:
		return ""
	default:
		return "cannot be read again"
	}
	return ""
}
