package main

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/ipcguard/ipcguard/ipcdiff"
	"golang.org/x/sys/unix"
)

func TestParseKey(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int32
		bad  bool
	}{
		{"0x1234", 0x1234, false},
		{"4660", 0x1234, false},
		{"0xffffffff", -1, false},
		{"-2147483648", -1 << 31, false},
		{"0x80000000", -1 << 31, false},
		{"0X1F", 0x1f, false},
		{"017", 17, false}, // decimal, not octal 15
		{"0", 0, false},
		{"-1", -1, false},
		{"4294967295", -1, false},
		{"0x100000000", 0, true},
		{"4294967296", 0, true},
		{"0xffffffffffffffffff", 0, true},
		{"0b101", 0, true},
		{"0o17", 0, true},
		{"1_000", 0, true},
		{"0x1_0", 0, true},
		{"0x", 0, true},
		{"-0x10", 0, true},
		{"0x-10", 0, true},
		{"zz", 0, true},
		{"", 0, true},
	} {
		got, err := parseKey(c.in)
		if (err != nil) != c.bad || (!c.bad && got != c.want) {
			t.Errorf("parseKey(%q) = %d, %v", c.in, got, err)
		}
	}
}

func TestParseOwnKeys(t *testing.T) {
	for _, c := range []struct {
		in   []string
		want map[int32]bool
		all  bool
		bad  string // substring of the usage error
	}{
		{in: nil, want: map[int32]bool{}},
		{in: []string{"0x162e, 5679", "0x162e"}, want: map[int32]bool{0x162e: true, 5679: true}},
		{in: []string{"all"}, want: map[int32]bool{}, all: true},
		{in: []string{"ALL,0x10"}, want: map[int32]bool{0x10: true}, all: true},
		{in: []string{"0"}, bad: "IPC_PRIVATE"},
		{in: []string{"0x0"}, bad: "IPC_PRIVATE"},
		{in: []string{"0x10,"}, bad: "--own-keys: empty key"},
		{in: []string{"everything"}, bad: `--own-keys "everything"`},
	} {
		keys, all, err := parseOwnKeys(c.in)
		if c.bad != "" {
			var ue *usageError
			if err == nil || !errors.As(err, &ue) || !strings.Contains(err.Error(), c.bad) {
				t.Errorf("parseOwnKeys(%q) = %v, %v, %v; want a usage error with %q", c.in, keys, all, err, c.bad)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(keys, c.want) || all != c.all {
			t.Errorf("parseOwnKeys(%q) = %v, %v, %v; want %v, %v", c.in, keys, all, err, c.want, c.all)
		}
	}
}

func TestSplitCommand(t *testing.T) {
	got, err := splitCommand(`prog -a "two words" 'x y' z\ w`)
	if err != nil || !reflect.DeepEqual(got, []string{"prog", "-a", "two words", "x y", "z w"}) {
		t.Fatalf("splitCommand = %q, %v", got, err)
	}
	for _, bad := range []string{`prog "unbalanced`, `prog 'x`, ``, `   `} {
		if _, err := splitCommand(bad); err == nil {
			t.Errorf("splitCommand(%q) accepted", bad)
		}
	}
}

func TestParseRunConfig(t *testing.T) {
	cfg, err := parseRunConfig([]string{"sh", "-c", "x", "--help"}, "", "always", "shm,msg", []string{"0x10,5", "0x20"}, "poll")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(cfg.argv, []string{"sh", "-c", "x", "--help"}) || cfg.on != "always" ||
		cfg.types.Has(ipcdiff.TypeSem) || !cfg.types.Has(ipcdiff.TypeMsg) || len(cfg.keepKeys) != 3 || !cfg.keepKeys[0x20] {
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

func TestWantCleanup(t *testing.T) {
	sig := unix.WaitStatus(unix.SIGKILL)
	for _, c := range []struct {
		on   string
		ws   unix.WaitStatus
		want bool
	}{
		{"failure", exited(0), false}, {"failure", exited(3), true}, {"failure", sig, true},
		{"always", exited(0), true}, {"never", exited(3), false}, {"never", sig, false},
	} {
		if got, why := wantCleanup(c.on, c.ws); got != c.want || why == "" {
			t.Errorf("wantCleanup(%s, %v) = %v %q", c.on, c.ws, got, why)
		}
	}
}

func TestSubcommandDispatch(t *testing.T) {
	var out, errb bytes.Buffer
	if ws := runWith([]string{"ipcguard", "--no-such-flag", "true"}, &out, &errb); ws.ExitStatus() != exitUsage {
		t.Fatalf("unknown flag: status %v", ws)
	}
	if lines := strings.Split(strings.TrimSpace(errb.String()), "\n"); len(lines) != 1 || !strings.HasPrefix(lines[0], "ipcguard: ") {
		t.Fatalf("unknown flag: want one stderr line, got %q", errb.String())
	}
	errb.Reset()
	if ws := runWith([]string{"ipcguard", "--grace", "soon", "true"}, &out, &errb); ws.ExitStatus() != exitUsage || strings.Count(errb.String(), "\n") != 1 {
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
		if ws.ExitStatus() != exitUsage || errb.String() != c.want {
			t.Errorf("ipcguard %q: status %v, stderr %q, want %q", c.args, ws, errb.String(), c.want)
		}
	}
}

func TestSummary(t *testing.T) {
	r := &Report{Objects: []reportObj{
		{Type: "shm", ID: 1, Action: actRemoved}, {Type: "sem", ID: 0, Action: actRemoved},
		{Type: "shm", ID: 2, Action: actKept, Reason: "attached by pid 812 (postgres)"},
	}}
	want := "ipcguard: removed 2 (shm 1, sem 0); kept 1 (shm 2: attached by pid 812 (postgres))"
	if got := summary(r, ""); got != want {
		t.Fatalf("summary = %q\nwant      %q", got, want)
	}
	if summary(&Report{}, "") != "" {
		t.Fatalf("summary of nothing is not empty")
	}
}

// TestSummaryBounded: thousands of objects give a line of bounded length
// with counts per type, the first ids and where the full list is.
func TestSummaryBounded(t *testing.T) {
	long := strings.Repeat("attached by pid 812 (postgres) ", 20)
	r := &Report{}
	for i := range 5000 {
		typ := "shm"
		if i%5 == 4 {
			typ = "sem"
		}
		r.Objects = append(r.Objects, reportObj{Type: typ, ID: i, Action: actRemoved})
		r.Objects = append(r.Objects, reportObj{Type: "msg", ID: i, Action: actKept, Reason: long})
		r.Objects = append(r.Objects, reportObj{Type: "sem", ID: i, Action: actFailed, Error: long})
	}
	got := summary(r, "/tmp/ipc.json")
	if len(got) > 1500 {
		t.Errorf("summary of 15000 objects is %d bytes long", len(got))
	}
	for _, want := range []string{
		"ipcguard: removed 5000 (4000 shm, 1000 sem; shm 0, shm 1, shm 2, shm 3, sem 4, …)",
		"; kept 5000 (5000 msg; msg 0: attached by pid 812",
		"failed to remove 5000 (5000 sem; sem 0: ",
		"; the full list is in /tmp/ipc.json",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("summary lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "shm 5,") || strings.Contains(got, long) {
		t.Errorf("summary not bounded:\n%s", got)
	}
	if got := summary(r, ""); !strings.HasSuffix(got, "; the full list with --report") {
		t.Errorf("without a report: %q", got[len(got)-60:])
	}
}
