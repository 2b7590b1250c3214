package ipcdiff

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

// MsgList reads /proc/sysvipc/msg: the message queues of the calling
// thread's IPC namespace, in the kernel's order (by index).
func (fs FS) MsgList() ([]Msg, error) { return readTable(fs, "msg", appendMsg, 0) }

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
