package guard

import (
	"strings"
	"time"

	"github.com/ipcguard/ipcguard/internal/metrics"
	"github.com/ipcguard/ipcguard/ipcdiff"
	"golang.org/x/sys/unix"
)

// RunMetrics is a supervised run for the metrics file: its result, the
// command's status (128+N for death by signal N), the phases of
// rep.Timings and an object per report object.
func RunMetrics(rep *Report, ws unix.WaitStatus) metrics.Run {
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
	return r
}

// SweepMetrics is a sweep for the metrics file: its journals by status
// and the objects of the runs it finished; err is the sweep's own failure
// (Sweep's error), took its duration.
func SweepMetrics(reps []SweepReport, took time.Duration, err error) metrics.Run {
	r := metrics.Run{Mode: "sweep", End: time.Now(), Result: "succeeded", Journals: map[string]int{},
		Phases: []metrics.Phase{{Name: "sweep", Seconds: took.Seconds()}}}
	if err != nil {
		r.Result, r.ExitStatus = "error", ExitUsage
	}
	for _, s := range reps {
		r.Journals[s.Status]++
		if s.Run != nil {
			r.Objects = append(r.Objects, metricObjects(s.Run)...)
		}
	}
	return r
}

// OrphanMetrics is an ls --orphans for the metrics file: each object
// listed, would_remove when an orphan, else kept with the class of what
// kept it (ipcdiff.Class*); err is the listing's failure.
func OrphanMetrics(ds []ipcdiff.OrphanDecision, took time.Duration, err error) metrics.Run {
	r := metrics.Run{Mode: "orphans", End: time.Now(), Result: "succeeded",
		Phases: []metrics.Phase{{Name: "orphans", Seconds: took.Seconds()}}}
	if err != nil {
		r.Result, r.ExitStatus = "error", ExitUsage
	}
	for _, d := range ds {
		o := metrics.Object{Type: d.Type.String(), Action: "kept", Reason: d.Class}
		if d.Orphan {
			o.Action = "would_remove"
		}
		r.Objects = append(r.Objects, o)
	}
	return r
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
func reasonClass(rep *Report, o ReportObject) string {
	switch o.Action {
	case ActRemoved, ActWouldRemove:
		return strings.ReplaceAll(o.Strength, " ", "_")
	case ActFailed:
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
