package ipcdiff

import (
	"fmt"
	"strings"
	"time"
)

// The verdict on one object: its evidence for and against weighed by the
// rules of docs/evidence.md.

func (a *attributor) decide(o Object, ev *Evidence, facts []pidFact, classes []class, whys []string, contended string, px *posixVerdict) Decision {
	d := Decision{Object: o}
	keep := func(reason string) Decision {
		d.Remove, d.Strength, d.Reason = false, NoEvidence, reason
		return d
	}
	fam := ev.Family
	if a.p.Types != 0 && !a.p.Types.Has(o.Type) {
		return keep("type not selected (--types)")
	}
	if pat, ok := a.keepPattern(o.Ident); ok {
		return keep("name " + o.Name + " matches --keep-name " + pat)
	}
	if a.p.keeps(fam) {
		if fam.Name != "" {
			return keep("name " + fam.Name + " is kept")
		}
		return keep("key " + KeyString(fam.Key) + " is kept (--keep-key)")
	}
	if ev.Removed != "" {
		return keep("already removed: " + ev.Removed)
	}
	if o.Unreadable != "" {
		return keep("its evidence could not be read (" + o.Unreadable + ")")
	}
	if why := a.posixLinks(&o); why != "" {
		return keep(why)
	}
	// ctime is never earlier than the creation: an object changed last
	// before the run began was made before it (a snapshot that missed it,
	// a journal that says otherwise), whatever else says it is new.
	if ct := ev.Ctime; ct > 0 && secs(ct).Add(MembershipSlack+a.p.ClockSlack).Before(a.p.Start) {
		return keep(fmt.Sprintf("it existed before the run (its ctime is %s)", secs(ct).Format("15:04:05")))
	}

	// Evidence for the tree.
	var created, proven, tracked bool
	var at time.Time
	if k := kindOf(o.Type); k != nil && k.getsTracked() {
		created, proven, at, tracked = a.tree.Created(o.Type.String(), o.ID)
	}
	newer := false // the tree's get returned this id, but for an older object
	switch {
	case created && a.changedAfter(ev):
		// The tree's get returned this id, but the object changed after the
		// tree was last watched: the id may name a newer object.
		created, proven = false, false
	case created && ev.Ctime > 0 && secs(ev.Ctime).After(at.Add(MembershipSlack+a.p.ClockSlack)):
		// Made, or changed, well after the tree's get returned its id: the
		// kernel may have handed the id out again (after 2^16 objects at
		// the same index), so it is not proven to be the object the get
		// returned. (A SETVAL long after the creation loses the proof too.)
		created, proven, newer = false, false, true
	}
	for i, f := range facts {
		if classes[i] == inTree || classes[i] == liveMember {
			if d.Evidence == nil {
				d.Evidence = make([]string, 0, len(facts)+1)
			}
			d.Evidence = append(d.Evidence, f.Role+" is tree "+a.name(f.Pid))
		}
	}
	switch {
	case created && (proven || fam.IsZero()):
		// A get with IPC_PRIVATE, or IPC_CREAT|IPC_EXCL, always makes a new
		// object.
		d.Strength = CreationSeen
		how := "IPC_PRIVATE"
		if !fam.IsZero() {
			how = "IPC_CREAT|IPC_EXCL"
		}
		d.Evidence = append([]string{"a tree process was seen creating it (" + how + ")"}, d.Evidence...)
	case created:
		// A keyed get may have opened an object someone else had just made:
		// proof of use, not of creation.
		d.Strength = PidEvidence
		d.Evidence = append([]string{"a tree process obtained it by key"}, d.Evidence...)
	case newer:
		d.Against = append(d.Against, fmt.Sprintf("a get of the tree returned its id at %s, but it was made or changed later (the id may name a newer object)", at.Format("15:04:05")))
	case tracked && !a.changedAfter(ev):
		// The creation tracker saw every shmget/semget/msgget of the tree
		// and none returned this id: someone else made it.
		d.Against = append(d.Against, "created outside the tree (no shmget/semget/msgget of the tree returned it)")
	case len(d.Evidence) > 0:
		d.Strength = PidEvidence
	}
	for i, f := range facts {
		// A creation a watcher saw (a POSIX name made): its creator's pid,
		// with the window the watcher observed, is the tree's.
		if f.Creator && !f.To.IsZero() && classes[i] == inTree && d.Strength != CreationSeen {
			d.Strength = CreationSeen
			d.Evidence = append([]string{fmt.Sprintf("a tree process was seen making its name: %s %s", f.Role, a.name(f.Pid))}, d.Evidence...)
		}
	}
	creatorProven := d.Strength == CreationSeen
	for i, f := range facts {
		if f.Creator && classes[i] == inTree || f.Creator && classes[i] == liveMember {
			creatorProven = true
		}
	}
	// An object the tree created, private to it (no key, no name: nobody
	// can get it so) is the tree's garbage even if a use that has ended
	// (LetGo) names a process outside the tree: a server that attached a
	// segment for a client of the tree and let go (X11 MIT-SHM).
	private := creatorProven && fam.IsZero()

	// Evidence against removal.
	d.Against = append(d.Against, ev.Invisible...)
	d.Against = append(d.Against, px.against...)
	for i, f := range facts {
		outsider := f.LetGo && private
		switch classes[i] {
		case outsideLive:
			if !outsider {
				d.Against = append(d.Against, fmt.Sprintf("%s is %s, running outside the tree", f.Role, a.name(f.Pid)))
			}
		case liveMember:
			d.Against = append(d.Against, fmt.Sprintf("%s is %s, a tree member still running", f.Role, a.name(f.Pid)))
		case outsideDead:
			if !creatorProven {
				d.Against = append(d.Against, fmt.Sprintf("%s is pid %d, outside the tree", f.Role, f.Pid))
			}
		case unknownPid:
			if !creatorProven {
				d.Against = append(d.Against, fmt.Sprintf("%s is pid %d, not known to be in the tree (tracker not exact)", f.Role, f.Pid))
			}
		case ambiguous:
			if !outsider {
				d.Against = append(d.Against, fmt.Sprintf("%s: %s", f.Role, whys[i]))
			}
		}
	}
	for _, u := range ev.Users {
		switch {
		case len(u.Pids) > 0:
			var who []string
			for _, pid := range u.Pids {
				w := a.name(pid)
				if a.live[pid] {
					w += ", a tree member still running"
				}
				who = append(who, w)
			}
			d.Against = append(d.Against, u.How+" "+strings.Join(who, ", "))
		case u.Count > 0:
			d.Against = append(d.Against, fmt.Sprintf("%s %d process(es)", u.How, u.Count))
		}
	}
	d.Against = append(d.Against, ev.Waiters...)
	if len(d.Against) > 0 {
		d.Strength = NoEvidence
		d.Reason = strings.Join(d.Against, "; ")
		return d
	}

	// Anyone may get a keyed set or queue (or open a named object): that
	// the tree used it says nothing of who else holds it (an idle client,
	// a SEM_UNDO adjustment to come). Only proof that the tree created it
	// gives it to the tree. (One that nobody used is left to window
	// evidence below, as a private one is: the risk is the same.) A kind
	// whose kernel records every creator (shm cpid) has its proof, or
	// evidence against, by now.
	// The user may vouch for a key instead (--own-keys): the declaration
	// stands in for the proof of creation, and for nothing else, so an
	// outsider's pid in the object (even a dead one's) still kept it above.
	if !fam.IsZero() && !ev.CreatorRecorded && !creatorProven && d.Strength != NoEvidence {
		if !a.p.owns(fam) {
			if fam.Name != "" {
				return keep("named (" + fam.Name + "): the tree used it, but its creator is not proven (anyone may open a named object)")
			}
			return keep("keyed (" + KeyString(fam.Key) + "): the tree used it, but its creator is not proven (anyone may get a keyed object)")
		}
		var how string
		switch {
		case fam.Name != "" && a.p.OwnNames[fam.Name]:
			how = "name " + fam.Name + " is declared the command's"
		case fam.Name == "" && a.p.OwnKeys[fam.Key]:
			how = "key " + KeyString(fam.Key) + " is declared the command's (--own-keys)"
		default:
			how = "every key is declared the command's (--own-keys all)"
		}
		d.Evidence = append(d.Evidence, how+", and the tree used it")
	}
	// A private object whose kind records no creator pid (a set, a queue):
	// that the tree used it gives it to the tree only if its creator uid is
	// the run's (another user's process made it: a server that handed its
	// id to the tree).
	if !ev.CreatorRecorded && !creatorProven && d.Strength == PidEvidence {
		if ev.CUID != a.p.UID {
			return keep(fmt.Sprintf("the tree used it, but uid %d made it, not the run's uid %d (its creator is not proven)", ev.CUID, a.p.UID))
		}
	}

	// Window evidence: the only way to clean an object made and never used.
	if d.Strength == NoEvidence {
		cuid, cgid := ev.CUID, ev.CGID
		switch {
		case len(facts) > 0:
			return keep("no pid names a tree member")
		case a.p.Strict:
			return keep("no pid evidence, and --strict forbids window evidence")
		case contended != "":
			return keep("no pid evidence in a contended window: " + contended)
		case o.Type.IsPosix() && a.p.PosixContended != "":
			return keep("no creation seen, and the window is contended for POSIX objects: " + a.p.PosixContended)
		case o.Type.IsPosix() && a.p.PosixChangesWhy[o.Type] != "":
			return keep("no creation seen, and its owner does not show who made it: " + a.p.PosixChangesWhy[o.Type])
		case cuid != a.p.UID || cgid != a.p.GID:
			return keep(fmt.Sprintf("no pid evidence, and its creator %d:%d is not the run's %d:%d", cuid, cgid, a.p.UID, a.p.GID))
		case a.changedAfter(ev):
			return keep("no pid evidence, and it changed after the tree was last watched")
		}
		d.Strength = WindowEvidence
		// cuid and cgid are the run's: the same words for every object.
		d.Evidence = append(d.Evidence, a.windowWords(o.Type.IsPosix()))
	}
	d.Remove = true
	return d
}

// windowWords is the window evidence of an object of the run's uid and
// gid (a POSIX one when posix), made once per Attribute call.
func (a *attributor) windowWords(posix bool) string {
	i := 0
	if posix {
		i = 1
	}
	if a.window[i] == "" {
		if posix {
			a.window[i] = fmt.Sprintf("born during the run, owned by the run's uid %d gid %d, held and mapped by nobody, no other process of the uid ran in the window", a.p.UID, a.p.GID)
		} else {
			a.window[i] = fmt.Sprintf("new during the run, created by the run's uid %d gid %d, never used, no other activity in the window", a.p.UID, a.p.GID)
		}
	}
	return a.window[i]
}

// changedAfter reports whether the object's ctime (creation, or a later
// IPC_SET, SETVAL or SETALL) lies after the time the tree's record is
// complete: an object made or changed after the supervisor stopped
// watching cannot be given to the tree by what it watched.
func (a *attributor) changedAfter(ev *Evidence) bool {
	return ev.Ctime > 0 && secs(ev.Ctime).After(a.until.Add(StampSlack+a.p.ClockSlack))
}
