// Package ipcdiff knows the IPC objects of a namespace: it reads them,
// diffs two readings, gathers the evidence of who made and who uses each,
// decides which new objects a process tree created (docs/evidence.md) or
// which objects are orphans, and removes an object only after reading it
// again.
//
// # What it holds
//
//   - Parse: the /proc/sysvipc tables (table.go, and the schema of each
//     in shm.go, sem.go, msg.go), by header name, allocation-free per line.
//   - Snapshot: every object of the requested Types at one time
//     (FS.Snapshot), each kind read on its own goroutine; Idents, the
//     compact sorted identities of a snapshot.
//   - Diff: DiffIdents, the objects whose identity (Ident) was not in the
//     snapshot before.
//   - Evidence: Gather (for a run's new objects) and GatherOrphans (for
//     every object) add what a listing lacks: each semaphore's last pid
//     and waiters (semctl), the processes that map a segment
//     (/proc/PID/maps); Object.Evidence turns an object into the generic
//     terms the rules judge.
//   - Attribution: Attribute decides, for a run's new objects, which the
//     tree (Tree, Procs) created and nobody else needs (Decision);
//     Orphans decides which objects every piece of evidence calls
//     abandoned (OrphanDecision).
//   - Safe removal: Remove reads an object again right before removing it
//     and keeps it when its identity, or the evidence the decision rested
//     on, changed.
//   - Kinds: each kind of object is one implementation of the interface
//     kind (kind.go), registered by its Type in kinds. The System V
//     segment, semaphore set and message queue are the first three
//     (shm.go, sem.go, msg.go, sharing sysv.go and sysv_linux.go).
//
// # Kinds and the generic code
//
// The generic code (snapshot.go, diff.go, gather.go, attribute.go,
// orphan.go, remove.go) never looks at a kind's rows: it loops over the
// registered kinds, and asks the kind of an object's Type. A kind:
//
//   - lists its objects: open (on the calling goroutine, whose thread's
//     namespaces decide what is seen) and a tableReader that reads them
//     into the Snapshot, in a field of the kind's own (Snapshot.Shm) or in
//     Snapshot.rows[its Type]; count, idents and object read them back;
//   - gives each object its Ident: a SysV object is type, IPC id, key and
//     creator uid; a POSIX object is type, device (Dev), inode number (ID)
//     and name (Name);
//   - gathers the evidence a listing lacks (gather), into Object fields
//     or its own Data;
//   - translates an object into Evidence, which Attribute and Orphans
//     judge the same way for every kind: its Family (a SysV key, a POSIX
//     name) for key families, --keep-key and --own-keys; owner and
//     creator uid/gid; the creation/change stamp and the latest stamp;
//     PidFacts, each with its role (creator or user), its time (a kernel
//     stamp, or an exact window a tracker saw) and whether the use has
//     ended; whether the kernel records every creator (CreatorRecorded);
//     the live users (Users: attachers, holders, mappers, with the
//     kernel's count where it keeps one); waiters; signs of processes this
//     pid namespace cannot see; evidence not gathered; an object already
//     removed;
//   - says whether the run's creation trackers see the calls that make its
//     objects (getsTracked: Tree.Created then speaks for them);
//   - removes an object after re-checking its identity and evidence
//     (remove), and says what `ipcguard ls` shows of it (listing).
//
// # Adding a kind
//
// A new kind is new files plus one line each in the registry (kind.go):
// a Type constant before numTypes (the next number: Types are written to
// journals) and its implementation in kinds. Its name goes into type
// lists (ParseType, ParseTypeSet, --types) and AllTypes by itself.
//
// POSIX IPC fits as follows. POSIX shared memory is the files of the shm
// tmpfs (/dev/shm) other than "sem.*", glibc named semaphores are the
// "sem.NAME" files there, message queues are the files of the mqueue
// filesystem. Their open opens the directory (in the calling thread's
// mount namespace) and the reader lists it with statx, keeping the rows in
// Snapshot.rows. Ident is Dev, inode number as ID, and Name. Evidence
// gives Family{Name: "/NAME"} (a semaphore's without "sem."), the owner
// uid/gid (as creator too) and mode, Ctime from ctime and Last from the
// latest of ctime, mtime and birth time where statx gives one; the
// holders (/proc/PID/fd) and mappers (/proc/PID/maps, matched by device
// and inode, "(deleted)" included), gathered into Data, become Users; a
// creation seen by fanotify (as root) is a PidFact with Creator set and
// its exact From/To window, and makes CreatorRecorded true for that
// object; getsTracked is false. Removal re-checks device and inode at the
// name and then unlinks it (unlinkat in the directory, mq_unlink). The
// Policy's KeepNames, OwnNames and OtherNames are the names' --keep-key,
// --own-keys and key families.
package ipcdiff
