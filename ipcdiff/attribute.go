package ipcdiff

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// Strength is how strong the evidence is that the tree created an object
// (DESIGN.md section 2). The report names the strength that decided.
type Strength int

const (
	NoEvidence     Strength = iota
	CreationSeen            // a tracker saw a tree process create this very id
	PidEvidence             // a pid field the kernel keeps names a tree member
	WindowEvidence          // new, the run's uid/gid, never used, window uncontended
)

func (s Strength) String() string {
	switch s {
	case CreationSeen:
		return "creation seen"
	case PidEvidence:
		return "pid evidence"
	case WindowEvidence:
		return "window evidence"
	}
	return "none"
}

// Procs answers questions about live processes.
type Procs interface {
	// Alive reports whether pid names a running process now.
	Alive(pid int) bool
	// Comm is the command name of a live pid ("" when unknown).
	Comm(pid int) string
	// Started is when the live process pid started (ok false when unknown).
	Started(pid int) (t time.Time, ok bool)
}

// Policy is what the user and the run's circumstances ask of attribution.
type Policy struct {
	Types    TypeSet        // types that may be removed (0 means all)
	KeepKeys map[int32]bool // keys never removed
	Strict   bool           // never use window evidence
	// Contended is set when the run's window was contended for reasons the
	// objects cannot show (another run of the same uid overlapped);
	// ContendedWhy says how.
	Contended    bool
	ContendedWhy string
	UID, GID     uint32    // the run's identity, for window evidence
	Start, End   time.Time // the run's window: the snapshot before, the one after
}

// Decision is the verdict on one new object, with the evidence that led to
// it, in words a person can audit.
type Decision struct {
	Object
	Remove   bool
	Strength Strength // what decided a removal (NoEvidence when kept)
	Evidence []string // for the tree
	Against  []string // against removal
	Reason   string   // why it is kept (empty when removed)
}

// pidFact is one pid the kernel recorded on an object, with the window of
// time in which that pid acted.
type pidFact struct {
	role     string // "creator", "last attach/detach", "last msgsnd", "semaphore 2"
	pid      int
	from, to time.Time
}

type class int

const (
	inTree class = iota
	outsideLive
	outsideDead // certainly not a tree member (exact tracker), not running
	unknownPid  // not seen in the tree, but the tracker is not exact
	liveMember  // a tree member still running
)

// Attribute decides, for each object new since the run began, whether the
// tree created it and nobody else still needs it. An object is removed only
// with evidence for the tree and none against; everything else is kept with
// the reason. contended says why window evidence was off for the run ("" if
// it was not).
func Attribute(objs []Object, tree Tree, procs Procs, p Policy) (ds []Decision, contended string) {
	a := attributor{tree: tree, procs: &memoProcs{Procs: procs, m: map[int]procInfo{}}, p: p, live: map[int]bool{}}
	for _, pid := range tree.Alive() {
		a.live[pid] = true
	}
	// Every pid record is classified once, for the contention test and the
	// decision alike.
	facts := make([][]pidFact, len(objs))
	classes := make([][]class, len(objs))
	for i := range objs {
		facts[i] = a.facts(&objs[i])
		classes[i] = make([]class, len(facts[i]))
		for j, f := range facts[i] {
			classes[i][j] = a.classify(f)
		}
	}
	why := a.contention(objs, facts, classes)
	ds = make([]Decision, len(objs))
	for i := range objs {
		ds[i] = a.decide(objs[i], facts[i], classes[i], why)
	}
	return ds, why
}

// memoProcs remembers what it learned of each pid for one Attribute call:
// the same pids recur across many objects.
type memoProcs struct {
	Procs
	m map[int]procInfo
}

type procInfo struct {
	alive   bool
	comm    string
	started time.Time
	hasSt   bool
	commOK  bool
	stOK    bool
}

func (p *memoProcs) get(pid int) procInfo {
	if i, ok := p.m[pid]; ok {
		return i
	}
	i := procInfo{alive: p.Procs.Alive(pid)}
	p.m[pid] = i
	return i
}

func (p *memoProcs) Alive(pid int) bool { return p.get(pid).alive }

func (p *memoProcs) Comm(pid int) string {
	i := p.get(pid)
	if !i.commOK {
		i.comm, i.commOK = p.Procs.Comm(pid), true
		p.m[pid] = i
	}
	return i.comm
}

func (p *memoProcs) Started(pid int) (time.Time, bool) {
	i := p.get(pid)
	if !i.stOK {
		i.started, i.hasSt = p.Procs.Started(pid)
		i.stOK = true
		p.m[pid] = i
	}
	return i.started, i.hasSt
}

type attributor struct {
	tree  Tree
	procs Procs
	p     Policy
	live  map[int]bool // tree members still running
}

func secs(t int64) time.Time { return time.Unix(t, 0) }

// timeSlack is how far a kernel time stamp (whole seconds of a coarse clock
// that lags by up to a tick) may be from the moment it records.
const timeSlack = 2 * time.Second

// facts lists the pids the kernel keeps for o with the window each acted in.
func (a *attributor) facts(o *Object) []pidFact {
	start, end := a.p.Start, a.p.End
	upto := func(t int64) time.Time {
		if t <= 0 {
			return end
		}
		return secs(t)
	}
	var f []pidFact
	add := func(role string, pid int, to time.Time) {
		if pid > 0 {
			f = append(f, pidFact{role, pid, start, to})
		}
	}
	switch {
	case o.Shm != nil:
		add("creator", o.Shm.CPID, upto(o.Shm.Ctime))
		add("last attach/detach", o.Shm.LPID, upto(max(o.Shm.Atime, o.Shm.Dtime)))
	case o.Sem != nil:
		to := upto(max(o.Sem.Otime, o.Sem.Ctime))
		for i, s := range o.Sems {
			add(fmt.Sprintf("semaphore %d last op", i), s.Pid, to)
		}
	case o.Msg != nil:
		add("last msgsnd", o.Msg.LSPID, upto(o.Msg.Stime))
		add("last msgrcv", o.Msg.LRPID, upto(o.Msg.Rtime))
	}
	return f
}

func (a *attributor) classify(f pidFact) class {
	if a.live[f.pid] {
		return liveMember
	}
	member, exact := a.tree.Member(f.pid, f.from, f.to)
	if member {
		// The member has exited. If its pid number is now held by another
		// process that started before the action's window closed, the
		// kernel's record may be the newcomer's: treat it as a stranger's.
		if st, ok := a.procs.Started(f.pid); ok && a.procs.Alive(f.pid) && !st.After(f.to.Add(timeSlack)) {
			return outsideLive
		}
		return inTree
	}
	if a.procs.Alive(f.pid) {
		return outsideLive
	}
	if exact {
		return outsideDead
	}
	return unknownPid
}

func (a *attributor) name(pid int) string {
	if c := a.procs.Comm(pid); c != "" {
		return fmt.Sprintf("pid %d (%s)", pid, c)
	}
	return fmt.Sprintf("pid %d", pid)
}

// contention says why the window is contended ("" when it is not): another
// run overlapped, or a new object carries the pid of a process outside the
// tree, so same-uid strangers were active while the command ran.
func (a *attributor) contention(objs []Object, facts [][]pidFact, classes [][]class) string {
	if a.p.Contended {
		if a.p.ContendedWhy != "" {
			return a.p.ContendedWhy
		}
		return "another run overlapped"
	}
	for i := range objs {
		for j, f := range facts[i] {
			switch classes[i][j] {
			case outsideLive, outsideDead:
				return fmt.Sprintf("%s %d was used by %s outside the tree", objs[i].Type, objs[i].ID, a.name(f.pid))
			case unknownPid:
				return fmt.Sprintf("%s %d was used by pid %d, not known to be in the tree", objs[i].Type, objs[i].ID, f.pid)
			}
		}
	}
	return ""
}

func (a *attributor) decide(o Object, facts []pidFact, classes []class, contended string) Decision {
	d := Decision{Object: o}
	keep := func(reason string) Decision {
		d.Remove, d.Strength, d.Reason = false, NoEvidence, reason
		return d
	}
	if a.p.Types != 0 && !a.p.Types.Has(o.Type) {
		return keep("type not selected (--types)")
	}
	if a.p.KeepKeys[o.Key] && o.Key != 0 {
		return keep("key " + KeyString(o.Key) + " is kept (--keep-key)")
	}
	if o.Shm != nil && o.Shm.Perms&ShmDest != 0 {
		return keep(fmt.Sprintf("already removed: marked for destruction, freed at the last detach (%d attached)", o.Shm.Nattch))
	}

	// Evidence for the tree.
	created, tracked := a.tree.Created(o.Type.String(), o.ID)
	for i, f := range facts {
		if classes[i] == inTree || classes[i] == liveMember {
			d.Evidence = append(d.Evidence, fmt.Sprintf("%s is tree %s", f.role, a.name(f.pid)))
		}
	}
	switch {
	case tracked && created && o.Key == 0:
		// A get with IPC_PRIVATE always makes a new object.
		d.Strength = CreationSeen
		d.Evidence = append([]string{"a tree process was seen creating it (IPC_PRIVATE)"}, d.Evidence...)
	case tracked && created:
		// A keyed get may have opened an object someone else had just made:
		// proof of use, not of creation.
		d.Strength = PidEvidence
		d.Evidence = append([]string{"a tree process obtained it by key"}, d.Evidence...)
	case tracked:
		// The creation tracker saw every shmget/semget/msgget of the tree
		// and none returned this id: someone else made it.
		d.Against = append(d.Against, "created outside the tree (no shmget/semget/msgget of the tree returned it)")
	case len(d.Evidence) > 0:
		d.Strength = PidEvidence
	}
	creationProven := d.Strength == CreationSeen || (o.Shm != nil && len(facts) > 0 && facts[0].role == "creator" && classes[0] == inTree)

	// Evidence against removal.
	for i, f := range facts {
		switch classes[i] {
		case outsideLive:
			d.Against = append(d.Against, fmt.Sprintf("%s is %s, running outside the tree", f.role, a.name(f.pid)))
		case liveMember:
			d.Against = append(d.Against, fmt.Sprintf("%s is %s, a tree member still running", f.role, a.name(f.pid)))
		case outsideDead:
			if !creationProven {
				d.Against = append(d.Against, fmt.Sprintf("%s is pid %d, outside the tree", f.role, f.pid))
			}
		case unknownPid:
			if !creationProven {
				d.Against = append(d.Against, fmt.Sprintf("%s is pid %d, not known to be in the tree (tracker not exact)", f.role, f.pid))
			}
		}
	}
	if o.Shm != nil {
		if o.Shm.CPID == 0 {
			d.Against = append(d.Against, "its creator is not visible from this pid namespace")
		}
		if o.Shm.Nattch > 0 {
			if len(o.Attachers) > 0 {
				var who []string
				for _, pid := range o.Attachers {
					w := a.name(pid)
					if a.live[pid] {
						w += ", a tree member still running"
					}
					who = append(who, w)
				}
				d.Against = append(d.Against, "attached by "+strings.Join(who, ", "))
			} else {
				d.Against = append(d.Against, fmt.Sprintf("attached by %d process(es)", o.Shm.Nattch))
			}
		}
	}
	for i, s := range o.Sems {
		if s.NCnt > 0 || s.ZCnt > 0 {
			d.Against = append(d.Against, fmt.Sprintf("semaphore %d has %d waiting process(es)", i, s.NCnt+s.ZCnt))
		}
	}

	// Window evidence: the only way to clean an object made and never used.
	if d.Strength == NoEvidence && len(d.Against) == 0 {
		_, _, cuid, cgid := o.Owner()
		switch {
		case len(facts) > 0:
			return keep("no pid names a tree member")
		case a.p.Strict:
			return keep("no pid evidence, and --strict forbids window evidence")
		case contended != "":
			return keep("no pid evidence in a contended window: " + contended)
		case cuid != a.p.UID || cgid != a.p.GID:
			return keep(fmt.Sprintf("no pid evidence, and its creator %d:%d is not the run's %d:%d", cuid, cgid, a.p.UID, a.p.GID))
		}
		d.Strength = WindowEvidence
		d.Evidence = append(d.Evidence, fmt.Sprintf("new during the run, created by the run's uid %d gid %d, never used, no other activity in the window", cuid, cgid))
	}
	if len(d.Against) > 0 {
		d.Strength = NoEvidence
		d.Reason = strings.Join(d.Against, "; ")
		return d
	}
	if d.Strength == NoEvidence {
		return keep("no evidence that the tree created it")
	}
	d.Remove = true
	return d
}

// Summary counts decisions: removable objects per type and kept ones.
func Summary(ds []Decision) (remove, keep int) {
	for _, d := range ds {
		if d.Remove {
			remove++
		} else {
			keep++
		}
	}
	return
}

// SortDecisions orders decisions by type, then id.
func SortDecisions(ds []Decision) {
	sort.Slice(ds, func(i, j int) bool {
		if ds[i].Type != ds[j].Type {
			return ds[i].Type < ds[j].Type
		}
		return ds[i].ID < ds[j].ID
	})
}
