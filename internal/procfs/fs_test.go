package procfs

import (
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"testing"
	"time"
)

// fixture writes files under a temporary proc root: path -> contents.
func fixture(t *testing.T, files map[string]string) FS {
	t.Helper()
	dir := t.TempDir()
	for p, c := range files {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	fs, err := NewFS(dir)
	if err != nil {
		t.Fatal(err)
	}
	return fs
}

func TestNewFS(t *testing.T) {
	if _, err := NewFS(filepath.Join(t.TempDir(), "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("NewFS(missing) = %v, want ErrNotExist", err)
	}
	f := filepath.Join(t.TempDir(), "file")
	os.WriteFile(f, nil, 0o644)
	if _, err := NewFS(f); err == nil {
		t.Errorf("NewFS(a file) succeeded")
	}
	fs, err := NewFS("/proc")
	if err != nil || fs.Root() != "/proc" || fs.Path("sys", "kernel") != "/proc/sys/kernel" {
		t.Fatalf("NewFS(/proc) = %+v, %v", fs, err)
	}
}

func TestFixture(t *testing.T) {
	fs := fixture(t, map[string]string{
		"12/stat":                "12 (((ugly )pr()cess()) S 1 0 0 0 -1 0 0 0 0 0 0 0 0 0 20 0 2 0 777 0 0\n",
		"12/comm":                "((ugly )pr()cess\n",
		"12/task/12/children":    "20 21 ",
		"12/task/13/children":    "22 ",
		"12/maps":                "7f3e2e22b000-7f3e2e22d000 rw-s 00000000 00:01 32768   /SYSV12345678 (deleted)\n",
		"12/status":              "Name:\tx\nUid:\t1000\t1001\t1002\t1003\nGid:\t50\t51\t52\t53\n",
		"sys/kernel/pid_max":     "4194304\n",
		"sys/kernel/overflowuid": "65534\n",
		"007/stat":               "",
		"self/uid_map":           "         0          0 4294967295\n",
	})
	s, err := fs.Stat(12)
	if err != nil || s.Comm != "((ugly )pr()cess()" || s.Start != 777 {
		t.Fatalf("Stat = %+v, %v", s, err)
	}
	if c := fs.Comm(12); c != "((ugly )pr()cess" {
		t.Errorf("Comm = %q", c)
	}
	if c := fs.Comm(13); c != "" {
		t.Errorf("Comm of a missing pid = %q", c)
	}
	kids, err := fs.Children(12, nil)
	if want := []int{20, 21, 22}; err != nil || !reflect.DeepEqual(kids, want) {
		t.Fatalf("Children = %v, %v; want %v", kids, err, want)
	}
	if kids, err := fs.Children(99, []int{1}); err != nil || !reflect.DeepEqual(kids, []int{1}) {
		t.Fatalf("Children of a missing pid = %v, %v", kids, err)
	}
	m, err := fs.Maps(12, make([]byte, 0, 8))
	if err != nil || string(m) != "7f3e2e22b000-7f3e2e22d000 rw-s 00000000 00:01 32768   /SYSV12345678 (deleted)\n" {
		t.Errorf("Maps = %q, %v", m, err)
	}
	pids, err := fs.Tgids()
	if err != nil || !reflect.DeepEqual(pids, []int{12}) {
		t.Errorf("Tgids = %v, %v; want [12] (not 007, sys, self)", pids, err)
	}
	if v, err := fs.Sysctl("kernel/pid_max"); err != nil || v != "4194304" {
		t.Errorf("Sysctl = %q, %v", v, err)
	}
	if _, partial := fs.OverflowUID(); partial {
		t.Errorf("the initial uid map counted as partial")
	}
	// Fixtures are not this pid namespace: nothing is evidence.
	if fs.Ours() {
		t.Errorf("a fixture counted as the caller's pid namespace")
	}
	if _, ok := fs.Started(12); ok {
		t.Errorf("Started from a fixture")
	}
	if !fs.Running(12, 777) || fs.Running(12, 778) || fs.Running(13, 777) {
		t.Errorf("Running misjudged the fixture's pid 12")
	}
}

func TestParseChildren(t *testing.T) {
	got := parseChildren([]byte("12 345 x -3 0 6 \n"), []int{1})
	if want := []int{1, 12, 345, 6}; !reflect.DeepEqual(got, want) {
		t.Fatalf("parseChildren = %v, want %v", got, want)
	}
}

func TestStatusIDs(t *testing.T) {
	for _, c := range []struct {
		in         string
		euid, egid string
		ok         bool
	}{
		{"Name:\tx\nUid:\t1000\t1001\t1002\t1003\nGid:\t50\t51\t52\t53\n", "1001", "51", true},
		{"Gid:\t50 51 52 53\nUid:\t0 0 0 0", "0", "51", true},
		{"Uid:\t1000\nGid:\t50\t51\t52\t53\n", "", "", false},
		{"Uid:\t1000\t1001\t1002\t1003\n", "", "", false},
		{"", "", "", false},
	} {
		u, g, err := StatusIDs([]byte(c.in))
		if c.ok != (err == nil) || u != c.euid || g != c.egid || (!c.ok && !errors.Is(err, ErrStatus)) {
			t.Errorf("StatusIDs(%q) = %q, %q, %v", c.in, u, g, err)
		}
	}
}

func TestLive(t *testing.T) {
	fs := Default()
	self := os.Getpid()
	if !fs.Ours() || fs.SameNamespace() != nil {
		t.Skip("/proc is not this pid namespace's")
	}
	if !fs.Alive(self) || fs.Comm(self) == "" || fs.Alive(0) || fs.Alive(-1) {
		t.Fatalf("Alive or Comm of self, 0, -1 wrong")
	}
	st, ok := fs.Started(self)
	if !ok || st.After(time.Now()) || time.Since(st) > time.Hour {
		t.Fatalf("Started(self) = %v, %v: implausible", st, ok)
	}
	ticks, err := fs.StartTicks(self)
	if err != nil || !fs.Running(self, ticks) || fs.Running(self, ticks+1) {
		t.Fatalf("Running(self) wrong (start %d, %v)", ticks, err)
	}
	if !fs.HasChildrenFiles() {
		t.Fatalf("no /proc/thread-self/children")
	}
	if _, err := fs.IPCNamespaceName(); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer cmd.Process.Kill()
	kids, err := fs.Children(self, nil)
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
	// A zombie holds its pid but can use nothing: not alive, not running.
	z := exec.Command("true")
	if err := z.Start(); err != nil {
		t.Fatal(err)
	}
	defer z.Wait()
	pid := z.Process.Pid
	start, _ := fs.StartTicks(pid)
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(time.Millisecond) {
		if st, err := fs.Stat(pid); err == nil && st.State == 'Z' {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the child never became a zombie")
		}
	}
	if fs.Alive(pid) || fs.Running(pid, start) {
		t.Errorf("zombie %d counted as alive", pid)
	}
	if pids, err := fs.Tgids(); err != nil || len(pids) == 0 {
		t.Fatalf("Tgids = %v, %v", pids, err)
	} else if _, ok := PidName(strconv.Itoa(pids[0])); !ok {
		t.Fatalf("PidName(%d) refused", pids[0])
	}
}

func TestPidName(t *testing.T) {
	for name, want := range map[string]int{"1": 1, "4194304": 4194304, "2147483647": 2147483647,
		"0": 0, "01": 0, "self": 0, "12a": 0, "": 0, "-1": 0, "2147483648": 0, "99999999999": 0} {
		got, ok := PidName(name)
		if ok != (want > 0) || got != want && ok {
			t.Errorf("PidName(%q) = %d, %v; want %d", name, got, ok, want)
		}
	}
}

// TestAppendPidDirents: records as getdents64 returns them, names padded
// with NULs to an 8-byte multiple.
func TestAppendPidDirents(t *testing.T) {
	var buf []byte
	for _, name := range []string{".", "..", "1", "self", "4242", "0", "sys", "123456"} {
		reclen := (19 + len(name) + 1 + 7) &^ 7
		rec := make([]byte, reclen)
		binary.NativeEndian.PutUint16(rec[16:], uint16(reclen))
		copy(rec[19:], name)
		buf = append(buf, rec...)
	}
	got := appendPidDirents(nil, buf)
	if want := []int{1, 4242, 123456}; !slices.Equal(got, want) {
		t.Errorf("appendPidDirents = %v, want %v", got, want)
	}
}

// BenchmarkTgids lists this system's /proc.
func BenchmarkTgids(b *testing.B) {
	fs := Default()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := fs.Tgids(); err != nil {
			b.Fatal(err)
		}
	}
}
