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
func OrphanDecisions(fs ipcdiff.FS, olderThan time.Duration, now time.Time) ([]ipcdiff.OrphanDecision, error) {
	snap, err := fs.Snapshot(ipcdiff.AllTypes)
	if err != nil {
		return nil, err
	}
	objs := snap.Objects()
	_ = ipcdiff.GatherOrphans(fs, objs)
	return ipcdiff.Orphans(objs, &ipcdiff.LiveProcs{Root: procRoot}, now, olderThan), nil
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
// "ipcguard ls"). A System V object has an id and a key; a named (POSIX)
// object a name, and its inode number as id.
type Listed struct {
	Type     string      `json:"type"`
	ID       int         `json:"id"`
	Key      string      `json:"key,omitempty"`
	Name     string      `json:"name,omitempty"`
	Owner    string      `json:"owner"`
	UID      uint32      `json:"uid"`
	Perms    string      `json:"perms"`
	Size     uint64      `json:"size,omitempty"`   // bytes
	Nsems    int         `json:"nsems,omitempty"`  // sem
	Messages uint64      `json:"qnum,omitempty"`   // a queue's messages
	Queue    bool        `json:"-"`                // a queue: Messages is its size
	Nattch   uint64      `json:"nattch,omitempty"` // shm
	Creator  *ListedPid  `json:"creator,omitempty"`
	LastOp   []ListedPid `json:"last_op,omitempty"`
	Attached []ListedPid `json:"attached_by,omitempty"` // the live processes that attach, hold or map it
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
// uses and attaches it (ipcdiff.GatherOrphans, Object.Listing). With
// opt.Orphans each carries its verdict, and the decisions on them are
// returned too; the verdicts rest on every type (key families span
// types). Errors are the snapshot's.
func List(opt ListOptions) ([]Listed, []ipcdiff.OrphanDecision, error) {
	types, now := opt.Types, opt.Now
	fs, _ := ipcdiff.NewFS(procRoot)
	fs = fs.OpenPosix(shmDir)
	defer fs.ClosePosix()
	var objs []ipcdiff.Object
	var decided []*ipcdiff.OrphanDecision
	var listed []ipcdiff.OrphanDecision
	if opt.Orphans {
		ds, err := OrphanDecisions(fs, opt.OlderThan, now)
		if err != nil {
			return nil, nil, err
		}
		// What the decisions rested on, not a second reading.
		for i := range ds {
			if types.Has(ds[i].Type) {
				objs = append(objs, ds[i].Object)
				decided = append(decided, &ds[i])
				listed = append(listed, ds[i])
			}
		}
	} else {
		snap, err := fs.Snapshot(types)
		if err != nil {
			return nil, nil, err
		}
		objs = snap.Objects()
		_ = ipcdiff.GatherOrphans(fs, objs) // what could not be read is not shown
	}
	procs := &ipcdiff.LiveProcs{Root: procRoot}
	pid := func(p int) ListedPid {
		return ListedPid{Pid: p, Alive: procs.Alive(p), Comm: procs.Comm(p)}
	}
	pids := func(ps []int) []ListedPid {
		var out []ListedPid
		for _, p := range ps {
			out = append(out, pid(p))
		}
		return out
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
	age := func(ctime int64) int64 {
		if ctime <= 0 {
			return 0
		}
		return int64(now.Sub(time.Unix(ctime, 0)).Seconds())
	}
	rows := make([]Listed, 0, len(objs))
	for i := range objs {
		o := &objs[i]
		l := o.Listing()
		r := Listed{Type: o.Type.String(), ID: o.ID, Name: o.Name, Owner: owner(l.UID), UID: l.UID,
			Perms: fmt.Sprintf("%o", l.Perms), Size: l.Size, Nsems: l.NSems, Messages: l.Messages, Queue: l.Queue,
			Nattch: l.Nattch, LastOp: pids(l.LastOp), Attached: pids(l.Users), Ctime: l.Ctime, AgeSec: age(l.Ctime), Flags: l.Flags}
		if o.Name == "" {
			r.Key = ipcdiff.KeyString(o.Key)
		}
		if l.HasCreator {
			c := pid(l.Creator)
			r.Creator = &c
		}
		if decided != nil {
			withVerdict(&r, decided[i])
		}
		rows = append(rows, r)
	}
	return rows, listed, nil
}

// withVerdict gives r the decision d.
func withVerdict(r *Listed, d *ipcdiff.OrphanDecision) {
	orphan, inUse := d.Orphan, d.InUse
	r.Orphan, r.InUse, r.Class = &orphan, &inUse, d.Class
	r.Evidence, r.Reasons = d.For, d.Against
	if !d.LastActivity.IsZero() {
		r.LastActivity = d.LastActivity.Unix()
	}
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
	fs = fs.OpenPosix(shmDir)
	defer fs.ClosePosix()
	ds, err := OrphanDecisions(fs, opt.OlderThan, time.Now())
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
