package ipcdiff

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/ipcguard/ipcguard/internal/posixipc"
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
	// KeepNames, OtherNames and OwnNames are KeepKeys, OtherKeys and
	// OwnKeys for the objects whose family is a POSIX name.
	KeepNames  map[string]bool
	OtherNames map[string]string
	OwnNames   map[string]bool
	// KeepNamePatterns are shell patterns (path.Match) of POSIX names, as
	// the directory lists them ("PostgreSQL.*", "sem.foo"), that are never
	// removed (--keep-name).
	KeepNamePatterns []string
	// OtherFiles are the POSIX objects before the run by device and inode
	// (the name they had): a new name of one of these files (a hard link)
	// names an object older than the run.
	OtherFiles map[posixipc.FileKey]string

	// PosixAfter are the POSIX names present after the run, each with
	// the birth time of the file under it (zero when unknown): a name a
	// stranger made during the run whose file is still under it did not
	// lend that file to another name (posixMadeBetween).
	PosixAfter map[NameKey]time.Time
	// Creations are the names made in the POSIX directories while the
	// run's creation watchers ran (from before the snapshot before to
	// after the snapshot after), in the order they were made.
	// CreationsWatched holds the types whose creations were recorded
	// completely, with the creators' pids (root; no event lost); for a
	// POSIX type not in it, CreationsWhy says why ("not root: fanotify
	// hides the pids", "events were lost", "not watched"), and Creations
	// of that type prove nothing.
	Creations        []Creation
	CreationsWatched TypeSet
	CreationsWhy     map[Type]string
	// PosixContended says why window evidence is off for POSIX objects
	// beyond the reasons that turn it off for every object (Contended,
	// Invisible, the objects' own evidence): POSIX objects carry no pid,
	// so a process of the run's uid outside the tree that ran during the
	// run ("pid N (comm) of uid U ran during the run"), or a pid handed
	// out during the run that the tree does not account for, may have made
	// one ("" when the uid was quiet).
	PosixContended string
	// PosixChangesWhy says, per POSIX type, why window evidence is off
	// for it beyond PosixContended: an object's owner proves who made it
	// only while no entry of its directory was given another owner or
	// mode (chown, chmod) during the run, which a process of another uid
	// (root) may do to hand an object it made to the run's uid unseen. So
	// a type whose directory's changes were not watched completely, or
	// saw one, has its reason here; a type absent has window evidence.
	PosixChangesWhy map[Type]string
}

// Owns reports whether the user declared key the command's (OwnKeys,
// OwnAllKeys). IPC_PRIVATE (0) is never a declared key.
func (p *Policy) Owns(key int32) bool {
	return key != 0 && (p.OwnAllKeys || p.OwnKeys[key])
}

// owns is Owns for a family: a key, or a name (OwnNames, OwnAllKeys).
func (p *Policy) owns(f Family) bool {
	if f.Name != "" {
		return p.OwnAllKeys || p.OwnNames[f.Name]
	}
	return p.Owns(f.Key)
}

// keeps reports whether the user asked to keep family f (KeepKeys,
// KeepNames); the zero family is never kept so.
func (p *Policy) keeps(f Family) bool {
	if f.Name != "" {
		return p.KeepNames[f.Name]
	}
	return f.Key != 0 && p.KeepKeys[f.Key]
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

// pidFact is a PidFact with the window of time, within the run, in which
// the action it records took place.
type pidFact struct {
	PidFact
	from, to time.Time
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
		live: map[int]bool{}, until: tree.Until(), classes: map[factKey]verdict{}, names: map[int]string{}}
	for _, pid := range tree.Alive() {
		a.live[pid] = true
	}
	// Every object's evidence is read once, and every pid fact classified
	// once, for the contention test and the decision alike.
	evs := make([]Evidence, len(objs))
	facts := make([][]pidFact, len(objs))
	posix := make([]posixVerdict, len(objs))
	n := 0
	for i := range objs {
		evs[i] = objs[i].Evidence()
		if objs[i].Type.IsPosix() {
			posix[i] = a.posixCreation(&objs[i], &evs[i])
		}
		facts[i] = a.facts(&evs[i])
		n += len(facts[i])
	}
	// One backing array each for the classes and the reasons of all facts.
	classes := make([][]class, len(objs))
	whys := make([][]string, len(objs))
	allClasses, allWhys := make([]class, n), make([]string, n)
	for i := range objs {
		k := len(facts[i])
		classes[i], allClasses = allClasses[:k:k], allClasses[k:]
		whys[i], allWhys = allWhys[:k:k], allWhys[k:]
		for j, f := range facts[i] {
			classes[i][j], whys[i][j] = a.classifyOnce(f)
		}
	}
	why := a.contention(objs, evs, facts, classes)
	ds = make([]Decision, len(objs))
	anyPosix := false
	for i := range objs {
		ds[i] = a.decide(objs[i], &evs[i], facts[i], classes[i], whys[i], why, &posix[i])
		anyPosix = anyPosix || objs[i].Type.IsPosix()
	}
	keepFamilies(ds, evs, &p)
	if why == "" && anyPosix && p.PosixContended != "" {
		why = "for POSIX objects: " + p.PosixContended
	}
	return ds, why
}

// keepFamilies keeps every new object whose family (key, name) is shared
// by an object that stays: programs pair objects on one key (ALSA's dmix
// pairs a segment and a set), and removing one half breaks whoever uses
// the other.
func keepFamilies(ds []Decision, evs []Evidence, p *Policy) {
	kept := map[Family]string{}
	for k, v := range p.OtherKeys {
		kept[Family{Key: k}] = v + ", which existed before the run"
	}
	for n, v := range p.OtherNames {
		kept[Family{Name: n}] = v + ", which existed before the run"
	}
	for i, d := range ds {
		if f := evs[i].Family; !d.Remove && !f.IsZero() {
			if _, ok := kept[f]; !ok {
				kept[f] = d.Ident.String() + ", which is kept"
			}
		}
	}
	for i := range ds {
		d, f := &ds[i], evs[i].Family
		if !d.Remove || f.IsZero() {
			continue
		}
		if other, ok := kept[f]; ok {
			d.Remove, d.Strength = false, NoEvidence
			d.Against = append(d.Against, "same "+f.noun()+" as "+other)
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
	// byAt are the creations of Policy.Creations in the order they were
	// read (posixMadeBetween), built at its first use.
	byAt    []*Creation
	suspect []*Creation // posixMadeBetween
	// lastMade is the last creation of each name (lastCreation).
	lastMade map[creationKey]*Creation
	// firstMade is the first creation of each file, noFile the devices
	// with a creation of an unknown file (indexFiles).
	firstMade map[fileKey]*Creation
	noFile    map[uint64]bool
	// classes and names remember, for one Attribute call, what classify
	// and name said: the objects of a run share few pids and stamps.
	classes map[factKey]verdict
	names   map[int]string
	window  [2]string // windowWords: SysV, POSIX
}

// factKey is what classify reads of a fact: its pid and window.
type factKey struct {
	pid      int
	from, to int64 // UnixNano
}

type verdict struct {
	class class
	why   string
}

// classifyOnce is classify, remembered by pid and window: the tree, and
// what procs said of a pid (memoProcs), do not change during one call.
func (a *attributor) classifyOnce(f pidFact) (class, string) {
	k := factKey{f.Pid, f.from.UnixNano(), f.to.UnixNano()}
	if v, ok := a.classes[k]; ok {
		return v.class, v.why
	}
	c, why := a.classify(f)
	a.classes[k] = verdict{c, why}
	return c, why
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

// facts gives each pid fact of ev its window of time within the run: the
// stamp's second widened by the slack (StampSlack and the run's clock
// slack), from the run's start when the stamp only bounds the action from
// above (a creator under a ctime), the whole run without a stamp, or the
// window a tracker observed.
func (a *attributor) facts(ev *Evidence) []pidFact {
	if len(ev.Pids) == 0 {
		return nil
	}
	f := make([]pidFact, 0, len(ev.Pids))
	for _, p := range ev.Pids {
		if p.Pid <= 0 {
			continue
		}
		var from, to time.Time
		switch {
		case !p.To.IsZero():
			from, to = a.clamp(p.From, p.To)
		case p.NoLater:
			_, to = a.stamp(p.Stamp)
			from, to = a.clamp(a.p.Start, to)
		default:
			from, to = a.stamp(p.Stamp)
		}
		f = append(f, pidFact{p, from, to})
	}
	return f
}

// classify says who acted for fact f; why explains an ambiguous one.
func (a *attributor) classify(f pidFact) (class, string) {
	if f.from.After(a.until) {
		// The tree's record ends before the action could have happened.
		if a.procs.Alive(f.Pid) {
			return outsideLive, ""
		}
		return ambiguous, fmt.Sprintf("pid %d acted after the tree was last watched", f.Pid)
	}
	h, exact, why := a.tree.Holder(f.Pid, f.from, f.to)
	switch h {
	case HeldByTree:
		if a.live[f.Pid] {
			return liveMember, ""
		}
		// Another process runs under the number now: it got it after the
		// member, and if that was before the window closed, the action may
		// be its own (whatever the pid watch could not see).
		if a.procs.Alive(f.Pid) {
			st, ok := a.procs.Started(f.Pid)
			if !ok || !st.After(f.to) {
				return ambiguous, fmt.Sprintf("pid %d is now another process's, which may have acted", f.Pid)
			}
		}
		return inTree, ""
	case HeldAmbiguous:
		return ambiguous, why
	}
	if a.procs.Alive(f.Pid) {
		return outsideLive, ""
	}
	if exact {
		return outsideDead, ""
	}
	return unknownPid, ""
}

func (a *attributor) name(pid int) string {
	if n, ok := a.names[pid]; ok {
		return n
	}
	n := "pid " + strconv.Itoa(pid)
	if c := a.procs.Comm(pid); c != "" {
		n += " (" + c + ")"
	}
	if a.names != nil {
		a.names[pid] = n
	}
	return n
}

// contention says why the window is contended ("" when it is not): another
// run overlapped; processes we cannot see use the namespace; or a new
// object carries the pid of a process outside the tree (or one that may
// be), or evidence that could not be read, so strangers were active while
// the command ran.
func (a *attributor) contention(objs []Object, evs []Evidence, facts [][]pidFact, classes [][]class) string {
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
		if w := evs[i].Invisible; len(w) > 0 {
			return fmt.Sprintf("%s: %s", o.Ident, w[0])
		}
		if o.Unreadable != "" {
			return fmt.Sprintf("%s: its evidence could not be read (%s)", o.Ident, o.Unreadable)
		}
		for j, f := range facts[i] {
			switch classes[i][j] {
			case outsideLive, outsideDead:
				return fmt.Sprintf("%s was used by %s outside the tree", o.Ident, a.name(f.Pid))
			case unknownPid:
				return fmt.Sprintf("%s was used by pid %d, not known to be in the tree", o.Ident, f.Pid)
			case ambiguous:
				return fmt.Sprintf("%s was used by pid %d, which may not have been the tree's", o.Ident, f.Pid)
			}
		}
	}
	return ""
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
