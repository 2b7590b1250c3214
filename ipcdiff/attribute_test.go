package ipcdiff

import (
	"strings"
	"testing"
	"time"
)

// fakeTree is a tree tracker's answer: spans of membership per pid.
type fakeTree struct {
	spans     map[int][2]int64 // pid -> [start, end) in unix seconds; end 0 = alive
	exact     bool
	tracked   bool
	created   map[int]bool
	proven    map[int]bool
	alive     []int
	reused    map[int]bool // pids whose number may have had another holder
	until     int64        // Until, unix seconds (0: well after the run)
	createdAt int64        // when the tracked gets returned, unix seconds (0: t0+2)
}

func (t fakeTree) Holder(pid int, from, to time.Time) (Holder, bool, string) {
	s, ok := t.spans[pid]
	if !ok {
		return HeldOutside, t.exact, ""
	}
	start, end := time.Unix(s[0], 0), time.Unix(s[1], 0)
	if start.After(to) || (s[1] != 0 && end.Before(from)) {
		return HeldOutside, t.exact, ""
	}
	if t.reused[pid] {
		return HeldAmbiguous, t.exact, "pid may have been reused"
	}
	return HeldByTree, t.exact, ""
}
func (t fakeTree) Created(typ string, id int) (bool, bool, time.Time, bool) {
	at := time.Unix(t0+2, 0) // when the get returned (the fixtures' ctime)
	if t.createdAt != 0 {
		at = time.Unix(t.createdAt, 0)
	}
	return t.created[id], t.proven[id], at, t.tracked
}
func (t fakeTree) Alive() []int { return t.alive }
func (t fakeTree) Until() time.Time {
	if t.until != 0 {
		return time.Unix(t.until, 0)
	}
	return time.Unix(t1+100, 0)
}

type fakeProcs map[int]struct {
	comm  string
	start int64
}

func (p fakeProcs) Alive(pid int) bool { _, ok := p[pid]; return ok }
func (p fakeProcs) Comm(pid int) string {
	return p[pid].comm
}
func (p fakeProcs) Started(pid int) (time.Time, bool) {
	x, ok := p[pid]
	return time.Unix(x.start, 0), ok
}

const (
	t0      = 1_700_000_000 // run start
	t1      = t0 + 10       // run end
	treePid = 500
	tree2   = 501
	outside = 812 // a live stranger (postgres)
	gone    = 900 // a dead stranger
	unseen  = 950 // never seen by an inexact tracker
	uid     = 1000
)

func baseTree() fakeTree {
	return fakeTree{spans: map[int][2]int64{treePid: {t0, t0 + 5}, tree2: {t0 + 1, t0 + 4}}, exact: true}
}

var procs = fakeProcs{outside: {"postgres", t0 - 100}}

func shm(cpid, lpid int, nattch uint64) Object {
	o := Object{Ident: Ident{Type: TypeShm, ID: 7, Key: 0x1234}, Shm: &Shm{Key: 0x1234, ID: 7, Perms: 0o600,
		CPID: cpid, LPID: lpid, Nattch: nattch, UID: uid, GID: uid, CUID: uid, CGID: uid, Ctime: t0 + 2}}
	if lpid != 0 {
		o.Shm.Atime = t0 + 3
	}
	return o
}

// private makes o an IPC_PRIVATE object.
func private(o Object) Object {
	o.Key = 0
	switch {
	case o.Shm != nil:
		o.Shm.Key = 0
	case o.Sem != nil:
		o.Sem.Key = 0
	case o.Msg != nil:
		o.Msg.Key = 0
	}
	return o
}

// keyed gives o key k.
func keyed(o Object, k int32) Object {
	o.Key = k
	switch {
	case o.Shm != nil:
		o.Shm.Key = k
	case o.Sem != nil:
		o.Sem.Key = k
	case o.Msg != nil:
		o.Msg.Key = k
	}
	return o
}

func sem(pids ...int) Object {
	o := Object{Ident: Ident{Type: TypeSem, ID: 8}, Sem: &Sem{ID: 8, Perms: 0o600, NSems: len(pids),
		UID: uid, GID: uid, CUID: uid, CGID: uid, Otime: t0 + 3, Ctime: t0 + 2}}
	for _, p := range pids {
		o.Sems = append(o.Sems, SemState{Pid: p})
	}
	return o
}

func msg(lspid, lrpid int) Object {
	o := Object{Ident: Ident{Type: TypeMsg, ID: 9}, Msg: &Msg{ID: 9, Perms: 0o600, LSPID: lspid, LRPID: lrpid,
		UID: uid, GID: uid, CUID: uid, CGID: uid, Ctime: t0 + 2}}
	if lspid != 0 {
		o.Msg.Stime = t0 + 3
	}
	if lrpid != 0 {
		o.Msg.Rtime = t0 + 3
	}
	return o
}

func policy() Policy {
	return Policy{Types: AllTypes, UID: uid, GID: uid, Start: time.Unix(t0, 0), End: time.Unix(t1, 0)}
}

func TestAttribute(t *testing.T) {
	type tc struct {
		name     string
		objs     []Object // the first is checked; others set the scene
		tree     func(*fakeTree)
		pol      func(*Policy)
		remove   bool
		strength Strength
		reason   string // substring of the reason when kept
	}
	withAttacher := shm(treePid, outside, 1)
	withAttacher.Attachers = []int{outside}
	waiting := sem(treePid)
	waiting.Sems[0].NCnt = 1
	marked := shm(treePid, treePid, 1)
	marked.Shm.Perms |= ShmDest
	otherKey := sem()
	otherKey.Key, otherKey.Sem.Key = 0x42, 0x42
	foreignCreator := sem()
	foreignCreator.Sem.CUID = 2000
	cases := []tc{
		{name: "shm created by the tree", objs: []Object{shm(treePid, treePid, 0)}, remove: true, strength: PidEvidence},
		{name: "shm created by a grandchild", objs: []Object{shm(tree2, 0, 0)}, remove: true, strength: PidEvidence},
		{name: "shm created by a live stranger", objs: []Object{shm(outside, outside, 0)}, reason: "pid 812 (postgres), running outside the tree"},
		{name: "shm attached by a stranger", objs: []Object{withAttacher}, reason: "attached by pid 812 (postgres)"},
		{name: "shm still attached, attachers unknown", objs: []Object{shm(treePid, treePid, 2)}, reason: "attached by 2 process(es)"},
		{name: "shm last attached by a live stranger", objs: []Object{shm(treePid, outside, 0)}, reason: "last attach/detach is pid 812"},
		{name: "shm created by tree, touched by a dead stranger", objs: []Object{shm(treePid, gone, 0)}, remove: true, strength: PidEvidence},
		{name: "shm marked for destruction", objs: []Object{marked}, reason: "already removed"},
		{name: "shm creator invisible", objs: []Object{shm(0, 0, 0)}, reason: "not visible"},
		{name: "shm creator unseen by inexact tracker", objs: []Object{shm(unseen, unseen, 0)}, tree: func(t *fakeTree) { t.exact = false },
			reason: "not known to be in the tree"},
		{name: "sem used by the tree", objs: []Object{sem(treePid, 0, treePid)}, remove: true, strength: PidEvidence},
		{name: "sem also used by a live stranger", objs: []Object{sem(treePid, outside)}, reason: "semaphore 1 last op is pid 812"},
		{name: "sem also used by a dead stranger", objs: []Object{sem(treePid, gone)}, reason: "outside the tree"},
		{name: "sem with a waiter", objs: []Object{waiting}, reason: "waiting"},
		{name: "sem used only by a stranger", objs: []Object{sem(gone)}, reason: "outside the tree"},
		{name: "msg sent by the tree", objs: []Object{msg(treePid, 0)}, remove: true, strength: PidEvidence},
		{name: "msg received by a live stranger", objs: []Object{msg(treePid, outside)}, reason: "last msgrcv is pid 812"},
		{name: "msg sent by unseen pid, inexact tracker", objs: []Object{msg(unseen, 0)}, tree: func(t *fakeTree) { t.exact = false },
			reason: "not known to be in the tree"},
		{name: "never used, uncontended window", objs: []Object{sem()}, remove: true, strength: WindowEvidence},
		{name: "never used, --strict", objs: []Object{sem()}, pol: func(p *Policy) { p.Strict = true }, reason: "--strict"},
		{name: "never used, another run overlapped", objs: []Object{msg(0, 0)},
			pol: func(p *Policy) { p.Contended, p.ContendedWhy = true, "another ipcguard run of uid 1000 overlapped" }, reason: "overlapped"},
		{name: "never used, a stranger was active", objs: []Object{sem(), msg(outside, 0)}, reason: "contended window: msg 9 was used by pid 812"},
		{name: "never used, unknown pid active (inexact tracker)", objs: []Object{sem(), shm(unseen, 0, 0)},
			tree: func(t *fakeTree) { t.exact = false }, reason: "contended window"},
		{name: "never used, other creator", objs: []Object{foreignCreator}, reason: "creator 2000:1000 is not the run's"},
		{name: "type not selected", objs: []Object{sem(treePid)}, pol: func(p *Policy) { p.Types = 1 << TypeShm }, reason: "--types"},
		{name: "key kept", objs: []Object{otherKey}, pol: func(p *Policy) { p.KeepKeys = map[int32]bool{0x42: true} }, reason: "0x00000042 is kept"},
		{name: "key 0 kept protects no private object", objs: []Object{sem(treePid)}, pol: func(p *Policy) { p.KeepKeys = map[int32]bool{0: true} },
			remove: true, strength: PidEvidence},
		{name: "creation seen", objs: []Object{sem()}, tree: func(t *fakeTree) { t.tracked, t.created = true, map[int]bool{8: true} },
			pol: func(p *Policy) { p.Strict = true }, remove: true, strength: CreationSeen},
		{name: "keyed object obtained by the tree is only use", objs: []Object{otherKey}, tree: func(t *fakeTree) { t.tracked, t.created = true, map[int]bool{8: true} },
			reason: "creator is not proven"},
		{name: "keyed set created by the tree with IPC_EXCL", objs: []Object{keyed(sem(treePid), 0x42)},
			tree: func(t *fakeTree) {
				t.tracked, t.created, t.proven = true, map[int]bool{8: true}, map[int]bool{8: true}
			}, remove: true, strength: CreationSeen},
		{name: "keyed set used by the tree, creation not tracked", objs: []Object{keyed(sem(treePid), 0x42)}, reason: "creator is not proven"},
		{name: "keyed queue used by the tree, creation not tracked", objs: []Object{keyed(msg(treePid, treePid), 0x42)}, reason: "creator is not proven"},
		{name: "keyed set never used, uncontended window", objs: []Object{keyed(sem(), 0x42)}, remove: true, strength: WindowEvidence},
		{name: "keyed set never used, --strict", objs: []Object{keyed(sem(), 0x42)}, pol: func(p *Policy) { p.Strict = true }, reason: "--strict"},
		{name: "keyed segment created by the tree", objs: []Object{shm(treePid, treePid, 0)}, remove: true, strength: PidEvidence},
		{name: "member pid may have been reused", objs: []Object{shm(treePid, 0, 0)},
			tree: func(t *fakeTree) { t.reused = map[int]bool{treePid: true} }, reason: "may have been reused"},
		{name: "an ambiguous pid contends the window", objs: []Object{sem(), msg(tree2, 0)},
			tree: func(t *fakeTree) { t.reused = map[int]bool{tree2: true} }, reason: "may not have been the tree's"},
		{name: "sem operated on by an invisible process", objs: []Object{sem(0, 0)}, reason: "not visible from this pid namespace"},
		{name: "sem partly used by the tree", objs: []Object{sem(treePid, 0)}, remove: true, strength: PidEvidence},
		{name: "msg sent by an invisible process", objs: []Object{func() Object { o := msg(0, 0); o.Msg.QNum = 1; return o }()},
			reason: "not visible from this pid namespace sent to it"},
		{name: "an invisible sender contends the window", objs: []Object{sem(), func() Object { o := msg(0, 0); o.Msg.Stime = t0 + 2; return o }()},
			reason: "contended window"},
		{name: "invisible users of the namespace contend the window", objs: []Object{sem()},
			pol: func(p *Policy) { p.Invisible = "shm 3 was made by a process not visible" }, reason: "not visible"},
		{name: "unreadable evidence", objs: []Object{func() Object { o := sem(); o.Sems = nil; o.Unreadable = "semctl GETPID: permission denied"; return o }()},
			reason: "could not be read"},
		{name: "unreadable evidence contends the window", objs: []Object{sem(), func() Object {
			o := sem()
			o.ID, o.Ident.ID, o.Sem.ID, o.Unreadable = 10, 10, 10, "semctl GETPID: permission denied"
			return o
		}()}, reason: "contended window: sem 10: its evidence could not be read"},
		{name: "private segment of the tree, detached by a live outsider", objs: []Object{private(shm(treePid, outside, 0))}, remove: true, strength: PidEvidence},
		{name: "keyed segment of the tree, last attached by a live outsider", objs: []Object{shm(treePid, outside, 0)}, reason: "running outside the tree"},
		{name: "private segment of the tree, attached by an outsider", objs: []Object{private(withAttacher)}, reason: "attached by pid 812"},
		{name: "a new object of the same key is kept", objs: []Object{shm(treePid, treePid, 0), keyed(sem(outside), 0x1234)}, reason: "same key 0x00001234 as sem 8"},
		{name: "an object of the same key existed before", objs: []Object{shm(treePid, treePid, 0)},
			pol: func(p *Policy) { p.OtherKeys = map[int32]string{0x1234: "sem 3"} }, reason: "same key 0x00001234 as sem 3, which existed before"},
		{name: "changed last before the run began: made before it", objs: []Object{func() Object { o := sem(treePid); o.Sem.Ctime = t0 - 10; return o }()},
			reason: "existed before the run"},
		{name: "a private set the tree used, made by another uid", objs: []Object{func() Object { o := sem(treePid); o.Sem.CUID = 2000; return o }()},
			reason: "uid 2000 made it, not the run's"},
		{name: "a private queue the tree used, --strict: pid evidence is not window evidence", objs: []Object{msg(treePid, 0)},
			pol: func(p *Policy) { p.Strict = true }, remove: true, strength: PidEvidence},
		{name: "a private set the tree made (creation seen), --strict", objs: []Object{sem(treePid)},
			tree: func(t *fakeTree) { t.tracked, t.created = true, map[int]bool{8: true} }, pol: func(p *Policy) { p.Strict = true },
			remove: true, strength: CreationSeen},
		{name: "creation seen long before the object's ctime: the id may have been handed out again", objs: []Object{sem()},
			tree: func(t *fakeTree) { t.tracked, t.created, t.createdAt = true, map[int]bool{8: true}, t0-5 },
			pol:  func(p *Policy) { p.Start = time.Unix(t0-10, 0); p.Strict = true }, reason: "the id may name a newer object"},
		{name: "a segment whose ctime IPC_SET moved: the creation window starts at the run's start", objs: []Object{func() Object {
			o := shm(tree2, 0, 0)
			o.Shm.Ctime = t0 + 8 // tree2 ran t0+1..t0+4, under a number someone else had before
			return o
		}()}, tree: func(t *fakeTree) { t.reused = map[int]bool{tree2: true} }, reason: "may have been reused"},
		{name: "creation seen, but the object changed after the tree was watched", objs: []Object{sem()},
			tree: func(t *fakeTree) { t.tracked, t.created, t.until = true, map[int]bool{8: true}, t0-10 }, pol: func(p *Policy) { p.Strict = true },
			reason: "no pid evidence"},
		{name: "an action after the tree was watched", objs: []Object{msg(gone, 0)},
			tree: func(t *fakeTree) { t.spans[gone] = [2]int64{t0, t0 + 5}; t.until = t0 - 10 }, reason: "after the tree was last watched"},
		{name: "keyed object obtained by the tree, also used by a dead stranger", objs: []Object{func() Object { o := sem(treePid, gone); o.Key, o.Sem.Key = 0x42, 0x42; return o }()},
			tree: func(t *fakeTree) { t.tracked, t.created = true, map[int]bool{8: true} }, reason: "outside the tree"},
		{name: "creation tracked, not by the tree", objs: []Object{sem(treePid)}, tree: func(t *fakeTree) { t.tracked = true },
			reason: "created outside the tree"},
		{name: "creation seen, but a stranger attaches", objs: []Object{withAttacher},
			tree: func(t *fakeTree) { t.tracked, t.created = true, map[int]bool{7: true} }, reason: "attached by pid 812"},
		{name: "tree member still running uses it", objs: []Object{sem(treePid)},
			tree: func(t *fakeTree) { t.spans[treePid] = [2]int64{t0, 0}; t.alive = []int{treePid} }, reason: "a tree member still running"},
		{name: "pid acted before it joined the tree", objs: []Object{shm(tree2, 0, 0)},
			tree: func(t *fakeTree) { t.spans[tree2] = [2]int64{t0 + 8, t0 + 9} }, reason: "outside the tree"},
		{name: "keyed set used by the tree, key declared", objs: []Object{keyed(sem(treePid), 0x42)},
			pol: func(p *Policy) { p.OwnKeys = map[int32]bool{0x42: true} }, remove: true, strength: PidEvidence},
		{name: "keyed queue used by the tree, every key declared", objs: []Object{keyed(msg(treePid, treePid), 0x42)},
			pol: func(p *Policy) { p.OwnAllKeys = true }, remove: true, strength: PidEvidence},
		{name: "keyed set obtained by the tree (tracker), key declared", objs: []Object{keyed(sem(), 0x42)},
			tree: func(t *fakeTree) { t.tracked, t.created = true, map[int]bool{8: true} },
			pol:  func(p *Policy) { p.OwnKeys, p.Strict = map[int32]bool{0x42: true}, true }, remove: true, strength: PidEvidence},
		{name: "keyed set used by the tree, another key declared", objs: []Object{keyed(sem(treePid), 0x42)},
			pol: func(p *Policy) { p.OwnKeys = map[int32]bool{0x43: true} }, reason: "creator is not proven"},
		{name: "declared key, but --keep-key wins", objs: []Object{keyed(sem(treePid), 0x42)},
			pol: func(p *Policy) { p.OwnAllKeys, p.KeepKeys = true, map[int32]bool{0x42: true} }, reason: "--keep-key"},
		{name: "declared key, also used by a dead stranger", objs: []Object{keyed(sem(treePid, gone), 0x42)},
			pol: func(p *Policy) { p.OwnAllKeys = true }, reason: "pid 900, outside the tree"},
		{name: "declared key, also used by a live stranger", objs: []Object{keyed(msg(treePid, outside), 0x42)},
			pol: func(p *Policy) { p.OwnAllKeys = true }, reason: "running outside the tree"},
		{name: "declared key, used by an unseen pid (inexact tracker)", objs: []Object{keyed(msg(treePid, unseen), 0x42)},
			tree: func(t *fakeTree) { t.exact = false }, pol: func(p *Policy) { p.OwnAllKeys = true }, reason: "not known to be in the tree"},
		{name: "declared key, created outside the tree (tracked)", objs: []Object{keyed(sem(treePid), 0x42)},
			tree: func(t *fakeTree) { t.tracked = true }, pol: func(p *Policy) { p.OwnAllKeys = true }, reason: "created outside the tree"},
		{name: "declared key, used only by a stranger", objs: []Object{keyed(sem(gone), 0x42)},
			pol: func(p *Policy) { p.OwnAllKeys = true }, reason: "outside the tree"},
		{name: "declared key, a member still running uses it", objs: []Object{keyed(sem(treePid), 0x42)},
			tree: func(t *fakeTree) { t.spans[treePid] = [2]int64{t0, 0}; t.alive = []int{treePid} },
			pol:  func(p *Policy) { p.OwnAllKeys = true }, reason: "a tree member still running"},
		{name: "declared key, a waiter", objs: []Object{keyed(waiting, 0x42)},
			pol: func(p *Policy) { p.OwnAllKeys = true }, reason: "waiting"},
		{name: "declared key, its family is kept", objs: []Object{keyed(sem(treePid), 0x42)},
			pol: func(p *Policy) { p.OwnAllKeys, p.OtherKeys = true, map[int32]string{0x42: "msg 3"} }, reason: "same key 0x00000042 as msg 3"},
		{name: "declared key, pid may have been reused", objs: []Object{keyed(sem(treePid), 0x42)},
			tree: func(t *fakeTree) { t.reused = map[int]bool{treePid: true} }, pol: func(p *Policy) { p.OwnAllKeys = true }, reason: "may have been reused"},
		{name: "declared key, never used, --strict", objs: []Object{keyed(sem(), 0x42)},
			pol: func(p *Policy) { p.OwnAllKeys, p.Strict = true, true }, reason: "--strict"},
		{name: "member pid reused by a live stranger before the action", objs: []Object{shm(outside, 0, 0)},
			tree: func(t *fakeTree) { t.spans[outside] = [2]int64{t0, t0 + 1}; t.reused = map[int]bool{outside: true} }, reason: "may have been reused"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tree := baseTree()
			if c.tree != nil {
				c.tree(&tree)
			}
			pol := policy()
			if c.pol != nil {
				c.pol(&pol)
			}
			p := fakeProcs{}
			for k, v := range procs {
				p[k] = v
			}
			for _, pid := range tree.alive {
				p[pid] = struct {
					comm  string
					start int64
				}{"sh", t0}
			}
			ds, _ := Attribute(c.objs, tree, p, pol)
			d := ds[0]
			if d.Remove != c.remove {
				t.Fatalf("remove = %v, want %v (reason %q, evidence %q, against %q)", d.Remove, c.remove, d.Reason, d.Evidence, d.Against)
			}
			if c.remove && d.Strength != c.strength {
				t.Errorf("strength = %v, want %v", d.Strength, c.strength)
			}
			if c.remove && (len(d.Evidence) == 0 || d.Reason != "") {
				t.Errorf("a removal must carry evidence and no reason: evidence %q reason %q", d.Evidence, d.Reason)
			}
			// A keyed set or queue removed on pid evidence rests on the
			// declaration: the evidence must say so, and only then.
			declared := d.Key != 0 && d.Shm == nil && d.Strength == PidEvidence
			if c.remove && declared != strings.Contains(strings.Join(d.Evidence, "; "), "--own-keys") {
				t.Errorf("evidence %q: a removal resting on --own-keys must say so, and only then", d.Evidence)
			}
			if !c.remove && !strings.Contains(d.Reason, c.reason) {
				t.Errorf("reason = %q, want it to mention %q", d.Reason, c.reason)
			}
		})
	}
}

// TestAttributeNeverRemovesWithoutEvidence checks the rule over many
// combinations: a removal always has a strength and no evidence against.
func TestAttributeNeverRemovesWithoutEvidence(t *testing.T) {
	pids := []int{0, treePid, outside, gone, unseen}
	for _, exact := range []bool{true, false} {
		for _, own := range []bool{false, true} {
			tree := baseTree()
			tree.exact = exact
			for _, a := range pids {
				for _, b := range pids {
					for _, n := range []uint64{0, 1} {
						objs := []Object{shm(a, b, n), sem(a, b), msg(a, b)}
						pol := policy()
						pol.OwnAllKeys = own
						objs = append(objs, keyed(sem(a, b), 0x42), keyed(msg(a, b), 0x43))
						objs[3].ID, objs[3].Ident.ID, objs[3].Sem.ID = 18, 18, 18
						objs[4].ID, objs[4].Ident.ID, objs[4].Msg.ID = 19, 19, 19
						ds, _ := Attribute(objs, tree, procs, pol)
						for _, d := range ds {
							if !d.Remove {
								continue
							}
							if d.Strength == NoEvidence || len(d.Against) > 0 {
								t.Fatalf("%v removed with strength %v, against %q", d.Ident, d.Strength, d.Against)
							}
							for _, p := range []int{a, b} {
								if p == outside || (p == unseen || p == gone) && d.Type != TypeShm {
									t.Fatalf("%v removed though pid %d is foreign or unknown (exact %v, own keys %v)", d.Ident, p, exact, own)
								}
							}
						}
					}
				}
			}
		}
	}
}

// TestClassifyOnceKey: the verdict remembered for a pid and window is the
// one classify gives for every fact with that pid and window, whatever its
// role, creator flag, or how its window was made (a stamp, a creator's
// bound, a tracker's window), in either order: classify reads nothing
// else of a fact.
func TestClassifyOnceKey(t *testing.T) {
	tree := baseTree()
	tree.reused = map[int]bool{tree2: true}
	tree.spans[gone] = [2]int64{t0 + 1, t0 + 2}
	tree.alive = []int{tree2}
	for _, pid := range []int{treePid, tree2, outside, gone, unseen} {
		ev := Evidence{Pids: []PidFact{
			{Role: "creator", Pid: pid, Stamp: t0 + 1, NoLater: true, Creator: true},
			{Role: "last attach/detach", Pid: pid, Stamp: t0 + 1, LetGo: true},
			{Role: "semaphore 0 last op", Pid: pid},
			{Role: "renamer", Pid: pid, From: time.Unix(t0, 0), To: time.Unix(t0+3, 0)},
			{Role: "last msgsnd", Pid: pid, Stamp: t0 + 1},
		}}
		for _, order := range [][]int{{0, 1, 2, 3, 4}, {4, 3, 2, 1, 0}} {
			a := attributor{tree: tree, procs: &memoProcs{Procs: procs, m: map[int]procInfo{}}, p: policy(),
				live: map[int]bool{tree2: true}, until: tree.Until(), classes: map[factKey]verdict{}, names: map[int]string{}}
			facts := a.facts(&ev)
			for _, i := range order {
				c, why := a.classifyOnce(facts[i])
				wc, wwhy := a.classify(facts[i])
				if c != wc || why != wwhy {
					t.Errorf("pid %d, %s after others of its window: %v %q, classify says %v %q", pid, facts[i].Role, c, why, wc, wwhy)
				}
			}
		}
	}
}
