package ipcdiff

import (
	"fmt"
	"iter"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The System V message queue: /proc/sysvipc/msg and msgctl (ipc/msg.c).

// Msg is one line of /proc/sysvipc/msg.
type Msg struct {
	Key                  int32
	ID                   int
	Perms                uint32
	CBytes, QNum         uint64
	LSPID, LRPID         int // last msgsnd, last msgrcv
	UID, GID, CUID, CGID uint32
	Stime, Rtime, Ctime  int64
}

// Slots of the msg columns in a row.
const (
	msgKey = iota
	msgID
	msgPerms
	msgCBytes
	msgQNum
	msgLSPID
	msgLRPID
	msgUID
	msgGID
	msgCUID
	msgCGID
	msgStime
	msgRtime
	msgCtime
)

// msgSchema describes /proc/sysvipc/msg.
var msgSchema = schema{table: "msg", cols: []column{
	msgKey:    {"key", kindKey, false},
	msgID:     {"msqid", kindID, false},
	msgPerms:  {"perms", kindOctal, false},
	msgCBytes: {"cbytes", kindU64, false},
	msgQNum:   {"qnum", kindU64, false},
	msgLSPID:  {"lspid", kindPid, false},
	msgLRPID:  {"lrpid", kindPid, false},
	msgUID:    {"uid", kindU32, false},
	msgGID:    {"gid", kindU32, false},
	msgCUID:   {"cuid", kindU32, false},
	msgCGID:   {"cgid", kindU32, false},
	msgStime:  {"stime", kindTime, false},
	msgRtime:  {"rtime", kindTime, false},
	msgCtime:  {"ctime", kindTime, false},
}}

// parseMsg parses the text of /proc/sysvipc/msg.
func parseMsg(b []byte) ([]Msg, error) { return appendMsg(b, nil) }

// appendMsg parses the text of /proc/sysvipc/msg, appending to out.
func appendMsg(b []byte, out []Msg) ([]Msg, error) {
	return appendTable(&msgSchema, b, func(r *row) Msg {
		return Msg{
			Key:    int32(r[msgKey]),
			ID:     int(r[msgID]),
			Perms:  uint32(r[msgPerms]),
			CBytes: r[msgCBytes],
			QNum:   r[msgQNum],
			LSPID:  int(r[msgLSPID]),
			LRPID:  int(r[msgLRPID]),
			UID:    uint32(r[msgUID]),
			GID:    uint32(r[msgGID]),
			CUID:   uint32(r[msgCUID]),
			CGID:   uint32(r[msgCGID]),
			Stime:  int64(r[msgStime]),
			Rtime:  int64(r[msgRtime]),
			Ctime:  int64(r[msgCtime]),
		}
	}, out)
}

func (m *Msg) ident() Ident { return Ident{Type: TypeMsg, ID: m.ID, Key: m.Key, CUID: m.CUID} }

// msgKind is the kind of System V message queues.
type msgKind struct{}

func (msgKind) name() string { return "msg" }

func (msgKind) open(fs FS) (tableReader, error) {
	return openSysv(fs, TypeMsg, appendMsg, msgRow, func(s *Snapshot, rows []Msg) { s.Msg = rows })
}

func (msgKind) count(s *Snapshot) int { return len(s.Msg) }
func (msgKind) idents(s *Snapshot) iter.Seq2[int, Ident] {
	rows := s.Msg
	return func(yield func(int, Ident) bool) {
		for i := range rows {
			if !yield(i, rows[i].ident()) {
				return
			}
		}
	}
}
func (msgKind) addIdents(s *Snapshot, ids *Idents) {
	for i := range s.Msg {
		ids.add(s.Msg[i].ident())
	}
}

func (msgKind) only(dst, src *Snapshot) { dst.Msg = src.Msg }

func (msgKind) object(s *Snapshot, i int) Object {
	r := s.Msg[i]
	return Object{Ident: r.ident(), Msg: &r}
}

// gather: the table holds all a queue's evidence.
func (msgKind) gather(FS, []Object, bool) error { return nil }

// evidence: lspid and lrpid, the last msgsnd and msgrcv, stamped by stime
// and rtime. No creator pid is kept.
func (msgKind) evidence(o *Object) Evidence {
	ev := Evidence{Family: Family{Key: o.Key}}
	m := o.Msg
	if m == nil {
		return ev
	}
	ev.UID, ev.GID, ev.CUID, ev.CGID = m.UID, m.GID, m.CUID, m.CGID
	ev.Ctime, ev.Last = m.Ctime, max(m.Ctime, m.Stime, m.Rtime)
	if m.LSPID > 0 || m.LRPID > 0 {
		ev.Pids = make([]PidFact, 0, 2)
	}
	if m.LSPID > 0 {
		ev.Pids = append(ev.Pids, PidFact{Role: "last msgsnd", Pid: m.LSPID, Stamp: m.Stime})
	}
	if m.LRPID > 0 {
		ev.Pids = append(ev.Pids, PidFact{Role: "last msgrcv", Pid: m.LRPID, Stamp: m.Rtime})
	}
	if m.LSPID == 0 && (m.Stime != 0 || m.QNum > 0) {
		ev.Invisible = append(ev.Invisible, "a process not visible from this pid namespace sent to it")
	}
	if m.LRPID == 0 && m.Rtime != 0 {
		ev.Invisible = append(ev.Invisible, "a process not visible from this pid namespace received from it")
	}
	return ev
}

func (msgKind) getsTracked() bool { return true }

func (k msgKind) remove(fs FS, o Object) (RemoveOutcome, error) { return removeSysv(fs, k, o) }

func (msgKind) listing(o *Object) Listing {
	m := o.Msg
	if m == nil {
		return Listing{}
	}
	l := Listing{UID: m.UID, Perms: m.Perms & 0o777, Messages: m.QNum, Queue: true, Ctime: m.Ctime}
	for _, p := range []int{m.LSPID, m.LRPID} {
		if p > 0 {
			l.LastOp = append(l.LastOp, p)
		}
	}
	return l
}

// msqid64 is struct msqid64_ds on 64-bit Linux (arch/x86/include/uapi/asm/msgbuf.h
// and include/uapi/asm-generic/msgbuf.h agree there).
type msqid64 struct {
	Perm                 unix.SysvIpcPerm
	Stime, Rtime, Ctime  int64
	Cbytes, Qnum, Qbytes uint64
	Lspid, Lrpid         int32
}

func (msgKind) fromStat(id Ident, b *statBuf) (Object, bool) {
	r, ok := msgRow(id.ID, b)
	if !ok {
		return Object{}, false
	}
	return Object{Ident: id, Msg: &r}, true
}

// msgRow is the row /proc/sysvipc/msg shows for queue id, from the struct
// msqid64_ds IPC_STAT or MSG_STAT_ANY wrote into b; ok is false where the
// layout is not known here (not 64-bit).
func msgRow(id int, b *statBuf) (Msg, bool) {
	if unsafe.Sizeof(uintptr(0)) != 8 {
		return Msg{}, false
	}
	d := (*msqid64)(unsafe.Pointer(b))
	return Msg{Key: d.Perm.Key, ID: id, Perms: d.Perm.Mode & 0xffff, CBytes: d.Cbytes, QNum: d.Qnum,
		LSPID: int(d.Lspid), LRPID: int(d.Lrpid), UID: d.Perm.Uid, GID: d.Perm.Gid, CUID: d.Perm.Cuid, CGID: d.Perm.Cgid,
		Stime: d.Stime, Rtime: d.Rtime, Ctime: d.Ctime}, true
}

func (msgKind) destroyed(uint32) bool { return false }

// changed: who sent and received last, and when, and the messages queued.
func (msgKind) changed(o, cur *Object) string {
	a, b := o.Msg, cur.Msg
	switch {
	case a == nil:
		return ""
	case b == nil:
		return "cannot be read again"
	case b.LSPID != a.LSPID || b.LRPID != a.LRPID:
		return fmt.Sprintf("lspid/lrpid %d/%d, were %d/%d", b.LSPID, b.LRPID, a.LSPID, a.LRPID)
	case b.Stime != a.Stime || b.Rtime != a.Rtime || b.Ctime != a.Ctime || b.QNum != a.QNum:
		return "sent to, received from or changed since"
	}
	return ""
}

func (msgKind) reread(o, cur *Object) RemoveOutcome { return RemoveOutcome{} }
func (msgKind) removed(int) RemoveResult            { return Removed }
