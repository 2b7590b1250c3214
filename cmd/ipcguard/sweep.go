package main

import (
	"time"

	"github.com/ipcguard/ipcguard/internal/guard"
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
		cfg := guard.SweepConfig{DryRun: c.Bool("dry-run"), ReportPath: c.String("report"), StateDir: c.String("state-dir"), Quiet: c.Bool("quiet")}
		sink, err := guard.OpenReportFile(cfg.ReportPath)
		if err != nil {
			return usagef("--report %v", err)
		}
		msink, err := openMetrics(c.String("metrics"))
		if err != nil {
			return err
		}
		start := time.Now()
		reps, err := guard.Sweep(cfg, c.App.ErrWriter)
		msink.write(guard.SweepMetrics(reps, time.Since(start), err), c.App.ErrWriter)
		if err != nil {
			return err
		}
		if sink != nil {
			if err := sink.Write(reps, c.App.ErrWriter); err != nil {
				return err
			}
		}
		if guard.SweepFailed(reps) {
			return &statusError{guard.Exited(guard.ExitIncomplete)}
		}
		return nil
	},
}
