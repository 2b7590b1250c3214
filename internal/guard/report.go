package guard

import (
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/ipcguard/ipcguard/ipcdiff"
	"github.com/ipcguard/ipcguard/supervisor"
	"golang.org/x/sys/unix"
)

// Report is the JSON written by --report (README, "The report"): what
// ran, how it ended, and for every object new since the command started,
// what was done and why. The field order is the order of the JSON.
type Report struct {
	Version     int               `json:"version"`
	Command     []string          `json:"command"`
	Pid         int               `json:"pid,omitempty"`
	ExitCode    *int              `json:"exit_code"`
	Signal      string            `json:"signal,omitempty"`
	Policy      ReportPolicy      `json:"policy"`
	Cleanup     bool              `json:"cleanup"`
	Why         string            `json:"cleanup_reason"`
	Tracker     ReportTracker     `json:"tracker"`
	Window      ReportWindow      `json:"window"`
	Snapshot    ReportSnapshot    `json:"snapshot"`
	Descendants ReportDescendants `json:"descendants"`
	Objects     []ReportObject    `json:"objects"`
	Removed     int               `json:"removed"`
	Kept        int               `json:"kept"`
	Failed      int               `json:"failed"`
	Warnings    []string          `json:"warnings,omitempty"`
	Timings     Timings           `json:"timings_us"`
}

// Timings are the durations of ipcguard's own phases, in microseconds.
type Timings struct {
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

// ReportPolicy is what the user asked for.
type ReportPolicy struct {
	On       string   `json:"on"`
	DryRun   bool     `json:"dry_run"`
	Strict   bool     `json:"strict"`
	Types    string   `json:"types"`
	KeepKeys []string `json:"keep_keys"`
	// KeepNames are the --keep-name patterns; absent when none.
	KeepNames []string `json:"keep_names,omitempty"`
	// OwnKeys are the keys declared the command's (--own-keys), "all"
	// for every key; absent when none.
	OwnKeys []string `json:"own_keys,omitempty"`
}

// ReportTracker is how the tree was followed.
type ReportTracker struct {
	Name            string `json:"name"`
	Exact           bool   `json:"exact"`
	CreationTracked bool   `json:"creation_tracked"`
	Pids            int    `json:"pids"`
	Note            string `json:"note,omitempty"`
	// PidWatch is what the watch of the pid allocator covered (see
	// docs/evidence.md): pid evidence holds only inside it.
	PidWatch *ReportWatch `json:"pid_watch,omitempty"`
}

// ReportWatch is what the pid watch covered (supervisor.Watch).
type ReportWatch struct {
	OK    bool      `json:"ok"`
	From  time.Time `json:"from,omitzero"`
	Until time.Time `json:"until,omitzero"`
	Why   string    `json:"why,omitempty"`
}

func newReportWatch(w supervisor.Watch) *ReportWatch {
	return &ReportWatch{OK: w.OK, From: w.From, Until: w.Until, Why: w.Why}
}

// ReportWindow is the run's window: from the snapshot before to the one
// after, and whether window evidence was off (contended) and why.
type ReportWindow struct {
	Start     time.Time `json:"start"`
	End       time.Time `json:"end"`
	Contended bool      `json:"contended"`
	Why       string    `json:"why,omitempty"`
}

// ReportSnapshot counts the objects of the two snapshots and the new ones.
type ReportSnapshot struct {
	Before int `json:"before"`
	After  int `json:"after"`
	New    int `json:"new"`
}

// ReportDescendants are the pids of the processes the command left
// running: ended with SIGTERM, with SIGKILL, or left alone.
type ReportDescendants struct {
	Terminated []int `json:"terminated"`
	Killed     []int `json:"killed"`
	Remaining  []int `json:"remaining"`
}

// IDs are a user and a group id.
type IDs struct {
	UID uint32 `json:"uid"`
	GID uint32 `json:"gid"`
}

// ReportObject is one new object: what was done with it and why.
type ReportObject struct {
	Type string `json:"type"`
	ID   int    `json:"id"` // a POSIX object's inode number
	// Name is a POSIX object's name as its directory lists it ("foo",
	// "sem.foo"); absent for System V objects.
	Name     string   `json:"name,omitempty"`
	Key      string   `json:"key,omitempty"` // System V only
	Owner    IDs      `json:"owner"`
	Creator  IDs      `json:"creator"`
	Action   string   `json:"action"` // ActRemoved, ActKept, ActWouldRemove, ActFailed
	Strength string   `json:"strength,omitempty"`
	Evidence []string `json:"evidence,omitempty"`
	Reason   string   `json:"reason,omitempty"`
	Error    string   `json:"error,omitempty"`
}

// Actions an object can end with.
const (
	ActRemoved     = "removed"
	ActKept        = "kept"
	ActWouldRemove = "would-remove"
	ActFailed      = "failed"
)

func newReportObject(d ipcdiff.Decision, action, errText string) ReportObject {
	uid, gid, cuid, cgid := d.Object.Owners()
	r := ReportObject{Type: d.Type.String(), ID: d.ID, Name: d.Name,
		Owner: IDs{uid, gid}, Creator: IDs{cuid, cgid}, Action: action,
		Evidence: d.Evidence, Reason: d.Reason, Error: errText}
	if d.Name == "" {
		r.Key = ipcdiff.KeyString(d.Key) // a POSIX object has a name, no key
	}
	if d.Remove {
		r.Strength = d.Strength.String()
	}
	return r
}

// setStatus records how the command ended: its exit code or its signal.
func (r *Report) setStatus(ws unix.WaitStatus) {
	if ws.Signaled() {
		r.Signal = unix.SignalName(ws.Signal())
		return
	}
	c := ws.ExitStatus()
	r.ExitCode = &c
}

// Bounds of the summary line: the ids listed per action, and the length of
// each reason or error quoted.
const (
	summaryIDs    = 5
	summaryReason = 80
)

// Summary is the one line on stderr that says what happened ("" when no
// object was new). Its length is bounded whatever the number of objects:
// past summaryIDs objects an action gives counts per type and the first
// few ids, and points to the report (reportPath, "" when there is none,
// "-" for stderr) for the full list.
func (r *Report) Summary(reportPath string) string {
	var removed, would, failed, kept []ReportObject
	for _, o := range r.Objects {
		switch o.Action {
		case ActRemoved:
			removed = append(removed, o)
		case ActWouldRemove:
			would = append(would, o)
		case ActFailed:
			failed = append(failed, o)
		default:
			kept = append(kept, o)
		}
	}
	var parts []string
	cut := false
	add := func(verb string, l []ReportObject, why func(ReportObject) string) {
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
			if o.Name != "" {
				item = o.Type + " " + nameText(o.Name)
			}
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
	add("failed to remove", failed, func(o ReportObject) string { return o.Error })
	add("kept", kept, func(o ReportObject) string { return o.Reason })
	if len(parts) == 0 {
		return ""
	}
	// Names and the reasons quoting them are any bytes but '/' and NUL:
	// none may end the line or forge another.
	line := "ipcguard: " + escapeControls(strings.Join(parts, "; "))
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
func countByType(l []ReportObject) string {
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

// PrintableName is a POSIX name as ipcguard prints it on a line of its
// own (the summary, rm): as it is when it is printable UTF-8 without
// quotes or backslashes, else Go-quoted, so that a name with a newline
// cannot forge a line.
func PrintableName(name string) string { return nameText(name) }

// nameText is PrintableName.
func nameText(name string) string {
	if !utf8.ValidString(name) || strings.ContainsAny(name, "\\\"") || strings.ContainsFunc(name, func(r rune) bool { return !unicode.IsPrint(r) }) {
		return strconv.Quote(name)
	}
	return name
}

// escapeControls writes control characters and invalid UTF-8 of s as Go
// escapes (\n, \x1b), so that s stays one line of text.
func escapeControls(s string) string {
	if utf8.ValidString(s) && !strings.ContainsFunc(s, unicode.IsControl) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n <= 1:
			fmt.Fprintf(&b, "\\x%02x", s[i])
		case unicode.IsControl(r):
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
		default:
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

// clip shortens s to at most n runes, marking the cut with "…".
func clip(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}
