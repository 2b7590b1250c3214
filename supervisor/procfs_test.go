package supervisor

import (
	"errors"
	"os"
	"os/exec"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestProcfsParseStat(t *testing.T) {
	// Fields 3.. of a real line, after "pid (comm)".
	const tail = " S 1 1234 1234 0 -1 4194560 523 0 0 0 1 2 0 0 20 0 1 0 987654 10000000 200 18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0\n"
	cases := []struct {
		name    string
		in      string
		comm    string
		state   byte
		ppid    int
		start   uint64
		wantErr bool
	}{
		{name: "plain", in: "42 (sh)" + tail, comm: "sh", state: 'S', ppid: 1, start: 987654},
		{name: "ugly", in: "42 (((ugly )pr()cess()))" + tail, comm: "((ugly )pr()cess())", state: 'S', ppid: 1, start: 987654},
		{name: "spaces and digits", in: "7 (a 1 2 3 ) R 9)" + tail, comm: "a 1 2 3 ) R 9", state: 'S', ppid: 1, start: 987654},
		{name: "only parens", in: "7 ())))" + tail, comm: ")))", state: 'S', ppid: 1, start: 987654},
		{name: "empty comm", in: "7 ()" + tail, comm: "", state: 'S', ppid: 1, start: 987654},
		{name: "newline in comm", in: "7 (a\nb)" + tail, comm: "a\nb", state: 'S', ppid: 1, start: 987654},
		{name: "zombie", in: "8 (x) Z 3 0 0 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 55 0 0\n", comm: "x", state: 'Z', ppid: 3, start: 55},
		{name: "no parens", in: "42 sh S 1", wantErr: true},
		{name: "close before open", in: "42 )sh( S 1" + tail, wantErr: true},
		{name: "truncated", in: "42 (sh) S 1 2 3", wantErr: true},
		{name: "bad pid", in: "x (sh)" + tail, wantErr: true},
		{name: "bad start", in: "7 (sh) S 1 0 0 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 -5 0 0\n", wantErr: true},
		{name: "empty", in: "", wantErr: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, err := parseProcStat([]byte(c.in))
			if c.wantErr {
				if !errors.Is(err, errProcStat) {
					t.Fatalf("parseProcStat(%q) = %+v, %v; want an errProcStat", c.in, s, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseProcStat(%q): %v", c.in, err)
			}
			if s.Comm != c.comm || s.State != c.state || s.Ppid != c.ppid || s.Start != c.start {
				t.Fatalf("parseProcStat(%q) = %+v, want comm %q state %c ppid %d start %d", c.in, s, c.comm, c.state, c.ppid, c.start)
			}
		})
	}
}

func FuzzProcfsParseStat(f *testing.F) {
	f.Add([]byte("42 (((ugly )pr()cess()))  S 1 1234 1234 0 -1 4194560 523 0 0 0 1 2 0 0 20 0 1 0 987654 0 0"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := parseProcStat(b)
		if err == nil && len(s.Comm) > len(b) {
			t.Fatalf("comm longer than input")
		}
	})
}

func TestProcfsParseChildren(t *testing.T) {
	got := parseChildren([]byte("12 345 x -3 0 6 \n"), []int{1})
	if want := []int{1, 12, 345, 6}; !reflect.DeepEqual(got, want) {
		t.Fatalf("parseChildren = %v, want %v", got, want)
	}
}

func TestProcfsSelf(t *testing.T) {
	s, err := defaultProc.stat(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if s.Pid != os.Getpid() || s.Ppid != os.Getppid() || !strings.ContainsRune("RS", rune(s.State)) {
		t.Fatalf("own stat = %+v", s)
	}
	// The start time converts to a wall time before now and not long ago
	// (the test binary started at most the test timeout ago).
	start := ticksToWall(s.Start)
	if start.After(time.Now()) || time.Since(start) > time.Hour {
		t.Fatalf("own start time %v (now %v)", start, time.Now())
	}
	if st, err := procStartTime(os.Getpid()); err != nil || st != s.Start {
		t.Fatalf("procStartTime = %d, %v; want %d", st, err, s.Start)
	}

	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer cmd.Process.Kill()
	kids, err := defaultProc.children(os.Getpid(), nil)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, k := range kids {
		found = found || k == cmd.Process.Pid
	}
	if !found {
		t.Fatalf("children of self = %v, missing %d", kids, cmd.Process.Pid)
	}
	if kids, err := defaultProc.children(1<<30, nil); err != nil || len(kids) != 0 {
		t.Fatalf("children of a missing pid = %v, %v; want none, no error", kids, err)
	}
	if !defaultProc.hasChildrenFiles() {
		t.Fatalf("no /proc/thread-self/children")
	}
}

func TestProcfsFixture(t *testing.T) {
	dir := t.TempDir()
	fs := procFS(dir)
	if err := os.MkdirAll(fs.path("12", "task", "12"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(fs.path("12", "task", "13"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(fs.path("12", "stat"), []byte("12 (((ugly )pr()cess()) S 1 0 0 0 -1 0 0 0 0 0 0 0 0 0 20 0 2 0 777 0 0\n"), 0o644)
	os.WriteFile(fs.path("12", "task", "12", "children"), []byte("20 21 "), 0o644)
	os.WriteFile(fs.path("12", "task", "13", "children"), []byte("22 "), 0o644)
	s, err := fs.stat(12)
	if err != nil || s.Comm != "((ugly )pr()cess()" || s.Start != 777 {
		t.Fatalf("stat = %+v, %v", s, err)
	}
	kids, err := fs.children(12, nil)
	if want := []int{20, 21, 22}; err != nil || !reflect.DeepEqual(kids, want) {
		t.Fatalf("children = %v, %v; want %v", kids, err, want)
	}
}
