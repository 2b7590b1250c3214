package main_test

import (
	"os"
	"os/exec"
	"sort"
	"strings"
	"testing"

	"github.com/ipcguard/ipcguard/internal/metrics"
	"github.com/ipcguard/ipcguard/internal/nstest"
)

// series flattens a metrics file to "name{label=value,...}" -> value.
func series(e *env, text string) map[string]float64 {
	e.t.Helper()
	set, err := metrics.Parse([]byte(text))
	if err != nil {
		e.fatalf("metrics file: %v\n%s", err, text)
	}
	out := map[string]float64{}
	for name, smps := range set {
		for _, s := range smps {
			var l []string
			for _, x := range s.Labels {
				l = append(l, x.Name+"="+x.Value)
			}
			sort.Strings(l)
			out[name+"{"+strings.Join(l, ",")+"}"] = s.Value
		}
	}
	return out
}

// TestMetricsFile: --metrics adds every run to one file for node_exporter's
// textfile collector: a failing run's removals by type and reason class, a
// succeeding run's objects kept (no cleanup), a sweep; counters add up, the
// last-run gauges follow the last run; promtool accepts the file; it is
// mode 0644. A path in a missing directory is a usage error before the
// command runs.
func TestMetricsFile(t *testing.T) {
	inBothModes(t, func(t *testing.T, _ nstest.Mode) {
		e := newEnv(t, "metrics")
		prom := e.path("job.prom")
		e.wantExit(e.run("--metrics", prom, "--", "sh", "-c", allThree+"; exit 3", e.path("ids1")), 3)
		e.wantExit(e.run("--metrics", prom, "--", "sh", "-c", allThree+"; exit 0", e.path("ids2")), 0)
		e.wantExit(e.run("sweep", "--metrics", prom), 0)

		b, err := os.ReadFile(prom)
		if err != nil {
			e.fatalf("%v", err)
		}
		got := series(e, string(b))
		for k, v := range map[string]float64{
			"ipcguard_runs_total{mode=run,result=failed}":                                     1,
			"ipcguard_runs_total{mode=run,result=succeeded}":                                  1,
			"ipcguard_runs_total{mode=sweep,result=succeeded}":                                1,
			"ipcguard_objects_total{action=removed,mode=run,reason=pid_evidence,type=shm}":    1,
			"ipcguard_objects_total{action=removed,mode=run,reason=window_evidence,type=sem}": 1,
			"ipcguard_objects_total{action=removed,mode=run,reason=window_evidence,type=msg}": 1,
			"ipcguard_objects_total{action=kept,mode=run,reason=no_cleanup,type=shm}":         1,
			"ipcguard_objects_total{action=kept,mode=run,reason=no_cleanup,type=sem}":         1,
			"ipcguard_objects_total{action=kept,mode=run,reason=no_cleanup,type=msg}":         1,
			"ipcguard_last_run_exit_status{mode=run}":                                         0,
			"ipcguard_last_run_objects{action=kept,mode=run}":                                 3,
			"ipcguard_last_run_objects{action=removed,mode=run}":                              0,
		} {
			if g, ok := got[k]; !ok || g != v {
				e.errorf("%s = %v (present %v), want %v\n%s", k, g, ok, v, b)
			}
		}
		if got["ipcguard_phase_seconds_total{mode=run,phase=command}"] <= 0 ||
			got["ipcguard_last_run_timestamp_seconds{mode=sweep}"] < got["ipcguard_last_run_timestamp_seconds{mode=run}"] {
			e.errorf("phase seconds or timestamps missing:\n%s", b)
		}
		if st, err := os.Stat(prom); err != nil || st.Mode().Perm() != 0o644 {
			e.errorf("mode of the metrics file: %v, %v; want 0644", st.Mode(), err)
		}
		if p, err := exec.LookPath("promtool"); err == nil {
			cmd := exec.Command(p, "check", "metrics")
			cmd.Stdin = strings.NewReader(string(b))
			if out, err := cmd.CombinedOutput(); err != nil {
				e.errorf("promtool check metrics: %v\n%s", err, out)
			}
		} else if os.Getenv("CI") == "true" {
			e.errorf("promtool is not installed (.ci/run installs it)")
		}

		marker := e.path("ran")
		r := e.run("--metrics", e.path("missing/job.prom"), "--", "touch", marker)
		e.wantExit(r, 125)
		if ls := lines(r.Stderr); len(ls) != 1 || !strings.Contains(ls[0], "ipcguard: --metrics ") {
			e.errorf("bad --metrics path: stderr %q, want one ipcguard: line", r.Stderr)
		}
		if exists(marker) {
			e.errorf("the command ran despite the bad --metrics path")
		}
		e.removeObjects(e.objects())
	})
}
