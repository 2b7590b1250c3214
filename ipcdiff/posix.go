package ipcdiff

import (
	"errors"
	"fmt"
	"iter"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ipcguard/ipcguard/internal/posixipc"
)

// What the three POSIX kinds (pshm.go, psem.go, pmsg.go) share: a
// directory each (the shm directory for pshm and psem, the mqueue instance
// of the IPC namespace for pmsg, internal/posixipc), identities of type,
// device, inode and name, the users found in /proc (fd tables, maps,
// NOTIFY_PID), and removal by posixipc.Dir.Remove. The rules are
// docs/evidence.md, "POSIX objects".

// ErrNoDir means the directory of a POSIX kind is not open: FS.OpenPosix
// was not called, or could not open it (no mqueue instance of this IPC
// namespace). Snapshot leaves such a kind out and says why
// (Snapshot.Unread); it is not a failure of the snapshot.
var ErrNoDir = errors.New("ipcdiff: POSIX directory not available")

// posixDirs are the directories FS.OpenPosix opened; an error where one
// could not be.
type posixDirs struct {
	shm, mq       *posixipc.Dir
	shmErr, mqErr error
}

// OpenPosix returns fs with the POSIX IPC directories of the calling
// thread's namespaces opened: the shm directory at shmDir (glibc's
// /dev/shm; posixipc.OpenShm, O_DIRECTORY|O_NOFOLLOW, opened once) and
// the mqueue instance of its IPC namespace (posixipc.OpenMqueue). A
// directory that cannot be opened makes the kinds it holds unreadable:
// their snapshot gives an error wrapping ErrNoDir (Snapshot.Unread),
// which PosixDir returns too. ClosePosix closes them.
//
// An mqueue mount proven another namespace's is not used. One whose
// namespace could not be proven yet (posixipc.NSUnknown: without
// privilege, a mount with no queue the caller may open) is kept open,
// pending: each later PosixDir(TypePmsg) tries the proof again
// (posixipc.Dir.Prove) and uses the directory only once it is proven
// ours. A snapshot through Unproven lists a pending mount anyway; that
// listing is of the instance the descriptor pins, and counts only if a
// later proof makes it ours (posixipc package doc, "Where").
func (fs FS) OpenPosix(shmDir string) FS {
	d := &posixDirs{}
	var err error
	if d.shm, err = posixipc.OpenShm(shmDir); err != nil {
		d.shm, d.shmErr = nil, fmt.Errorf("%w: %w", ErrNoDir, err)
	}
	switch mq, err := posixipc.OpenMqueue(fs.Path()); {
	case err != nil:
		d.mqErr = fmt.Errorf("%w: %w", ErrNoDir, err)
	case mq.NS == posixipc.NSOurs || mq.NS == posixipc.NSUnknown:
		d.mq = mq
	default:
		d.mqErr = fmt.Errorf("%w: the mqueue mount %s is %s (%s)", ErrNoDir, mq.Path, mq.NS, mq.NSWhy)
		mq.Close()
	}
	fs.posix = d
	return fs
}

// Unproven returns a copy of fs whose snapshots also list an mqueue mount
// OpenPosix could not prove ours yet (see OpenPosix). Only a listing taken
// before a run and set aside until a proof (a later snapshot through fs
// reads pmsg only once the mount is proven) may be taken so; nothing is
// removed or judged through the copy.
func (fs FS) Unproven() FS {
	fs.unproven = true
	return fs
}

// ClosePosix closes the directories OpenPosix opened.
func (fs FS) ClosePosix() {
	if d := fs.posix; d != nil {
		if d.shm != nil {
			d.shm.Close()
		}
		if d.mq != nil {
			d.mq.Close()
		}
	}
}

// PosixDir is the directory that holds the objects of POSIX type t (the
// shm directory for pshm and psem, the mqueue instance for pmsg), or why
// there is none (an error wrapping ErrNoDir, or ErrUsage for a type that
// is not POSIX). For pmsg with a pending mount (OpenPosix) it first tries
// the proof again; an unproven mount is returned only through Unproven.
func (fs FS) PosixDir(t Type) (*posixipc.Dir, error) {
	k, ok := kindOf(t).(*posixKind)
	if !ok {
		return nil, fmt.Errorf("%w: %v is not a POSIX type", ErrUsage, t)
	}
	d := fs.posix
	switch {
	case d == nil:
		return nil, fmt.Errorf("%w: not opened", ErrNoDir)
	case k.queues && d.mq == nil:
		return nil, d.mqErr
	case k.queues:
		if d.mq.NS == posixipc.NSUnknown {
			d.mq.Prove()
		}
		switch {
		case d.mq.NS == posixipc.NSOurs:
			return d.mq, nil
		case d.mq.NS == posixipc.NSUnknown && fs.unproven:
			return d.mq, nil
		}
		return nil, fmt.Errorf("%w: the mqueue mount %s is %s (%s)", ErrNoDir, d.mq.Path, d.mq.NS, d.mq.NSWhy)
	case d.shm == nil:
		return nil, d.shmErr
	}
	return d.shm, nil
}

// PosixTypes holds the POSIX kinds, SysvTypes the System V kinds.
const (
	PosixTypes TypeSet = 1<<TypePshm | 1<<TypePsem | 1<<TypePmsg
	SysvTypes  TypeSet = 1<<TypeShm | 1<<TypeSem | 1<<TypeMsg
)

// IsPosix reports whether t is a POSIX kind.
func (t Type) IsPosix() bool { return PosixTypes.Has(t) }

// TypeOfName is the POSIX type of an entry of the shm directory: psem for
// "sem.NAME" (glibc's named semaphores), pshm for every other name.
func TypeOfName(name string) Type {
	if strings.HasPrefix(name, "sem.") {
		return TypePsem
	}
	return TypePshm
}

// posixKind is a POSIX kind: pshm, psem or pmsg. Its rows are
// []posixipc.Object in Snapshot.rows; an Object's Data is a *Posix.
type posixKind struct {
	t      Type
	n      string
	queues bool                // the mqueue instance, not the shm directory
	pk     posixipc.Kind       // the posixipc kind of its objects
	family func(string) string // the family name of an entry name
}

// Posix is the row and gathered evidence of a POSIX object (Object.Data).
type Posix struct {
	posixipc.Object
	// Gathered says the users were looked for (Gather).
	Gathered bool
	// Uses are the live processes, ipcguard itself excepted, that hold a
	// descriptor of it or map it (/proc/PID/fd, /proc/PID/maps).
	Uses []posixipc.Use
	// Unread are the processes whose fd tables or maps could not be read
	// and that could open the object (docs/evidence.md): each may use it.
	Unread []posixipc.Unreadable
	// Handle is the file handle of its file (posixipc.Dir.Handle), read
	// by Gather for the files of the shm directory; "" when not read or
	// not available (then the creations seen judge its name alone).
	Handle posixipc.Handle
}

// Birth is the object's birth time, or its change time where the
// filesystem records no birth (mqueue): the creation was not later.
func (p *Posix) Birth() time.Time {
	if !p.Btime.IsZero() {
		return p.Btime
	}
	return p.Ctime
}

func (k *posixKind) name() string { return k.n }

// posixReader lists a directory into Snapshot.rows.
type posixReader struct {
	k *posixKind
	d *posixipc.Dir
}

func (k *posixKind) open(fs FS) (tableReader, error) {
	d, err := fs.PosixDir(k.t)
	if err != nil {
		return nil, err
	}
	return posixReader{k, d}, nil
}

func (r posixReader) size() int { return -1 }
func (r posixReader) close()    {}

func (r posixReader) read(s *Snapshot) error {
	rows, err := r.d.List(posixipc.ListOptions{Kind: r.k.pk})
	if err != nil {
		return err
	}
	s.rows[r.k.t] = rows
	return nil
}

func (k *posixKind) rowsOf(s *Snapshot) []posixipc.Object {
	rows, _ := s.rows[k.t].([]posixipc.Object)
	return rows
}

func (k *posixKind) ident(o *posixipc.Object) Ident {
	return Ident{Type: k.t, ID: int(o.Ino), Dev: o.Dev, Name: o.Name}
}

func (k *posixKind) count(s *Snapshot) int { return len(k.rowsOf(s)) }

func (k *posixKind) idents(s *Snapshot) iter.Seq2[int, Ident] {
	return func(yield func(int, Ident) bool) {
		rows := k.rowsOf(s)
		for i := range rows {
			if !yield(i, k.ident(&rows[i])) {
				return
			}
		}
	}
}

func (k *posixKind) addIdents(s *Snapshot, ids *Idents) {
	rows := k.rowsOf(s)
	for i := range rows {
		ids.add(k.ident(&rows[i]))
	}
}

func (k *posixKind) object(s *Snapshot, i int) Object {
	r := k.rowsOf(s)[i]
	return Object{Ident: k.ident(&r), Data: &Posix{Object: r}}
}

func (k *posixKind) only(dst, src *Snapshot) {}

// posixOf is the POSIX row of o, nil when it has none.
func posixOf(o *Object) *Posix {
	p, _ := o.Data.(*Posix)
	return p
}

// gather finds, in one pass over /proc for every POSIX object of objs
// not gathered yet (the first POSIX kind's gather does all of them), the
// live processes that hold or map each (posixipc.FindUsers), a queue's
// NOTIFY_PID, the handle of a shm or semaphore file (Posix.Handle), and
// the processes whose use could not be read and that
// could open it (canOpen). A process of a pid namespace this /proc does
// not show is not seen (docs/evidence.md, "What remains").
func (k *posixKind) gather(fs FS, objs []Object, _ bool) error {
	var keys []posixipc.FileKey
	var idx []int
	for i := range objs {
		if p := posixOf(&objs[i]); p != nil && !p.Gathered {
			keys = append(keys, p.FileKey)
			idx = append(idx, i)
		}
	}
	if len(idx) == 0 {
		return nil
	}
	var errs []error
	u, err := posixipc.FindUsers(fs.Path(), keys)
	if err != nil {
		errs = append(errs, fmt.Errorf("reading /proc for POSIX users: %w", err))
	}
	self := os.Getpid()
	creds := map[int]*procCreds{}
	privileged := os.Geteuid() == 0
	for _, i := range idx {
		o := &objs[i]
		p := posixOf(o)
		p.Gathered = true
		for _, use := range u.Uses[p.FileKey] {
			if use.Pid != self {
				p.Uses = append(p.Uses, use)
			}
		}
		if p.Kind != posixipc.Msg {
			// Its file, to find the creation that made it (Creation.File).
			// A name that names another file now, or none, gets no handle:
			// removal will find out.
			if d, err := fs.PosixDir(o.Type); err == nil {
				p.Handle, _ = d.Handle(p.ID)
			}
		}
		if p.Kind == posixipc.Msg {
			if d, err := fs.PosixDir(o.Type); err == nil {
				q, ct, err := d.QueueStatus(p.ID)
				switch {
				case err == nil:
					p.Queue, p.ReadCtime = &q, ct
				case errors.Is(err, posixipc.ErrReplaced) || isNoEnt(err):
					// Gone or replaced: removal will find out.
				default:
					p.QueueErr = err
					o.Unreadable = appendWhy(o.Unreadable, "its queue status: "+ErrText(err))
				}
			}
		}
		for _, un := range u.Unreadable {
			if un.Pid == self {
				continue
			}
			c, ok := creds[un.Pid]
			if !ok {
				c = readCreds(fs.Path(strconv.Itoa(un.Pid), "status"))
				creds[un.Pid] = c
			}
			if !canOpen(c, p, privileged) {
				continue
			}
			p.Unread = append(p.Unread, un)
			o.Unreadable = appendWhy(o.Unreadable, fmt.Sprintf("the %s of pid %d (%s), which could open it", unreadWhat(un.What), un.Pid, un.Comm))
		}
	}
	return errors.Join(errs...)
}

func appendWhy(s, why string) string {
	if s == "" {
		return why
	}
	return s + "; " + why
}

func unreadWhat(w string) string {
	switch w {
	case "fd":
		return "fd table"
	case "task fd":
		return "fd table of a thread"
	}
	return w
}

func isNoEnt(err error) bool { return errors.Is(err, os.ErrNotExist) }

// procCreds are the uids, gids and supplementary groups of a process
// (/proc/PID/status, lines Uid, Gid and Groups); nil when they could not
// be read.
type procCreds struct {
	uids, gids []uint32
}

func readCreds(path string) *procCreds {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	c := &procCreds{}
	seen := 0
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		var dst *[]uint32
		switch k {
		case "Uid":
			dst = &c.uids
		case "Gid", "Groups":
			dst = &c.gids
		default:
			continue
		}
		seen++
		for _, f := range strings.Fields(v) {
			n, err := strconv.ParseUint(f, 10, 32)
			if err != nil {
				return nil
			}
			*dst = append(*dst, uint32(n))
		}
	}
	if seen < 2 || len(c.uids) == 0 {
		return nil
	}
	return c
}

// canOpen says whether a process whose use of o could not be read counts
// against it (docs/evidence.md, "POSIX objects"): when one of its uids is
// the owner's and the mode grants the owner access, when one of its gids
// (or supplementary groups) is the owner group's and the mode grants the
// group access, or when the mode grants others access; and when its
// credentials cannot be read. A root process counts only for a privileged
// caller (which can read every process): an unprivileged run cannot read
// root's processes, and counting them would keep everything (the limit is
// documented: unlinking breaks nothing such a process holds, only a later
// open by name).
func canOpen(c *procCreds, o *Posix, privileged bool) bool {
	if c == nil {
		return true
	}
	if !privileged && slices.Contains(c.uids, 0) {
		return false
	}
	if o.Mode&0o006 != 0 {
		return true
	}
	if o.Mode&0o600 != 0 && slices.Contains(c.uids, o.UID) {
		return true
	}
	return o.Mode&0o060 != 0 && slices.Contains(c.gids, o.GID)
}

// evidence: the family is the name (a semaphore's without "sem."); the
// owner is creator too (POSIX objects record no creator); Ctime is the
// birth time (the change time where there is none: mqueue); users are the
// holders, mappers and the queue's NOTIFY_PID. The creation the run's
// watcher saw is not the object's own evidence: Attribute adds it from the
// Policy (Policy.Creations).
func (k *posixKind) evidence(o *Object) Evidence {
	ev := Evidence{Family: Family{Name: k.family(o.Name)}}
	p := posixOf(o)
	if p == nil {
		return ev
	}
	ev.UID, ev.GID, ev.CUID, ev.CGID = p.UID, p.GID, p.UID, p.GID
	ev.Ctime = p.Birth().Unix()
	ev.Last = max(p.Ctime.Unix(), p.Mtime.Unix(), p.Birth().Unix())
	var fd, mapped []int
	for _, u := range p.Uses {
		if u.FD {
			fd = append(fd, u.Pid)
		}
		if u.Mapped {
			mapped = append(mapped, u.Pid)
		}
	}
	ev.Users = []Users{{How: "held open by", Pids: fd, None: "nobody holds it open"},
		{How: "mapped by", Pids: mapped, None: "nobody maps it"}}
	if q := p.Queue; q != nil {
		switch {
		case q.NotifyPid > 0:
			ev.Users = append(ev.Users, Users{How: "registered for notification (mq_notify) by", Pids: []int{q.NotifyPid}})
		case q.Notify != 0 || q.Signo != 0:
			ev.Invisible = append(ev.Invisible, "a process not visible from this pid namespace is registered for its notification (mq_notify)")
		}
	}
	if !p.Gathered {
		ev.NotGathered = "its users (/proc/PID/fd, /proc/PID/maps)"
	}
	return ev
}

func (k *posixKind) getsTracked() bool { return false }

// remove re-checks the name (same device and inode, a regular file, the
// same ctime and size) and unlinks it in the directory
// (posixipc.Dir.Remove).
func (k *posixKind) remove(fs FS, o Object) (RemoveOutcome, error) {
	p := posixOf(&o)
	if p == nil {
		return failed(o.Ident, "re-check", fmt.Errorf("%w: %v has no row", ErrUsage, o.Ident))
	}
	d, err := fs.PosixDir(o.Type)
	if err != nil {
		return failed(o.Ident, "re-check", err)
	}
	out, err := d.Remove(p.Object)
	switch out.Result {
	case posixipc.Removed:
		return RemoveOutcome{Result: Removed}, nil
	case posixipc.AlreadyGone:
		return RemoveOutcome{Result: AlreadyGone}, nil
	case posixipc.Changed:
		found := Ident{Type: o.Type, ID: int(out.Found.Ino), Dev: out.Found.Dev, Name: out.Found.Name}
		return RemoveOutcome{Result: Changed, Found: found, Why: "the name now names another file"}, nil
	case posixipc.Touched:
		return RemoveOutcome{Result: Touched, Why: orText(out.Why, "its ctime or size changed")}, nil
	case posixipc.Refused:
		return RemoveOutcome{Result: Refused, Why: out.Why}, nil
	case posixipc.ReplacedRemoved:
		return RemoveOutcome{Result: ReplacedRemoved, Why: "between the re-check and the unlink the name was made to name another file, which was unlinked"}, nil
	}
	if err == nil {
		err = out.Err
	}
	if err == nil {
		err = fmt.Errorf("unlink: %s", out.Result)
	}
	return failed(o.Ident, "unlink", err)
}

func orText(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func (k *posixKind) listing(o *Object) Listing {
	p := posixOf(o)
	if p == nil {
		return Listing{}
	}
	l := Listing{UID: p.UID, Perms: p.Mode & 0o777, Size: uint64(max(p.Size, 0)), Ctime: p.Birth().Unix()}
	if k.queues {
		l.Size = 0
		if p.Queue != nil {
			l.Size = p.Queue.QSize
		}
	}
	for _, u := range p.Uses {
		l.Users = append(l.Users, u.Pid)
	}
	if q := p.Queue; q != nil && q.NotifyPid > 0 {
		l.Users = append(l.Users, q.NotifyPid)
	}
	return l
}

// NameKey is a POSIX name in one filesystem instance.
type NameKey struct {
	Type Type
	Dev  uint64
	Name string
}

// PosixBirths lists the POSIX names of s with the birth time of the file
// under each (zero where the filesystem keeps none: mqueue), for
// Policy.PosixAfter.
func PosixBirths(s *Snapshot) map[NameKey]time.Time {
	m := map[NameKey]time.Time{}
	for t := range (s.Types & PosixTypes).All() {
		k, ok := kindOf(t).(*posixKind)
		if !ok {
			continue
		}
		rows := k.rowsOf(s)
		for i := range rows {
			m[NameKey{t, rows[i].Dev, rows[i].Name}] = rows[i].Btime
		}
	}
	return m
}
