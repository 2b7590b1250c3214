package guard

import (
	"fmt"
	"slices"
	"time"

	"github.com/ipcguard/ipcguard/internal/spread"
	"github.com/ipcguard/ipcguard/ipcdiff"
	"github.com/ipcguard/ipcguard/supervisor"
)

// judgement is what the stage after the command needs, for a run and for
// a sweep alike.
type judgement struct {
	fs        ipcdiff.FS
	before    ipcdiff.IdentSet // the objects before the command
	beforeLen int              // how many
	start     time.Time        // when they were read: the window's start
	// clean is false when nothing is to be removed: the new objects are
	// then only listed, kept with the report's reason.
	clean  bool
	dryRun bool
	// policy is the user's part of the attribution policy; judge adds
	// the window, the keys of the other objects and the contention.
	policy ipcdiff.Policy
	procs  ipcdiff.Procs
	// tree is called once every action the evidence records happened: it
	// returns the tree to decide with and what the pid watch covered.
	tree func() (ipcdiff.Tree, supervisor.Watch)
	// contended says, then, whether window evidence is off for reasons
	// the objects cannot show (another run overlapped), and why.
	contended func() (bool, string)
	// posix, when not nil, adds to the policy what the run learned for
	// its POSIX objects (creations seen, POSIX contention); it is called
	// after the snapshot after and after tree.
	posix func(p *ipcdiff.Policy, tree ipcdiff.Tree)
	warn  func(format string, args ...any)
}

// judge is the stage after the command: it reads the objects again,
// takes the new ones, gathers their evidence, lets segments a process that
// just exited still seemed to hold settle, attributes them, removes what
// the evidence gives to the tree (or, dry, says it would), and records
// every new object in rep (Objects, counts, Snapshot, Window, Tracker's pid
// watch, Timings from *clock on). The error is the failure of the second
// reading (nothing is decided then).
func (j *judgement) judge(rep *Report, clock *time.Time) error {
	types := j.policy.Types
	// The kinds in parallel: a scan holds no read buffer, and /proc is
	// read chunk by chunk (ipcdiff.FS.Snapshot).
	after, err := j.fs.Snapshot(types)
	rep.Timings.SnapshotAfter = since(clock)
	if err != nil {
		return err
	}
	for t := range types.All() {
		if err := after.Unread[t]; err != nil {
			// Read before, not now (an mqueue mount that could not be
			// proven ours): its new objects are kept unseen.
			j.warn("%s objects not read after the command, none removed: %s", t, ipcdiff.ErrText(err))
		}
	}
	objs := ipcdiff.DiffIdents(j.before, after)
	rep.Snapshot = ReportSnapshot{Before: j.beforeLen, After: after.Len(), New: len(objs)}
	rep.Window.Start, rep.Window.End = j.start, after.Taken
	if !j.clean {
		for _, o := range objs {
			rep.Objects = append(rep.Objects, newReportObject(ipcdiff.Decision{Object: o, Reason: rep.Why}, ActKept, ""))
			rep.Kept++
		}
		return nil
	}
	if len(objs) == 0 {
		return nil
	}
	if err := ipcdiff.Gather(j.fs, objs); err != nil {
		j.warn("gathering evidence: %v", err)
	}
	after, objs = settle(j.fs, types, j.before, after, objs)
	end := time.Now()
	tree, w := j.tree()
	rep.Tracker.PidWatch = newReportWatch(w)
	pol := j.policy
	pol.Start, pol.End = j.start, end
	pol.ClockSlack = max(clockDrift(j.start, end), w.Drift)
	others(j.fs, types, after, objs, &pol)
	pol.PosixAfter = ipcdiff.PosixBirths(after)
	pol.Contended, pol.ContendedWhy = j.contended()
	if j.posix != nil {
		j.posix(&pol, tree)
	}
	decisions, contended := ipcdiff.Attribute(objs, tree, j.procs, pol)
	ipcdiff.SortDecisions(decisions)
	rep.Window.Contended, rep.Window.Why = contended != "", contended
	rep.Timings.Attribute = since(clock)
	applyDecisions(j.fs, decisions, j.dryRun, rep)
	rep.Timings.Remove = since(clock)
	return nil
}

// unsettled reports whether a new segment counts an attach that no
// process shows in /proc/PID/maps: a process that just exited detaches
// its segments when its memory is torn down, which the kernel defers
// while anyone (a reader of /proc/PID/maps, this process included) holds
// a reference to it.
func unsettled(objs []ipcdiff.Object) bool {
	for i := range objs {
		if objs[i].Sem != nil || objs[i].Msg != nil {
			continue // sets and queues have no users
		}
		for _, u := range objs[i].Evidence().Users {
			if u.Count > 0 && len(u.Pids) == 0 {
				return true
			}
		}
	}
	return false
}

// settle gives such segments a moment (up to settleFor) and then reads the
// namespace again; an attach that is still there is kept as it is, so
// this only spares a segment a process that has gone still seemed to hold.
func settle(fs ipcdiff.FS, types ipcdiff.TypeSet, before ipcdiff.IdentSet, after *ipcdiff.Snapshot, objs []ipcdiff.Object) (*ipcdiff.Snapshot, []ipcdiff.Object) {
	for deadline := time.Now().Add(settleFor); unsettled(objs) && time.Now().Before(deadline); {
		time.Sleep(settleFor / 10)
		a, err := fs.SnapshotWith(types, false)
		if err != nil {
			break
		}
		o := ipcdiff.DiffIdents(before, a)
		ipcdiff.Gather(fs, o)
		after, objs = a, o
	}
	return after, objs
}

// settleFor bounds the wait of settle.
const settleFor = 250 * time.Millisecond

// clockDrift is how far the wall clock moved against the monotonic clock
// between two readings of time.Now: a step or slew of the clock that the
// kernel's time stamps followed and the tracker's times did not. It is 0
// when from has no monotonic reading (a time from a journal).
func clockDrift(from, to time.Time) time.Duration {
	return (to.Round(0).Sub(from.Round(0)) - to.Sub(from)).Abs()
}

// others fills in, for pol, the families (keys, names) of the objects of
// after that are not candidates (a new object that shares one is kept
// with it), and the sign that processes this pid namespace cannot see use
// the IPC namespace (ipcdiff.Others), which turns window evidence off.
// The families of the types not read (--types) are added too: a set of
// key K stays a family with a segment of key K whatever types the run
// may remove.
func others(fs ipcdiff.FS, read ipcdiff.TypeSet, after *ipcdiff.Snapshot, objs []ipcdiff.Object, pol *ipcdiff.Policy) {
	ids := make([]ipcdiff.Ident, len(objs))
	for i := range objs {
		ids[i] = objs[i].Ident
	}
	// The names the run saw before it (pol.OtherNames on entry) stay
	// families too: a name removed and made again during the run is the
	// same key.
	before := pol.OtherNames
	pol.OtherKeys, pol.OtherNames, pol.Invisible = ipcdiff.Others(after, ipcdiff.NewIdents(ids))
	if pol.OtherNames == nil {
		pol.OtherNames = map[string]string{}
	}
	addNames(pol.OtherNames, before)
	rest := ipcdiff.AllTypes &^ read
	if rest == 0 {
		return
	}
	s, err := fs.SnapshotWith(rest, false)
	if err != nil {
		return
	}
	keys, names, _ := ipcdiff.Others(s, nil)
	addNames(pol.OtherNames, names)
	for k, v := range keys {
		if _, ok := pol.OtherKeys[k]; !ok {
			pol.OtherKeys[k] = v
		}
	}
}

// addNames adds to dst the families of src it does not hold yet.
func addNames(dst, src map[string]string) {
	for n, v := range src {
		if _, ok := dst[n]; !ok {
			dst[n] = v
		}
	}
}

// applyDecisions removes (or, dry, would remove) what the decisions give to
// the tree, and records every object in the report, in the decisions'
// order.
func applyDecisions(fs ipcdiff.FS, ds []ipcdiff.Decision, dryRun bool, rep *Report) {
	var outs []removal
	if !dryRun {
		outs = removeAll(fs, ds)
	}
	rep.Objects = slices.Grow(rep.Objects, len(ds))
	for i, d := range ds {
		switch {
		case !d.Remove:
			rep.Objects = append(rep.Objects, newReportObject(d, ActKept, ""))
			rep.Kept++
		case dryRun:
			rep.Objects = append(rep.Objects, newReportObject(d, ActWouldRemove, ""))
		default:
			action, errText := outs[i].action, outs[i].errText
			rep.Objects = append(rep.Objects, newReportObject(d, action, errText))
			switch action {
			case ActRemoved:
				rep.Removed++
			case ActFailed:
				rep.Failed++
			default:
				rep.Kept++
			}
		}
	}
}

// removal is how the removal of one object went, for the report.
type removal struct{ action, errText string }

// parallelRemovals is the least number of removals that removeAll spreads
// over several threads.
const parallelRemovals = 256

// removeAll removes the objects of ds that are to be removed, each with its
// own re-check (removeOne), and returns how each went (indexed as ds). The
// objects are independent of one another: each re-check reads its own
// object and IPC_RMID or unlinkat acts on it alone. Many of them are spread
// over up to four threads, one per CPU: the re-check of a semaphore set
// reads each semaphore's pid and waiters with one semctl(2) each, and the
// kernel runs those side by side (ipc/sem.c takes the set's own lock);
// only IPC_RMID takes the namespace's lock of its type for writing. Every
// thread of this process is in the same IPC namespace (ipcguard never
// calls setns(2)): the spread threads act where the caller's would.
func removeAll(fs ipcdiff.FS, ds []ipcdiff.Decision) []removal {
	outs := make([]removal, len(ds))
	todo := make([]int, 0, len(ds))
	for i := range ds {
		if ds[i].Remove {
			todo = append(todo, i)
		}
	}
	spread.Each(len(todo), parallelRemovals, 4, func(n int) {
		i := todo[n]
		outs[i].action, outs[i].errText = removeOne(fs, ds[i])
	})
	return outs
}

// removeOne removes one object and says how it went, for the report.
func removeOne(fs ipcdiff.FS, d ipcdiff.Decision) (action, errText string) {
	out, err := ipcdiff.Remove(fs, d.Object)
	switch out.Result {
	case ipcdiff.Removed, ipcdiff.RemovedDeferred, ipcdiff.AlreadyGone:
		return ActRemoved, ""
	case ipcdiff.Changed:
		if d.Name != "" {
			return ActKept, fmt.Sprintf("the name %s now names another file (inode %d): left alone", d.Name, out.Found.ID)
		}
		return ActKept, fmt.Sprintf("id %d now names another object (key %s, creator uid %d): left alone",
			d.ID, ipcdiff.KeyString(out.Found.Key), out.Found.CUID)
	case ipcdiff.Touched:
		return ActKept, "changed since the decision (" + out.Why + "): left alone"
	case ipcdiff.Refused:
		return ActKept, "removal refused (" + out.Why + "): left alone"
	case ipcdiff.ReplacedRemoved:
		// Not the object decided on: say so, as a failure.
		return ActFailed, out.Why
	}
	if err == nil {
		err = out.Err
	}
	return ActFailed, ipcdiff.ErrText(err)
}
