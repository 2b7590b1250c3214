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
// objs should carry Sems (enrichSems) and Attachers (see GatherOrphans).
// procs answers for the pid namespace of the pids (LiveProcs on a /proc of
// that namespace); now is the time the evidence was read.
func Orphans(objs []Object, procs Procs, now time.Time, olderThan time.Duration) []OrphanDecision {
	mp := &memoProcs{Procs: procs, m: map[int]procInfo{}}
	ds := make([]OrphanDecision, len(objs))
	fams := make([]Family, len(objs))
	for i := range objs {
		ev := objs[i].Evidence()
		ds[i] = decideOrphan(objs[i], &ev, mp, now, olderThan)
		fams[i] = ev.Family
	}
	orphanFamilies(ds, fams)
	return ds
}

func decideOrphan(o Object, ev *Evidence, procs *memoProcs, now time.Time, olderThan time.Duration) OrphanDecision {
	d := OrphanDecision{Object: o}
	last := ev.Last
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

	if ev.Removed != "" {
		against(ClassRemoved, "already removed: %s", ev.Removed)
	}
	if o.Unreadable != "" {
		against(ClassUnreadable, "its evidence could not be read (%s)", o.Unreadable)
	} else if ev.NotGathered != "" {
		against(ClassUnreadable, "%s", ev.NotGathered)
	}
	for _, w := range ev.Invisible {
		against(ClassInvisible, "%s", w)
	}
	for _, u := range ev.Users {
		var who []string
		for _, p := range u.Pids {
			who = append(who, name(p))
		}
		switch {
		case len(who) > 0:
			against(ClassAttached, "%s %s", u.How, strings.Join(who, ", "))
		case u.Count > 0:
			against(ClassAttached, "%s %d process(es)", u.How, u.Count)
		case u.None != "":
			d.For = append(d.For, u.None)
		}
	}
	for _, w := range ev.Waiters {
		against(ClassWaiting, "%s", w)
	}
	if len(ev.Waiters) == 0 && ev.NoWaiters != "" {
		d.For = append(d.For, ev.NoWaiters)
	}

	// The pids: dead, or another process than the one that acted.
	// A process that started after this can have done nothing the stamps
	// record: the last stamp's second, widened by the slack of its clock.
	after := secs(last).Add(MembershipSlack)
	pids := 0
	for _, r := range ev.Pids {
		if r.Pid <= 0 {
			continue
		}
		pids++
		if !procs.Alive(r.Pid) {
			d.For = append(d.For, fmt.Sprintf("%s pid %d is dead", r.Role, r.Pid))
			continue
		}
		st, ok := procs.Started(r.Pid)
		switch {
		case !ok:
			against(ClassLiveUser, "%s is %s, running (its start time cannot be read: it may be the process that acted)", r.Role, name(r.Pid))
		case last > 0 && st.After(after):
			d.For = append(d.For, fmt.Sprintf("%s pid %d is reused: %s started %s, after the last activity",
				r.Role, r.Pid, name(r.Pid), st.Format(time.RFC3339)))
		default:
			against(ClassLiveUser, "%s is %s, running since before the last activity", r.Role, name(r.Pid))
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
	// Without a recorded creator, an object nobody operated on carries no
	// pid at all: only its age can speak.
	if pids == 0 && !ev.CreatorRecorded {
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

// orphanFamilies applies the key family rule: an object whose family
// (key, name) is shared by an object that is not an orphan is not one
// either, and is in use when that object is. fams[i] is ds[i]'s family.
func orphanFamilies(ds []OrphanDecision, fams []Family) {
	kept := map[Family]*OrphanDecision{}
	inUse := map[Family]*OrphanDecision{}
	for i := range ds {
		d, f := &ds[i], fams[i]
		if f.IsZero() {
			continue
		}
		if !d.Orphan && kept[f] == nil {
			kept[f] = d
		}
		if d.InUse && inUse[f] == nil {
			inUse[f] = d
		}
	}
	for i := range ds {
		d, f := &ds[i], fams[i]
		if f.IsZero() {
			continue
		}
		if u := inUse[f]; u != nil && u != d {
			why := fmt.Sprintf("same %s as %s, which is in use (%s)", f.noun(), u.Ident, u.InUseWhy[0])
			if !d.InUse {
				d.InUse, d.Class = true, ClassKeyFamily
			}
			d.InUseWhy = append(d.InUseWhy, why)
			d.Against = append(d.Against, why)
			d.Orphan = false
			continue
		}
		if k := kept[f]; k != nil && k != d && d.Orphan {
			d.Orphan, d.Class = false, ClassKeyFamily
			d.Against = append(d.Against, fmt.Sprintf("same %s as %s, which is not an orphan (%s)", f.noun(), k.Ident, k.Against[0]))
		}
	}
}

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
