package ipcdiff

import (
	"fmt"
	"strings"
	"time"
)

// OrphanQuiet is how long an object must have been left alone before it
// can be called an orphan, whatever --older-than says: the kernel's stamps
// are whole seconds of a coarse clock (StampSlack), so a process that
// started within that time of the last activity cannot be told from the
// one that acted, and activity that recent says its users are about.
const OrphanQuiet = 3 * time.Second

// Reason classes of an orphan decision: what kept an object from being an
// orphan (Class of an OrphanDecision), or ClassOrphan.
const (
	ClassOrphan     = "orphan"
	ClassAttached   = "attached"       // nattch > 0, or a process maps it
	ClassWaiting    = "waiting"        // processes wait on a semaphore (GETNCNT, GETZCNT)
	ClassLiveUser   = "live_user"      // a recorded pid runs, and may be the process that acted
	ClassInvisible  = "invisible_user" // a pid field 0 with activity: a process of another pid namespace
	ClassUnreadable = "unreadable"     // evidence that could not be read (GETPID refused, ...)
	ClassKeyFamily  = "key_family"     // another object of the same key is not an orphan
	ClassRecent     = "recent"         // activity within OrphanQuiet
	ClassYounger    = "younger"        // activity within --older-than
	ClassNoPid      = "no_pid"         // no process recorded on it, and no --older-than to judge by
	ClassRemoved    = "already_removed"
)

// inUseClasses are the classes that say someone uses the object, or may:
// `ipcguard rm` refuses such an object without --force.
var inUseClasses = map[string]bool{ClassAttached: true, ClassWaiting: true, ClassLiveUser: true,
	ClassInvisible: true, ClassUnreadable: true}

// OrphanDecision is the verdict of Orphans on one object, with the
// evidence each way, in words a person can audit.
type OrphanDecision struct {
	Object
	// Orphan: every piece of evidence says the object is abandoned.
	Orphan bool
	// InUse: some evidence says a process uses the object, or may (an
	// attach, a waiter, a live process that may be the one that acted, a
	// process of another pid namespace, evidence that could not be read),
	// or uses another object of its key. An object neither Orphan nor
	// InUse is only too recent, or has nothing to judge it by.
	InUse bool
	// Class is ClassOrphan, or the class of the first reason against.
	Class   string
	For     []string // evidence that it is abandoned
	Against []string // evidence that it is not, or what is not known
	// LastActivity is the object's latest stamp (ctime, atime, dtime,
	// otime, stime, rtime); zero when it has none.
	LastActivity time.Time
	// InUseWhy is the reasons of the InUse class alone (what `rm` refuses with).
	InUseWhy []string
}

// Reason is the reasons against, joined ("" for an orphan).
func (d *OrphanDecision) Reason() string { return strings.Join(d.Against, "; ") }

// Orphans decides, for each object of a namespace, whether every piece of
// evidence says it is abandoned (docs/evidence.md, "Orphans"):
//
//   - every pid the kernel recorded on it (shm cpid and lpid, each
//     semaphore's sempid, a queue's lspid and lrpid) is dead, or reused:
//     the process running under it now started after the object's last
//     stamp (plus the stamp's second and StampSlack), so it cannot be the
//     one that acted; a zombie is dead; a live process whose start time
//     cannot be read (a /proc of another pid namespace) may be the one;
//   - nobody attaches it (nattch 0, and no /proc/PID/maps maps it) and
//     nobody waits on it (GETNCNT, GETZCNT);
//   - no pid field reads 0 with activity (a process of another pid
//     namespace acted: its liveness cannot be known), and none of its
//     evidence was unreadable (objs[i].Unreadable);
//   - it was left alone for OrphanQuiet, and for olderThan when > 0
//     (against its latest stamp); a set or queue with no pid at all
//     (never operated on) is judged by age alone, so only with olderThan;
//   - no other object of its key (any type) is kept: a key family is
//     abandoned together or not at all.
//
// objs should carry Sems (Enrich) and Attachers (see GatherOrphans).
// procs answers for the pid namespace of the pids (LiveProcs on a /proc of
// that namespace); now is the time the evidence was read.
func Orphans(objs []Object, procs Procs, now time.Time, olderThan time.Duration) []OrphanDecision {
	mp := &memoProcs{Procs: procs, m: map[int]procInfo{}}
	ds := make([]OrphanDecision, len(objs))
	for i := range objs {
		ds[i] = decideOrphan(objs[i], mp, now, olderThan)
	}
	orphanFamilies(ds)
	return ds
}

// recordedPid is one pid field of an object.
type recordedPid struct {
	role string
	pid  int
}

// recordedPids lists the non-zero pid fields of o.
func recordedPids(o *Object) []recordedPid {
	var out []recordedPid
	add := func(role string, pid int) {
		if pid > 0 {
			out = append(out, recordedPid{role, pid})
		}
	}
	switch {
	case o.Shm != nil:
		add("creator", o.Shm.CPID)
		add("last attach/detach", o.Shm.LPID)
	case o.Sem != nil:
		for i, s := range o.Sems {
			add(fmt.Sprintf("semaphore %d last op", i), s.Pid)
		}
	case o.Msg != nil:
		add("last msgsnd", o.Msg.LSPID)
		add("last msgrcv", o.Msg.LRPID)
	}
	return out
}

// LastStamp is the latest of o's time stamps in seconds since 1970 (0 when
// it has none): every action the kernel records a pid for also moves one
// of them (an undo adjustment at exit excepted, made by a process that is
// then gone).
func LastStamp(o *Object) int64 {
	switch {
	case o.Shm != nil:
		return max(o.Shm.Ctime, o.Shm.Atime, o.Shm.Dtime)
	case o.Sem != nil:
		return max(o.Sem.Ctime, o.Sem.Otime)
	case o.Msg != nil:
		return max(o.Msg.Ctime, o.Msg.Stime, o.Msg.Rtime)
	}
	return 0
}

func decideOrphan(o Object, procs *memoProcs, now time.Time, olderThan time.Duration) OrphanDecision {
	d := OrphanDecision{Object: o}
	last := LastStamp(&o)
	if last > 0 {
		d.LastActivity = secs(last)
	}
	against := func(class, format string, args ...any) {
		if d.Class == "" {
			d.Class = class
		}
		why := fmt.Sprintf(format, args...)
		d.Against = append(d.Against, why)
		if inUseClasses[class] {
			d.InUse = true
			d.InUseWhy = append(d.InUseWhy, why)
		}
	}
	name := func(pid int) string {
		if c := procs.Comm(pid); c != "" {
			return fmt.Sprintf("pid %d (%s)", pid, c)
		}
		return fmt.Sprintf("pid %d", pid)
	}

	if o.Shm != nil && o.Shm.Perms&ShmDest != 0 {
		against(ClassRemoved, "already removed: destroyed at the last detach")
	}
	if o.Unreadable != "" {
		against(ClassUnreadable, "its evidence could not be read (%s)", o.Unreadable)
	} else if o.Sem != nil && o.Sems == nil && o.Sem.NSems > 0 {
		against(ClassUnreadable, "its semaphores were not read")
	}
	for _, w := range invisible(&o) {
		against(ClassInvisible, "%s", w)
	}
	if o.Shm != nil {
		var who []string
		for _, p := range o.Attachers {
			who = append(who, name(p))
		}
		switch {
		case len(who) > 0:
			against(ClassAttached, "attached by %s", strings.Join(who, ", "))
		case o.Shm.Nattch > 0:
			against(ClassAttached, "attached by %d process(es)", o.Shm.Nattch)
		default:
			d.For = append(d.For, "nobody attaches it")
		}
	}
	waiting := false
	for i, s := range o.Sems {
		if s.NCnt > 0 || s.ZCnt > 0 {
			waiting = true
			against(ClassWaiting, "semaphore %d has %d waiting process(es)", i, s.NCnt+s.ZCnt)
		}
	}
	if o.Sem != nil && o.Sems != nil && !waiting {
		d.For = append(d.For, "nobody waits on it")
	}

	// The pids: dead, or another process than the one that acted.
	pids := recordedPids(&o)
	// A process that started after this can have done nothing the stamps
	// record: the last stamp's second, widened by the slack of its clock.
	after := secs(last).Add(MembershipSlack)
	for _, r := range pids {
		if !procs.Alive(r.pid) {
			d.For = append(d.For, fmt.Sprintf("%s pid %d is dead", r.role, r.pid))
			continue
		}
		st, ok := procs.Started(r.pid)
		switch {
		case !ok:
			against(ClassLiveUser, "%s is %s, running (its start time cannot be read: it may be the process that acted)", r.role, name(r.pid))
		case last > 0 && st.After(after):
			d.For = append(d.For, fmt.Sprintf("%s pid %d is reused: %s started %s, after the last activity",
				r.role, r.pid, name(r.pid), st.Format(time.RFC3339)))
		default:
			against(ClassLiveUser, "%s is %s, running since before the last activity", r.role, name(r.pid))
		}
	}

	// Time.
	age := now.Sub(d.LastActivity)
	switch {
	case last <= 0:
		// No stamp at all: cannot happen to an object (ctime is set at
		// creation); nothing to judge it by.
		against(ClassNoPid, "it has no time stamp")
	case age < OrphanQuiet:
		against(ClassRecent, "last activity %s ago (less than %s)", roundAge(age), OrphanQuiet)
	case olderThan > 0 && age < olderThan:
		against(ClassYounger, "last activity %s ago, not older than %s", roundAge(age), olderThan)
	default:
		d.For = append(d.For, fmt.Sprintf("last activity %s ago", roundAge(age)))
	}
	if len(pids) == 0 && o.Shm == nil {
		if olderThan <= 0 {
			against(ClassNoPid, "no process recorded on it (never operated on): only its age can tell, and --older-than was not given")
		} else {
			d.For = append(d.For, "no process recorded on it (never operated on)")
		}
	}
	if len(d.Against) == 0 {
		d.Orphan, d.Class = true, ClassOrphan
	}
	return d
}

// roundAge rounds an age to the second for display.
func roundAge(d time.Duration) time.Duration {
	if d < 0 {
		return 0
	}
	return d.Round(time.Second)
}

// orphanFamilies applies the key family rule: an object whose key is
// shared by an object that is not an orphan is not one either, and is in
// use when that object is.
func orphanFamilies(ds []OrphanDecision) {
	kept := map[int32]*OrphanDecision{}
	inUse := map[int32]*OrphanDecision{}
	for i := range ds {
		d := &ds[i]
		if d.Key == 0 {
			continue
		}
		if !d.Orphan && kept[d.Key] == nil {
			kept[d.Key] = d
		}
		if d.InUse && inUse[d.Key] == nil {
			inUse[d.Key] = d
		}
	}
	for i := range ds {
		d := &ds[i]
		if d.Key == 0 {
			continue
		}
		if u := inUse[d.Key]; u != nil && u != d {
			why := fmt.Sprintf("same key %s as %s %d, which is in use (%s)", KeyString(d.Key), u.Type, u.ID, u.InUseWhy[0])
			if !d.InUse {
				d.InUse, d.Class = true, ClassKeyFamily
			}
			d.InUseWhy = append(d.InUseWhy, why)
			d.Against = append(d.Against, why)
			d.Orphan = false
			continue
		}
		if k := kept[d.Key]; k != nil && k != d && d.Orphan {
			d.Orphan, d.Class = false, ClassKeyFamily
			d.Against = append(d.Against, fmt.Sprintf("same key %s as %s %d, which is not an orphan (%s)", KeyString(d.Key), k.Type, k.ID, k.Against[0]))
		}
	}
}

// GatherOrphans collects the evidence Orphans needs beyond /proc/sysvipc
// for objs, normally every object of the namespace: the per-semaphore
// pids and waiters of every set (Enrich), and the processes that map each
// segment (Attachers, one scan of /proc/*/maps). A set whose semaphores
// could not be read gets Unreadable. A segment with nattch 0 is mapped by
// nobody, whatever the maps of processes we may not read would say: the
// kernel counts every attach, in every namespace. The error joins what
// failed; the objects concerned carry less evidence, which can only make
// them not orphans.
func GatherOrphans(fs FS, objs []Object) error {
	return gather(fs, objs, func(*Shm) bool { return true })
}

// Objects returns every object of s, with no evidence beyond its line.
func (s *Snapshot) Objects() []Object { return DiffIdents(Idents(nil), s) }

// RemoveUnused removes the object of decision d (from Orphans) unless it
// is in use: an object d.InUse is left alone (InUse, Why the reasons)
// unless force. Otherwise it calls Remove, which reads the object again
// right before IPC_RMID and keeps it if its identity changed (Changed) or
// if anything the decision rested on did (Touched: an attach, an
// operation, a message, a waiter); with force it re-checks the identity
// only, and removes an object in use as ipcrm(1) would. The error is
// Remove's.
func RemoveUnused(fs FS, d OrphanDecision, force bool) (RemoveOutcome, error) {
	if d.InUse && !force {
		return RemoveOutcome{Result: InUse, Why: strings.Join(d.InUseWhy, "; ")}, nil
	}
	if force {
		return Remove(fs, Object{Ident: d.Ident})
	}
	return Remove(fs, d.Object)
}

// Only returns a copy of s holding only the objects of the types ts.
func (s *Snapshot) Only(ts TypeSet) *Snapshot {
	out := &Snapshot{Taken: s.Taken, Types: s.Types & ts}
	if ts.Has(TypeShm) {
		out.Shm = s.Shm
	}
	if ts.Has(TypeSem) {
		out.Sem = s.Sem
	}
	if ts.Has(TypeMsg) {
		out.Msg = s.Msg
	}
	return out
}
