package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/ipcguard/ipcguard/internal/metrics"
	"golang.org/x/sys/unix"
)

// metricsSink is where --metrics goes, its directory opened and checked
// before the command starts so that a bad path is a usage error. A nil
// sink writes nothing.
type metricsSink struct{ f *metrics.File }

func openMetrics(path string) (*metricsSink, error) {
	if path == "" {
		return nil, nil
	}
	f, err := metrics.Open(path)
	if err != nil {
		return nil, usagef("--metrics %v", err)
	}
	return &metricsSink{f}, nil
}

// writeRun adds a supervised run to the file; a failure to write is
// reported on stderr and changes no exit status.
func (m *metricsSink) writeRun(rep *Report, ws unix.WaitStatus, stderr io.Writer) {
	if m == nil {
		return
	}
	r := metrics.Run{Mode: "run", End: time.Now(), Result: "succeeded", ExitStatus: ws.ExitStatus()}
	switch {
	case ws.Signaled():
		r.Result, r.ExitStatus = "signaled", 128+int(ws.Signal())
	case ws.ExitStatus() != 0:
		r.Result = "failed"
	}
	r.Objects = metricObjects(rep)
	us := func(v int64) float64 { return float64(v) / 1e6 }
	t := rep.Timings
	r.Phases = []metrics.Phase{{Name: "snapshot_before", Seconds: us(t.SnapshotBefore)}, {Name: "journal", Seconds: us(t.Journal)},
		{Name: "command", Seconds: us(t.Command)}, {Name: "snapshot_after", Seconds: us(t.SnapshotAfter)},
		{Name: "attribute", Seconds: us(t.Attribute)}, {Name: "remove", Seconds: us(t.Remove)}}
	m.write(r, stderr)
}

// writeSweep adds a sweep: its journals by status and the objects of the
// runs it finished; err is the sweep's own failure.
func (m *metricsSink) writeSweep(reps []SweepReport, took time.Duration, err error, stderr io.Writer) {
	if m == nil {
		return
	}
	r := metrics.Run{Mode: "sweep", End: time.Now(), Result: "succeeded", Journals: map[string]int{},
		Phases: []metrics.Phase{{Name: "sweep", Seconds: took.Seconds()}}}
	if err != nil {
		r.Result, r.ExitStatus = "error", exitUsage
	}
	for _, s := range reps {
		r.Journals[s.Status]++
		if s.Run != nil {
			r.Objects = append(r.Objects, metricObjects(s.Run)...)
		}
	}
	m.write(r, stderr)
}

func (m *metricsSink) write(r metrics.Run, stderr io.Writer) {
	if err := m.f.Write(r); err != nil {
		fmt.Fprintf(stderr, "ipcguard: writing the metrics: %v\n", err)
	}
	m.f.Close()
}

func metricObjects(rep *Report) []metrics.Object {
	var out []metrics.Object
	for _, o := range rep.Objects {
		out = append(out, metrics.Object{Type: o.Type, Action: strings.ReplaceAll(o.Action, "-", "_"), Reason: reasonClass(rep, o)})
	}
	return out
}

// reasonClass sorts an object's outcome into one of a few classes, for a
// label: the evidence of a removal; the kind of error of a failure; for an
// object kept, what kept it (the report has the full text).
//
//	removed, would_remove: creation_seen, pid_evidence, window_evidence
//	failed: permission_denied, error
//	kept: no_cleanup (the command succeeded, or --on never), changed (the
//	  id named another object at removal), type_excluded (--types),
//	  key_kept (--keep-key), in_use (attached, waiters, a live user),
//	  already_removed, strict, contended, not_attributed
func reasonClass(rep *Report, o reportObj) string {
	switch o.Action {
	case actRemoved, actWouldRemove:
		return strings.ReplaceAll(o.Strength, " ", "_")
	case actFailed:
		if strings.Contains(o.Error, "not permitted") || strings.Contains(o.Error, "permission denied") {
			return "permission_denied"
		}
		return "error"
	}
	r := o.Reason
	has := func(subs ...string) bool {
		for _, s := range subs {
			if strings.Contains(r, s) {
				return true
			}
		}
		return false
	}
	switch {
	case !rep.Cleanup:
		return "no_cleanup"
	case o.Error != "":
		return "changed"
	case has("--types"):
		return "type_excluded"
	case has("same key"):
		return "key_family"
	case has("is kept", "--keep-key"):
		return "key_kept"
	case has("attached", "waiting", "still running", "running outside"):
		return "in_use"
	case has("may have been reused", "may not have been the tree's", "now another process's", "after the tree was last watched"):
		return "pid_reuse"
	case has("not visible from this pid namespace"):
		return "invisible_user"
	case has("could not be read"):
		return "unreadable"
	case has("creator is not proven"):
		return "keyed_unproven"
	case has("already removed"):
		return "already_removed"
	case has("--strict"):
		return "strict"
	case has("contended", "overlapped"):
		return "contended"
	}
	return "not_attributed"
}
