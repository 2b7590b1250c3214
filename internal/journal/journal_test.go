package journal

import (
	"bytes"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ipcguard/ipcguard/internal/nstest"
	"github.com/ipcguard/ipcguard/internal/procfs"
	"github.com/ipcguard/ipcguard/ipcdiff"
)

func testSnapshot(n int) *ipcdiff.Snapshot {
	s := &ipcdiff.Snapshot{Taken: time.Unix(1700000000, 123456789), Types: ipcdiff.AllTypes}
	for i := 0; i < n; i++ {
		key := int32(0x51000000 + i)
		if i%3 == 0 {
			key = 0
		}
		if i%7 == 0 {
			key = -int32(i) - 1 // keys >= 0x80000000 print negative
		}
		switch i % 3 {
		case 0:
			s.Shm = append(s.Shm, ipcdiff.Shm{ID: i<<15 | i, Key: key, CUID: uint32(1000 + i%5)})
		case 1:
			s.Sem = append(s.Sem, ipcdiff.Sem{ID: i<<15 | i, Key: key, CUID: 4294967294})
		case 2:
			s.Msg = append(s.Msg, ipcdiff.Msg{ID: i, Key: key, CUID: 0})
		}
	}
	return s
}

func idents(s *ipcdiff.Snapshot) []ipcdiff.Ident {
	var out []ipcdiff.Ident
	for _, o := range s.Shm {
		out = append(out, ipcdiff.Ident{Type: ipcdiff.TypeShm, ID: o.ID, Key: o.Key, CUID: o.CUID})
	}
	for _, o := range s.Sem {
		out = append(out, ipcdiff.Ident{Type: ipcdiff.TypeSem, ID: o.ID, Key: o.Key, CUID: o.CUID})
	}
	for _, o := range s.Msg {
		out = append(out, ipcdiff.Ident{Type: ipcdiff.TypeMsg, ID: o.ID, Key: o.Key, CUID: o.CUID})
	}
	return out
}

func testHeader() Header {
	return Header{
		UID: 1000, GID: 1001,
		Started:  time.Unix(1700000001, 5),
		Types:    1<<ipcdiff.TypeShm | 1<<ipcdiff.TypeMsg,
		Argv:     []string{"sh", "-c", `ipcmk -M 1; echo "a b" 'c' \ ; exit 1`, "", "new\nline\ttab", "ünï €", "\x00\xff"},
		Strict:   true,
		KeepKeys: []int32{0x1234, -2147483648, 2147483647},
		OnPolicy: "failure \"quoted\"",
	}
}

// event is one appended record, for building the expected Record.
type event struct {
	tag   byte
	pid   int
	start uint64
	at    time.Time
}

var testEvents = []event{
	{'C', 4242, 987654, time.Unix(1700000002, 1)},
	{'J', 4242, 0, time.Unix(1700000002, 2)},
	{'J', 4243, 0, time.Unix(1700000002, 3)},
	{'L', 4243, 0, time.Unix(1700000002, 4)},
	{'J', 4243, 0, time.Unix(1700000003, 5)}, // pid reuse: a second stay
	{'L', 9999, 0, time.Unix(1700000003, 6)}, // left without a recorded join
	{'J', 2147483647, 0, time.Unix(1700000003, 7)},
	{'L', 4242, 0, time.Unix(1700000004, 8)},
}

func apply(t *testing.T, j *Journal, evs []event) {
	t.Helper()
	for _, e := range evs {
		switch e.tag {
		case 'C':
			j.Command(e.pid, e.start, e.at)
		case 'J':
			j.Join(e.pid, e.at)
		case 'L':
			j.Leave(e.pid, e.at)
		}
	}
	if err := j.Err(); err != nil {
		t.Fatal(err)
	}
}

// model computes what Load must return for the records evs.
func model(evs []event) (cmdPid int, cmdStart uint64, members []Member) {
	for _, e := range evs {
		switch e.tag {
		case 'C':
			cmdPid, cmdStart = e.pid, e.start
		case 'J':
			members = append(members, Member{Pid: e.pid, Joined: e.at})
		case 'L':
			found := false
			for i := len(members) - 1; i >= 0; i-- {
				if members[i].Pid == e.pid && members[i].Left.IsZero() {
					members[i].Left = e.at
					found = true
					break
				}
			}
			if !found {
				members = append(members, Member{Pid: e.pid, Left: e.at})
			}
		}
	}
	return
}

func sameMembers(a, b []Member) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Pid != b[i].Pid || !a[i].Joined.Equal(b[i].Joined) || !a[i].Left.Equal(b[i].Left) {
			return false
		}
	}
	return true
}

func TestRoundTrip(t *testing.T) {
	dir := t.TempDir()
	h := testHeader()
	snap := testSnapshot(50)
	j, err := Begin(dir, h, snap)
	if err != nil {
		t.Fatal(err)
	}
	apply(t, j, testEvents)

	st, err := os.Stat(j.Path())
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("journal mode %v, want 0600", st.Mode().Perm())
	}
	if want := fmt.Sprintf("run-%d-", os.Getpid()); !strings.HasPrefix(filepath.Base(j.Path()), want) {
		t.Errorf("journal name %s, want prefix %s", j.Path(), want)
	}

	// List ignores the sequence file, temporary files and others.
	for _, n := range []string{".run-1-2.journal.tmp", "run-x-1.journal", "run-1-2.journal.tmp", "notes"} {
		if err := os.WriteFile(filepath.Join(dir, n), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	paths, err := List(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) != 1 || paths[0] != j.Path() {
		t.Fatalf("List = %v, want [%s]", paths, j.Path())
	}

	r, err := Load(j.Path())
	if err != nil {
		t.Fatal(err)
	}
	self, _ := SelfStart()
	if r.Version != FormatVersion || r.SupervisorPid != os.Getpid() || r.SupervisorStart != self ||
		r.UID != h.UID || r.GID != h.GID || !r.Started.Equal(h.Started) || r.Types != h.Types ||
		!reflect.DeepEqual(r.Argv, h.Argv) || r.Strict != h.Strict || !reflect.DeepEqual(r.KeepKeys, h.KeepKeys) ||
		r.OnPolicy != h.OnPolicy {
		t.Errorf("header mismatch:\n got %+v\nwant %+v", r.Header, h)
	}
	if !r.BeforeTaken.Equal(snap.Taken) || r.BeforeTypes != snap.Types {
		t.Errorf("before taken/types = %v/%v, want %v/%v", r.BeforeTaken, r.BeforeTypes, snap.Taken, snap.Types)
	}
	want := idents(snap)
	if r.Before.Len() != len(want) || r.BeforeLen() != len(want) {
		t.Errorf("before has %d objects, want %d", r.Before.Len(), len(want))
	}
	for _, id := range want {
		if !r.Before.Contains(id) {
			t.Errorf("before lacks %v", id)
		}
		other := id
		other.CUID++
		if r.Before.Contains(other) {
			t.Errorf("before contains %v", other)
		}
	}
	if got := r.Before; !reflect.DeepEqual(got, ipcdiff.IdentsOf(snap)) {
		t.Errorf("Before = %v, want the sorted identities of the snapshot", got)
	}
	cp, cs, members := model(testEvents)
	if r.CommandPid != cp || r.CommandStart != cs || !r.CommandAt.Equal(testEvents[0].at) {
		t.Errorf("command = %d/%d/%v, want %d/%d", r.CommandPid, r.CommandStart, r.CommandAt, cp, cs)
	}
	if !sameMembers(r.Members, members) {
		t.Errorf("members\n got %+v\nwant %+v", r.Members, members)
	}
	if r.TornTail || r.BadLines != 0 || r.Path != j.Path() {
		t.Errorf("torn %v bad %d path %q", r.TornTail, r.BadLines, r.Path)
	}
	if !r.SupervisorAlive() {
		t.Error("SupervisorAlive = false for this process")
	}
	if r.CommandAlive() {
		t.Error("CommandAlive = true for a made-up start time")
	}

	if err := j.Done(); err != nil {
		t.Fatal(err)
	}
	if err := j.Done(); err != nil {
		t.Fatal("second Done:", err)
	}
	if _, err := os.Stat(j.Path()); !os.IsNotExist(err) {
		t.Errorf("journal still there after Done: %v", err)
	}
	j.Join(1, time.Now())
	if err := j.Err(); !errors.Is(err, ErrClosed) {
		t.Errorf("Join after Done: %v, want ErrClosed", err)
	}
}

func TestRemoveStaleTemps(t *testing.T) {
	dir := t.TempDir()
	self, _ := SelfStart()
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	live := "." + journalName(os.Getpid(), self) + tempSuffix
	dead := "." + journalName(cmd.Process.Pid, 1) + tempSuffix
	other := ".something.tmp"
	for _, n := range []string{live, dead, other} {
		os.WriteFile(filepath.Join(dir, n), []byte("x"), 0o600)
	}
	n, err := RemoveStaleTemps(dir)
	if err != nil || n != 1 {
		t.Fatalf("RemoveStaleTemps = %d, %v; want 1", n, err)
	}
	for name, want := range map[string]bool{live: true, dead: false, other: true} {
		if _, err := os.Stat(filepath.Join(dir, name)); (err == nil) != want {
			t.Errorf("%s: exists %v, want %v", name, err == nil, want)
		}
	}
}

func TestEmptySnapshot(t *testing.T) {
	dir := t.TempDir()
	j, err := Begin(dir, Header{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Done()
	r, err := Load(j.Path())
	if err != nil {
		t.Fatal(err)
	}
	if r.Before.Len() != 0 || r.Argv != nil || r.KeepKeys != nil || r.CommandPid != 0 || len(r.Members) != 0 {
		t.Errorf("unexpected record %+v", r)
	}
	if r.UID != uint32(os.Geteuid()) || r.Started.IsZero() {
		t.Errorf("defaults not filled: %+v", r.Header)
	}
	if _, err := Begin(dir, Header{}, nil); err == nil {
		t.Error("second Begin with the same supervisor identity succeeded")
	}
}

// journalBytes writes a journal with testEvents and returns its content and
// the offset of its record part.
func journalBytes(t *testing.T) ([]byte, int) {
	t.Helper()
	dir := t.TempDir()
	j, err := Begin(dir, testHeader(), testSnapshot(12))
	if err != nil {
		t.Fatal(err)
	}
	apply(t, j, testEvents)
	data, err := os.ReadFile(j.Path())
	if err != nil {
		t.Fatal(err)
	}
	_, off, err := parseFirstLine(data)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasSuffix(data[:off], []byte("\n")) || data[off] != 'C' {
		t.Fatalf("record part does not start at %d", off)
	}
	return data, int(off)
}

func TestTruncateEveryOffset(t *testing.T) {
	data, off := journalBytes(t)
	path := filepath.Join(t.TempDir(), "run-1-1.journal")
	for cut := 0; cut <= len(data); cut++ {
		if err := os.WriteFile(path, data[:cut], 0o600); err != nil {
			t.Fatal(err)
		}
		r, err := Load(path)
		if cut < off {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("cut at %d (header/snapshot ends at %d): err = %v, want ErrCorrupt", cut, off, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("cut at %d: %v", cut, err)
		}
		k := bytes.Count(data[off:cut], []byte("\n"))
		cp, cs, members := model(testEvents[:k])
		if r.CommandPid != cp || r.CommandStart != cs || !sameMembers(r.Members, members) {
			t.Fatalf("cut at %d (%d complete records): command %d/%d members %+v, want %d/%d %+v",
				cut, k, r.CommandPid, r.CommandStart, r.Members, cp, cs, members)
		}
		torn := cut > 0 && data[cut-1] != '\n'
		if r.TornTail != torn || r.BadLines != 0 {
			t.Fatalf("cut at %d: TornTail %v BadLines %d, want %v 0", cut, r.TornTail, r.BadLines, torn)
		}
		if r.Before.Len() != 12 {
			t.Fatalf("cut at %d: %d objects", cut, r.Before.Len())
		}
	}
}

func TestFlippedByte(t *testing.T) {
	data, off := journalBytes(t)
	path := filepath.Join(t.TempDir(), "run-1-1.journal")
	cp, cs, allMembers := model(testEvents)
	for i := range data {
		for _, flip := range []byte{0x01, 0x20, 0x80} {
			d := bytes.Clone(data)
			d[i] ^= flip
			if err := os.WriteFile(path, d, 0o600); err != nil {
				t.Fatal(err)
			}
			r, err := Load(path)
			if i < off {
				if !errors.Is(err, ErrCorrupt) && !(i == len(magic) && errors.Is(err, ErrVersion)) {
					t.Fatalf("byte %d ^ %#x in the header/snapshot part: err = %v, want ErrCorrupt", i, flip, err)
				}
				continue
			}
			// In the record part a damaged line is skipped, never misread.
			if err != nil {
				t.Fatalf("byte %d ^ %#x in the records: %v", i, flip, err)
			}
			if r.BadLines+len(r.Members)+btoi(r.CommandPid != 0) > len(testEvents)+1 {
				t.Fatalf("byte %d: too many records", i)
			}
			if r.CommandPid != 0 && (r.CommandPid != cp || r.CommandStart != cs) {
				t.Fatalf("byte %d: command %d/%d", i, r.CommandPid, r.CommandStart)
			}
			for _, m := range r.Members {
				ok := false
				for _, w := range allMembers {
					if m.Pid == w.Pid && (m.Joined.IsZero() || m.Joined.Equal(w.Joined)) {
						ok = true
					}
				}
				if !ok {
					t.Fatalf("byte %d: member %+v was never written", i, m)
				}
			}
			if r.BadLines == 0 && !r.TornTail {
				t.Fatalf("byte %d ^ %#x in the records went unnoticed", i, flip)
			}
		}
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func TestTornWriteThenMore(t *testing.T) {
	dir := t.TempDir()
	j, err := Begin(dir, Header{}, testSnapshot(3))
	if err != nil {
		t.Fatal(err)
	}
	defer j.Done()
	j.Join(10, time.Unix(1, 0))
	// Simulate a write that failed part way (ENOSPC): a line without its end.
	f, err := os.OpenFile(j.Path(), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("J 11 17")
	f.Close()
	j.broken = true
	j.Join(12, time.Unix(2, 0))
	if err := j.Err(); err != nil {
		t.Fatal(err)
	}
	r, err := Load(j.Path())
	if err != nil {
		t.Fatal(err)
	}
	if r.BadLines != 1 || r.TornTail || len(r.Members) != 2 || r.Members[0].Pid != 10 || r.Members[1].Pid != 12 {
		t.Errorf("got bad %d torn %v members %+v", r.BadLines, r.TornTail, r.Members)
	}
}

func TestConcurrentJoin(t *testing.T) {
	dir := t.TempDir()
	j, err := Begin(dir, Header{}, testSnapshot(100))
	if err != nil {
		t.Fatal(err)
	}
	defer j.Done()
	const G, N = 8, 300
	var wg sync.WaitGroup
	for g := 0; g < G; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < N; i++ {
				pid := 1000 + g*N + i
				j.Join(pid, time.Now())
				if i%2 == 0 {
					j.Leave(pid, time.Now())
				}
			}
		}(g)
	}
	wg.Wait()
	if err := j.Err(); err != nil {
		t.Fatal(err)
	}
	r, err := Load(j.Path())
	if err != nil {
		t.Fatal(err)
	}
	if r.BadLines != 0 || r.TornTail {
		t.Fatalf("BadLines %d TornTail %v", r.BadLines, r.TornTail)
	}
	if len(r.Members) != G*N {
		t.Fatalf("%d members, want %d", len(r.Members), G*N)
	}
	seen := map[int]bool{}
	for _, m := range r.Members {
		if seen[m.Pid] || m.Pid < 1000 || m.Pid >= 1000+G*N || m.Joined.IsZero() {
			t.Fatalf("bad member %+v", m)
		}
		seen[m.Pid] = true
		if left := !m.Left.IsZero(); left != ((m.Pid-1000)%N%2 == 0) {
			t.Fatalf("member %+v: Left wrong", m)
		}
	}
}

func TestStateDir(t *testing.T) {
	base := t.TempDir()

	d, err := StateDir(filepath.Join(base, "a", "state"))
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Lstat(d)
	if err != nil || !st.IsDir() || st.Mode().Perm()&0o077 != 0 {
		t.Fatalf("created %s: %v %v", d, st.Mode(), err)
	}
	if _, err := StateDir(d); err != nil {
		t.Fatalf("existing good dir refused: %v", err)
	}

	gw := filepath.Join(base, "gw")
	os.Mkdir(gw, 0o700)
	os.Chmod(gw, 0o770)
	if _, err := StateDir(gw); err == nil || !strings.Contains(err.Error(), "writable by group or others") {
		t.Errorf("group-writable dir: err = %v", err)
	}
	ww := filepath.Join(base, "ww")
	os.Mkdir(ww, 0o700)
	os.Chmod(ww, os.ModeSticky|0o777)
	if _, err := StateDir(ww); err == nil {
		t.Error("world-writable sticky dir accepted")
	}

	link := filepath.Join(base, "link")
	if err := os.Symlink(d, link); err != nil {
		t.Fatal(err)
	}
	if _, err := StateDir(link); err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Errorf("symlink: err = %v", err)
	}

	file := filepath.Join(base, "file")
	os.WriteFile(file, nil, 0o600)
	if _, err := StateDir(file); err == nil {
		t.Error("regular file accepted")
	}

	if os.Geteuid() == 0 {
		other := filepath.Join(base, "other")
		os.Mkdir(other, 0o700)
		if err := os.Chown(other, 12345, 12345); err != nil {
			t.Fatal(err)
		}
		if _, err := StateDir(other); err == nil || !strings.Contains(err.Error(), "owned by uid 12345") {
			t.Errorf("dir of another uid: err = %v", err)
		}
	}

	// Default selection.
	xdg := filepath.Join(base, "xdg")
	os.Mkdir(xdg, 0o700)
	t.Setenv("XDG_RUNTIME_DIR", xdg)
	ns, err := ipcNamespace()
	if err != nil || !strings.HasPrefix(ns, "ipc-") {
		t.Fatalf("ipcNamespace = %q, %v", ns, err)
	}
	d, err = StateDir("")
	if err != nil || d != filepath.Join(xdg, "ipcguard", ns) {
		t.Errorf("with XDG_RUNTIME_DIR: %q, %v", d, err)
	}
	euid := os.Geteuid()
	if got := defaultStateDir(euid + 1); got == filepath.Join(xdg, "ipcguard") {
		t.Errorf("XDG_RUNTIME_DIR of another uid used: %s", got)
	}
	t.Setenv("XDG_RUNTIME_DIR", "relative/dir")
	if got := defaultStateDir(0); got != "/run/ipcguard" {
		t.Errorf("root default = %s", got)
	}
	t.Setenv("XDG_RUNTIME_DIR", "")
	if got, want := defaultStateDir(1000), filepath.Join(os.TempDir(), "ipcguard-1000"); got != want {
		t.Errorf("user default = %s, want %s", got, want)
	}
}

// startProcess starts a command and returns its pid and start time; it is
// killed and reaped at the end of the test.
func startProcess(t *testing.T, name string, args ...string) (*exec.Cmd, uint64) {
	t.Helper()
	cmd := exec.Command(name, args...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	start, err := ProcessStart(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	return cmd, start
}

// exitedProcess runs true to its end and returns its pid and start time:
// a process that is gone.
func exitedProcess(t *testing.T) (int, uint64) {
	t.Helper()
	cmd := exec.Command("true")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	start, err := ProcessStart(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	return cmd.Process.Pid, start
}

func TestProcessAlive(t *testing.T) {
	self, err := SelfStart()
	if err != nil || self == 0 {
		t.Fatalf("SelfStart = %d, %v", self, err)
	}
	if !ProcessAlive(os.Getpid(), self) {
		t.Error("self not alive")
	}
	if ProcessAlive(os.Getpid(), self+1) {
		t.Error("self alive with a wrong start time")
	}
	if ProcessAlive(0, 0) || ProcessAlive(-1, 0) {
		t.Error("pid <= 0 alive")
	}

	cmd := exec.Command("true")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	start, err := ProcessStart(pid)
	if err != nil {
		t.Fatal(err)
	}
	// Before it is reaped it is a zombie: dead for our purposes.
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			t.Fatal(err)
		}
		if st, _ := procfs.ParseStat(b); st.State == 'Z' {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("true did not exit")
		}
		time.Sleep(time.Millisecond)
	}
	if ProcessAlive(pid, start) {
		t.Error("zombie counted alive")
	}
	cmd.Wait()
	if ProcessAlive(pid, start) {
		t.Error("reaped process alive")
	}

	sleep, sstart := startProcess(t, "sleep", "60")
	if !ProcessAlive(sleep.Process.Pid, sstart) {
		t.Error("sleep not alive")
	}
}

func TestOverlappedAlone(t *testing.T) {
	dir := t.TempDir()
	// A leftover journal of a dead supervisor whose command is dead too.
	dpid, dstart := exitedProcess(t)
	dead, err := Begin(dir, Header{SupervisorPid: dpid, SupervisorStart: dstart}, nil)
	if err != nil {
		t.Fatal(err)
	}
	dead.Command(dpid, dstart, time.Now())

	j, err := Begin(dir, Header{}, testSnapshot(10))
	if err != nil {
		t.Fatal(err)
	}
	defer j.Done()
	if o, why := j.Overlapped(); o {
		t.Errorf("lone run overlapped: %s", why)
	}
	if o, why := j.Overlapped(); o {
		t.Errorf("second call overlapped: %s", why)
	}
}

func TestOverlappedSecondBegin(t *testing.T) {
	dir := t.TempDir()
	j, err := Begin(dir, Header{UID: 1000, GID: 1000}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Done()

	other, ostart := startProcess(t, "sleep", "60")
	opid := other.Process.Pid
	k, err := Begin(dir, Header{SupervisorPid: opid, SupervisorStart: ostart}, nil)
	if err != nil {
		t.Fatal(err)
	}
	o, why := j.Overlapped()
	if !o || !strings.Contains(why, "pid "+strconv.Itoa(opid)) || !strings.Contains(why, "uid 1000") {
		t.Errorf("Overlapped = %v %q, want true naming pid %d", o, why, opid)
	}
	t.Log(why)
	// The other run ends before ours: the sequence number still tells.
	k.Done()
	o, why = j.Overlapped()
	if !o || !strings.Contains(why, strconv.Itoa(opid)) || !strings.Contains(why, "began during this run") {
		t.Errorf("after the other run ended: Overlapped = %v %q", o, why)
	}
	t.Log(why)
}

func TestOverlappedExisting(t *testing.T) {
	dir := t.TempDir()
	other, ostart := startProcess(t, "sleep", "60")
	opid := other.Process.Pid
	k, err := Begin(dir, Header{SupervisorPid: opid, SupervisorStart: ostart}, nil)
	if err != nil {
		t.Fatal(err)
	}
	j, err := Begin(dir, Header{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Done()
	// The other run ends during ours: it still overlapped.
	k.Done()
	o, why := j.Overlapped()
	if !o || !strings.Contains(why, "pid "+strconv.Itoa(opid)) {
		t.Errorf("Overlapped = %v %q, want true naming pid %d", o, why, opid)
	}
	t.Log(why)
}

func TestOverlappedOrphanCommand(t *testing.T) {
	dir := t.TempDir()
	dpid, dstart := exitedProcess(t)
	dead, err := Begin(dir, Header{SupervisorPid: dpid, SupervisorStart: dstart}, testSnapshot(30))
	if err != nil {
		t.Fatal(err)
	}
	orphan, cstart := startProcess(t, "sleep", "60")
	dead.Join(orphan.Process.Pid+1, time.Now())
	dead.Command(orphan.Process.Pid, cstart, time.Now())
	dead.Join(orphan.Process.Pid, time.Now())

	j, err := Begin(dir, Header{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Done()
	o, why := j.Overlapped()
	if !o || !strings.Contains(why, "command pid "+strconv.Itoa(orphan.Process.Pid)) {
		t.Errorf("Overlapped = %v %q, want the orphaned command", o, why)
	}
	t.Log(why)
}

func TestOverlappedSeqUnreadable(t *testing.T) {
	dir := t.TempDir()
	j, err := Begin(dir, Header{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Done()
	os.Remove(filepath.Join(dir, seqName))
	if o, why := j.Overlapped(); !o {
		t.Error("missing sequence file: not overlapped")
	} else {
		t.Log(why)
	}
}

func BenchmarkBegin(b *testing.B) {
	for _, n := range []int{0, 1000, 68000} {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			dir := b.TempDir()
			snap := testSnapshot(n)
			h := testHeader()
			b.ReportAllocs()
			for b.Loop() {
				j, err := Begin(dir, h, snap)
				if err != nil {
					b.Fatal(err)
				}
				if o, why := j.Overlapped(); o {
					b.Fatal(why)
				}
				j.Done()
			}
		})
	}
}

func BenchmarkLoad68000(b *testing.B) {
	dir := b.TempDir()
	j, err := Begin(dir, testHeader(), testSnapshot(68000))
	if err != nil {
		b.Fatal(err)
	}
	defer j.Done()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Load(j.Path()); err != nil {
			b.Fatal(err)
		}
	}
}

// TestSeqFileOverwrite: a shorter record written over a longer one (a
// smaller pid, or garbage) reads back as written.
func TestSeqFileOverwrite(t *testing.T) {
	f, err := os.OpenFile(filepath.Join(t.TempDir(), seqName), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, prior := range []string{"", "41 4194304\n", "not a sequence file at all, and long\n", "12345678901234567890123"} {
		if err := f.Truncate(0); err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteAt([]byte(prior), 0); err != nil {
			t.Fatal(err)
		}
		if err := writeSeqFile(f, 42, 7); err != nil {
			t.Fatal(err)
		}
		seq, pid, err := readSeqFile(f)
		if err != nil || seq != 42 || pid != 7 {
			t.Errorf("over %q: read %d %d %v, want 42 7", prior, seq, pid, err)
		}
	}
}

// TestOverlappedAcrossStateDirs: two runs of one uid with different state
// directories (XDG_RUNTIME_DIR set for one, not for the other) see each
// other through their common registry.
func TestOverlappedAcrossStateDirs(t *testing.T) {
	reg := t.TempDir()
	j, err := Begin(t.TempDir(), Header{Registries: []string{reg}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Done()
	if o, why := j.Overlapped(); o {
		t.Fatalf("lone run overlapped: %s", why)
	}
	other, ostart := startProcess(t, "sleep", "60")
	opid := other.Process.Pid
	k, err := Begin(t.TempDir(), Header{SupervisorPid: opid, SupervisorStart: ostart, Registries: []string{reg}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if o, why := j.Overlapped(); !o || !strings.Contains(why, strconv.Itoa(opid)) {
		t.Errorf("while the other runs: Overlapped = %v %q", o, why)
	}
	k.Done()
	if o, why := j.Overlapped(); !o || !strings.Contains(why, "began during this run") {
		t.Errorf("after the other ended: Overlapped = %v %q", o, why)
	}
	// A registry that is not safe to use (a symlink) means: cannot tell.
	bad := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(t.TempDir(), bad); err != nil {
		t.Fatal(err)
	}
	m, err := Begin(t.TempDir(), Header{Registries: []string{bad}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Done()
	if o, why := m.Overlapped(); !o || !strings.Contains(why, "cannot tell") {
		t.Errorf("unsafe registry: Overlapped = %v %q", o, why)
	}
}

// TestWatchRecords: the pid watch, the namespaces and the gets a run
// records come back from Load as written.
func TestWatchRecords(t *testing.T) {
	j, err := Begin(t.TempDir(), Header{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Done()
	t0 := time.Unix(1_700_000_000, 5)
	ns := Namespaces{Boot: "83d1e8e7-206b-4745-b4ac-818ea55b2007", IPC: "id:4444", Pid: "ino:4026531836"}
	j.Namespaces(ns)
	pre := make([]int, 1200) // more than one record's worth
	for i := range pre {
		pre[i] = 300 + 2*i
	}
	j.Pre(pre)
	w1 := Crossing{From: t0, To: t0.Add(time.Second), Lo: 500, Hi: 530}
	w2 := Crossing{From: t0.Add(time.Second), To: t0.Add(2 * time.Second), Lo: 32000, Hi: 310, All: true}
	j.Watch(w1, Cursor{Cursor: 530, Threads: 90, ForksLo: 1233, ForksHi: 1234, PidMax: 32768})
	j.Watch(w2, Cursor{Cursor: 310, Threads: 91, ForksLo: 99990, ForksHi: 99999, PidMax: 32768})
	j.Got(ipcdiff.TypeSem, 32769, true, t0.Add(3*time.Second))
	j.Got(ipcdiff.TypeMsg, 3, false, t0.Add(4*time.Second))
	j.Namespaces(Namespaces{Boot: "has space", IPC: "x", Pid: "y"})
	if err := j.Err(); err == nil {
		t.Error("a namespace name with a space was written")
	}
	r, err := Load(j.Path())
	if err != nil {
		t.Fatal(err)
	}
	if r.Namespaces != ns {
		t.Errorf("namespaces %+v, want %+v", r.Namespaces, ns)
	}
	if !slices.Equal(r.Pre, pre) {
		t.Errorf("pre: %d pids, want %d", len(r.Pre), len(pre))
	}
	if len(r.Watch) != 2 || !r.Watch[0].From.Equal(w1.From) || r.Watch[0].Hi != 530 || r.Watch[1] != (Crossing{From: w2.From, To: w2.To, Lo: 32000, Hi: 310, All: true}) {
		t.Errorf("watch %+v", r.Watch)
	}
	if r.LastCursor != (Cursor{Cursor: 310, Threads: 91, ForksLo: 99990, ForksHi: 99999, PidMax: 32768}) {
		t.Errorf("last cursor %+v", r.LastCursor)
	}
	want := []Get{{ipcdiff.TypeSem, 32769, true, t0.Add(3 * time.Second)}, {ipcdiff.TypeMsg, 3, false, t0.Add(4 * time.Second)}}
	if !slices.EqualFunc(r.Gets, want, func(a, b Get) bool {
		return a.Type == b.Type && a.ID == b.ID && a.Proven == b.Proven && a.At.Equal(b.At)
	}) {
		t.Errorf("gets %+v, want %+v", r.Gets, want)
	}
	if r.BadLines != 0 {
		t.Errorf("%d bad lines", r.BadLines)
	}
}

// TestOwnKeysRecord: the keys a run declared the command's come back from
// Load as written, "all" included; a damaged Y record is a bad line.
func TestOwnKeysRecord(t *testing.T) {
	for _, c := range []struct {
		keys []int32
		all  bool
	}{{[]int32{0x162e, -1, 5678}, false}, {nil, true}, {nil, false}} {
		j, err := Begin(t.TempDir(), Header{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		j.OwnKeys(c.keys, c.all)
		r, err := Load(j.Path())
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(r.OwnKeys, c.keys) || r.OwnAllKeys != c.all || r.BadLines != 0 {
			t.Errorf("own keys %v all %v (bad lines %d), want %v all %v", r.OwnKeys, r.OwnAllKeys, r.BadLines, c.keys, c.all)
		}
		j.Done()
	}
	for _, body := range []string{"Y 2 0", "Y 0 2 5", "Y 0 1 99999999999", "Y 0 0 7", "Y 1"} {
		var r Record
		line := []byte(body)
		line = append(line, ' ')
		line = appendHex(line, uint64(crc32.ChecksumIEEE([]byte(body))), 8)
		if parseRecord(line, &r) {
			t.Errorf("%q parsed: own keys %v all %v", body, r.OwnKeys, r.OwnAllKeys)
		}
	}
}

// TestStateDirPath: the walk to the state directory follows only links of
// the user or root and goes only through directories nobody else may change.
func TestStateDirPath(t *testing.T) {
	base := t.TempDir()
	mk := func(name string, mode os.FileMode) string {
		p := filepath.Join(base, name)
		if err := os.Mkdir(p, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	ns, err := ipcNamespace()
	if err != nil {
		t.Fatal(err)
	}

	// Our own link on the way is followed; the result holds no link.
	real := mk("real", 0o755)
	if err := os.Symlink(real, filepath.Join(base, "mine")); err != nil {
		t.Fatal(err)
	}
	d, err := StateDir(filepath.Join(base, "mine", "s"))
	if err != nil || d != filepath.Join(real, "s", ns) {
		t.Errorf("through our own link: %q, %v; want %s", d, err, filepath.Join(real, "s", ns))
	}

	// A directory others may write, not sticky: refused, nothing made in it.
	open := mk("open", 0o777)
	if _, err := StateDir(filepath.Join(open, "s")); err == nil || !strings.Contains(err.Error(), "not sticky") {
		t.Errorf("through a directory writable by others: err = %v", err)
	}
	if _, err := os.Lstat(filepath.Join(open, "s")); err == nil {
		t.Errorf("a directory was made inside a directory writable by others")
	}
	// A sticky one (as /tmp) is fine.
	sticky := mk("sticky", os.ModeSticky|0o777)
	if _, err := StateDir(filepath.Join(sticky, "s")); err != nil {
		t.Errorf("through a sticky directory: %v", err)
	}
	// A relative path is walked from the root too.
	t.Chdir(real)
	if d, err := StateDir("rel/s"); err != nil || d != filepath.Join(real, "rel", "s", ns) {
		t.Errorf("relative path: %q, %v", d, err)
	}

	if os.Geteuid() != 0 {
		return
	}
	// As root: a link another user owns is not followed, and nothing is
	// made where it points.
	evil := mk("evil", 0o755)
	if err := os.Chown(evil, 12345, 12345); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(base, "theirs")
	if err := os.Symlink(evil, link); err != nil {
		t.Fatal(err)
	}
	if err := os.Lchown(link, 12345, 12345); err != nil {
		t.Fatal(err)
	}
	if _, err := StateDir(filepath.Join(link, "a", "b")); err == nil || !strings.Contains(err.Error(), "symbolic link of uid 12345") {
		t.Errorf("through a link of uid 12345: err = %v", err)
	}
	if _, err := os.Lstat(filepath.Join(evil, "a")); err == nil {
		t.Errorf("a directory was made through another user's link")
	}
	// A directory of another user on the way: refused.
	if _, err := StateDir(filepath.Join(evil, "a")); err == nil || !strings.Contains(err.Error(), "belongs to uid 12345") {
		t.Errorf("through a directory of uid 12345: err = %v", err)
	}
	if _, err := os.Lstat(filepath.Join(evil, "a")); err == nil {
		t.Errorf("a directory was made in another user's directory")
	}
}

// TestStateDirSquatted: another user holding $TMPDIR/ipcguard-UID (their
// directory, or their link) makes the run use the fallback under $HOME, with
// a note, instead of losing its journal.
func TestStateDirSquatted(t *testing.T) {
	if os.Geteuid() != 0 {
		nstest.Require(t, "needs root to play two users")
	}
	const victim, squatter = 23456, 34567
	base := t.TempDir()
	tmp := filepath.Join(base, "tmp")
	os.Mkdir(tmp, 0o700)
	os.Chmod(tmp, os.ModeSticky|0o777)
	home := filepath.Join(base, "home")
	os.Mkdir(home, 0o700)
	os.Chown(home, victim, victim)
	t.Setenv("TMPDIR", tmp)
	t.Setenv("XDG_RUNTIME_DIR", "")
	t.Setenv("HOME", home)
	fb, err := fallbackStateDir()
	if err != nil {
		t.Fatal(err)
	}
	ns, _ := ipcNamespace()
	// The victim's own directories (this test runs as root: made ahead,
	// then given to the victim).
	p := home
	for _, c := range []string{".cache", "ipcguard", filepath.Base(fb), ns} {
		p = filepath.Join(p, c)
		os.Mkdir(p, 0o700)
		os.Chown(p, victim, victim)
	}
	squat := filepath.Join(tmp, fmt.Sprintf("ipcguard-%d", victim))

	os.Mkdir(squat, 0o777)
	os.Chown(squat, squatter, squatter)
	d, note, err := stateDirNote("", victim)
	if err != nil || d != filepath.Join(fb, ns) || !strings.Contains(note, "owned by uid 34567") || !strings.Contains(note, fb) {
		t.Errorf("squatted by a directory: %q, note %q, %v", d, note, err)
	}
	os.Remove(squat)
	os.Symlink(base, squat)
	os.Lchown(squat, squatter, squatter)
	d, note, err = stateDirNote("", victim)
	if err != nil || d != filepath.Join(fb, ns) || !strings.Contains(note, "symbolic link") {
		t.Errorf("squatted by a link: %q, note %q, %v", d, note, err)
	}
	// An explicit --state-dir never falls back.
	if _, _, err := stateDirNote(squat, victim); err == nil {
		t.Errorf("an unsafe --state-dir was accepted")
	}
}

// TestFIFOUnderJournalNames: a FIFO named like a journal or the sequence
// file makes no run hang.
func TestFIFOUnderJournalNames(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "run-999999-1.journal")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	j, err := Begin(dir, Header{}, nil) // peeks at every other journal
	if err != nil {
		t.Fatal(err)
	}
	if busy, why := j.Overlapped(); busy {
		t.Errorf("a FIFO counted as a run: %s", why)
	}
	j.Done()
	if _, err := Load(fifo); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("Load(FIFO) = %v", err)
	}
	if paths, _ := List(dir); len(paths) != 0 {
		t.Errorf("List gave the FIFO: %v", paths)
	}
	// A FIFO as the sequence file: Begin fails, it does not block.
	dir2 := t.TempDir()
	if err := syscall.Mkfifo(filepath.Join(dir2, "seq"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Begin(dir2, Header{}, nil); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("Begin with a FIFO as seq: %v", err)
	}
}

// TestKeepNamesRecord: the run's --keep-name patterns come back from the
// journal exactly (commas, newlines, bytes that are not UTF-8), also after
// compactions, so that a sweep keeps what the run would have kept.
func TestKeepNamesRecord(t *testing.T) {
	pats := []string{"PostgreSQL.*", "a,b", "x\ny", "sem.\xff[!0-9]*", `q\*`}
	j, err := Begin(t.TempDir(), Header{CompactAt: 4 << 10}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Done()
	j.KeepNames(pats)
	t0 := time.Unix(1_700_000_000, 0)
	j.Command(1000, 5, t0)
	for i := range 2000 {
		ts := t0.Add(time.Duration(i) * time.Millisecond)
		j.Join(1001+i, ts)
		j.Leave(1001+i, ts.Add(time.Microsecond))
	}
	if err := j.Err(); err != nil {
		t.Fatal(err)
	}
	r, err := Load(j.Path())
	if err != nil {
		t.Fatal(err)
	}
	if r.Compacted.Times == 0 {
		t.Fatalf("the journal was never compacted")
	}
	if !slices.Equal(r.KeepNames, pats) || r.BadLines != 0 {
		t.Errorf("keep names %q (bad lines %d), want %q", r.KeepNames, r.BadLines, pats)
	}
	for _, body := range []string{`Z `, `Z ""`, `Z abc`, `Z "a" "b"`} {
		var r Record
		line := []byte(body)
		line = append(line, ' ')
		line = appendHex(line, uint64(crc32.ChecksumIEEE([]byte(body))), 8)
		if parseRecord(line, &r) {
			t.Errorf("%q parsed: keep names %q", body, r.KeepNames)
		}
	}
}
