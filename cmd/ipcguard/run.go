package main

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/ipcguard/ipcguard/internal/guard"
	"github.com/ipcguard/ipcguard/supervisor"
	"golang.org/x/sys/unix"
)

// config is a parsed run: the run itself, and where its report and
// metrics go.
type config struct {
	guard.Config
	report  string
	metrics string
}

// runGuarded runs the command under supervision (guard.Run) and writes its
// report, summary line and metrics. It returns the status ipcguard must
// end with.
func runGuarded(cfg config, stderr io.Writer) unix.WaitStatus {
	logf := func(format string, args ...any) { fmt.Fprintf(stderr, "ipcguard: "+format+"\n", args...) }
	// A run that does not start calls off the signals caught for it
	// (package prestart) before saying why: a signal sent while that
	// blocks is handled as if none had been caught.
	sink, err := guard.OpenReportFile(cfg.report)
	if err != nil {
		supervisor.Unprepare()
		logf("--report %v", err)
		return guard.Exited(guard.ExitUsage)
	}
	msink, err := openMetrics(cfg.metrics)
	if err != nil {
		supervisor.Unprepare()
		logf("%s", err)
		return guard.Exited(guard.ExitUsage)
	}
	cfg.Env = commandEnv(os.Environ())
	cfg.ListNew = sink != nil || msink != nil
	rep, ws, err := guard.Run(cfg.Config, stderr)
	// Once a run has started, its signals are the run's (this does
	// nothing); otherwise the command did not start.
	supervisor.Unprepare()
	if err != nil {
		logf("%s", guard.OneLine(err))
	}
	if sink != nil {
		if err := sink.Write(rep, stderr); err != nil {
			logf("writing the report: %v", err)
		}
	}
	if err != nil {
		return ws
	}
	if !cfg.Quiet && rep.Cleanup {
		if line := rep.Summary(cfg.report); line != "" {
			fmt.Fprintln(stderr, line)
		}
	}
	msink.write(guard.RunMetrics(rep, ws), stderr)
	return ws
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
