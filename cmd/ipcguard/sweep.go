package main

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/ipcguard/ipcguard/internal/journal"
	"github.com/ipcguard/ipcguard/ipcdiff"
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

Use it from ExecStopPost= of a systemd unit, a timer, or cron.`,
	UsageText: "ipcguard sweep [--dry-run] [--report FILE] [--state-dir DIR]",
	Flags: []cli.Flag{
		&cli.BoolFlag{Name: "dry-run", Aliases: []string{"n"}, EnvVars: []string{"IPCGUARD_DRY_RUN"}, Usage: "decide, remove nothing, keep the journals"},
		&cli.StringFlag{Name: "report", EnvVars: []string{"IPCGUARD_REPORT"}, Usage: "write a JSON report to `FILE` (- for stderr)"},
		&cli.StringFlag{Name: "state-dir", EnvVars: []string{"IPCGUARD_STATE_DIR"}, Usage: "where run journals live"},
		&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, EnvVars: []string{"IPCGUARD_QUIET"}, Usage: "no summary lines"},
	},
	Action: func(c *cli.Context) error {
		if c.Args().Present() {
			return usagef("sweep takes no arguments")
		}
		cfg := sweepConfig{dryRun: c.Bool("dry-run"), report: c.String("report"), stateDir: c.String("state-dir"), quiet: c.Bool("quiet")}
		sink, err := openReport(cfg.report, c.App.ErrWriter)
		if err != nil {
			return err
		}
		reps, err := sweepAll(cfg, c.App.ErrWriter)
		if err != nil {
			return err
		}
		if sink != nil {
			return sink.writeAny(reps, c.App.ErrWriter)
		}
		return nil
	},
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
	dir, err := journal.StateDir(cfg.stateDir)
	if err != nil {
		return nil, err
	}
	if _, err := journal.RemoveStaleTemps(dir); err != nil {
		logf("removing stale temporary journals: %v", err)
	}
	paths, err := journal.List(dir)
	if err != nil {
		return nil, err
	}
	reps := []SweepReport{}
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
			if line := summary(run); line != "" && !cfg.quiet {
				fmt.Fprintf(stderr, "%s (run of pid %d: %v)\n", line, rec.CommandPid, rec.Argv)
			}
		}
		reps = append(reps, r)
	}
	return reps, nil
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

// journalTree is the tree as the journal recorded it: never exact (the
// supervisor died, later forks went unseen), no creation tracking.
type journalTree struct{ rec *journal.Record }

func (t journalTree) Member(pid int, from, to time.Time) (bool, bool) {
	from, to = from.Add(-2*time.Second), to.Add(2*time.Second)
	for _, m := range t.rec.Members {
		if m.Pid != pid || m.Joined.After(to) || (!m.Left.IsZero() && m.Left.Before(from)) {
			continue
		}
		return true, false
	}
	if pid == t.rec.CommandPid {
		return true, false
	}
	return false, false
}

func (journalTree) Created(string, int) (bool, bool) { return false, false }
func (journalTree) Alive() []int                     { return nil }

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
	rep := &Report{Version: 1, Command: rec.Argv, Pid: rec.CommandPid, Cleanup: true,
		Why:     "sweep: the supervisor died, the run counts as failed",
		Policy:  reportPolicy{On: rec.OnPolicy, DryRun: dryRun, Strict: rec.Strict, Types: rec.Types.String(), KeepKeys: keyStrings(keep)},
		Tracker: reportTree{Name: "journal", Pids: len(rec.Members), Note: "members recorded before the supervisor died"},
		Objects: []reportObj{}}
	rep.Snapshot = reportSnap{Before: rec.BeforeLen(), After: after.Len(), New: len(objs)}
	rep.Window = reportWindow{Start: rec.Started, End: after.Taken}
	if len(objs) == 0 {
		return rep, nil
	}
	if err := ipcdiff.Gather(fs, objs); err != nil {
		rep.Warnings = append(rep.Warnings, "gathering evidence: "+err.Error())
	}
	pol := ipcdiff.Policy{Types: rec.Types, KeepKeys: keep, Strict: rec.Strict, UID: rec.UID, GID: rec.GID,
		Start: rec.Started, End: after.Taken, Contended: true,
		ContendedWhy: "sweep: the window since the run began was not watched"}
	ds, why := ipcdiff.Attribute(objs, journalTree{rec}, procs, pol)
	ipcdiff.SortDecisions(ds)
	rep.Window.Contended, rep.Window.Why = true, why
	applyDecisions(fs, ds, dryRun, rep)
	return rep, nil
}
