package ipcdiff

import "github.com/ipcguard/ipcguard/internal/posixipc"

// POSIX message queues (mq_open(3), mq_overview(7)): the regular files of
// the mqueue filesystem of the IPC namespace (ipc/mqueue.c). mq_open("/NAME")
// makes NAME; its family is "/NAME". Reading a queue's file gives its fill
// and NOTIFY_PID (and stamps its ctime): Gather reads it for the new queues
// only. mqueue records no birth time: the change time stands in for it.
var pmsgKind = &posixKind{t: TypePmsg, n: "pmsg", queues: true, pk: posixipc.Msg,
	family: func(name string) string { return "/" + name }}
