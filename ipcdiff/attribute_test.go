package ipcdiff

import (
	"strings"
	"testing"
	"time"
)

// fakeTree is a tree tracker's answer: spans of membership per pid.
type fakeTree struct {
	spans   map[int][2]int64 // pid -> [start, end) in unix seconds; end 0 = alive
	exact   bool
	tracked bool
	created map[int]bool
	alive   []int
}

func (t fakeTree) Member(pid int, from, to time.Time) (bool, bool) {
	s, ok := t.spans[pid]
	if !ok {
		return false, t.exact
	}
	start, end := time.Unix(s[0], 0), time.Unix(s[1], 0)
	if start.After(to.Add(time.Second)) || (s[1] != 0 && end.Before(from.Add(-time.Second))) {
		return false, t.exact
	}
	return true, t.exact
}
func (t fakeTree) Created(typ string, id int) (bool, bool) { return t.created[id], t.tracked }
func (t fakeTree) Alive() []int                            { return t.alive }

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
	return Object{Ident: Ident{Type: TypeShm, ID: 7, Key: 0x1234}, Shm: &Shm{Key: 0x1234, ID: 7, Perms: 0o600,
		CPID: cpid, LPID: lpid, Nattch: nattch, UID: uid, GID: uid, CUID: uid, CGID: uid, Ctime: t0 + 2, Atime: t0 + 3}}
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
	return Object{Ident: Ident{Type: TypeMsg, ID: 9}, Msg: &Msg{ID: 9, Perms: 0o600, LSPID: lspid, LRPID: lrpid,
		UID: uid, GID: uid, CUID: uid, CGID: uid, Stime: t0 + 3, Rtime: t0 + 3, Ctime: t0 + 2}}
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
		{name: "creation seen", objs: []Object{sem()}, tree: func(t *fakeTree) { t.tracked, t.created = true, map[int]bool{8: true} },
			pol: func(p *Policy) { p.Strict = true }, remove: true, strength: CreationSeen},
		{name: "keyed object obtained by the tree is only use", objs: []Object{otherKey}, tree: func(t *fakeTree) { t.tracked, t.created = true, map[int]bool{8: true} },
			remove: true, strength: PidEvidence},
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
		{name: "member pid reused by a live stranger before the action", objs: []Object{shm(outside, 0, 0)},
			tree: func(t *fakeTree) { t.spans[outside] = [2]int64{t0, t0 + 1} }, reason: "running outside the tree"},
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
		tree := baseTree()
		tree.exact = exact
		for _, a := range pids {
			for _, b := range pids {
				for _, n := range []uint64{0, 1} {
					objs := []Object{shm(a, b, n), sem(a, b), msg(a, b)}
					ds, _ := Attribute(objs, tree, procs, policy())
					for _, d := range ds {
						if !d.Remove {
							continue
						}
						if d.Strength == NoEvidence || len(d.Against) > 0 {
							t.Fatalf("%v removed with strength %v, against %q", d.Ident, d.Strength, d.Against)
						}
						for _, p := range []int{a, b} {
							if p == outside || (p == unseen && d.Type != TypeShm) {
								t.Fatalf("%v removed though pid %d is foreign or unknown (exact %v)", d.Ident, p, exact)
							}
						}
					}
				}
			}
		}
	}
}
