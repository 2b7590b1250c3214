package metrics

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// checkExposition checks text against the Prometheus text format, 0.0.4
// (https://prometheus.io/docs/instrumenting/exposition_formats/), written
// here apart from Parse so that the writer is not checked by its own
// reader, plus what node_exporter's textfile collector asks: no
// timestamps. It returns the samples as "name{labels} value" lines with
// the labels as written.
func checkExposition(t reporter, text string) map[string]float64 {
	t.Helper()
	metricName := regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*$`)
	labelName := regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)
	if text != "" && !strings.HasSuffix(text, "\n") {
		t.Errorf("does not end in a newline")
	}
	types := map[string]string{}
	helps := map[string]bool{}
	done := map[string]bool{} // families whose samples have ended
	current := ""
	out := map[string]float64{}
	for n, line := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		errf := func(format string, args ...any) {
			t.Errorf("line %d %q: "+format, append([]any{n + 1, line}, args...)...)
		}
		if strings.TrimSpace(line) == "" {
			continue
		}
		if strings.HasPrefix(line, "#") {
			f := strings.Fields(line)
			if len(f) >= 3 && (f[1] == "HELP" || f[1] == "TYPE") {
				if !metricName.MatchString(f[2]) {
					errf("bad metric name")
				}
				if done[f[2]] || current == f[2] {
					errf("%s after the family's samples", f[1])
				}
				if f[1] == "TYPE" {
					if len(f) != 4 || !map[string]bool{"counter": true, "gauge": true, "histogram": true, "summary": true, "untyped": true}[f[3]] {
						errf("bad TYPE")
					}
					if types[f[2]] != "" {
						errf("second TYPE")
					}
					types[f[2]] = f[3]
				} else {
					if helps[f[2]] {
						errf("second HELP")
					}
					helps[f[2]] = true
					if h := strings.SplitN(line, " ", 4); len(h) == 4 && regexp.MustCompile(`\\[^\\n]`).MatchString(strings.ReplaceAll(h[3], `\\`, "")) {
						errf("bad escape in HELP")
					}
				}
			}
			continue
		}
		// name, labels, value: parsed by hand, character by character.
		i := strings.IndexAny(line, "{ ")
		if i < 0 {
			errf("no value")
			continue
		}
		name := line[:i]
		if !metricName.MatchString(name) {
			errf("bad metric name")
		}
		if name != current {
			if done[name] {
				errf("samples of %s are not together", name)
			}
			if current != "" {
				done[current] = true
			}
			current = name
		}
		rest := line[i:]
		var labels []string
		seen := map[string]bool{}
		if rest[0] == '{' {
			rest = rest[1:]
			for !strings.HasPrefix(rest, "}") {
				eq := strings.IndexByte(rest, '=')
				if eq < 0 || len(rest) < eq+2 || rest[eq+1] != '"' {
					errf("bad label")
					break
				}
				ln := rest[:eq]
				if !labelName.MatchString(ln) || strings.HasPrefix(ln, "__") || seen[ln] {
					errf("bad or repeated label name %q", ln)
				}
				seen[ln] = true
				j := eq + 2
				for ; j < len(rest) && rest[j] != '"'; j++ {
					if rest[j] == '\\' {
						if j+1 >= len(rest) || !strings.ContainsRune(`\"n`, rune(rest[j+1])) {
							errf("bad escape in a label value")
						}
						j++
					}
				}
				if j >= len(rest) {
					errf("unterminated label value")
					break
				}
				labels = append(labels, rest[:j+1])
				rest = rest[j+1:]
				if strings.HasPrefix(rest, ",") {
					rest = rest[1:]
				} else if !strings.HasPrefix(rest, "}") {
					errf("want , or }")
					break
				}
			}
			rest = strings.TrimPrefix(rest, "}")
		}
		if !strings.HasPrefix(rest, " ") {
			errf("no space before the value")
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 1 {
			errf("want one value and no timestamp (the textfile collector refuses timestamps)")
			continue
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			errf("bad value")
		}
		if types[name] == "" {
			errf("no TYPE before the first sample")
		}
		if types[name] == "counter" && (v < 0 || !strings.HasSuffix(name, "_total")) {
			errf("a counter is named *_total and not negative")
		}
		key := name + "{" + strings.Join(labels, ",") + "}"
		if _, dup := out[key]; dup {
			errf("duplicate series")
		}
		out[key] = v
	}
	return out
}

// reporter is the part of testing.T the checker uses.
type reporter interface {
	Helper()
	Errorf(format string, args ...any)
}

// recorder notes whether the checker found a fault.
type recorder struct{ failed bool }

func (*recorder) Helper()                 {}
func (r *recorder) Errorf(string, ...any) { r.failed = true }

// promtool checks text with Prometheus's own linter when it is installed
// (Debian's prometheus package; .ci/run installs it).
func promtool(t *testing.T, text string) {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("promtool is not installed (.ci/run installs it)")
		}
		t.Log("promtool is not installed: checked by the test's own parser only")
		return
	}
	cmd := exec.Command(p, "check", "metrics")
	cmd.Stdin = strings.NewReader(text)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s\n%s", err, out, text)
	}
}

func sampleRun(end time.Time) Run {
	return Run{Mode: "run", Result: "failed", ExitStatus: 3, End: end,
		Objects: []Object{{"shm", "removed", "pid_evidence"}, {"sem", "removed", "window_evidence"},
			{"shm", "kept", "in_use"}, {"shm", "removed", "pid_evidence"}},
		Phases: []Phase{{"snapshot_before", 0.000568}, {"command", 1.5}, {"remove", 0.000052}}}
}

func render(s Set) string {
	var b bytes.Buffer
	s.WriteTo(&b)
	return b.String()
}

func TestFormat(t *testing.T) {
	var s Set
	end := time.Unix(1700000000, 250e6)
	s.Add(sampleRun(end))
	s.Add(Run{Mode: "sweep", Result: "succeeded", End: end.Add(time.Second), Journals: map[string]int{"swept": 2, "live": 1},
		Phases: []Phase{{"sweep", 0.25}}})
	text := render(s)
	got := checkExposition(t, text)
	promtool(t, text)
	for k, v := range map[string]float64{
		`ipcguard_runs_total{mode="run",result="failed"}`:                                         1,
		`ipcguard_runs_total{mode="sweep",result="succeeded"}`:                                    1,
		`ipcguard_objects_total{action="removed",mode="run",reason="pid_evidence",type="shm"}`:    2,
		`ipcguard_objects_total{action="removed",mode="run",reason="window_evidence",type="sem"}`: 1,
		`ipcguard_objects_total{action="kept",mode="run",reason="in_use",type="shm"}`:             1,
		`ipcguard_phase_seconds_total{mode="run",phase="command"}`:                                1.5,
		`ipcguard_sweep_journals_total{status="swept"}`:                                           2,
		`ipcguard_last_run_timestamp_seconds{mode="run"}`:                                         1700000000.25,
		`ipcguard_last_run_exit_status{mode="run"}`:                                               3,
		`ipcguard_last_run_objects{action="removed",mode="run"}`:                                  3,
		`ipcguard_last_run_objects{action="failed",mode="sweep"}`:                                 0,
		`ipcguard_last_run_phase_seconds{mode="sweep",phase="sweep"}`:                             0.25,
	} {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
	if strings.Contains(text, "99999") {
		t.Errorf("float noise in\n%s", text)
	}
}

func TestAddAccumulates(t *testing.T) {
	var s Set
	end := time.Unix(1700000000, 0)
	s.Add(sampleRun(end))
	// Through the text and back, as a second process would see it.
	s2, err := Parse([]byte(render(s)))
	if err != nil {
		t.Fatal(err)
	}
	later := sampleRun(end.Add(time.Minute))
	later.Result, later.ExitStatus, later.Objects = "succeeded", 0, []Object{{"msg", "kept", "no_cleanup"}}
	s2.Add(later)
	got := checkExposition(t, render(s2))
	for k, v := range map[string]float64{
		`ipcguard_runs_total{mode="run",result="failed"}`:                                      1,
		`ipcguard_runs_total{mode="run",result="succeeded"}`:                                   1,
		`ipcguard_objects_total{action="removed",mode="run",reason="pid_evidence",type="shm"}`: 2,
		`ipcguard_objects_total{action="kept",mode="run",reason="no_cleanup",type="msg"}`:      1,
		`ipcguard_phase_seconds_total{mode="run",phase="command"}`:                             3,
		`ipcguard_last_run_phase_seconds{mode="run",phase="command"}`:                          1.5,
		`ipcguard_last_run_exit_status{mode="run"}`:                                            0,
		`ipcguard_last_run_timestamp_seconds{mode="run"}`:                                      1700000060,
		`ipcguard_last_run_objects{action="removed",mode="run"}`:                               0,
		`ipcguard_last_run_objects{action="kept",mode="run"}`:                                  1,
	} {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
}

func TestLabelEscaping(t *testing.T) {
	var s Set
	odd := "a \"quoted\" back\\slash\nnewline"
	s.Add(Run{Mode: odd, Result: "failed", End: time.Unix(1, 0)})
	text := render(s)
	checkExposition(t, text)
	promtool(t, text)
	back, err := Parse([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	if l := back["ipcguard_runs_total"][0].Labels; l[0].Value != odd {
		t.Errorf("label value %q came back as %q", odd, l[0].Value)
	}
}

func TestParseRefuses(t *testing.T) {
	for _, bad := range []string{
		"other_metric 1\n",
		"ipcguard_runs_total{mode=\"run\" 1\n",
		"ipcguard_runs_total{mode=\"run\"} one\n",
		"ipcguard_runs_total\n",
	} {
		if _, err := Parse([]byte(bad)); err == nil {
			t.Errorf("Parse(%q) accepted", bad)
		}
	}
}

func readMode(t *testing.T, path string) os.FileMode {
	t.Helper()
	st, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Mode()
}

func writeRun(t *testing.T, path string, r Run) {
	t.Helper()
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Write(r); err != nil {
		t.Fatal(err)
	}
}

// TestFileWrite: the file is 0644 whatever the umask, no temporary file
// is left, a second run adds to the first, and a file that is not ours
// (damaged) is replaced, not merged.
func TestFileWrite(t *testing.T) {
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	dir := t.TempDir()
	path := filepath.Join(dir, "job.prom")
	writeRun(t, path, sampleRun(time.Unix(1700000000, 0)))
	writeRun(t, path, sampleRun(time.Unix(1700000001, 0)))
	if m := readMode(t, path); m != 0o644 {
		t.Errorf("mode %v, want -rw-r--r--", m)
	}
	b, _ := os.ReadFile(path)
	promtool(t, string(b))
	if got := checkExposition(t, string(b)); got[`ipcguard_runs_total{mode="run",result="failed"}`] != 2 {
		t.Errorf("two runs, file says:\n%s", b)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Errorf("directory holds %v, want job.prom alone", ents)
	}
	os.WriteFile(path, []byte("garbage\n"), 0o644)
	writeRun(t, path, sampleRun(time.Unix(1700000002, 0)))
	b, _ = os.ReadFile(path)
	if got := checkExposition(t, string(b)); got[`ipcguard_runs_total{mode="run",result="failed"}`] != 1 {
		t.Errorf("after a damaged file, want a fresh count:\n%s", b)
	}
}

// TestSymlinkReplacedNotFollowed: a symbolic link at the path is
// replaced by the file; what it pointed to is untouched.
func TestSymlinkReplacedNotFollowed(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "precious")
	os.WriteFile(target, []byte("keep me\n"), 0o600)
	path := filepath.Join(dir, "job.prom")
	if err := os.Symlink(target, path); err != nil {
		t.Fatal(err)
	}
	writeRun(t, path, sampleRun(time.Unix(1700000000, 0)))
	if b, _ := os.ReadFile(target); string(b) != "keep me\n" {
		t.Errorf("the link's target was written: %q", b)
	}
	if m := readMode(t, path); !m.IsRegular() {
		t.Errorf("%s is %v, want a regular file", path, m)
	}
}

// TestOpenRefusesUnsafeDirectories: a directory every user may write
// without the sticky bit, or a symbolic link on the way that another
// user owns, is refused; a sticky world-writable directory (/tmp) and
// links of our own are fine.
func TestOpenRefusesUnsafeDirectories(t *testing.T) {
	base := t.TempDir()
	open := filepath.Join(base, "open")
	os.Mkdir(open, 0o755)
	syscall.Chmod(open, 0o777)
	if _, err := Open(filepath.Join(open, "x.prom")); !errors.Is(err, ErrUnsafePath) {
		t.Errorf("world-writable directory: %v, want ErrUnsafePath", err)
	}
	if _, err := Open(filepath.Join(open, "sub", "..", "x.prom")); err == nil {
		t.Errorf("through a world-writable directory: accepted")
	}
	sticky := filepath.Join(base, "sticky")
	os.Mkdir(sticky, 0o755)
	syscall.Chmod(sticky, 0o1777) // raw mode bits: os.Chmod spells sticky os.ModeSticky
	if f, err := Open(filepath.Join(sticky, "x.prom")); err != nil {
		t.Errorf("sticky directory: %v", err)
	} else {
		f.Close()
	}
	real := filepath.Join(base, "real")
	os.Mkdir(real, 0o755)
	mine := filepath.Join(base, "mine")
	os.Symlink(real, mine)
	writeRun(t, filepath.Join(mine, "x.prom"), sampleRun(time.Unix(1, 0)))
	if _, err := os.Stat(filepath.Join(real, "x.prom")); err != nil {
		t.Errorf("through our own link: %v", err)
	}
	for _, p := range []string{"", base + "/", base + "/..", base + "/."} {
		if _, err := Open(p); err == nil {
			t.Errorf("Open(%q) accepted a path that names no file", p)
		}
	}
	if _, err := Open(filepath.Join(base, "missing", "x.prom")); err == nil {
		t.Errorf("missing directory accepted")
	}

	if os.Geteuid() != 0 {
		t.Skip("a link owned by another user needs root to make")
	}
	theirs := filepath.Join(sticky, "theirs")
	os.Symlink(real, theirs)
	if err := os.Lchown(theirs, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(filepath.Join(theirs, "x.prom")); !errors.Is(err, ErrUnsafePath) {
		t.Errorf("link owned by uid 65534: %v, want ErrUnsafePath", err)
	}
	// The same, deeper: a link of ours pointing to theirs.
	chain := filepath.Join(base, "chain")
	os.Symlink(theirs, chain)
	if _, err := Open(filepath.Join(chain, "x.prom")); !errors.Is(err, ErrUnsafePath) {
		t.Errorf("link to a link owned by uid 65534: %v, want ErrUnsafePath", err)
	}
}

// TestConcurrentWriters: runs writing one file at the same time lose no
// count (the directory lock serialises read, add, replace).
func TestConcurrentWriters(t *testing.T) {
	path := filepath.Join(t.TempDir(), "shared.prom")
	const writers, runs = 8, 5
	var wg sync.WaitGroup
	errs := make(chan error, writers*runs)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < runs; i++ {
				f, err := Open(path)
				if err != nil {
					errs <- err
					return
				}
				errs <- f.Write(sampleRun(time.Now()))
				f.Close()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	b, _ := os.ReadFile(path)
	got := checkExposition(t, string(b))
	if n := got[`ipcguard_runs_total{mode="run",result="failed"}`]; n != writers*runs {
		t.Errorf("runs_total = %v after %d runs", n, writers*runs)
	}
	if n := got[`ipcguard_objects_total{action="removed",mode="run",reason="pid_evidence",type="shm"}`]; n != 2*writers*runs {
		t.Errorf("objects removed = %v, want %d", n, 2*writers*runs)
	}
}

// TestCheckExpositionCatches makes sure the checker above can fail.
func TestCheckExpositionCatches(t *testing.T) {
	for _, bad := range []string{
		"# TYPE a_total counter\na_total 1 1700000000\n", // timestamp
		"a_total 1\n", // no TYPE
		"# TYPE a_total counter\na_total{x=\"1\"} 1\na_total{x=\"1\"} 2\n", // duplicate
		"# TYPE a_total counter\na_total{x=\"\\q\"} 1\n",                   // bad escape
		"# TYPE a counter\na 1\n",                                          // counter without _total
		"# TYPE a gauge\na 1\n# TYPE b gauge\nb 1\na 2\n",                  // family split
		"# TYPE a gauge\na{1x=\"v\"} 1\n",                                  // label name
		"# TYPE a gauge\na 1",                                              // no final newline
	} {
		var r recorder
		checkExposition(&r, bad)
		if !r.failed {
			t.Errorf("checker accepted %q", bad)
		}
	}
}
