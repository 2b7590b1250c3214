package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/ipcguard/ipcguard/ipcdiff"
	"github.com/ipcguard/ipcguard/supervisor"
	"golang.org/x/sys/unix"
)

// Report is the JSON written by --report: what ran, how it ended, and for
// every object new since the command started, what was done and why.
type Report struct {
	Version     int          `json:"version"`
	Command     []string     `json:"command"`
	Pid         int          `json:"pid,omitempty"`
	ExitCode    *int         `json:"exit_code"`
	Signal      string       `json:"signal,omitempty"`
	Policy      reportPolicy `json:"policy"`
	Cleanup     bool         `json:"cleanup"`
	Why         string       `json:"cleanup_reason"`
	Tracker     reportTree   `json:"tracker"`
	Window      reportWindow `json:"window"`
	Snapshot    reportSnap   `json:"snapshot"`
	Descendants reportDesc   `json:"descendants"`
	Objects     []reportObj  `json:"objects"`
	Removed     int          `json:"removed"`
	Kept        int          `json:"kept"`
	Failed      int          `json:"failed"`
	Warnings    []string     `json:"warnings,omitempty"`
	Timings     timings      `json:"timings_us"`
}

// timings are the durations of ipcguard's own phases, in microseconds.
type timings struct {
	SnapshotBefore int64 `json:"snapshot_before"`
	Journal        int64 `json:"journal"`
	Command        int64 `json:"command"` // from the fork to the end of the tree
	SnapshotAfter  int64 `json:"snapshot_after"`
	Attribute      int64 `json:"attribute"` // diff, evidence, decisions
	Remove         int64 `json:"remove"`
}

// since returns the microseconds since *t and moves *t to now.
func since(t *time.Time) int64 {
	now := time.Now()
	d := now.Sub(*t).Microseconds()
	*t = now
	return d
}

type reportPolicy struct {
	On       string   `json:"on"`
	DryRun   bool     `json:"dry_run"`
	Strict   bool     `json:"strict"`
	Types    string   `json:"types"`
	KeepKeys []string `json:"keep_keys"`
}

type reportTree struct {
	Name            string `json:"name"`
	Exact           bool   `json:"exact"`
	CreationTracked bool   `json:"creation_tracked"`
	Pids            int    `json:"pids"`
	Note            string `json:"note,omitempty"`
	// PidWatch is what the watch of the pid allocator covered (see
	// docs/evidence.md): pid evidence holds only inside it.
	PidWatch *reportWatch `json:"pid_watch,omitempty"`
}

type reportWatch struct {
	OK    bool      `json:"ok"`
	From  time.Time `json:"from,omitzero"`
	Until time.Time `json:"until,omitzero"`
	Why   string    `json:"why,omitempty"`
}

func newReportWatch(w supervisor.Watch) *reportWatch {
	return &reportWatch{OK: w.OK, From: w.From, Until: w.Until, Why: w.Why}
}

type reportWindow struct {
	Start     time.Time `json:"start"`
	End       time.Time `json:"end"`
	Contended bool      `json:"contended"`
	Why       string    `json:"why,omitempty"`
}

type reportSnap struct {
	Before int `json:"before"`
	After  int `json:"after"`
	New    int `json:"new"`
}

type reportDesc struct {
	Terminated []int `json:"terminated"`
	Killed     []int `json:"killed"`
	Remaining  []int `json:"remaining"`
}

type ids struct {
	UID uint32 `json:"uid"`
	GID uint32 `json:"gid"`
}

type reportObj struct {
	Type     string   `json:"type"`
	ID       int      `json:"id"`
	Key      string   `json:"key"`
	Owner    ids      `json:"owner"`
	Creator  ids      `json:"creator"`
	Action   string   `json:"action"` // removed, kept, would-remove, failed
	Strength string   `json:"strength,omitempty"`
	Evidence []string `json:"evidence,omitempty"`
	Reason   string   `json:"reason,omitempty"`
	Error    string   `json:"error,omitempty"`
}

// Actions an object can end with.
const (
	actRemoved     = "removed"
	actKept        = "kept"
	actWouldRemove = "would-remove"
	actFailed      = "failed"
)

func newReportObj(d ipcdiff.Decision, action, errText string) reportObj {
	uid, gid, cuid, cgid := d.Owner()
	r := reportObj{Type: d.Type.String(), ID: d.ID, Key: ipcdiff.KeyString(d.Key),
		Owner: ids{uid, gid}, Creator: ids{cuid, cgid}, Action: action,
		Evidence: d.Evidence, Reason: d.Reason, Error: errText}
	if d.Remove {
		r.Strength = d.Strength.String()
	}
	return r
}

func setStatus(r *Report, ws unix.WaitStatus) {
	if ws.Signaled() {
		r.Signal = unix.SignalName(ws.Signal())
		return
	}
	c := ws.ExitStatus()
	r.ExitCode = &c
}

// reportSink is where --report goes, opened before the command starts so a
// bad path is a usage error, not a lost report.
type reportSink struct {
	path string
	f    *os.File
}

func openReport(path string, stderr io.Writer) (*reportSink, error) {
	switch path {
	case "":
		return nil, nil
	case "-":
		return &reportSink{path: "-"}, nil
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		return nil, usagef("--report %s: %v", path, unwrapPathError(err))
	}
	return &reportSink{path: path, f: f}, nil
}

func unwrapPathError(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}

func (s *reportSink) write(r *Report, stderr io.Writer) error { return s.writeAny(r, stderr) }

func (s *reportSink) writeAny(r any, stderr io.Writer) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	b = append(b, '\n')
	if s.f == nil {
		_, err = stderr.Write(b)
		return err
	}
	if err := s.f.Truncate(0); err != nil {
		s.f.Close()
		return err
	}
	if _, err := s.f.WriteAt(b, 0); err != nil {
		s.f.Close()
		return err
	}
	return s.f.Close()
}

// summary is the one line on stderr that says what happened.
func summary(r *Report) string {
	var removed, would, failed, kept []string
	for _, o := range r.Objects {
		id := fmt.Sprintf("%s %d", o.Type, o.ID)
		switch o.Action {
		case actRemoved:
			removed = append(removed, id)
		case actWouldRemove:
			would = append(would, id)
		case actFailed:
			failed = append(failed, id+": "+o.Error)
		default:
			kept = append(kept, id+": "+o.Reason)
		}
	}
	var parts []string
	add := func(verb string, l []string) {
		if len(l) > 0 {
			parts = append(parts, fmt.Sprintf("%s %d (%s)", verb, len(l), strings.Join(l, ", ")))
		}
	}
	add("removed", removed)
	add("would remove", would)
	add("failed to remove", failed)
	add("kept", kept)
	if len(parts) == 0 {
		return ""
	}
	return "ipcguard: " + strings.Join(parts, "; ")
}
