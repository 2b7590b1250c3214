package ipcdiff

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// Strength is how strong the evidence is that the tree created an object
// (docs/evidence.md). The report names the strength that decided.
type Strength int

const (
	NoEvidence     Strength = iota
	CreationSeen            // a tracker saw a tree process create this very id
	PidEvidence             // a pid field the kernel keeps names a tree member, with its time
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
	Start, End   time.Time // the run's window: the snapshot before, the evidence gathered after
	// OtherKeys names, for each key of an object present after the run
	// that is not a candidate (it existed before), that object: a new
	// object of the same key is kept with it (key families).
	OtherKeys map[int32]string
	// Invisible, when not empty, says that processes this pid namespace
	// cannot see use the IPC namespace (an object whose creator pid reads
	// 0): window evidence is then off, since such strangers leave no pid.
	Invisible string
	// ClockSlack widens every action's time window beyond StampSlack, by
	// how far the wall clock moved against the monotonic clock during the
	// run (a step or a slew).
	ClockSlack time.Duration
	// OwnKeys are the keys the user declared the command's (--own-keys),
	// and OwnAllKeys declares every key: a keyed set or queue with such a
	// key that is new during the run and that the tree used (pid
	// evidence, or a get of the tree returned it) counts as created by
	// the tree, as if creation had been seen (docs/evidence.md). It only
	// stands in for the proof of creation: every evidence against still
	// keeps the object (a live or dead outsider's pid, waiters, "created
	// outside the tree"), KeepKeys still wins and key families still
	// apply.
	OwnKeys    map[int32]bool
	OwnAllKeys bool
}

// Owns reports whether the user declared key the command's (OwnKeys,
// OwnAllKeys). IPC_PRIVATE (0) is never a declared key.
func (p *Policy) Owns(key int32) bool {
	return key != 0 && (p.OwnAllKeys || p.OwnKeys[key])
}

// StampSlack is how far a kernel IPC time stamp may be from the moment it
// records, beyond the second it truncates to: the stamps are whole seconds
// of a coarse clock (ktime_get_real_seconds) that lags by up to a tick, and
// spans come from finer clocks.
const StampSlack = time.Second

// MembershipSlack widens every test of an action's time against a process's
// time: an action the kernel stamped second s happened in
// [s, s+1s+StampSlack), and membership spans and process start times come
// from finer clocks. Two seconds cover both.
const MembershipSlack = time.Second + StampSlack

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
// time in which the action it records took place.
type pidFact struct {
	role     string // "creator", "last attach/detach", "last msgsnd", "semaphore 2 last op"
	pid      int
	from, to time.Time
	creator  bool // shm cpid
}

type class int

const (
	inTree      class = iota // held by the tree, proven; the member has exited
	liveMember               // held by the tree; the member still runs
	outsideLive              // not a member's then; a process runs under the number now
	outsideDead              // certainly not a member's then (exact tracker), nobody runs under it now
	unknownPid               // not seen in the tree, but the tracker is not exact
	ambiguous                // a member's then, but another process may have held the number too
)

// Attribute decides, for each object new since the run began, whether the
// tree created it and nobody else still needs it. An object is removed only
// with evidence for the tree and none against; everything else is kept with
// the reason. contended says why window evidence was off for the run ("" if
// it was not).
func Attribute(objs []Object, tree Tree, procs Procs, p Policy) (ds []Decision, contended string) {
	a := attributor{tree: tree, procs: &memoProcs{Procs: procs, m: map[int]procInfo{}}, p: p,
		live: map[int]bool{}, until: tree.Until()}
	for _, pid := range tree.Alive() {
		a.live[pid] = true
	}
	// Every pid record is classified once, for the contention test and the
	// decision alike.
	facts := make([][]pidFact, len(objs))
	classes := make([][]class, len(objs))
	whys := make([][]string, len(objs))
	for i := range objs {
		facts[i] = a.facts(&objs[i])
		classes[i] = make([]class, len(facts[i]))
		whys[i] = make([]string, len(facts[i]))
		for j, f := range facts[i] {
			classes[i][j], whys[i][j] = a.classify(f)
		}
	}
	why := a.contention(objs, facts, classes)
	ds = make([]Decision, len(objs))
	for i := range objs {
		ds[i] = a.decide(objs[i], facts[i], classes[i], whys[i], why)
	}
	keepFamilies(ds, p.OtherKeys)
	return ds, why
}

// keepFamilies keeps every new object whose key is shared by an object
// that stays: programs pair objects on one key (ALSA's dmix pairs a
// segment and a set), and removing one half breaks whoever uses the other.
func keepFamilies(ds []Decision, others map[int32]string) {
	kept := map[int32]string{}
	for k, v := range others {
		kept[k] = v + ", which existed before the run"
	}
	for _, d := range ds {
		if !d.Remove && d.Key != 0 {
			if _, ok := kept[d.Key]; !ok {
				kept[d.Key] = fmt.Sprintf("%s %d, which is kept", d.Type, d.ID)
			}
		}
	}
	for i := range ds {
		d := &ds[i]
		if !d.Remove || d.Key == 0 {
			continue
		}
		if other, ok := kept[d.Key]; ok {
			d.Remove, d.Strength = false, NoEvidence
			d.Against = append(d.Against, "same key "+KeyString(d.Key)+" as "+other)
			d.Reason = strings.Join(d.Against, "; ")
		}
	}
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
	until time.Time    // the tree's record is complete up to here
}

func secs(t int64) time.Time { return time.Unix(t, 0) }

// stamp is the time window of an action the kernel stamped with second t:
// the second itself, widened by the slack, within the run. t <= 0 (no
// stamp) gives the whole run.
func (a *attributor) stamp(t int64) (from, to time.Time) {
	if t <= 0 {
		return a.p.Start, a.p.End
	}
	slack := StampSlack + a.p.ClockSlack
	return a.clamp(secs(t).Add(-slack), secs(t).Add(time.Second+slack))
}

// clamp limits [from, to] to the run: an action on an object that is new
// took place after the snapshot before began and before the evidence was
// gathered.
func (a *attributor) clamp(from, to time.Time) (time.Time, time.Time) {
	if from.Before(a.p.Start) {
		from = a.p.Start
	}
	if to.After(a.p.End) {
		to = a.p.End
	}
	if to.Before(from) {
		to = from
	}
	return from, to
}

// facts lists the pids the kernel keeps for o, each with the window of
// time in which the action it records took place:
//   - shm cpid: the segment's ctime, the time of creation unless IPC_SET
//     moved it; when owner and creator differ IPC_SET certainly ran, and
//     the creation is only known to lie between the run's start and ctime;
//   - shm lpid: the later of atime and dtime (shmat, shmdt, exit);
//   - msg lspid and lrpid: stime and rtime (msgsnd, msgrcv);
//   - sem sempid: the kernel keeps no time per semaphore (the set's otime
//     is the latest semop on any of them, SETVAL stamps ctime, and undo
//     adjustments at exit stamp nothing): the whole run.
func (a *attributor) facts(o *Object) []pidFact {
	var f []pidFact
	add := func(role string, pid int, from, to time.Time, creator bool) {
		if pid > 0 {
			f = append(f, pidFact{role, pid, from, to, creator})
		}
	}
	switch {
	case o.Shm != nil:
		// ctime is the creation, or a later IPC_SET (which may change
		// nothing visible): the creation lies between the run's start and
		// the earliest of ctime and the first attach or detach.
		s := o.Shm
		first := s.Ctime
		for _, t := range []int64{s.Atime, s.Dtime} {
			if t > 0 && (first <= 0 || t < first) {
				first = t
			}
		}
		_, to := a.stamp(first)
		from, to := a.clamp(a.p.Start, to)
		add("creator", s.CPID, from, to, true)
		from, to = a.stamp(max(s.Atime, s.Dtime))
		add("last attach/detach", s.LPID, from, to, false)
	case o.Sem != nil:
		for i, s := range o.Sems {
			add(fmt.Sprintf("semaphore %d last op", i), s.Pid, a.p.Start, a.p.End, false)
		}
	case o.Msg != nil:
		from, to := a.stamp(o.Msg.Stime)
		add("last msgsnd", o.Msg.LSPID, from, to, false)
		from, to = a.stamp(o.Msg.Rtime)
		add("last msgrcv", o.Msg.LRPID, from, to, false)
	}
	return f
}

// classify says who acted for fact f; why explains an ambiguous one.
func (a *attributor) classify(f pidFact) (class, string) {
	if f.from.After(a.until) {
		// The tree's record ends before the action could have happened.
		if a.procs.Alive(f.pid) {
			return outsideLive, ""
		}
		return ambiguous, fmt.Sprintf("pid %d acted after the tree was last watched", f.pid)
	}
	h, exact, why := a.tree.Holder(f.pid, f.from, f.to)
	switch h {
	case HeldByTree:
		if a.live[f.pid] {
			return liveMember, ""
		}
		// Another process runs under the number now: it got it after the
		// member, and if that was before the window closed, the action may
		// be its own (whatever the pid watch could not see).
		if a.procs.Alive(f.pid) {
			st, ok := a.procs.Started(f.pid)
			if !ok || !st.After(f.to) {
				return ambiguous, fmt.Sprintf("pid %d is now another process's, which may have acted", f.pid)
			}
		}
		return inTree, ""
	case HeldAmbiguous:
		return ambiguous, why
	}
	if a.procs.Alive(f.pid) {
		return outsideLive, ""
	}
	if exact {
		return outsideDead, ""
	}
	return unknownPid, ""
}

func (a *attributor) name(pid int) string {
	if c := a.procs.Comm(pid); c != "" {
		return fmt.Sprintf("pid %d (%s)", pid, c)
	}
	return fmt.Sprintf("pid %d", pid)
}

// invisible lists the signs that a process this pid namespace cannot see
// used o: the kernel records such a process's pid as 0 (docs/evidence.md).
func invisible(o *Object) []string {
	var w []string
	switch {
	case o.Shm != nil:
		if o.Shm.CPID == 0 {
			w = append(w, "its creator is not visible from this pid namespace")
		}
		if o.Shm.LPID == 0 && (o.Shm.Atime != 0 || o.Shm.Dtime != 0) {
			w = append(w, "it was attached by a process not visible from this pid namespace")
		}
	case o.Sem != nil:
		if o.Sem.Otime != 0 && len(o.Sems) > 0 {
			zero := 0
			for _, s := range o.Sems {
				if s.Pid == 0 {
					zero++
				}
			}
			if zero == len(o.Sems) {
				w = append(w, "it was operated on by a process not visible from this pid namespace")
			}
		}
	case o.Msg != nil:
		if o.Msg.LSPID == 0 && (o.Msg.Stime != 0 || o.Msg.QNum > 0) {
			w = append(w, "a process not visible from this pid namespace sent to it")
		}
		if o.Msg.LRPID == 0 && o.Msg.Rtime != 0 {
			w = append(w, "a process not visible from this pid namespace received from it")
		}
	}
	return w
}

// contention says why the window is contended ("" when it is not): another
// run overlapped; processes we cannot see use the namespace; or a new
// object carries the pid of a process outside the tree (or one that may
// be), or evidence that could not be read, so strangers were active while
// the command ran.
func (a *attributor) contention(objs []Object, facts [][]pidFact, classes [][]class) string {
	if a.p.Contended {
		if a.p.ContendedWhy != "" {
			return a.p.ContendedWhy
		}
		return "another run overlapped"
	}
	if a.p.Invisible != "" {
		return a.p.Invisible
	}
	for i := range objs {
		o := &objs[i]
		if w := invisible(o); len(w) > 0 {
			return fmt.Sprintf("%s %d: %s", o.Type, o.ID, w[0])
		}
		if o.Unreadable != "" {
			return fmt.Sprintf("%s %d: its evidence could not be read (%s)", o.Type, o.ID, o.Unreadable)
		}
		for j, f := range facts[i] {
			switch classes[i][j] {
			case outsideLive, outsideDead:
				return fmt.Sprintf("%s %d was used by %s outside the tree", o.Type, o.ID, a.name(f.pid))
			case unknownPid:
				return fmt.Sprintf("%s %d was used by pid %d, not known to be in the tree", o.Type, o.ID, f.pid)
			case ambiguous:
				return fmt.Sprintf("%s %d was used by pid %d, which may not have been the tree's", o.Type, o.ID, f.pid)
			}
		}
	}
	return ""
}

func (a *attributor) decide(o Object, facts []pidFact, classes []class, whys []string, contended string) Decision {
	d := Decision{Object: o}
	keep := func(reason string) Decision {
		d.Remove, d.Strength, d.Reason = false, NoEvidence, reason
		return d
	}
	if a.p.Types != 0 && !a.p.Types.Has(o.Type) {
		return keep("type not selected (--types)")
	}
	if o.Key != 0 && a.p.KeepKeys[o.Key] {
		return keep("key " + KeyString(o.Key) + " is kept (--keep-key)")
	}
	if o.Shm != nil && o.Shm.Perms&ShmDest != 0 {
		return keep(fmt.Sprintf("already removed: marked for destruction, freed at the last detach (%d attached)", o.Shm.Nattch))
	}
	if o.Unreadable != "" {
		return keep("its evidence could not be read (" + o.Unreadable + ")")
	}
	// ctime is never earlier than the creation: an object changed last
	// before the run began was made before it (a snapshot that missed it,
	// a journal that says otherwise), whatever else says it is new.
	if ct := ctimeOf(&o); ct > 0 && secs(ct).Add(MembershipSlack+a.p.ClockSlack).Before(a.p.Start) {
		return keep(fmt.Sprintf("it existed before the run (its ctime is %s)", secs(ct).Format("15:04:05")))
	}

	// Evidence for the tree.
	created, proven, at, tracked := a.tree.Created(o.Type.String(), o.ID)
	newer := false // the tree's get returned this id, but for an older object
	switch {
	case created && a.changedAfter(&o):
		// The tree's get returned this id, but the object changed after the
		// tree was last watched: the id may name a newer object.
		created, proven = false, false
	case created && ctimeOf(&o) > 0 && secs(ctimeOf(&o)).After(at.Add(MembershipSlack+a.p.ClockSlack)):
		// Made, or changed, well after the tree's get returned its id: the
		// kernel may have handed the id out again (after 2^16 objects at
		// the same index), so it is not proven to be the object the get
		// returned. (A SETVAL long after the creation loses the proof too.)
		created, proven, newer = false, false, true
	}
	for i, f := range facts {
		if classes[i] == inTree || classes[i] == liveMember {
			d.Evidence = append(d.Evidence, fmt.Sprintf("%s is tree %s", f.role, a.name(f.pid)))
		}
	}
	switch {
	case created && (proven || o.Key == 0):
		// A get with IPC_PRIVATE, or IPC_CREAT|IPC_EXCL, always makes a new
		// object.
		d.Strength = CreationSeen
		how := "IPC_PRIVATE"
		if o.Key != 0 {
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
	case tracked && !a.changedAfter(&o):
		// The creation tracker saw every shmget/semget/msgget of the tree
		// and none returned this id: someone else made it.
		d.Against = append(d.Against, "created outside the tree (no shmget/semget/msgget of the tree returned it)")
	case len(d.Evidence) > 0:
		d.Strength = PidEvidence
	}
	creatorProven := d.Strength == CreationSeen
	for i, f := range facts {
		if f.creator && classes[i] == inTree || f.creator && classes[i] == liveMember {
			creatorProven = true
		}
	}
	// A segment the tree created, private to it (no key: nobody can attach
	// it by key) and attached by nobody now, is the tree's garbage even if
	// its last attach/detach names a process outside the tree: a server
	// that attached it for a client of the tree and let go (X11 MIT-SHM).
	detached := o.Shm != nil && creatorProven && o.Key == 0 && o.Shm.Nattch == 0

	// Evidence against removal.
	d.Against = append(d.Against, invisible(&o)...)
	for i, f := range facts {
		outsider := !f.creator && detached
		switch classes[i] {
		case outsideLive:
			if !outsider {
				d.Against = append(d.Against, fmt.Sprintf("%s is %s, running outside the tree", f.role, a.name(f.pid)))
			}
		case liveMember:
			d.Against = append(d.Against, fmt.Sprintf("%s is %s, a tree member still running", f.role, a.name(f.pid)))
		case outsideDead:
			if !creatorProven {
				d.Against = append(d.Against, fmt.Sprintf("%s is pid %d, outside the tree", f.role, f.pid))
			}
		case unknownPid:
			if !creatorProven {
				d.Against = append(d.Against, fmt.Sprintf("%s is pid %d, not known to be in the tree (tracker not exact)", f.role, f.pid))
			}
		case ambiguous:
			if !outsider {
				d.Against = append(d.Against, fmt.Sprintf("%s: %s", f.role, whys[i]))
			}
		}
	}
	if o.Shm != nil && o.Shm.Nattch > 0 {
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
	for i, s := range o.Sems {
		if s.NCnt > 0 || s.ZCnt > 0 {
			d.Against = append(d.Against, fmt.Sprintf("semaphore %d has %d waiting process(es)", i, s.NCnt+s.ZCnt))
		}
	}
	if len(d.Against) > 0 {
		d.Strength = NoEvidence
		d.Reason = strings.Join(d.Against, "; ")
		return d
	}

	// Anyone may get a keyed set or queue: that the tree used it says
	// nothing of who else holds it (an idle client, a SEM_UNDO adjustment
	// to come). Only proof that the tree created it gives it to the tree.
	// (One that nobody used is left to window evidence below, as a
	// private one is: the risk is the same.)
	// The user may vouch for a key instead (--own-keys): the declaration
	// stands in for the proof of creation, and for nothing else, so an
	// outsider's pid in the object (even a dead one's) still kept it above.
	if o.Key != 0 && o.Shm == nil && !creatorProven && d.Strength != NoEvidence {
		if !a.p.Owns(o.Key) {
			return keep("keyed (" + KeyString(o.Key) + "): the tree used it, but its creator is not proven (anyone may get a keyed object)")
		}
		how := "key " + KeyString(o.Key) + " is declared the command's (--own-keys)"
		if !a.p.OwnKeys[o.Key] {
			how = "every key is declared the command's (--own-keys all)"
		}
		d.Evidence = append(d.Evidence, how+", and the tree used it")
	}
	// A private set or queue records no creator pid: that the tree used it
	// gives it to the tree only if its creator uid is the run's (another
	// user's process made it: a server that handed its id to the tree).
	if o.Shm == nil && !creatorProven && d.Strength == PidEvidence {
		if _, _, cuid, _ := o.Owner(); cuid != a.p.UID {
			return keep(fmt.Sprintf("the tree used it, but uid %d made it, not the run's uid %d (its creator is not proven)", cuid, a.p.UID))
		}
	}

	// Window evidence: the only way to clean an object made and never used.
	if d.Strength == NoEvidence {
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
		case a.changedAfter(&o):
			return keep("no pid evidence, and it changed after the tree was last watched")
		}
		d.Strength = WindowEvidence
		d.Evidence = append(d.Evidence, fmt.Sprintf("new during the run, created by the run's uid %d gid %d, never used, no other activity in the window", cuid, cgid))
	}
	d.Remove = true
	return d
}

// ctimeOf is o's ctime (creation, or a later IPC_SET, SETVAL or SETALL),
// seconds since the epoch; 0 when it has none.
func ctimeOf(o *Object) int64 {
	switch {
	case o.Shm != nil:
		return o.Shm.Ctime
	case o.Sem != nil:
		return o.Sem.Ctime
	case o.Msg != nil:
		return o.Msg.Ctime
	}
	return 0
}

// changedAfter reports whether o's ctime (creation, or a later IPC_SET,
// SETVAL or SETALL) lies after the time the tree's record is complete: an
// object made or changed after the supervisor stopped watching cannot be
// given to the tree by what it watched.
func (a *attributor) changedAfter(o *Object) bool {
	ctime := ctimeOf(o)
	return ctime > 0 && secs(ctime).After(a.until.Add(StampSlack+a.p.ClockSlack))
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
