package main

import (
	"bytes"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/ipcguard/ipcguard/internal/cmdline"
	"github.com/ipcguard/ipcguard/internal/guard"
	"github.com/ipcguard/ipcguard/ipcdiff"
	"github.com/urfave/cli/v2"
)

func TestParseRunConfig(t *testing.T) {
	cfg, err := parseRunConfig([]string{"sh", "-c", "x", "--help"}, "", "always", "shm,msg", []string{"0x10,5", "0x20"}, "poll")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(cfg.Argv, []string{"sh", "-c", "x", "--help"}) || cfg.On != "always" ||
		cfg.Types.Has(ipcdiff.TypeSem) || !cfg.Types.Has(ipcdiff.TypeMsg) || len(cfg.KeepKeys) != 3 || !cfg.KeepKeys[0x20] {
		t.Fatalf("parsed %+v", cfg)
	}
	for _, c := range []struct {
		args              []string
		cmd, on, types, k string
		tracker           string
		msg               string
	}{
		{nil, "", "failure", "shm", "", "auto", "no command"},
		{[]string{"x"}, "y", "failure", "shm", "", "auto", "not both"},
		{[]string{"x"}, "", "sometimes", "shm", "", "auto", "--on"},
		{[]string{"x"}, "", "failure", "shm,pipe", "", "auto", "--types"},
		{[]string{"x"}, "", "failure", "", "", "auto", "--types"},
		{[]string{"x"}, "", "failure", "shm", "nokey", "auto", "--keep-key"},
		{[]string{"x"}, "", "failure", "shm", "", "ebpf", "--tracker"},
		{nil, `a "b`, "failure", "shm", "", "auto", "--cmd"},
	} {
		var keys []string
		if c.k != "" {
			keys = []string{c.k}
		}
		_, err := parseRunConfig(c.args, c.cmd, c.on, c.types, keys, c.tracker)
		if err == nil || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%+v: err %v, want one mentioning %q", c, err, c.msg)
		}
	}
}

func TestSubcommandDispatch(t *testing.T) {
	var out, errb bytes.Buffer
	if ws := runWith([]string{"ipcguard", "--no-such-flag", "true"}, &out, &errb); ws.ExitStatus() != guard.ExitUsage {
		t.Fatalf("unknown flag: status %v", ws)
	}
	if lines := strings.Split(strings.TrimSpace(errb.String()), "\n"); len(lines) != 1 || !strings.HasPrefix(lines[0], "ipcguard: ") {
		t.Fatalf("unknown flag: want one stderr line, got %q", errb.String())
	}
	errb.Reset()
	if ws := runWith([]string{"ipcguard", "--grace", "soon", "true"}, &out, &errb); ws.ExitStatus() != guard.ExitUsage || strings.Count(errb.String(), "\n") != 1 {
		t.Fatalf("bad duration: status %v, stderr %q", ws, errb.String())
	}
	out.Reset()
	if ws := runWith([]string{"ipcguard", "--help"}, &out, &errb); ws.ExitStatus() != 0 || !strings.Contains(out.String(), "Exit status") {
		t.Fatalf("--help: status %v, output %q", ws, out.String())
	}
	out.Reset()
	if ws := runWith([]string{"ipcguard", "--version"}, &out, &errb); ws.ExitStatus() != 0 || !strings.Contains(out.String(), version) {
		t.Fatalf("--version: status %v, output %q", ws, out.String())
	}
}

// TestUsageErrorWording: a usage error names the option as it was typed
// and says what is wrong with it.
func TestUsageErrorWording(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--bogus", "--", "true"}, "ipcguard: unknown option --bogus (see ipcguard --help)\n"},
		{[]string{"-bogus", "true"}, "ipcguard: unknown option -bogus (see ipcguard --help)\n"},
		{[]string{"--bogus=1", "true"}, "ipcguard: unknown option --bogus (see ipcguard --help)\n"},
		{[]string{"run", "-x", "true"}, "ipcguard: unknown option -x (see ipcguard --help)\n"},
		{[]string{"ls", "--nope"}, "ipcguard: unknown option --nope (see ipcguard --help)\n"},
		{[]string{"--report"}, "ipcguard: option --report needs a value (see ipcguard --help)\n"},
		{[]string{"--grace", "soon", "true"}, "ipcguard: option --grace: invalid value \"soon\": parse error (see ipcguard --help)\n"},
	} {
		var out, errb bytes.Buffer
		ws := runWith(append([]string{"ipcguard"}, c.args...), &out, &errb)
		if ws.ExitStatus() != guard.ExitUsage || errb.String() != c.want {
			t.Errorf("ipcguard %q: status %v, stderr %q, want %q", c.args, ws, errb.String(), c.want)
		}
	}
}

// TestRunValueOptions: cmdline.RunValueOptions, which the early guess of
// a run (cmdline.IsGuardedRun) reads, names exactly the run options that
// take a value.
func TestRunValueOptions(t *testing.T) {
	var want []string
	for _, f := range runFlags {
		if _, isBool := f.(*cli.BoolFlag); isBool {
			continue
		}
		want = append(want, f.Names()...)
	}
	got := slices.Clone(cmdline.RunValueOptions)
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("cmdline.RunValueOptions %q, the options of runFlags that take a value %q", got, want)
	}
}
