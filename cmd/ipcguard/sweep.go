package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/ipcguard/ipcguard/internal/journal"
	"github.com/ipcguard/ipcguard/internal/procfs"
	"github.com/ipcguard/ipcguard/ipcdiff"
	"github.com/ipcguard/ipcguard/supervisor"
	"github.com/urfave/cli/v2"
)

var sweepCommand = &cli.Command{
	Name:  "sweep",
	Usage: "finish the cleanup of runs whose ipcguard died (SIGKILL, OOM)",
	Description: `Every run writes a journal in the state directory before the command starts
and deletes it when done. A journal left behind belongs to an ipcguard that
died. For each journal of this user whose supervisor is dead (pid and start
time), sweep waits for nothing: if the command's tree still runs it skips the
journal and says so; otherwise it treats the run as failed and removes what
the evidence gives to the tree, with the same rules as a normal run (window
evidence is never used: the window is long and unwatched), then deletes the
journal. Journals of live runs and of other users are never touched; a
corrupt journal is reported and left in place.

Exit status: 0 when every journal it could act on was finished (a journal
whose tree still runs is left for a later sweep); 1 when a journal was
corrupt or could not be finished, or an object could not be removed; 125
for bad usage or an unusable state directory.

Use it from ExecStopPost= of a systemd unit, a timer, or cron.`,
	UsageText: "ipcguard sweep [--dry-run] [--report FILE] [--metrics FILE] [--state-dir DIR]",
	Flags: []cli.Flag{
		&cli.BoolFlag{Name: "dry-run", Aliases: []string{"n"}, EnvVars: []string{"IPCGUARD_DRY_RUN"}, Usage: "decide, remove nothing, keep the journals"},
		&cli.StringFlag{Name: "report", EnvVars: []string{"IPCGUARD_REPORT"}, Usage: "write a JSON report to `FILE` (- for stderr)"},
		&cli.StringFlag{Name: "state-dir", EnvVars: []string{"IPCGUARD_STATE_DIR"}, Usage: "where run journals live"},
		&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, EnvVars: []string{"IPCGUARD_QUIET"}, Usage: "no summary lines"},
		&cli.StringFlag{Name: "metrics", EnvVars: []string{"IPCGUARD_METRICS"}, Usage: "add the sweep to Prometheus metrics in `FILE` (for node_exporter's textfile collector)"},
	},
	Action: func(c *cli.Context) error {
		if c.Args().Present() {
			return usagef("sweep takes no arguments")
		}
		cfg := sweepConfig{dryRun: c.Bool("dry-run"), report: c.String("report"), stateDir: c.String("state-dir"), quiet: c.Bool("quiet")}
		sink, err := openReport(cfg.report)
		if err != nil {
			return err
		}
		msink, err := openMetrics(c.String("metrics"))
		if err != nil {
			return err
		}
		start := time.Now()
		reps, err := sweepAll(cfg, c.App.ErrWriter)
		msink.writeSweep(reps, time.Since(start), err, c.App.ErrWriter)
		if err != nil {
			return err
		}
		if sink != nil {
			if err := sink.writeAny(reps, c.App.ErrWriter); err != nil {
				return err
			}
		}
		if sweepFailed(reps) {
			return &statusError{exited(exitSweepIncomplete)}
		}
		return nil
	},
}

// exitSweepIncomplete is the status of a sweep that met a corrupt journal,
// could not finish a journal, or failed to remove an object: something is
// left that cron or ExecStopPost= should report.
const exitSweepIncomplete = 1

// sweepFailed reports whether a sweep left something undone that it should
// have done (a tree that still runs is not a failure: a later sweep will
// finish it).
func sweepFailed(reps []SweepReport) bool {
	for _, r := range reps {
		if r.Status == "corrupt" || r.Status == "error" || (r.Run != nil && r.Run.Failed > 0) {
			return true
		}
	}
	return false
}

type sweepConfig struct {
	dryRun   bool
	report   string
	stateDir string
	quiet    bool
}

// SweepReport is one journal's outcome.
type SweepReport struct {
	Journal string  `json:"journal"`
	Status  string  `json:"status"` // swept, live, running, corrupt, foreign
	Detail  string  `json:"detail,omitempty"`
	Run     *Report `json:"run,omitempty"`
}

// sweepAll finishes the work of every journal left by a dead supervisor.
func sweepAll(cfg sweepConfig, stderr io.Writer) ([]SweepReport, error) {
	logf := func(format string, args ...any) {
		if !cfg.quiet {
			fmt.Fprintf(stderr, "ipcguard: sweep: "+format+"\n", args...)
		}
	}
	// Liveness and start times come from /proc: one mounted for another
	// pid namespace would show other processes under the same numbers.
	if err := procfs.SameNamespace(procRoot); err != nil {
		return nil, fmt.Errorf("sweep: %w: mount a proc for this pid namespace (unshare --mount-proc); nothing swept", err)
	}
	dir, note, err := journal.StateDirNote(cfg.stateDir)
	if note != "" {
		fmt.Fprintf(stderr, "ipcguard: sweep: %s\n", note)
	}
	if err != nil {
		return nil, err
	}
	dirs := []string{dir}
	if cfg.stateDir == "" {
		dirs = append(dirs, journal.FallbackDirs(dir)...)
	}
	var paths []string
	for _, d := range dirs {
		if _, err := journal.RemoveStaleTemps(d); err != nil {
			logf("removing stale temporary journals: %v", err)
		}
		ps, err := journal.List(d)
		if err != nil {
			return nil, err
		}
		paths = append(paths, ps...)
	}
	reps := []SweepReport{}
	here := namespaces()
	fs, _ := ipcdiff.NewFS(procRoot)
	procs := &ipcdiff.LiveProcs{Root: procRoot}
	for _, p := range paths {
		r := SweepReport{Journal: p}
		rec, err := journal.Load(p)
		switch {
		case err != nil:
			r.Status, r.Detail = "corrupt", err.Error()
			logf("%s: corrupt journal, skipped: %v", p, err)
		case rec.UID != uint32(os.Geteuid()):
			r.Status = "foreign"
		case !sameHere(rec, here, &r, p, cfg.dryRun, logf):
		case rec.SupervisorAlive():
			r.Status, r.Detail = "live", fmt.Sprintf("ipcguard pid %d is still running", rec.SupervisorPid)
		default:
			if pid, ok := runningMember(rec, procs); ok {
				r.Status, r.Detail = "running", fmt.Sprintf("the command's tree still runs (pid %d); sweep again when it has ended", pid)
				logf("%s: %s", p, r.Detail)
				break
			}
			run, err := sweepOne(fs, procs, rec, cfg.dryRun)
			if err != nil {
				r.Status, r.Detail = "error", err.Error()
				logf("%s: %v", p, err)
				break
			}
			r.Status, r.Run = "swept", run
			if !cfg.dryRun {
				if err := os.Remove(p); err != nil {
					logf("removing %s: %v", p, err)
				}
			}
			if line := summary(run, cfg.report); line != "" && !cfg.quiet {
				fmt.Fprintf(stderr, "%s (run of pid %d: %v)\n", line, rec.CommandPid, rec.Argv)
			}
		}
		reps = append(reps, r)
	}
	return reps, nil
}

// sameHere checks that the journal at path belongs here (sameRun); when it
// does not, it fills r and removes a stale journal (unless dry).
func sameHere(rec *journal.Record, here journal.Namespaces, r *SweepReport, path string, dry bool, logf func(string, ...any)) bool {
	ok, stale, why := sameRun(rec, here)
	if ok {
		return true
	}
	r.Status, r.Detail = "elsewhere", why
	if stale {
		r.Status = "stale"
		if !dry {
			if err := os.Remove(path); err != nil {
				logf("removing %s: %v", path, err)
			}
		}
	}
	logf("%s: %s, skipped", path, why)
	return false
}

// runningMember finds a member of the journal's tree that still runs: the
// command itself (pid and start time), or a member whose live process
// started when the member joined.
func runningMember(rec *journal.Record, procs ipcdiff.Procs) (int, bool) {
	if rec.CommandPid > 0 && rec.CommandAlive() {
		return rec.CommandPid, true
	}
	for _, m := range rec.Members {
		if !m.Left.IsZero() || !procs.Alive(m.Pid) {
			continue
		}
		if st, ok := procs.Started(m.Pid); ok && st.Sub(m.Joined).Abs() <= 2*time.Second {
			return m.Pid, true
		}
	}
	return 0, false
}

// cursorReader reads the pid allocator: its state, a moment before the
// reading and one after it.
type cursorReader func() (st supervisor.CursorState, before, after time.Time, err error)

func readCursorNow() (supervisor.CursorState, time.Time, time.Time, error) {
	before := time.Now()
	c, err := supervisor.ReadCursor(procRoot)
	return c, before, time.Now(), err
}

// journalTreeAt rebuilds the tree a journal recorded, for the same
// decision as a run's: never exact (the supervisor died, later forks went
// unseen); each member counts from its fork to its exit as recorded, or
// only at its fork when the exit was not (after the supervisor died nobody
// watched, and a sweep runs once every member has ended); creation
// evidence as recorded; and the pid watch as far as the journal has it,
// carried on to what now reads of the pid allocator (see journalWatch).
func journalTreeAt(rec *journal.Record, now cursorReader) (*supervisor.Tree, supervisor.Watch) {
	t := supervisor.NewTree("journal", rec.CommandPid)
	var rootEnd time.Time
	for _, m := range rec.Members {
		switch {
		case m.Pid == rec.CommandPid && m.Joined.IsZero():
			rootEnd = m.Left
		case !m.Joined.IsZero():
			end := m.Left
			if end.IsZero() {
				end = m.Joined
			}
			t.Join(m.Pid, m.Joined)
			t.Leave(m.Pid, end)
		}
	}
	if rec.CommandPid > 0 && !rec.CommandAt.IsZero() {
		if rootEnd.IsZero() {
			rootEnd = rec.CommandAt
		}
		t.Join(rec.CommandPid, rec.CommandAt)
		t.Leave(rec.CommandPid, rootEnd)
	}
	for _, g := range rec.Gets {
		t.SawCreate(g.Type.String(), g.ID, g.Proven, g.At)
	}
	// What the supervisor recorded is complete up to its last record.
	last := rec.CommandAt
	for _, m := range rec.Members {
		last = latest(last, m.Joined, m.Left)
	}
	for _, c := range rec.Watch {
		last = latest(last, c.To)
	}
	t.SetFinished(last)
	w := journalWatch(rec, t.Pids(), now)
	t.SetWatch(w)
	return t, w
}

// sweepTree is the tree a sweep decides with: a journal's, or, when its
// compaction left member stays out, one in which a pid not known as a
// member at a time is never taken for a stranger's (see compactedTree).
func sweepTree(rec *journal.Record, now cursorReader) (ipcdiff.Tree, supervisor.Watch) {
	t, w := journalTreeAt(rec, now)
	if rec.Compacted.Stays > 0 {
		return compactedTree{t}, w
	}
	return t, w
}

// compactedTree is the tree of a journal whose compaction left member
// stays out (journal.Compaction). A pid it does not know as a member at a
// time may be a member whose stay was left out: it is ambiguous, never
// outside the tree, since a pid merely unknown to an inexact tracker does
// not count against an object the tree was seen creating.
type compactedTree struct{ *supervisor.Tree }

// Holder implements ipcdiff.Tree.
func (t compactedTree) Holder(pid int, from, to time.Time) (ipcdiff.Holder, bool, string) {
	h, exact, why := t.Tree.Holder(pid, from, to)
	if h == ipcdiff.HeldOutside && pid > 0 {
		return ipcdiff.HeldAmbiguous, false, fmt.Sprintf("pid %d may have been a member whose record the journal's compaction left out", pid)
	}
	return h, exact, why
}

func latest(t time.Time, ts ...time.Time) time.Time {
	for _, u := range ts {
		if u.After(t) {
			t = u
		}
	}
	return t
}

// journalWatch rebuilds the pid watch of a journal, and carries it on to
// now: the pid allocator is the kernel's, so from the cursor the watch
// read last and the cursor now, a sweep knows what may have been handed
// out since the supervisor died, as the supervisor would have. A journal
// that lost a record (a damaged line) has no watch: the lost record may
// be the one that showed a hand-out.
func journalWatch(rec *journal.Record, pids []int, now cursorReader) supervisor.Watch {
	n := len(rec.Watch)
	if n == 0 || len(rec.Pre) == 0 || rec.Namespaces.Pid == "" {
		return supervisor.Watch{Why: "the journal holds no record of the pid watch"}
	}
	if rec.Damaged() {
		return supervisor.Watch{Why: "the journal lost records (damaged lines), perhaps of the pid watch"}
	}
	log := make([]supervisor.Crossing, n, n+1)
	for i, c := range rec.Watch {
		// A record compaction merged is too coarse in time to place a
		// member's own hand-out in (journal.Compaction).
		log[i] = supervisor.Crossing{From: c.From, To: c.To, Lo: c.Lo, Hi: c.Hi, All: c.All, Unwatched: c.Merged}
	}
	until := log[n-1].To
	if cur, before, after, err := now(); err == nil {
		last := supervisor.CursorState{Cursor: rec.LastCursor.Cursor, Threads: rec.LastCursor.Threads,
			ForksLo: rec.LastCursor.ForksLo, ForksHi: rec.LastCursor.ForksHi, PidMax: rec.LastCursor.PidMax, InitNS: cur.InitNS}
		c, ok := supervisor.Step(last, log[n-1].From, cur, after)
		if !cur.InitNS {
			// Outside the initial pid namespace a process privileged over
			// it may have moved the cursor back and forth over the time
			// nobody watched (even to where it was): any number may have
			// been handed out again.
			c, ok = supervisor.Crossing{From: log[n-1].From, To: after, All: true}, true
		}
		if ok {
			c.Unwatched = true
			log = append(log, c)
		}
		until = before
	}
	return supervisor.NewWatch(log[0].From, until, rec.Pre, log, pids)
}

// namespaces says where this process runs, for a journal (see
// journal.Namespaces); fields it cannot learn are empty.
func namespaces() journal.Namespaces {
	var n journal.Namespaces
	n.Boot, _ = procfs.BootID(procRoot)
	n.IPC, _ = procfs.NamespaceID(procRoot, "ipc")
	n.Pid, _ = procfs.NamespaceID(procRoot, "pid")
	return n
}

// sameRun says whether a journal's run ran here (this boot, this IPC and
// pid namespace): stale is true when it certainly did not, because its
// boot or its IPC namespace is gone, so its objects are gone too; why says
// what differs.
func sameRun(rec *journal.Record, here journal.Namespaces) (ok, stale bool, why string) {
	j := rec.Namespaces
	switch {
	case j.Boot == "":
		return true, false, "" // an older journal: the checks below cannot be made
	case j.Boot != here.Boot:
		return false, true, "it was written before the system booted"
	case j.IPC != here.IPC:
		// The journal's directory is named for the IPC namespace's inode:
		// a different id under the same inode means the namespace it was
		// written in is gone (inode numbers are reused, ids are not).
		stale = strings.HasPrefix(j.IPC, "id:") && strings.HasPrefix(here.IPC, "id:")
		return false, stale, fmt.Sprintf("it was written in IPC namespace %s, this is %s", j.IPC, here.IPC)
	case j.Pid != here.Pid:
		return false, false, fmt.Sprintf("its run was in pid namespace %s, this is %s: sweep from there", j.Pid, here.Pid)
	}
	return true, false, ""
}

func sweepOne(fs ipcdiff.FS, procs ipcdiff.Procs, rec *journal.Record, dryRun bool) (*Report, error) {
	after, err := fs.Snapshot(rec.Types)
	if err != nil {
		return nil, err
	}
	objs := ipcdiff.DiffIdents(rec.Before, after)
	keep := map[int32]bool{}
	for _, k := range rec.KeepKeys {
		keep[k] = true
	}
	own := map[int32]bool{}
	for _, k := range rec.OwnKeys {
		own[k] = true
	}
	rep := &Report{Version: 1, Command: rec.Argv, Pid: rec.CommandPid, Cleanup: true,
		Why: "sweep: the supervisor died, the run counts as failed",
		Policy: reportPolicy{On: rec.OnPolicy, DryRun: dryRun, Strict: rec.Strict, Types: rec.Types.String(), KeepKeys: keyStrings(keep),
			OwnKeys: ownKeyStrings(own, rec.OwnAllKeys)},
		Tracker: reportTree{Name: "journal", Pids: len(rec.Members), Note: "members recorded before the supervisor died"},
		Objects: []reportObj{}}
	if c := rec.Compacted; c.Stays > 0 || c.Gets > 0 || c.Watch > 0 {
		rep.Tracker.Note += fmt.Sprintf("; the journal was compacted (%d stays of members and %d gets left out, %d pid watch records merged): what only they proved is kept",
			c.Stays, c.Gets, c.Watch)
	}
	if rec.Damaged() {
		rep.Warnings = append(rep.Warnings, fmt.Sprintf("the journal lost %d damaged records: no pid is proven the tree's", rec.BadLines+rec.Compacted.Bad))
	}
	rep.Snapshot = reportSnap{Before: rec.BeforeLen(), After: after.Len(), New: len(objs)}
	rep.Window = reportWindow{Start: rec.Started, End: after.Taken}
	if len(objs) == 0 {
		return rep, nil
	}
	if err := ipcdiff.Gather(fs, objs); err != nil {
		rep.Warnings = append(rep.Warnings, "gathering evidence: "+err.Error())
	}
	// Every action the evidence records happened by now; the pid watch is
	// carried on to a moment after it.
	end := time.Now()
	tree, w := sweepTree(rec, readCursorNow)
	rep.Tracker.PidWatch = newReportWatch(w)
	pol := ipcdiff.Policy{Types: rec.Types, KeepKeys: keep, Strict: rec.Strict, UID: rec.UID, GID: rec.GID,
		OwnKeys: own, OwnAllKeys: rec.OwnAllKeys,
		Start: rec.Started, End: end, Contended: true,
		ContendedWhy: "sweep: the window since the run began was not watched"}
	pol.OtherKeys, pol.Invisible = others(after, objs)
	otherTypeKeys(fs, rec.Types, pol.OtherKeys)
	ds, why := ipcdiff.Attribute(objs, tree, procs, pol)
	ipcdiff.SortDecisions(ds)
	rep.Window.Contended, rep.Window.Why = true, why
	applyDecisions(fs, ds, dryRun, rep)
	return rep, nil
}
