package guard

import (
	"errors"
	"fmt"
	"os/user"
	"strconv"
	"strings"
	"time"

	"github.com/ipcguard/ipcguard/ipcdiff"
)

// OrphanDecisions reads every object of the namespace with the evidence
// ipcdiff.Orphans needs, and decides. Evidence that could not be gathered
// only keeps objects (ipcdiff.GatherOrphans). Errors are the snapshot's.
func OrphanDecisions(fs ipcdiff.FS, olderThan time.Duration, now time.Time) (*ipcdiff.Snapshot, []ipcdiff.OrphanDecision, error) {
	snap, err := fs.Snapshot(ipcdiff.AllTypes)
	if err != nil {
		return nil, nil, err
	}
	objs := snap.Objects()
	_ = ipcdiff.GatherOrphans(fs, objs)
	return snap, ipcdiff.Orphans(objs, &ipcdiff.LiveProcs{Root: procRoot}, now, olderThan), nil
}

// ListOptions are the options of ls.
type ListOptions struct {
	Types     ipcdiff.TypeSet
	Orphans   bool          // decide on each object (ipcdiff.Orphans)
	OlderThan time.Duration // with Orphans: the least idle time of an orphan
	Now       time.Time
}

// ListedPid is a pid the kernel recorded, with what is known of it now.
type ListedPid struct {
	Pid   int    `json:"pid"`
	Alive bool   `json:"alive"`
	Comm  string `json:"comm,omitempty"`
}

// Listed is one object as ls lists it; its JSON is ls --json's (README,
// "ipcguard ls").
type Listed struct {
	Type     string      `json:"type"`
	ID       int         `json:"id"`
	Key      string      `json:"key"`
	Owner    string      `json:"owner"`
	UID      uint32      `json:"uid"`
	Perms    string      `json:"perms"`
	Size     uint64      `json:"size,omitempty"`   // shm bytes
	Nsems    int         `json:"nsems,omitempty"`  // sem
	Messages uint64      `json:"qnum,omitempty"`   // msg
	Nattch   uint64      `json:"nattch,omitempty"` // shm
	Creator  *ListedPid  `json:"creator,omitempty"`
	LastOp   []ListedPid `json:"last_op,omitempty"`
	Attached []ListedPid `json:"attached_by,omitempty"`
	Ctime    int64       `json:"ctime"`
	AgeSec   int64       `json:"age_seconds"`
	Flags    string      `json:"flags,omitempty"`
	// With Orphans: the verdict (see ipcdiff.OrphanDecision).
	Orphan       *bool    `json:"orphan,omitempty"`
	InUse        *bool    `json:"in_use,omitempty"`
	Class        string   `json:"class,omitempty"`
	Evidence     []string `json:"evidence,omitempty"`
	Reasons      []string `json:"reasons,omitempty"`
	LastActivity int64    `json:"last_activity,omitempty"` // Unix seconds
}

// List reads the objects of opt.Types (never nil), each with who made,
// uses and attaches it. With opt.Orphans each carries its verdict, and
// the decisions on them are returned too; the verdicts rest on every type
// (key families span types). Errors are the snapshot's.
func List(opt ListOptions) ([]Listed, []ipcdiff.OrphanDecision, error) {
	types, now := opt.Types, opt.Now
	fs, _ := ipcdiff.NewFS(procRoot)
	var decided map[ipcdiff.Ident]*ipcdiff.OrphanDecision
	var listed []ipcdiff.OrphanDecision
	var snap *ipcdiff.Snapshot
	var err error
	if opt.Orphans {
		var ds []ipcdiff.OrphanDecision
		snap, ds, err = OrphanDecisions(fs, opt.OlderThan, now)
		if err != nil {
			return nil, nil, err
		}
		decided = map[ipcdiff.Ident]*ipcdiff.OrphanDecision{}
		for i := range ds {
			if types.Has(ds[i].Type) {
				decided[ds[i].Ident] = &ds[i]
				listed = append(listed, ds[i])
			}
		}
		snap = snap.Only(types)
	} else if snap, err = fs.Snapshot(types); err != nil {
		return nil, nil, err
	}
	procs := &ipcdiff.LiveProcs{Root: procRoot}
	pid := func(p int) ListedPid {
		return ListedPid{Pid: p, Alive: procs.Alive(p), Comm: procs.Comm(p)}
	}
	users := map[uint32]string{}
	owner := func(uid uint32) string {
		if n, ok := users[uid]; ok {
			return n
		}
		n := strconv.Itoa(int(uid))
		if u, err := user.LookupId(n); err == nil {
			n = u.Username
		}
		users[uid] = n
		return n
	}
	shmids := map[int]bool{}
	for _, s := range snap.Shm {
		if s.Nattch > 0 {
			shmids[s.ID] = true
		}
	}
	var attachers map[int][]int
	switch {
	case decided != nil:
		// What the decisions rested on, not a second reading.
		attachers = map[int][]int{}
		for id, d := range decided {
			if id.Type == ipcdiff.TypeShm {
				attachers[id.ID] = d.Attachers
			}
		}
	case len(shmids) > 0:
		attachers, _, _ = fs.Attachers(shmids)
	}
	semStates := func(s ipcdiff.Sem) ([]ipcdiff.SemState, error) {
		if d := decided[ipcdiff.Ident{Type: ipcdiff.TypeSem, ID: s.ID, Key: s.Key, CUID: s.CUID}]; d != nil {
			return d.Sems, nil
		}
		return ipcdiff.SemStates(s.ID, s.NSems)
	}
	objs := []Listed{}
	age := func(ctime int64) int64 {
		if ctime <= 0 {
			return 0
		}
		return int64(now.Sub(time.Unix(ctime, 0)).Seconds())
	}
	for _, s := range snap.Shm {
		o := Listed{Type: "shm", ID: s.ID, Key: ipcdiff.KeyString(s.Key), Owner: owner(s.UID), UID: s.UID,
			Perms: fmt.Sprintf("%o", s.Perms&0o777), Size: s.Size, Nattch: s.Nattch, Ctime: s.Ctime, AgeSec: age(s.Ctime)}
		c := pid(s.CPID)
		o.Creator = &c
		if s.LPID > 0 {
			o.LastOp = []ListedPid{pid(s.LPID)}
		}
		for _, p := range attachers[s.ID] {
			o.Attached = append(o.Attached, pid(p))
		}
		if s.Perms&ipcdiff.ShmDest != 0 {
			o.Flags = "dest"
		}
		objs = append(objs, o)
	}
	for _, s := range snap.Sem {
		o := Listed{Type: "sem", ID: s.ID, Key: ipcdiff.KeyString(s.Key), Owner: owner(s.UID), UID: s.UID,
			Perms: fmt.Sprintf("%o", s.Perms&0o777), Nsems: s.NSems, Ctime: s.Ctime, AgeSec: age(s.Ctime)}
		if st, err := semStates(s); err == nil {
			seen := map[int]bool{}
			for _, x := range st {
				if x.Pid > 0 && !seen[x.Pid] {
					seen[x.Pid] = true
					o.LastOp = append(o.LastOp, pid(x.Pid))
				}
			}
		}
		objs = append(objs, o)
	}
	for _, m := range snap.Msg {
		o := Listed{Type: "msg", ID: m.ID, Key: ipcdiff.KeyString(m.Key), Owner: owner(m.UID), UID: m.UID,
			Perms: fmt.Sprintf("%o", m.Perms&0o777), Messages: m.QNum, Ctime: m.Ctime, AgeSec: age(m.Ctime)}
		for _, p := range []int{m.LSPID, m.LRPID} {
			if p > 0 {
				o.LastOp = append(o.LastOp, pid(p))
			}
		}
		objs = append(objs, o)
	}
	if decided == nil {
		return objs, nil, nil
	}
	return withVerdicts(objs, decided), listed, nil
}

// withVerdicts gives each object its decision, and leaves out the objects
// that have none.
func withVerdicts(objs []Listed, decided map[ipcdiff.Ident]*ipcdiff.OrphanDecision) []Listed {
	byID := map[string]*ipcdiff.OrphanDecision{}
	for id, d := range decided {
		byID[fmt.Sprintf("%s %d", id.Type, id.ID)] = d
	}
	rows := []Listed{}
	for _, o := range objs {
		d := byID[fmt.Sprintf("%s %d", o.Type, o.ID)]
		if d == nil {
			continue // appeared between the two readings
		}
		orphan, inUse := d.Orphan, d.InUse
		o.Orphan, o.InUse, o.Class = &orphan, &inUse, d.Class
		o.Evidence, o.Reasons = d.For, d.Against
		if !d.LastActivity.IsZero() {
			o.LastActivity = d.LastActivity.Unix()
		}
		rows = append(rows, o)
	}
	return rows
}

// RmOptions are the options of rm.
type RmOptions struct {
	DryRun    bool
	Force     bool          // remove objects in use too (the identity is still checked)
	Orphans   bool          // remove the objects ls --orphans lists
	OlderThan time.Duration // with Orphans: the least idle time
	Selectors []ipcdiff.Selector
}

// RmResult is what became of one object, or of a selector that named none
// (Selector set, "not found").
type RmResult struct {
	Selector string
	Ident    ipcdiff.Ident
	Outcome  string // "removed", "would remove", "refused, in use: ...", "failed: ..."
	Done     bool   // removed, already gone, or (dry) would be removed
}

// AmbiguousError is a selector that names objects of several types.
type AmbiguousError struct {
	Selector string
	Names    []string // "shm:3", "sem:3"
}

func (e *AmbiguousError) Error() string {
	return fmt.Sprintf("%s names %s: say which", e.Selector, strings.Join(e.Names, " and "))
}

// Rm removes what opt names, refusing objects in use (unless Force): the
// selectors that named nothing first, then one result per object. ok is
// false when something named was not removed. Errors: the snapshot's, and
// *AmbiguousError (then nothing is removed).
func Rm(opt RmOptions) (res []RmResult, ok bool, err error) {
	fs, _ := ipcdiff.NewFS(procRoot)
	_, ds, err := OrphanDecisions(fs, opt.OlderThan, time.Now())
	if err != nil {
		return nil, false, err
	}
	ids := make([]ipcdiff.Ident, len(ds))
	for i := range ds {
		ids[i] = ds[i].Ident
	}
	var todo []*ipcdiff.OrphanDecision
	seen := map[ipcdiff.Ident]bool{}
	ok = true
	if opt.Orphans {
		for i := range ds {
			if ds[i].Orphan {
				todo = append(todo, &ds[i])
			}
		}
	}
	for _, sel := range opt.Selectors {
		if sel.Ambiguous(ids) {
			e := &AmbiguousError{Selector: sel.Text}
			for _, id := range ids {
				if sel.Matches(id) {
					e.Names = append(e.Names, fmt.Sprintf("%s:%d", id.Type, id.ID))
				}
			}
			return nil, false, e
		}
	}
	for _, sel := range opt.Selectors {
		n := 0
		for i := range ds {
			if sel.Matches(ds[i].Ident) {
				n++
				if !seen[ds[i].Ident] {
					seen[ds[i].Ident] = true
					todo = append(todo, &ds[i])
				}
			}
		}
		if n == 0 {
			res = append(res, RmResult{Selector: sel.Text, Outcome: "not found"})
			ok = false
		}
	}
	for _, d := range todo {
		out, done := rmOne(fs, d, opt)
		res = append(res, RmResult{Ident: d.Ident, Outcome: out, Done: done})
		ok = ok && done
	}
	return res, ok, nil
}

// rmOne removes one object (or says what it would do) and returns what
// became of it and whether it was removed (or would be).
func rmOne(fs ipcdiff.FS, d *ipcdiff.OrphanDecision, opt RmOptions) (string, bool) {
	forced := ""
	if d.InUse && opt.Force {
		forced = " (in use: " + strings.Join(d.InUseWhy, "; ") + ")"
	}
	if opt.DryRun {
		if d.InUse && !opt.Force {
			return "would refuse, in use: " + strings.Join(d.InUseWhy, "; "), false
		}
		return "would remove" + forced, true
	}
	out, err := ipcdiff.RemoveUnused(fs, *d, opt.Force)
	switch out.Result {
	case ipcdiff.Removed, ipcdiff.RemovedDeferred:
		return out.Result.String() + forced, true
	case ipcdiff.AlreadyGone:
		return "already gone", true
	case ipcdiff.InUse:
		return "refused, in use: " + out.Why, false
	case ipcdiff.Changed:
		return fmt.Sprintf("kept: the id now names another object (key %s, creator uid %d)", ipcdiff.KeyString(out.Found.Key), out.Found.CUID), false
	case ipcdiff.Touched:
		return "kept: changed since the decision (" + out.Why + ")", false
	}
	var e error = err
	for u := errors.Unwrap(e); u != nil; u = errors.Unwrap(e) {
		e = u
	}
	if e == nil {
		e = out.Err
	}
	return "failed: " + fmt.Sprint(e), false
}
