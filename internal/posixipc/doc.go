// Package posixipc finds, attributes the users of, removes and watches the
// creation of POSIX IPC objects: shared memory (shm_open(3), files of the
// shm directory, normally the tmpfs on /dev/shm), named semaphores
// (sem_open(3), glibc's files "sem.NAME" in the same directory) and message
// queues (mq_open(3), files of the mqueue filesystem, one instance per IPC
// namespace). The rules below are the reference the code follows; the
// kernel sources are mm/shmem.c, ipc/mqueue.c, fs/namei.c and
// fs/notify/fanotify/, the man pages shm_overview(7), sem_overview(7),
// mq_overview(7), fanotify(7), fanotify_init(2), fanotify_mark(2),
// statx(2) and proc_pid_maps(5).
//
// # Where
//
// The shm directory is given by the caller (OpenShm; glibc uses /dev/shm).
// It is opened once with O_DIRECTORY|O_NOFOLLOW: a symlink in its place is
// refused, and every later step works relative to that descriptor, so a
// directory moved or mounted over afterwards is not followed. A directory
// that is not a tmpfs (/dev/shm not mounted: a directory of devtmpfs) is
// still where glibc puts its objects; Dir.Magic says which filesystem it is.
//
// A queue lives in the mqueue instance of an IPC namespace; a mount of
// fstype mqueue shows the instance of the namespace of the process that
// mounted it (ipc/mqueue.c, mqueue_init_fs_context, one superblock per
// namespace by get_tree_keyed), which need not be the caller's (a mount
// inherited by unshare --ipc, a bind mount from a container). OpenMqueue
// decides which instance is ours as follows:
//
//   - With CAP_SYS_ADMIN over the IPC namespace it makes a detached mount of
//     the caller's own instance (fsopen("mqueue"), fsmount: the keyed lookup
//     returns the namespace's superblock, no object is created, nothing is
//     attached to the mount tree). That is a directory of our instance by
//     construction (NSOurs), whatever /proc/thread-self/mountinfo shows.
//   - Otherwise each mqueue mount of /proc/thread-self/mountinfo is tested:
//     for an entry NAME of the mount that the caller may open, mq_open(NAME)
//     opens the queue of that name in the caller's namespace (ipc/mqueue.c,
//     do_mq_open uses current->nsproxy->ipc_ns->mq_mnt); equal device and
//     inode prove the mount is ours (NSOurs). A name the mount holds before
//     and after a probe (the same inode; mqueue has no link(2), so a name
//     once removed cannot come back with its inode) that mq_open reports
//     absent (ENOENT, probed with the access mode O_WRONLY|O_RDWR, which
//     the kernel rejects with EINVAL for an existing queue before any
//     permission check and so opens nothing) proves the mount is another
//     namespace's (NSForeign). Otherwise the namespace is NSUnknown and the
//     caller must not treat the listing as its namespace's.
//
// An empty mount, or one whose queues the caller may not open, is
// NSUnknown; without privilege that is the usual mount of a quiet IPC
// namespace. Dir.Prove tries the proof again later (after a command made
// queues there). The open directory pins its filesystem instance (a mount
// never changes its superblock, and st_dev names the superblock while it
// lives), so once proven, every listing made through that descriptor was
// of our instance, those made before the proof too: a caller may list an
// NSUnknown directory early, keep the listing aside, and use it only if a
// later Prove through the same Dir gives NSOurs. Never otherwise.
//
// # Identity
//
// An object is (device, inode, name): st_dev of the filesystem instance,
// the inode number and the directory entry. The inode alone is not enough
// (tmpfs and mqueue take numbers from get_next_ino, which wraps), the name
// alone is not (a name is removed and made again: a new object). A snapshot
// (Dir.List) holds regular files only; symlinks, directories, fifos,
// sockets and devices in the directory are never objects (fstatat with
// AT_SYMLINK_NOFOLLOW; statx for the birth time, which tmpfs records
// (shmem_getattr) and mqueue does not). Names are bytes: a name with a
// newline or invalid UTF-8 is kept as it is. In the shm directory a name
// beginning "sem." is a named semaphore (glibc, sem_open: created as a
// temporary file, then link(2)ed to its name), every other regular file is
// shared memory; every regular file of mqueue is a queue.
//
// Reading a queue's file gives "QSIZE:%-10lu NOTIFY:%-5d SIGNO:%-5d
// NOTIFY_PID:%-6d" (ipc/mqueue.c, mqueue_read_file): bytes queued and the
// process registered with mq_notify(3), translated into the reader's pid
// namespace (0: none, or one this namespace cannot see while NOTIFY is not
// 0). Reading it stamps the queue's atime and ctime with the current time,
// so Dir.List reads it only when asked (ListOptions.QueueStatus), and takes
// the times before reading.
//
// # Users
//
// A process uses an object when one of its fd tables holds a descriptor of
// it (/proc/PID/fd/N: stat through the link gives the device and inode of
// the open file, including an mq_open descriptor) or its address space maps
// it (/proc/PID/maps: the device "MM:mm" in hex and the inode columns; the
// path column of a file unlinked since ends in " (deleted)", which does not
// change the match). Users matches by device and inode, never by name, in
// one pass over /proc for any number of objects.
//
// All threads of a process share one address space (CLONE_THREAD requires
// CLONE_VM), so maps is read once per process (from a live thread when the
// leader has exited). A thread may have its own fd table (clone without
// CLONE_FILES, unshare(CLONE_FILES)); /proc/PID/fd shows the leader's only.
// Users compares each other thread's table with the leader's with
// kcmp(KCMP_FILES) and reads /proc/PID/task/TID/fd of each thread whose
// table differs (or cannot be compared).
//
// A process whose fd directory or maps cannot be read (EACCES, EPERM: the
// ptrace access check) is reported as unreadable: its use is unknown, never
// absent. A process that exited during the pass (ENOENT, ESRCH, an empty
// maps of an exited leader) is not unreadable: it uses nothing any more.
// Users is a sample: a process that starts or opens the object after its
// directory was read is not seen, and a process of a pid namespace this
// /proc does not show is not seen either.
//
// A process registered for notification (NOTIFY_PID) is a user of a queue
// too; it is in the queue's status (ListOptions.QueueStatus).
//
// # Removal
//
// Dir.Remove unlinks a name relative to the directory descriptor (unlinkat),
// so it never leaves the filesystem instance the directory belongs to and
// never follows a symlink. Right before unlinkat it re-checks with fstatat
// (AT_SYMLINK_NOFOLLOW) that the name is still a regular file with the
// same device and inode (else Changed, or AlreadyGone), and that its
// ctime and size are those of the decision (else Touched). A name with '/',
// or "." or "..", or empty, is refused. The kernel has no "unlink if the
// inode is X": between the re-check and unlinkat the owner of the file (or
// root; both shm and mqueue directories are sticky) could replace it. That
// window is a few microseconds and needs the owner's own hand; after
// unlinkat, Remove checks through a descriptor opened before the re-check
// that the inode it checked is the one unlinked (its link count fell) and
// reports otherwise (ReplacedRemoved) so that the caller can say so.
//
// For a queue with no directory of our namespace (NSUnknown), Remove uses
// mq_unlink(name) only after mq_open(name) in our namespace gave the same
// device and inode (and keeps that descriptor for the same after-check); a
// queue the caller may not open cannot be re-checked and is refused.
// Unlinking does not break current mappings or descriptors; a process that
// opens the name again gets ENOENT or, with O_CREAT, a fresh object.
//
// # Creation seen
//
// Watch records the creations in a directory while it runs: a fanotify
// group (FAN_CLASS_NOTIF|FAN_REPORT_DFID_NAME_TARGET) with an inode mark on the
// directory for FAN_CREATE|FAN_MOVED_TO. A file made by open(O_CREAT),
// shm_open, mq_open (vfs_mkobj reports the create too) or link(2) gives
// FAN_CREATE with its name; rename(2) into the directory gives
// FAN_MOVED_TO. Each event carries the pid (thread-group id) of the
// creator; the time recorded is when the watcher read the event, a bound
// after the creation. On kernel 6.18 a filesystem mark works on tmpfs but
// is refused on mqueue (EOPNOTSUPP: no fsid), a mount mark is refused with
// FAN_REPORT_DFID_NAME (EINVAL), while an inode mark on the directory works
// on both, privileged or not; the inode mark is what is needed, since
// shm_open and mq_open names cannot hold '/'. Without CAP_SYS_ADMIN
// fanotify reports only with FID (allowed since Linux 5.13), allows inode
// marks only, and hides the pid of every process but the listener's own
// (0): the record then tells that and when a name was made, not by whom
// (Record.PidsHidden). A full queue drops events and reports
// FAN_Q_OVERFLOW: Record.Lost says the record is incomplete.
//
// A name is not a file: link(2) and rename(2) make names for files that
// exist already. Where the kernel has FAN_REPORT_DFID_NAME_TARGET (Linux
// 5.17: FAN_REPORT_FID|FAN_REPORT_DFID_NAME|FAN_REPORT_TARGET_FID) each
// FAN_CREATE and FAN_MOVED_TO also carries the handle of the child, the
// file the name was made for (Creation.File); Dir.Handle gives the same
// handle for a file listed (name_to_handle_at(2), AT_HANDLE_FID where the
// kernel has it, Linux 6.5: the encoding fanotify uses, also for mqueue,
// which has no export operations). So the first creation seen with an
// object's handle is the one that made its file, under whatever name.
// Before 5.17 fanotify_init refuses the flags (EINVAL) and the watch
// reports names only.
//
// The same mark asks for FAN_ATTRIB|FAN_EVENT_ON_CHILD: a chown, chmod or
// utimes of an entry (notify_change, fsnotify_change) is reported with its
// name (Record.Changes). Writes, ftruncate and fallocate report
// FAN_MODIFY, and link count changes notify the inode only, so glibc's
// shm_open, sem_open and mq_open make no such change. It tells when an
// object's owner may not be its creator's (a process of another uid made
// it and gave it away with chown).
//
// # Quiet outsiders
//
// SampleUID and Sample.Compare tell which processes of a uid (real,
// effective, saved or filesystem uid equal to it) ran between two samples;
// see Sample.Compare for what that proves.
package posixipc
