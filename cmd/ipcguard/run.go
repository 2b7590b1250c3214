package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/ipcguard/ipcguard/internal/journal"
	"github.com/ipcguard/ipcguard/ipcdiff"
	"github.com/ipcguard/ipcguard/supervisor"
	"golang.org/x/sys/unix"
)

// procRoot is where proc is mounted.
const procRoot = "/proc"

// wantCleanup applies the --on policy to the command's status.
func wantCleanup(on string, ws unix.WaitStatus) (bool, string) {
	how := statusText(ws)
	switch {
	case on == "never":
		return false, "--on never"
	case on == "always":
		return true, "--on always (" + how + ")"
	case failed(ws):
		return true, "command failed (" + how + ")"
	}
	return false, "command succeeded (--on failure)"
}

// failed: a non-zero exit status or death by a signal.
func failed(ws unix.WaitStatus) bool { return ws.Signaled() || ws.ExitStatus() != 0 }

// statusText says how a process ended: "exit status 3", "killed by SIGTERM".
func statusText(ws unix.WaitStatus) string {
	if ws.Signaled() {
		return "killed by " + unix.SignalName(ws.Signal())
	}
	return fmt.Sprintf("exit status %d", ws.ExitStatus())
}

// guard runs the command under supervision and cleans up after it. It
// returns the status ipcguard must end with.
func guard(cfg config, stderr io.Writer) unix.WaitStatus {
	logf := func(format string, args ...any) { fmt.Fprintf(stderr, "ipcguard: "+format+"\n", args...) }

	sink, err := openReport(cfg.report)
	if err != nil {
		logf("%s", err)
		return exited(exitUsage)
	}
	rep := &Report{Version: 1, Command: cfg.argv, Policy: reportPolicy{On: cfg.on, DryRun: cfg.dryRun,
		Strict: cfg.strict, Types: cfg.types.String(), KeepKeys: keyStrings(cfg.keepKeys),
		OwnKeys: ownKeyStrings(cfg.ownKeys, cfg.ownAll)},
		Objects: []reportObj{}, Descendants: reportDesc{Terminated: []int{}, Killed: []int{}, Remaining: []int{}}}
	// notRun ends a run whose command never ran: one line, and a report
	// that says so (the old one is gone).
	notRun := func(code int, err error) unix.WaitStatus {
		msg := oneLine(err)
		logf("%s", msg)
		if sink != nil {
			setStatus(rep, exited(code))
			rep.Why = "the command did not run"
			rep.Warnings = append(rep.Warnings, msg)
			if err := sink.write(rep, stderr); err != nil {
				logf("writing the report: %v", err)
			}
		}
		return exited(code)
	}
	msink, err := openMetrics(cfg.metrics)
	if err != nil {
		logf("%s", err)
		return exited(exitUsage)
	}
	path, err := supervisor.LookPath(cfg.argv[0], os.Environ())
	if err != nil {
		var ee *supervisor.ExecError
		if errors.As(err, &ee) {
			return notRun(ee.Code, ee)
		}
		return notRun(exitUsage, err)
	}
	if cfg.sweepFirst {
		if _, err := sweepAll(sweepConfig{stateDir: cfg.stateDir, quiet: cfg.quiet}, stderr); err != nil {
			logf("sweep: %v", oneLine(err))
		}
	}

	// Catching the signals to forward takes a few milliseconds: let it
	// overlap with the snapshot and the journal.
	supervisor.Prepare()

	fs, _ := ipcdiff.NewFS(procRoot)
	warn := func(format string, args ...any) {
		msg := fmt.Sprintf(format, args...)
		rep.Warnings = append(rep.Warnings, msg)
		logf("%s", msg)
	}

	clock := time.Now()
	// The pid watch begins before the snapshot: every process that acts on
	// an object new since the snapshot is then either listed by the watch
	// or got its pid while the watch looked (docs/evidence.md).
	watch := supervisor.StartPidWatch(procRoot)
	defer watch.Stop(nil)
	before, err := fs.Snapshot(cfg.types)
	rep.Timings.SnapshotBefore = since(&clock)
	if err != nil {
		warn("cannot read /proc/sysvipc (%v): running the command without IPC cleanup", err)
		before = nil
	}
	var jr *journal.Journal
	if before != nil {
		jr = beginJournal(cfg, before, warn)
	}
	if jr != nil {
		jr.Namespaces(namespaces())
		jr.Pre(watch.Pre())
		watch.Journal(func(c supervisor.Crossing, st supervisor.CursorState) {
			jr.Watch(journal.Crossing{From: c.From, To: c.To, Lo: c.Lo, Hi: c.Hi, All: c.All},
				journal.Cursor{Cursor: st.Cursor, Threads: st.Threads, ForksLo: st.ForksLo, ForksHi: st.ForksHi, PidMax: st.PidMax})
		})
	}
	rep.Timings.Journal = since(&clock)
	// From here on only the identities of the objects before are needed.
	var beforeIDs ipcdiff.Idents
	var beforeTaken time.Time
	if before != nil {
		beforeIDs, beforeTaken = ipcdiff.IdentsOf(before), before.Taken
		before = nil
	}
	haveBefore := beforeIDs != nil
	if jr != nil {
		// When the journal is compacted, the stays of the pids that name
		// a candidate object are kept first.
		jr.Retain(func() []int { return candidatePids(fs, cfg.types, beforeIDs) })
	}

	opts := supervisor.Options{
		Path: path, Args: cfg.argv, Env: commandEnv(os.Environ()),
		Tracker: cfg.tracker, TrackCreation: cfg.creation && haveBefore, CreationSeccomp: cfg.seccomp && haveBefore,
		Grace: cfg.grace, KillAfter: cfg.killAfter, WaitDescendants: cfg.waitAll,
		// Leftover descendants are ended only when the command failed and
		// its objects are to be cleaned; after a success they are left
		// alone (under --on always, what they still use is then kept).
		Terminate: func(ws unix.WaitStatus) bool {
			clean, _ := wantCleanup(cfg.on, ws)
			return clean && failed(ws) && !cfg.leave && haveBefore
		},
		Logf: func(format string, args ...any) { logf(format, args...) },
	}
	if jr != nil {
		opts.Started = func(pid int, at time.Time) {
			st, _ := journal.ProcessStart(pid)
			jr.Command(pid, st, at)
			// The command's own pid hand-out goes into the journal now:
			// a sweep after an early SIGKILL needs it.
			watch.Mark()
		}
		opts.Joined, opts.Left = jr.Join, jr.Leave
		opts.Got = func(typ string, id int, proven bool, at time.Time) {
			if t, err := ipcdiff.ParseType(typ); err == nil {
				jr.Got(t, id, proven, at)
			}
		}
	}
	res, err := supervisor.Run(opts)
	rep.Timings.Command = since(&clock)
	if err != nil {
		if jr != nil {
			jr.Done()
		}
		var ee *supervisor.ExecError
		if errors.As(err, &ee) {
			return notRun(ee.Code, ee)
		}
		return notRun(exitInternalErr, err)
	}
	rep.Pid = res.Pid
	setStatus(rep, res.Status)
	rep.Descendants = reportDesc{Terminated: nonNil(res.Terminated), Killed: nonNil(res.Killed), Remaining: nonNil(res.Remaining)}
	tree := res.Tree
	rep.Tracker = reportTree{Name: tree.Tracker, Exact: tree.Exact, CreationTracked: tree.CreationTracked,
		Pids: len(tree.Pids()), Note: tree.Note}
	if cfg.creation && haveBefore && !tree.CreationTracked {
		// Asked for, and not complete (events lost, sampling throttled,
		// not root): creations it missed prove nothing either way.
		warn("creation tracking was incomplete (%s): objects it did not see made are judged on the other evidence", orNone(tree.Note))
	}

	clean, why := wantCleanup(cfg.on, res.Status)
	if cfg.waitAll {
		for _, o := range res.Outlived {
			if !failed(o.Status) {
				continue
			}
			logf("pid %d, left running by the command, %s", o.Pid, statusText(o.Status))
			if !clean && cfg.on == "failure" {
				clean, why = true, fmt.Sprintf("pid %d, left running by the command, failed (%s)", o.Pid, statusText(o.Status))
			}
		}
	}
	rep.Cleanup, rep.Why = clean && haveBefore, why
	if haveBefore && (clean || sink != nil || msink != nil) {
		cleanupAfter(cfg, fs, beforeIDs, beforeTaken, res, watch, jr, rep, clean, warn, clock)
	}
	if jr != nil {
		if err := jr.Err(); err != nil {
			warn("the run journal is incomplete (%v): had ipcguard been killed, 'ipcguard sweep' would have had less to go on", err)
		}
		if err := jr.Done(); err != nil {
			warn("removing the run journal: %v", err)
		}
	}
	if sink != nil {
		if err := sink.write(rep, stderr); err != nil {
			logf("writing the report: %v", err)
		}
	}
	if !cfg.quiet && rep.Cleanup {
		if line := summary(rep, cfg.report); line != "" {
			fmt.Fprintln(stderr, line)
		}
	}
	msink.writeRun(rep, res.Status, stderr)
	return res.Status
}

// runOnlyVars are the IPCGUARD_* variables that describe this one run, not
// a policy: the command line and the report file. They are taken out of the
// command's environment, so that an ipcguard nested in the command runs its
// own command and writes no report over ours. Every other IPCGUARD_*
// variable reaches the command and so configures nested runs alike.
var runOnlyVars = []string{"IPCGUARD_CMD", "IPCGUARD_REPORT"}

// commandEnv is env without runOnlyVars.
func commandEnv(env []string) []string {
	out := make([]string, 0, len(env))
next:
	for _, kv := range env {
		for _, v := range runOnlyVars {
			if strings.HasPrefix(kv, v+"=") {
				continue next
			}
		}
		out = append(out, kv)
	}
	return out
}

func nonNil(p []int) []int {
	if p == nil {
		return []int{}
	}
	return p
}

// ownKeyStrings lists the declared keys for the report: nil when none,
// "all" first when every key is declared.
func ownKeyStrings(keys map[int32]bool, all bool) []string {
	if len(keys) == 0 && !all {
		return nil
	}
	out := keyStrings(keys)
	if all {
		out = append([]string{"all"}, out...)
	}
	return out
}

func keyStrings(keys map[int32]bool) []string {
	out := []string{}
	for k := range keys {
		out = append(out, ipcdiff.KeyString(k))
	}
	sort.Strings(out)
	return out
}

func beginJournal(cfg config, before *ipcdiff.Snapshot, warn func(string, ...any)) *journal.Journal {
	dir, note, err := journal.StateDirNote(cfg.stateDir)
	if note != "" {
		warn("%s", note)
	}
	if err != nil {
		warn("no run journal (%v): a crash of ipcguard would leave no record for 'ipcguard sweep'", err)
		return nil
	}
	self, _ := journal.SelfStart()
	keys := make([]int32, 0, len(cfg.keepKeys))
	for k := range cfg.keepKeys {
		keys = append(keys, k)
	}
	h := journal.Header{Version: 1, SupervisorPid: os.Getpid(), SupervisorStart: self,
		UID: uint32(os.Geteuid()), GID: uint32(os.Getegid()), Started: before.Taken, Types: cfg.types,
		Argv: cfg.argv, Strict: cfg.strict, KeepKeys: keys, OnPolicy: cfg.on,
		Registries: journal.DefaultRegistries(os.Geteuid())}
	j, err := journal.Begin(dir, h, before)
	if err != nil {
		warn("no run journal (%v): a crash of ipcguard would leave no record for 'ipcguard sweep'", err)
		return nil
	}
	if len(cfg.ownKeys) > 0 || cfg.ownAll {
		own := make([]int32, 0, len(cfg.ownKeys))
		for k := range cfg.ownKeys {
			own = append(own, k)
		}
		j.OwnKeys(own, cfg.ownAll)
	}
	return j
}

// candidatePids lists the pids that name an object new since the snapshot
// before: creator and last attach/detach of a segment, each semaphore's
// last operation, last send and receive of a queue. Objects it cannot read
// name fewer pids (only the journal's compaction uses it).
func candidatePids(fs ipcdiff.FS, types ipcdiff.TypeSet, before ipcdiff.Idents) []int {
	after, err := fs.SnapshotWith(types, false)
	if err != nil {
		return nil
	}
	objs := ipcdiff.DiffIdents(before, after)
	ipcdiff.Enrich(objs)
	var pids []int
	for _, o := range objs {
		switch {
		case o.Shm != nil:
			pids = append(pids, o.Shm.CPID, o.Shm.LPID)
		case o.Msg != nil:
			pids = append(pids, o.Msg.LSPID, o.Msg.LRPID)
		}
		for _, s := range o.Sems {
			pids = append(pids, s.Pid)
		}
	}
	return pids
}

// cleanupAfter takes the second snapshot, attributes the new objects and,
// when clean is set, removes those the evidence gives to the tree.
func cleanupAfter(cfg config, fs ipcdiff.FS, before ipcdiff.Idents, beforeTaken time.Time, res *supervisor.Result,
	watch *supervisor.PidWatch, jr *journal.Journal, rep *Report, clean bool, warn func(string, ...any), clock time.Time) {
	// The command has ended: memory matters more than latency now.
	after, err := fs.SnapshotWith(cfg.types, false)
	rep.Timings.SnapshotAfter = since(&clock)
	if err != nil {
		warn("cannot read /proc/sysvipc after the run (%v): nothing removed", err)
		return
	}
	objs := ipcdiff.DiffIdents(before, after)
	rep.Snapshot = reportSnap{Before: len(before), After: after.Len(), New: len(objs)}
	rep.Window.Start, rep.Window.End = beforeTaken, after.Taken
	if !clean {
		for _, o := range objs {
			rep.Objects = append(rep.Objects, newReportObj(ipcdiff.Decision{Object: o, Reason: rep.Why}, actKept, ""))
			rep.Kept++
		}
		return
	}
	if len(objs) == 0 {
		return
	}
	if err := ipcdiff.Gather(fs, objs); err != nil {
		warn("gathering evidence: %v", err)
	}
	after, objs = settle(fs, cfg.types, before, after, objs)
	// Every action the evidence records happened by now: the watch may stop.
	gathered := time.Now()
	w := watch.Stop(res.Tree.Pids())
	res.Tree.SetWatch(w)
	rep.Tracker.PidWatch = newReportWatch(w)
	pol := ipcdiff.Policy{Types: cfg.types, KeepKeys: cfg.keepKeys, Strict: cfg.strict,
		OwnKeys: cfg.ownKeys, OwnAllKeys: cfg.ownAll,
		UID: uint32(os.Geteuid()), GID: uint32(os.Getegid()), Start: beforeTaken, End: gathered,
		ClockSlack: max(clockDrift(beforeTaken, gathered), w.Drift)}
	pol.OtherKeys, pol.Invisible = others(after, objs)
	otherTypeKeys(fs, cfg.types, pol.OtherKeys)
	if jr != nil {
		pol.Contended, pol.ContendedWhy = jr.Overlapped()
	} else {
		pol.Contended, pol.ContendedWhy = true, "no state directory to tell whether other runs overlapped"
	}
	decisions, contended := ipcdiff.Attribute(objs, res.Tree, &ipcdiff.LiveProcs{Root: procRoot}, pol)
	ipcdiff.SortDecisions(decisions)
	rep.Window.Contended, rep.Window.Why = contended != "", contended
	rep.Timings.Attribute = since(&clock)
	applyDecisions(fs, decisions, cfg.dryRun, rep)
	rep.Timings.Remove = since(&clock)
}

// unsettled reports whether a new segment counts an attach that no
// process shows in /proc/PID/maps: a process that just exited detaches
// its segments when its memory is torn down, which the kernel defers
// while anyone (a reader of /proc/PID/maps, this process included) holds
// a reference to it.
func unsettled(objs []ipcdiff.Object) bool {
	for _, o := range objs {
		if o.Shm != nil && o.Shm.Nattch > 0 && len(o.Attachers) == 0 {
			return true
		}
	}
	return false
}

// settle gives such segments a moment (up to settleFor) and then reads the
// namespace again; an attach that is still there is kept as it is, so
// this only spares a segment a process that has gone still seemed to hold.
func settle(fs ipcdiff.FS, types ipcdiff.TypeSet, before ipcdiff.Idents, after *ipcdiff.Snapshot, objs []ipcdiff.Object) (*ipcdiff.Snapshot, []ipcdiff.Object) {
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

// orNone is s, or "no reason given".
func orNone(s string) string {
	if s == "" {
		return "no reason given"
	}
	return s
}

// clockDrift is how far the wall clock moved against the monotonic clock
// between two readings of time.Now: a step or slew of the clock that the
// kernel's time stamps followed and the tracker's times did not.
func clockDrift(from, to time.Time) time.Duration {
	return (to.Round(0).Sub(from.Round(0)) - to.Sub(from)).Abs()
}

// others describes the objects of after that are not candidates: their
// keys (a new object that shares one is kept with it), and a sign that
// processes this pid namespace cannot see use the IPC namespace (a segment
// whose creator reads 0), which turns window evidence off.
func others(after *ipcdiff.Snapshot, objs []ipcdiff.Object) (keys map[int32]string, invisible string) {
	isNew := make(map[ipcdiff.Ident]bool, len(objs))
	for _, o := range objs {
		isNew[o.Ident] = true
	}
	keys = map[int32]string{}
	note := func(id ipcdiff.Ident) {
		if id.Key != 0 && !isNew[id] {
			if _, ok := keys[id.Key]; !ok {
				keys[id.Key] = fmt.Sprintf("%s %d", id.Type, id.ID)
			}
		}
	}
	for i := range after.Shm {
		s := &after.Shm[i]
		note(ipcdiff.Ident{Type: ipcdiff.TypeShm, ID: s.ID, Key: s.Key, CUID: s.CUID})
		if s.CPID == 0 && invisible == "" {
			invisible = fmt.Sprintf("shm %d was made by a process not visible from this pid namespace: processes of another pid namespace use this IPC namespace", s.ID)
		}
	}
	for i := range after.Sem {
		s := &after.Sem[i]
		note(ipcdiff.Ident{Type: ipcdiff.TypeSem, ID: s.ID, Key: s.Key, CUID: s.CUID})
	}
	for i := range after.Msg {
		m := &after.Msg[i]
		note(ipcdiff.Ident{Type: ipcdiff.TypeMsg, ID: m.ID, Key: m.Key, CUID: m.CUID})
	}
	return keys, invisible
}

// otherTypeKeys adds to keys the keys of the objects of the types not
// read (--types): a set of key K stays a family with a segment of key K
// whatever types the run may remove.
func otherTypeKeys(fs ipcdiff.FS, read ipcdiff.TypeSet, keys map[int32]string) {
	rest := ipcdiff.AllTypes &^ read
	if rest == 0 {
		return
	}
	s, err := fs.SnapshotWith(rest, false)
	if err != nil {
		return
	}
	add, _ := others(s, nil)
	for k, v := range add {
		if _, ok := keys[k]; !ok {
			keys[k] = v
		}
	}
}

// applyDecisions removes (or, dry, would remove) what the decisions give to
// the tree, and records every object in the report.
func applyDecisions(fs ipcdiff.FS, ds []ipcdiff.Decision, dryRun bool, rep *Report) {
	for _, d := range ds {
		switch {
		case !d.Remove:
			rep.Objects = append(rep.Objects, newReportObj(d, actKept, ""))
			rep.Kept++
		case dryRun:
			rep.Objects = append(rep.Objects, newReportObj(d, actWouldRemove, ""))
		default:
			action, errText := removeOne(fs, d)
			rep.Objects = append(rep.Objects, newReportObj(d, action, errText))
			switch action {
			case actRemoved:
				rep.Removed++
			case actFailed:
				rep.Failed++
			default:
				rep.Kept++
			}
		}
	}
}

// removeOne removes one object and says how it went, for the report.
func removeOne(fs ipcdiff.FS, d ipcdiff.Decision) (action, errText string) {
	out, err := ipcdiff.Remove(fs, d.Object)
	switch out.Result {
	case ipcdiff.Removed, ipcdiff.RemovedDeferred, ipcdiff.AlreadyGone:
		return actRemoved, ""
	case ipcdiff.Changed:
		return actKept, fmt.Sprintf("id %d now names another object (key %s, creator uid %d): left alone",
			d.ID, ipcdiff.KeyString(out.Found.Key), out.Found.CUID)
	case ipcdiff.Touched:
		return actKept, "changed since the decision (" + out.Why + "): left alone"
	}
	if err == nil {
		err = out.Err
	}
	return actFailed, ipcdiff.ErrText(err)
}
