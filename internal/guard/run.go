package guard

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"time"

	"github.com/ipcguard/ipcguard/internal/journal"
	"github.com/ipcguard/ipcguard/internal/procfs"
	"github.com/ipcguard/ipcguard/ipcdiff"
	"github.com/ipcguard/ipcguard/supervisor"
	"golang.org/x/sys/unix"
)

// procRoot is where proc is mounted.
const procRoot = "/proc"

// Config is one guarded run: plain values, as the command line gives them
// (README, "Options").
type Config struct {
	Argv []string // the command; Argv[0] is looked up in Env's PATH
	Env  []string // the command's environment; nil means os.Environ()

	On         string          // when to clean up: "failure" (also ""), "always", "never"
	DryRun     bool            // decide, remove nothing
	Strict     bool            // never remove on window evidence alone
	Types      ipcdiff.TypeSet // the types read and removed
	KeepKeys   map[int32]bool  // keys never removed
	KeepNames  []string        // shell patterns of POSIX names never removed (--keep-name)
	OwnKeys    map[int32]bool  // keys declared the command's (--own-keys)
	OwnAllKeys bool            // --own-keys all

	Tracker         supervisor.TrackerKind
	TrackCreation   bool // watch the tree's shmget/semget/msgget (root)
	CreationSeccomp bool // --track-creation-seccomp
	// Grace is the time between SIGTERM and SIGKILL for descendants still
	// running after a failure; KillAfter the stop budget once a stop
	// signal was forwarded (0: none). See supervisor.Options.
	Grace, KillAfter time.Duration
	WaitDescendants  bool // stay until every descendant is gone
	LeaveDescendants bool // never terminate descendants still running

	StateDir   string // where run journals live; "" for the default (journal.StateDirNote)
	SweepFirst bool   // first finish the runs whose ipcguard died (Sweep)
	Quiet      bool   // no summary lines of that sweep

	// ListNew lists every new object in the report even when nothing is
	// cleaned up (the caller writes the report or metrics); otherwise
	// the objects are read after the command only to clean up.
	ListNew bool
}

// Run runs the command of cfg under supervision and cleans up after it:
// snapshot, journal, run, then the stage after the command (judge). log
// receives ipcguard's own lines ("ipcguard: ..."). It returns the report and
// the status ipcguard must end with: the command's own. When the command
// never ran the error is an *Error, the status Exited(Code), and the report
// says so.
func Run(cfg Config, log io.Writer) (*Report, unix.WaitStatus, error) {
	logf := func(format string, args ...any) { fmt.Fprintf(log, "ipcguard: "+format+"\n", args...) }
	if cfg.On == "" {
		cfg.On = "failure"
	}
	if cfg.Env == nil {
		cfg.Env = os.Environ()
	}
	rep := &Report{Version: 1, Command: cfg.Argv, Policy: ReportPolicy{On: cfg.On, DryRun: cfg.DryRun,
		Strict: cfg.Strict, Types: cfg.Types.String(), KeepKeys: keyStrings(cfg.KeepKeys), KeepNames: cfg.KeepNames,
		OwnKeys: ownKeyStrings(cfg.OwnKeys, cfg.OwnAllKeys)},
		Objects: []ReportObject{}, Descendants: ReportDescendants{Terminated: []int{}, Killed: []int{}, Remaining: []int{}}}
	// notRun ends a run whose command never ran: a report that says so.
	notRun := func(err error) (*Report, unix.WaitStatus, error) {
		e := &Error{Code: ExitUsage, Err: err}
		var ee *supervisor.ExecError
		if errors.As(err, &ee) {
			e.Code = ee.Code
		}
		rep.setStatus(Exited(e.Code))
		rep.Why = "the command did not run"
		rep.Warnings = append(rep.Warnings, OneLine(err))
		return rep, Exited(e.Code), e
	}
	path, err := supervisor.LookPath(cfg.Argv[0], cfg.Env)
	if err != nil {
		return notRun(err)
	}
	if cfg.SweepFirst {
		if _, err := Sweep(SweepConfig{StateDir: cfg.StateDir, Quiet: cfg.Quiet}, log); err != nil {
			logf("sweep: %v", OneLine(err))
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

	// The creation watchers of the POSIX directories are released last
	// (posixRun.stop, posixRun.close).
	var px *posixRun
	defer func() { px.close() }()
	if cfg.Types&ipcdiff.PosixTypes != 0 {
		// The POSIX directories are opened once, here: every later step
		// works relative to them.
		fs = fs.OpenPosix(shmDir)
		defer fs.ClosePosix()
	}

	clock := time.Now()
	// The pid watch begins before the snapshot: every process that acts on
	// an object new since the snapshot is then either listed by the watch
	// or got its pid while the watch looked (docs/evidence.md).
	watch := supervisor.StartPidWatch(procRoot)
	defer watch.Stop(nil)
	// So do the creation watchers of the POSIX directories and the first
	// sample of the uid's processes: every name made after the snapshot
	// is in their record.
	px = startPosix(fs, cfg.Types, cfg.Strict)
	// An mqueue mount not proven ours yet is listed too: the snapshot
	// after reads pmsg only once a proof through the same descriptor makes
	// it ours, and the listing before then was of our instance as well
	// (ipcdiff.FS.OpenPosix).
	before, err := fs.Unproven().Snapshot(cfg.Types)
	rep.Timings.SnapshotBefore = since(&clock)
	if err != nil {
		warn("cannot read /proc/sysvipc (%v): running the command without IPC cleanup", err)
		before = nil
	}
	if before != nil {
		for t := range cfg.Types.All() {
			if err := before.Unread[t]; err != nil {
				// Not a failure: the kind is not read, nor removed.
				rep.Warnings = append(rep.Warnings, fmt.Sprintf("%s objects not read, none removed: %s", t, ipcdiff.ErrText(err)))
			}
		}
		// The snapshot after reads what the one before read.
		cfg.Types = before.Types
	}
	var jr *journal.Journal
	if before != nil {
		jr = beginJournal(cfg, before, warn)
	}
	if jr != nil {
		jr.Namespaces(namespaces())
		px.journal(jr)
		jr.Pre(watch.Pre())
		watch.Journal(func(c supervisor.Crossing, st supervisor.CursorState) {
			jr.Watch(journal.Crossing{From: c.From, To: c.To, Lo: c.Lo, Hi: c.Hi, All: c.All},
				journal.Cursor{Cursor: st.Cursor, Threads: st.Threads, ForksLo: st.ForksLo, ForksHi: st.ForksHi, PidMax: st.PidMax})
		})
	}
	rep.Timings.Journal = since(&clock)
	// From here on only the identities of the objects before are needed.
	var beforeIDs ipcdiff.Idents
	var beforeNamed []ipcdiff.Ident // the named objects before: their names are keys
	var beforeTaken time.Time
	haveBefore := before != nil
	if haveBefore {
		beforeIDs, beforeTaken = ipcdiff.IdentsOf(before), before.Taken
		beforeNamed = ipcdiff.NamedIdents(before)
		before = nil
	}
	if jr != nil {
		// When the journal is compacted, the stays of the pids that name
		// a candidate object are kept first.
		jr.Retain(func() []int { return candidatePids(fs, cfg.Types, beforeIDs) })
	}

	opts := supervisor.Options{
		Path: path, Args: cfg.Argv, Env: cfg.Env,
		Tracker: cfg.Tracker, TrackCreation: cfg.TrackCreation && haveBefore, CreationSeccomp: cfg.CreationSeccomp && haveBefore,
		Grace: cfg.Grace, KillAfter: cfg.KillAfter, WaitDescendants: cfg.WaitDescendants,
		// Leftover descendants are ended only when the command failed and
		// its objects are to be cleaned; after a success they are left
		// alone (under --on always, what they still use is then kept).
		Terminate: func(ws unix.WaitStatus) bool {
			clean, _ := WantCleanup(cfg.On, ws)
			return clean && Failed(ws) && !cfg.LeaveDescendants && haveBefore
		},
		Logf: func(format string, args ...any) { logf(format, args...) },
		// A run that will not clean up needs no record of the POSIX
		// names made after the command: their watchers stop at once,
		// so that the grace period their close waits for (posixRun.close)
		// passes while the run ends. The journal says their record
		// ends there (as lost): a sweep, should ipcguard die before it
		// removes the journal, then removes no POSIX object of theirs.
		Exited: func(ws unix.WaitStatus) {
			if clean, _ := WantCleanup(cfg.On, ws); !clean && !cfg.WaitDescendants {
				px.stopEarly(jr)
			}
		},
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
		return notRun(err)
	}
	rep.Pid = res.Pid
	rep.setStatus(res.Status)
	if px != nil && res.ForkTid > 0 {
		px.ownTids = append(px.ownTids, res.ForkTid)
	}
	rep.Descendants = ReportDescendants{Terminated: nonNil(res.Terminated), Killed: nonNil(res.Killed), Remaining: nonNil(res.Remaining)}
	tree := res.Tree
	rep.Tracker = ReportTracker{Name: tree.Tracker, Exact: tree.Exact, CreationTracked: tree.CreationTracked,
		Pids: len(tree.Pids()), Note: tree.Note}
	if cfg.TrackCreation && haveBefore && !tree.CreationTracked {
		// Asked for, and not complete (events lost, sampling throttled,
		// not root): creations it missed prove nothing either way.
		warn("creation tracking was incomplete (%s): objects it did not see made are judged on the other evidence", orNone(tree.Note))
	}

	clean, why := WantCleanup(cfg.On, res.Status)
	if cfg.WaitDescendants {
		for _, o := range res.Outlived {
			if !Failed(o.Status) {
				continue
			}
			logf("pid %d, left running by the command, %s", o.Pid, StatusText(o.Status))
			if !clean && cfg.On == "failure" {
				clean, why = true, fmt.Sprintf("pid %d, left running by the command, failed (%s)", o.Pid, StatusText(o.Status))
			}
		}
	}
	rep.Cleanup, rep.Why = clean && haveBefore, why
	if haveBefore && (clean || cfg.ListNew) {
		pol := ipcdiff.Policy{Types: cfg.Types, KeepKeys: cfg.KeepKeys, Strict: cfg.Strict,
			OwnKeys: cfg.OwnKeys, OwnAllKeys: cfg.OwnAllKeys, UID: uint32(os.Geteuid()), GID: uint32(os.Getegid()),
			KeepNamePatterns: cfg.KeepNames, OtherNames: otherNames(beforeNamed), OtherFiles: otherFiles(beforeNamed)}
		j := judgement{fs: fs, before: beforeIDs, beforeLen: beforeIDs.Len(), start: beforeTaken, clean: clean,
			dryRun: cfg.DryRun, policy: pol, procs: &ipcdiff.LiveProcs{Root: procRoot}, warn: warn,
			tree: func() (ipcdiff.Tree, supervisor.Watch) {
				w := watch.Stop(tree.Pids())
				tree.SetWatch(w)
				return tree, w
			},
			contended: func() (bool, string) {
				if jr == nil {
					return true, "no state directory to tell whether other runs overlapped"
				}
				return jr.Overlapped()
			},
			posix: func(p *ipcdiff.Policy, tree ipcdiff.Tree) { px.policy(p, tree, watch.HandedOut) },
		}
		if err := j.judge(rep, &clock); err != nil {
			warn("cannot read /proc/sysvipc after the run (%v): nothing removed", err)
		}
	}
	if jr != nil {
		if err := jr.Err(); err != nil {
			warn("the run journal is incomplete (%v): had ipcguard been killed, 'ipcguard sweep' would have had less to go on", err)
		}
		if err := jr.Done(); err != nil {
			warn("removing the run journal: %v", err)
		}
	}
	// Not before: the journal records their creations until it is gone
	// (but see Exited above).
	px.stop()
	return rep, res.Status, nil
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

func beginJournal(cfg Config, before *ipcdiff.Snapshot, warn func(string, ...any)) *journal.Journal {
	dir, note, err := journal.StateDirNote(cfg.StateDir)
	if note != "" {
		warn("%s", note)
	}
	if err != nil {
		warn("no run journal (%v): a crash of ipcguard would leave no record for 'ipcguard sweep'", err)
		return nil
	}
	self, _ := journal.SelfStart()
	keys := make([]int32, 0, len(cfg.KeepKeys))
	for k := range cfg.KeepKeys {
		keys = append(keys, k)
	}
	h := journal.Header{Version: 1, SupervisorPid: os.Getpid(), SupervisorStart: self,
		UID: uint32(os.Geteuid()), GID: uint32(os.Getegid()), Started: before.Taken, Types: cfg.Types,
		Argv: cfg.Argv, Strict: cfg.Strict, KeepKeys: keys, OnPolicy: cfg.On,
		Registries: journal.DefaultRegistries(os.Geteuid())}
	j, err := journal.Begin(dir, h, before)
	if err != nil {
		warn("no run journal (%v): a crash of ipcguard would leave no record for 'ipcguard sweep'", err)
		return nil
	}
	if len(cfg.OwnKeys) > 0 || cfg.OwnAllKeys {
		own := make([]int32, 0, len(cfg.OwnKeys))
		for k := range cfg.OwnKeys {
			own = append(own, k)
		}
		j.OwnKeys(own, cfg.OwnAllKeys)
	}
	if len(cfg.KeepNames) > 0 {
		// A sweep must keep what the run would: a journal without the
		// patterns is worse than none.
		if j.KeepNames(cfg.KeepNames); j.Err() != nil {
			warn("no run journal (the --keep-name patterns could not be recorded: %v): a crash of ipcguard would leave no record for 'ipcguard sweep'", j.Err())
			j.Done()
			return nil
		}
	}
	return j
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

// candidatePids lists the pids that name an object new since the snapshot
// before, as its kind records them (ipcdiff.Evidence.Pids: creator and
// last attach/detach of a segment, each semaphore's last operation, last
// send and receive of a queue, ...). Objects it cannot read name fewer
// pids (only the journal's compaction uses it).
func candidatePids(fs ipcdiff.FS, types ipcdiff.TypeSet, before ipcdiff.Idents) []int {
	after, err := fs.SnapshotWith(types, false)
	if err != nil {
		return nil
	}
	objs := ipcdiff.DiffIdents(before, after)
	_ = ipcdiff.Gather(fs, objs)
	var pids []int
	for i := range objs {
		for _, f := range objs[i].Evidence().Pids {
			pids = append(pids, f.Pid)
		}
	}
	return pids
}
