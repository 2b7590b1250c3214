package guard

import (
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/ipcguard/ipcguard/internal/journal"
	"github.com/ipcguard/ipcguard/internal/procfs"
	"github.com/ipcguard/ipcguard/ipcdiff"
	"github.com/ipcguard/ipcguard/supervisor"
)

// SweepConfig is one sweep.
type SweepConfig struct {
	DryRun   bool   // decide, remove nothing, keep the journals
	StateDir string // where run journals live; "" for the default and its fallbacks
	Quiet    bool   // no summary lines
	// ReportPath is where the caller writes the report ("" none, "-"
	// stderr), for the summary lines to point to.
	ReportPath string
}

// SweepReport is one journal's outcome (README, "ipcguard sweep").
type SweepReport struct {
	Journal string  `json:"journal"`
	Status  string  `json:"status"` // swept, live, running, corrupt, foreign, elsewhere, stale, error
	Detail  string  `json:"detail,omitempty"`
	Run     *Report `json:"run,omitempty"`
}

// SweepFailed reports whether a sweep left something undone that it should
// have done: a corrupt journal, one it could not finish, an object it
// could not remove (a tree that still runs is not a failure: a later sweep
// will finish it).
func SweepFailed(reps []SweepReport) bool {
	for _, r := range reps {
		if r.Status == "corrupt" || r.Status == "error" || (r.Run != nil && r.Run.Failed > 0) {
			return true
		}
	}
	return false
}

// Sweep finishes the work of every journal of this user left by a dead
// supervisor, with the stage after the command a run has (judge): the run
// counts as failed, window evidence is off. log receives one line per
// journal it skips or cannot finish and a summary line per run it finished
// ("ipcguard: sweep: ..."). Errors: a /proc of another pid namespace
// (procfs.SameNamespace), an unusable state directory (journal.StateDirNote,
// journal.List); nothing is swept then.
func Sweep(cfg SweepConfig, log io.Writer) ([]SweepReport, error) {
	logf := func(format string, args ...any) {
		if !cfg.Quiet {
			fmt.Fprintf(log, "ipcguard: sweep: "+format+"\n", args...)
		}
	}
	// Liveness and start times come from /proc: one mounted for another
	// pid namespace would show other processes under the same numbers.
	if err := procfs.SameNamespace(procRoot); err != nil {
		return nil, fmt.Errorf("sweep: %w: mount a proc for this pid namespace (unshare --mount-proc); nothing swept", err)
	}
	dir, note, err := journal.StateDirNote(cfg.StateDir)
	if note != "" {
		fmt.Fprintf(log, "ipcguard: sweep: %s\n", note)
	}
	if err != nil {
		return nil, err
	}
	dirs := []string{dir}
	if cfg.StateDir == "" {
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
	// The POSIX directories, opened once (journals of runs that read no
	// POSIX type do not look at them).
	fs = fs.OpenPosix(shmDir)
	defer fs.ClosePosix()
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
		case !sameHere(rec, here, &r, p, cfg.DryRun, logf):
		case rec.SupervisorAlive():
			r.Status, r.Detail = "live", fmt.Sprintf("ipcguard pid %d is still running", rec.SupervisorPid)
		default:
			if pid, ok := runningMember(rec, procs); ok {
				r.Status, r.Detail = "running", fmt.Sprintf("the command's tree still runs (pid %d); sweep again when it has ended", pid)
				logf("%s: %s", p, r.Detail)
				break
			}
			run, err := sweepOne(fs, procs, rec, cfg.DryRun)
			if err != nil {
				r.Status, r.Detail = "error", err.Error()
				logf("%s: %v", p, err)
				break
			}
			r.Status, r.Run = "swept", run
			if !cfg.DryRun {
				if err := os.Remove(p); err != nil {
					logf("removing %s: %v", p, err)
				}
			}
			if line := run.Summary(cfg.ReportPath); line != "" && !cfg.Quiet {
				fmt.Fprintf(log, "%s (run of pid %d: %v)\n", line, rec.CommandPid, rec.Argv)
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

// runningMember finds a member of the journal's tree that still runs: the
// command itself (pid and start time), or a member not recorded to have
// left whose live process started when the member joined (within the
// tree's membership slack, supervisor.Slack).
func runningMember(rec *journal.Record, procs ipcdiff.Procs) (int, bool) {
	if rec.CommandPid > 0 && rec.CommandAlive() {
		return rec.CommandPid, true
	}
	// The members not recorded to have left, each at the moment it joined.
	open := supervisor.NewTree("journal", rec.CommandPid)
	for _, m := range rec.Members {
		if m.Left.IsZero() && !m.Joined.IsZero() {
			open.Join(m.Pid, m.Joined)
			open.Leave(m.Pid, m.Joined)
		}
	}
	for _, pid := range open.Pids() {
		if !procs.Alive(pid) {
			continue
		}
		if st, ok := procs.Started(pid); ok {
			if member, _ := open.Member(pid, st, st); member {
				return pid, true
			}
		}
	}
	return 0, false
}

// sweepPosix adds to p what the journal rec knows of the run's POSIX
// objects: the names before it (names are keys; a file with another name
// before), and the creations its watchers saw with their pids, complete
// for the types watched from the start that lost no event. A sweep never
// uses window evidence; a POSIX object is removed only on creation seen
// (docs/evidence.md, "POSIX objects").
func sweepPosix(p *ipcdiff.Policy, rec *journal.Record) {
	px := rec.Types & ipcdiff.PosixTypes
	if px == 0 {
		return
	}
	p.OtherNames, p.OtherFiles = otherNames(rec.BeforeNamed), otherFiles(rec.BeforeNamed)
	p.KeepNamePatterns = rec.KeepNames
	p.Creations = rec.Created
	if rec.Compacted.Times > 0 {
		// Compaction keeps one creation per name, and the most recent: the
		// first creation of a file may be gone. Without their files the
		// creations are judged by names (docs/evidence.md, "Sweep").
		p.Creations = slices.Clone(rec.Created)
		for i := range p.Creations {
			p.Creations[i].File = ""
		}
	}
	p.CreationsWatched = rec.Watched &^ rec.WatchLost & px
	p.CreationsWhy, p.PosixChangesWhy = map[ipcdiff.Type]string{}, map[ipcdiff.Type]string{}
	for t := range px.All() {
		switch {
		case rec.WatchLost.Has(t):
			p.CreationsWhy[t] = "the run's creation watcher lost events"
		case !rec.Watched.Has(t):
			p.CreationsWhy[t] = "the run recorded no creation watcher that saw the creators' pids"
		}
		p.PosixChangesWhy[t] = "sweep: owner changes after the supervisor died were not watched"
	}
	p.PosixContended = "sweep: the window since the run began was not watched"
}

// sweepOne finishes the run of one journal whose supervisor died: the
// stage after the command, with the policy the journal recorded.
func sweepOne(fs ipcdiff.FS, procs ipcdiff.Procs, rec *journal.Record, dryRun bool) (*Report, error) {
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
		Policy: ReportPolicy{On: rec.OnPolicy, DryRun: dryRun, Strict: rec.Strict, Types: rec.Types.String(), KeepKeys: keyStrings(keep),
			OwnKeys: ownKeyStrings(own, rec.OwnAllKeys), KeepNames: rec.KeepNames},
		Tracker: ReportTracker{Name: "journal", Pids: len(rec.Members), Note: "members recorded before the supervisor died"},
		Objects: []ReportObject{}}
	if c := rec.Compacted; c.Stays > 0 || c.Gets > 0 || c.Watch > 0 || c.Created > 0 {
		rep.Tracker.Note += fmt.Sprintf("; the journal was compacted (%d stays of members, %d gets and %d creations left out, %d pid watch records merged): what only they proved is kept",
			c.Stays, c.Gets, c.Created, c.Watch)
	}
	if rec.Damaged() {
		rep.Warnings = append(rep.Warnings, fmt.Sprintf("the journal lost %d damaged records: no pid is proven the tree's", rec.BadLines+rec.Compacted.Bad))
	}
	types := rec.Types
	pol := ipcdiff.Policy{Types: types, KeepKeys: keep, Strict: rec.Strict, UID: rec.UID, GID: rec.GID,
		OwnKeys: own, OwnAllKeys: rec.OwnAllKeys}
	sweepPosix(&pol, rec)
	j := judgement{fs: fs, before: rec.Before, beforeLen: rec.BeforeLen(), start: rec.Started, clean: true, dryRun: dryRun,
		policy: pol, procs: procs,
		// The pid watch is carried on to a moment after every action
		// the evidence records.
		tree: func() (ipcdiff.Tree, supervisor.Watch) { return sweepTree(rec, readCursorNow) },
		contended: func() (bool, string) {
			return true, "sweep: the window since the run began was not watched"
		},
		warn: func(format string, args ...any) { rep.Warnings = append(rep.Warnings, fmt.Sprintf(format, args...)) }}
	clock := time.Now()
	if err := j.judge(rep, &clock); err != nil {
		return nil, err
	}
	return rep, nil
}
