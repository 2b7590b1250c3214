package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
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
	// OwnKeys are the keys declared the command's (--own-keys), "all"
	// for every key; absent when none.
	OwnKeys []string `json:"own_keys,omitempty"`
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

// reportSink is where --report goes. openReport checks the path before the
// command starts, so that a bad path is a usage error, not a lost report.
//
// The file is never written through: the report goes to a new file in the
// same directory (mode 0600 before the umask; a default ACL of the directory
// may widen it), which is then renamed over PATH, so a reader sees the old
// report or the whole new one, and a link planted at PATH is replaced, not
// followed. A symbolic link at PATH is followed only when it belongs to the
// effective uid or to the owner of its directory (the rule of the kernel's
// fs.protected_symlinks, applied in every directory). Anything at PATH but a
// regular file (a FIFO, a device, a directory) is refused without being
// opened. An existing report is removed when the run begins: a run that ends
// before it writes its report (ipcguard killed) leaves no report rather than
// the previous run's looking current.
type reportSink struct {
	path   string // as the user gave it, for messages
	target string // PATH with its permitted links resolved; "" for stderr
}

// maxReportLinks bounds the links followed, as the kernel's MAXSYMLINKS.
const maxReportLinks = 40

func openReport(path string) (*reportSink, error) {
	switch path {
	case "":
		return nil, nil
	case "-":
		return &reportSink{path: "-"}, nil
	}
	target, err := resolveReport(path, os.Geteuid())
	if err != nil {
		return nil, usagef("--report %s: %v", path, err)
	}
	var st unix.Stat_t
	switch err := unix.Lstat(target, &st); {
	case err == unix.ENOENT:
	case err != nil:
		return nil, usagef("--report %s: %v", path, err)
	case st.Mode&unix.S_IFMT != unix.S_IFREG:
		return nil, usagef("--report %s: %s is %s, not a regular file: refusing to write the report there", path, target, fileKind(st.Mode))
	default:
		// Not a stale report that looks current if this run never
		// writes one; also proves that PATH may be replaced.
		if err := unix.Unlink(target); err != nil && err != unix.ENOENT {
			return nil, usagef("--report %s: cannot replace %s: %v", path, target, err)
		}
	}
	s := &reportSink{path: path, target: target}
	// Prove now that the directory takes the new file.
	f, err := s.temp()
	if err != nil {
		return nil, usagef("--report %s: %v", path, unwrapPathError(err))
	}
	f.Close()
	os.Remove(f.Name())
	return s, nil
}

// resolveReport follows the symbolic links at the end of path that belong to
// euid or to the owner of the directory holding them, and refuses any other.
func resolveReport(path string, euid int) (string, error) {
	for range maxReportLinks {
		var st unix.Stat_t
		if err := unix.Lstat(path, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFLNK {
			return path, nil // missing, or not a link: checked by the caller
		}
		var dir unix.Stat_t
		if err := unix.Stat(filepath.Dir(path), &dir); err != nil {
			return "", err
		}
		if int(st.Uid) != euid && st.Uid != dir.Uid {
			return "", fmt.Errorf("%s is a symbolic link of uid %d in a directory of uid %d: refusing to follow it (another user could point it at any file)", path, st.Uid, dir.Uid)
		}
		to, err := os.Readlink(path)
		if err != nil {
			return "", unwrapPathError(err)
		}
		if !filepath.IsAbs(to) {
			to = filepath.Join(filepath.Dir(path), to)
		}
		path = to
	}
	return "", unix.ELOOP
}

func fileKind(mode uint32) string {
	switch mode & unix.S_IFMT {
	case unix.S_IFDIR:
		return "a directory"
	case unix.S_IFIFO:
		return "a FIFO"
	case unix.S_IFSOCK:
		return "a socket"
	case unix.S_IFCHR:
		return "a character device"
	case unix.S_IFBLK:
		return "a block device"
	}
	return "not a regular file"
}

// temp creates the file the report is written to before the rename.
func (s *reportSink) temp() (*os.File, error) {
	return os.CreateTemp(filepath.Dir(s.target), "."+filepath.Base(s.target)+".*.tmp")
}

func unwrapPathError(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	var le *os.LinkError
	if errors.As(err, &le) {
		return le.Err
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
	if s.target == "" {
		_, err = stderr.Write(b)
		return err
	}
	f, err := s.temp()
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), s.target)
	}
	if err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("%s: %w", s.path, unwrapPathError(err))
	}
	return nil
}

// Bounds of the summary line: the ids listed per action, and the length of
// each reason or error quoted.
const (
	summaryIDs    = 5
	summaryReason = 80
)

// summary is the one line on stderr that says what happened. Its length is
// bounded whatever the number of objects: past summaryIDs objects an action
// gives counts per type and the first few ids, and points to the report
// (reportPath, "" when there is none) for the full list.
func summary(r *Report, reportPath string) string {
	var removed, would, failed, kept []reportObj
	for _, o := range r.Objects {
		switch o.Action {
		case actRemoved:
			removed = append(removed, o)
		case actWouldRemove:
			would = append(would, o)
		case actFailed:
			failed = append(failed, o)
		default:
			kept = append(kept, o)
		}
	}
	var parts []string
	cut := false
	add := func(verb string, l []reportObj, why func(reportObj) string) {
		if len(l) == 0 {
			return
		}
		show := l
		if len(l) > summaryIDs {
			show, cut = l[:summaryIDs], true
		}
		items := make([]string, 0, len(show)+1)
		for _, o := range show {
			item := fmt.Sprintf("%s %d", o.Type, o.ID)
			if why != nil {
				item += ": " + clip(why(o), summaryReason)
			}
			items = append(items, item)
		}
		if len(show) < len(l) {
			items = append(items, "…")
			parts = append(parts, fmt.Sprintf("%s %d (%s; %s)", verb, len(l), countByType(l), strings.Join(items, ", ")))
			return
		}
		parts = append(parts, fmt.Sprintf("%s %d (%s)", verb, len(l), strings.Join(items, ", ")))
	}
	add("removed", removed, nil)
	add("would remove", would, nil)
	add("failed to remove", failed, func(o reportObj) string { return o.Error })
	add("kept", kept, func(o reportObj) string { return o.Reason })
	if len(parts) == 0 {
		return ""
	}
	line := "ipcguard: " + strings.Join(parts, "; ")
	if cut {
		switch reportPath {
		case "":
			line += "; the full list with --report"
		case "-":
			line += "; the full list is in the report above"
		default:
			line += "; the full list is in " + reportPath
		}
	}
	return line
}

// countByType is "4000 shm, 1000 sem".
func countByType(l []reportObj) string {
	var order []string
	n := map[string]int{}
	for _, o := range l {
		if n[o.Type] == 0 {
			order = append(order, o.Type)
		}
		n[o.Type]++
	}
	out := make([]string, len(order))
	for i, t := range order {
		out[i] = fmt.Sprintf("%d %s", n[t], t)
	}
	return strings.Join(out, ", ")
}

// clip shortens s to at most n runes, marking the cut with "…".
func clip(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}
