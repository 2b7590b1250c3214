// Package metrics writes what ipcguard runs did in the Prometheus text
// exposition format (version 0.0.4), for node_exporter's textfile
// collector: https://prometheus.io/docs/instrumenting/exposition_formats/
//
// One file holds the runs that name it: counters (runs, objects by type,
// action and reason class, seconds per phase) add up over the runs, and
// the last_run gauges describe the last run of each mode (run, sweep).
// Several processes may write the same file: Write takes an exclusive
// flock on its directory around read, add and replace.
package metrics

import (
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Run is one run's outcome. Every string is one of a few fixed words (the
// caller classifies free text): labels must stay few.
type Run struct {
	Mode       string    // "run" or "sweep"
	Result     string    // run: succeeded, failed, signaled; sweep: succeeded, error
	ExitStatus int       // ipcguard's exit status (128+N for a death by signal N)
	End        time.Time // when the run ended
	Objects    []Object
	// Phases gives every phase of the mode, reached or not (0 seconds),
	// so that the last-run gauges of a phase a later run skipped are reset.
	Phases []Phase
	// Journals counts a sweep's journals by status (swept, live,
	// running, corrupt, foreign, error).
	Journals map[string]int
}

// Object is one object's outcome.
type Object struct {
	Type   string // shm, sem, msg
	Action string // removed, kept, failed, would_remove
	Reason string // a reason class, not free text
}

// Phase is the time spent in one phase of the run.
type Phase struct {
	Name    string
	Seconds float64
}

// Actions, for the last-run gauge that lists each one, even at zero.
var Actions = []string{"removed", "kept", "failed", "would_remove"}

type family struct {
	name, typ, help string
}

// families are the metrics written, in order.
var families = []family{
	{"ipcguard_runs_total", "counter", "Runs of ipcguard that wrote this file, by mode (run, sweep, orphans) and result."},
	{"ipcguard_objects_total", "counter", "New IPC objects a run dealt with, by mode, type (shm, sem, msg), action (removed, kept, failed, would_remove) and reason class."},
	{"ipcguard_phase_seconds_total", "counter", "Seconds ipcguard spent in each phase of its runs (command is the wrapped command's run time)."},
	{"ipcguard_sweep_journals_total", "counter", "Run journals a sweep looked at, by status (swept, live, running, corrupt, foreign, error)."},
	{"ipcguard_last_run_timestamp_seconds", "gauge", "When the last run of each mode ended, in seconds since 1970."},
	{"ipcguard_last_run_exit_status", "gauge", "Exit status of ipcguard in the last run of each mode (128+N for a command killed by signal N)."},
	{"ipcguard_last_run_objects", "gauge", "New IPC objects of the last run of each mode, by action."},
	{"ipcguard_last_run_phase_seconds", "gauge", "Seconds spent in each phase of the last run of each mode."},
}

func familyOf(name string) (family, bool) {
	for _, f := range families {
		if f.name == name {
			return f, true
		}
	}
	return family{}, false
}

// Label is one label pair.
type Label struct{ Name, Value string }

// Sample is one line of a family.
type Sample struct {
	Labels []Label // sorted by name
	Value  float64
}

func (s Sample) key() string {
	var b strings.Builder
	for _, l := range s.Labels {
		b.WriteString(l.Name + "\x00" + l.Value + "\x00")
	}
	return b.String()
}

// Set is the content of a metrics file: samples by family name.
type Set map[string][]Sample

func (s *Set) add(name string, v float64, labels ...string) {
	if *s == nil {
		*s = Set{}
	}
	f, _ := familyOf(name)
	smp := Sample{Value: v}
	for i := 0; i+1 < len(labels); i += 2 {
		smp.Labels = append(smp.Labels, Label{labels[i], labels[i+1]})
	}
	sort.Slice(smp.Labels, func(i, j int) bool { return smp.Labels[i].Name < smp.Labels[j].Name })
	k := smp.key()
	for i, o := range (*s)[name] {
		if o.key() == k {
			if f.typ == "counter" {
				(*s)[name][i].Value += v
			} else {
				(*s)[name][i].Value = v
			}
			return
		}
	}
	(*s)[name] = append((*s)[name], smp)
}

// Add adds a run: its counts to the counters, its values to the gauges.
func (s *Set) Add(r Run) {
	m := r.Mode
	s.add("ipcguard_runs_total", 1, "mode", m, "result", r.Result)
	last := map[string]int{}
	for _, o := range r.Objects {
		s.add("ipcguard_objects_total", 1, "mode", m, "type", o.Type, "action", o.Action, "reason", o.Reason)
		last[o.Action]++
	}
	for _, p := range r.Phases {
		s.add("ipcguard_phase_seconds_total", p.Seconds, "mode", m, "phase", p.Name)
		s.add("ipcguard_last_run_phase_seconds", p.Seconds, "mode", m, "phase", p.Name)
	}
	for st, n := range r.Journals {
		s.add("ipcguard_sweep_journals_total", float64(n), "status", st)
	}
	s.add("ipcguard_last_run_timestamp_seconds", float64(r.End.UnixMilli())/1000, "mode", m)
	s.add("ipcguard_last_run_exit_status", float64(r.ExitStatus), "mode", m)
	for _, a := range Actions {
		s.add("ipcguard_last_run_objects", float64(last[a]), "mode", m, "action", a)
	}
}

// WriteTo writes the set in the text format: for each family with
// samples, # HELP, # TYPE, then its samples sorted by labels; no
// timestamps (the textfile collector refuses them).
func (s Set) WriteTo(w io.Writer) (int64, error) {
	var b strings.Builder
	for _, f := range families {
		smps := append([]Sample(nil), s[f.name]...)
		if len(smps) == 0 {
			continue
		}
		sort.Slice(smps, func(i, j int) bool { return smps[i].key() < smps[j].key() })
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s %s\n", f.name, escHelp(f.help), f.name, f.typ)
		for _, smp := range smps {
			b.WriteString(f.name)
			if len(smp.Labels) > 0 {
				b.WriteByte('{')
				for i, l := range smp.Labels {
					if i > 0 {
						b.WriteByte(',')
					}
					b.WriteString(l.Name + `="` + escLabel(l.Value) + `"`)
				}
				b.WriteByte('}')
			}
			// Microseconds are the finest unit measured; rounding keeps
			// sums of them from printing as 0.0005679999999999999.
			b.WriteString(" " + strconv.FormatFloat(math.Round(smp.Value*1e6)/1e6, 'f', -1, 64) + "\n")
		}
	}
	n, err := io.WriteString(w, b.String())
	return int64(n), err
}

func escHelp(s string) string {
	return strings.NewReplacer(`\`, `\\`, "\n", `\n`).Replace(s)
}

func escLabel(s string) string {
	return strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`).Replace(s)
}

// Parse reads a file WriteTo wrote. Comments are skipped; a sample of a
// family this package does not write, or a line it cannot read, is an
// error (the caller then starts a new file rather than carry over what it
// does not understand).
func Parse(b []byte) (Set, error) {
	s := Set{}
	for n, line := range strings.Split(string(b), "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		name, smp, err := parseSample(line)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n+1, err)
		}
		if _, ok := familyOf(name); !ok {
			return nil, fmt.Errorf("line %d: unknown metric %s", n+1, name)
		}
		s[name] = append(s[name], smp)
	}
	return s, nil
}

func parseSample(line string) (string, Sample, error) {
	var smp Sample
	i := strings.IndexAny(line, "{ ")
	if i <= 0 {
		return "", smp, fmt.Errorf("no value")
	}
	name, rest := line[:i], line[i:]
	if rest[0] == '{' {
		rest = rest[1:]
		for {
			if strings.HasPrefix(rest, "}") {
				rest = rest[1:]
				break
			}
			eq := strings.Index(rest, `="`)
			if eq <= 0 {
				return "", smp, fmt.Errorf("bad label in %q", line)
			}
			lname := rest[:eq]
			rest = rest[eq+2:]
			var v strings.Builder
			j := 0
			for ; j < len(rest) && rest[j] != '"'; j++ {
				if rest[j] == '\\' && j+1 < len(rest) {
					j++
					switch rest[j] {
					case 'n':
						v.WriteByte('\n')
					default:
						v.WriteByte(rest[j])
					}
					continue
				}
				v.WriteByte(rest[j])
			}
			if j == len(rest) {
				return "", smp, fmt.Errorf("unterminated label value in %q", line)
			}
			smp.Labels = append(smp.Labels, Label{lname, v.String()})
			rest = strings.TrimPrefix(rest[j+1:], ",")
		}
	}
	f, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
	if err != nil {
		return "", smp, fmt.Errorf("bad value in %q", line)
	}
	smp.Value = f
	sort.Slice(smp.Labels, func(i, j int) bool { return smp.Labels[i].Name < smp.Labels[j].Name })
	return name, smp, nil
}
