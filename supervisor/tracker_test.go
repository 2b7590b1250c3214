package supervisor

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/ipcguard/ipcguard/internal/nstest"
	"github.com/ipcguard/ipcguard/ipcdiff"
	"golang.org/x/sys/unix"
)

// startTracked starts argv under tr the way the supervisor does: on a
// locked thread, beforeStart, fork, started. wait reaps the command (only
// the command: descendants are the test's business) and returns its status.
func startTracked(t testing.TB, tr tracker, argv ...string) (pid int, wait func() unix.WaitStatus) {
	t.Helper()
	return startTrackedIn(t, tr, "", argv...)
}

func startTrackedIn(t testing.TB, tr tracker, dir string, argv ...string) (pid int, wait func() unix.WaitStatus) {
	t.Helper()
	path, err := exec.LookPath(argv[0])
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		ws  unix.WaitStatus
		err error
	}
	pids := make(chan int, 1)
	res := make(chan result, 1)
	go func() {
		// The thread stays locked and dies with this goroutine after the
		// command is reaped, like a supervisor that is done with it:
		// trackers must cope with the forking thread going away.
		runtime.LockOSThread()
		if err := tr.beforeStart(); err != nil {
			pids <- 0
			res <- result{err: fmt.Errorf("beforeStart: %w", err)}
			return
		}
		pid, err := syscall.ForkExec(path, argv, &syscall.ProcAttr{
			Dir: dir, Env: os.Environ(), Files: []uintptr{0, 1, 2},
		})
		if err != nil {
			pids <- 0
			res <- result{err: fmt.Errorf("fork/exec: %w", err)}
			return
		}
		tr.started(pid, time.Now())
		pids <- pid
		var ws unix.WaitStatus
		for {
			_, err = unix.Wait4(pid, &ws, 0, nil)
			if !errors.Is(err, unix.EINTR) {
				break
			}
		}
		res <- result{ws, err}
	}()
	pid = <-pids
	if pid == 0 {
		r := <-res
		t.Fatal(r.err)
	}
	var once sync.Once
	var r result
	return pid, func() unix.WaitStatus {
		once.Do(func() { r = <-res })
		if r.err != nil {
			t.Fatal(r.err)
		}
		return r.ws
	}
}

// waitFor polls cond until it holds, failing the test after a generous
// deadline.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func readPid(t testing.TB, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return pid
}

func fileHasPid(path string) bool {
	b, err := os.ReadFile(path)
	return err == nil && strings.HasSuffix(string(b), "\n")
}

func gone(pid int) bool { return unix.Kill(pid, 0) == unix.ESRCH }

// trackerKinds are the trackers tested one by one.
var trackerKinds = []TrackerKind{TrackPerf, TrackProcCon, TrackPoll}

func modeName(m nstest.Mode) string { return m.String() }

// treeScript runs, from a directory: a short-lived child that writes its
// pid to F; a child that leaves a short-lived orphan grandchild writing its
// pid to G; a long-lived child writing its pid to L that waits for GO; then
// fails.
const treeScript = `
sh -c 'echo $$ > F'
sh -c 'sh -c "echo \$\$ > G.tmp; mv G.tmp G" &'
sh -c 'echo $$ > L; while [ ! -e GO ]; do sleep 0.01; done'
exit 1
`

// TestTrackerTree runs a tree with short-lived members under each tracker,
// as root and as an unprivileged user, and checks membership, exactness
// and spans.
func TestTrackerTree(t *testing.T) {
	for _, kind := range trackerKinds {
		for _, mode := range []nstest.Mode{nstest.Root, nstest.Unprivileged} {
			t.Run(string(kind)+"/"+modeName(mode), func(t *testing.T) {
				t.Parallel()
				if !nstest.Isolate(t, mode) {
					return
				}
				testTrackerTree(t, kind)
			})
		}
	}
}

func testTrackerTree(t *testing.T, kind TrackerKind) {
	// This isolated process is the supervisor: orphans come to it.
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		t.Fatal(err)
	}
	tr, err := newTracker(kind, false)
	if err != nil {
		nstest.Require(t, "tracker %s does not work here: %v", kind, err)
	}
	dir := t.TempDir()
	var mu sync.Mutex
	joined := map[int]time.Time{}
	tr.setJoined(func(pid int, at time.Time) {
		mu.Lock()
		joined[pid] = at
		mu.Unlock()
	})
	left := map[int]time.Time{}
	var leftBeforeJoin []int
	tr.setLeft(func(pid int, at time.Time) {
		mu.Lock()
		if _, ok := joined[pid]; !ok {
			leftBeforeJoin = append(leftBeforeJoin, pid) // only the root may: it never joins
		}
		left[pid] = at
		mu.Unlock()
	})
	before := time.Now()
	root, wait := startTrackedIn(t, tr, dir, "/bin/sh", "-c", treeScript)

	// A process outside the tree, started while the tree runs. The poll
	// tracker takes every new child of the supervisor for an orphan of the
	// tree (the supervisor starts nothing else), so it is left out there.
	var sibling int
	if kind != TrackPoll {
		sib := exec.Command("/bin/true")
		if err := sib.Run(); err != nil {
			t.Fatal(err)
		}
		sibling = sib.Process.Pid
	}

	waitFor(t, "L", func() bool { return fileHasPid(filepath.Join(dir, "L")) })
	long := readPid(t, filepath.Join(dir, "L"))
	// The hook reports a member while it runs.
	waitFor(t, "the joined hook to report L", func() bool {
		mu.Lock()
		defer mu.Unlock()
		_, ok := joined[long]
		return ok
	})
	if err := os.WriteFile(filepath.Join(dir, "GO"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	ws := wait()
	if ws.ExitStatus() != 1 {
		t.Fatalf("command status %v, want exit 1", ws)
	}
	waitFor(t, "G", func() bool { return fileHasPid(filepath.Join(dir, "G")) })
	f, g := readPid(t, filepath.Join(dir, "F")), readPid(t, filepath.Join(dir, "G"))
	// The orphan comes to us (a subreaper, like the supervisor): reap it.
	waitFor(t, "the orphan to exit", func() bool {
		var ws unix.WaitStatus
		r, _ := unix.Wait4(g, &ws, unix.WNOHANG, nil)
		return r == g || gone(g)
	})
	tree := tr.finish()
	after := time.Now()
	t.Logf("tracker %s: exact=%v note=%q pids=%v", tree.Tracker, tree.Exact, tree.Note, tree.Pids())

	if tree.Root != root || !strings.HasPrefix(tree.Tracker, string(kind)) {
		t.Fatalf("tree root %d tracker %q, want %d %q", tree.Root, tree.Tracker, root, kind)
	}
	if again := tr.finish(); again != tree {
		t.Fatalf("second finish returned another tree")
	}
	isMember := func(pid int) bool {
		m, _ := memberIn(tree, pid, before, after)
		return m
	}
	mustMember := []int{root, long}
	if kind != TrackPoll {
		mustMember = append(mustMember, f, g)
	}
	for _, pid := range mustMember {
		if !isMember(pid) {
			t.Errorf("pid %d is not a member (spans %v)", pid, tree.Spans(pid))
		}
	}
	mu.Lock()
	for _, pid := range mustMember[1:] {
		if _, ok := joined[pid]; !ok {
			t.Errorf("the joined hook never reported member %d", pid)
		}
	}
	for _, pid := range leftBeforeJoin {
		if pid != root {
			t.Errorf("the left hook reported %d before it joined", pid)
		}
	}
	// Exact trackers see exits: the short-lived child's is reported, after
	// its join, and matches the end of its span.
	if kind != TrackPoll {
		at, ok := left[f]
		if s := tree.Spans(f); !ok || len(s) == 0 || !s[len(s)-1].End.Equal(at) || at.Before(joined[f]) {
			t.Errorf("left hook for %d: %v (reported %v), spans %v", f, at, ok, s)
		}
	}
	if _, ok := joined[root]; ok {
		t.Errorf("the joined hook reported the root")
	}
	mu.Unlock()

	// (b) processes outside the tree.
	for _, pid := range []int{os.Getpid(), sibling} {
		if pid == 0 {
			continue
		}
		m, exact := memberIn(tree, pid, before, after)
		if m {
			t.Errorf("pid %d outside the tree is a member", pid)
		}
		if exact != (kind != TrackPoll) {
			t.Errorf("Member(%d) exact = %v", pid, exact)
		}
	}
	if kind == TrackPoll {
		if tree.Exact || tree.Note != pollNote {
			t.Errorf("poll tree exact=%v note %q", tree.Exact, tree.Note)
		}
	} else if !tree.Exact {
		t.Errorf("tree not exact: %s", tree.Note)
	}

	// (c) spans end, and a window after the end is not membership.
	for _, pid := range mustMember {
		spans := tree.Spans(pid)
		if len(spans) != 1 {
			t.Errorf("pid %d spans %v, want one", pid, spans)
			continue
		}
		s := spans[0]
		if s.End.IsZero() || s.End.Before(s.Start) || s.End.After(after) {
			t.Errorf("pid %d span %v..%v, want an end before %v", pid, s.Start, s.End, after)
			continue
		}
		if m, _ := memberIn(tree, pid, s.End.Add(ipcdiff.MembershipSlack+time.Millisecond), s.End.Add(ipcdiff.MembershipSlack+time.Second)); m {
			t.Errorf("pid %d is a member after its span ended", pid)
		}
		if m, _ := memberIn(tree, pid, s.Start.Add(-ipcdiff.MembershipSlack-time.Second), s.Start.Add(-ipcdiff.MembershipSlack-time.Millisecond)); m {
			t.Errorf("pid %d is a member before its span started", pid)
		}
	}
	if s := tree.Spans(long); len(s) == 1 && !s[0].End.After(tree.Spans(root)[0].Start) {
		t.Errorf("long-lived member ended %v, before the root started", s[0].End)
	}
	if len(tree.Alive()) != 0 {
		t.Errorf("alive members after the tree exited: %v", tree.Alive())
	}
}

// TestTrackerCreation checks the syscall tracepoints: the ids the tracked
// tree obtains are Created, those of a process outside the tree are not.
func TestTrackerCreation(t *testing.T) {
	if !nstest.Isolate(t, nstest.Root) {
		return
	}
	if os.Geteuid() != 0 {
		nstest.Require(t, "creation tracking needs real root")
	}
	dir := t.TempDir()
	// An object that exists before the run: a tracked msgget of its key
	// obtains it without creating it.
	pre := filepath.Join(dir, "pre")
	if err := nstest.IPCCmd("out="+pre, "msg:key=0x77").Run(); err != nil {
		t.Fatal(err)
	}
	tr, err := newTracker(TrackPerf, true)
	if err != nil {
		nstest.Require(t, "perf does not work here: %v", err)
	}
	out, other := filepath.Join(dir, "tree"), filepath.Join(dir, "other")
	_, wait := startTracked(t, tr, "/usr/bin/env", nstest.HelperEnv("ipc"), nstest.Binary(),
		"out="+out, "shm", "sem", "msg:key=0x42", "msg:key=0x77", "spawn{", "out="+out, "shm:key=0x43", "}", "exit=0")
	if tr.name() != "perf+syscalls" {
		t.Fatalf("tracker %q, want perf+syscalls", tr.name())
	}
	// Objects made meanwhile by a process outside the tree.
	if err := nstest.IPCCmd("out="+other, "shm", "sem:n=2", "msg").Run(); err != nil {
		t.Fatal(err)
	}
	if ws := wait(); ws.ExitStatus() != 0 {
		t.Fatalf("helper status %v", ws)
	}
	// The spawned child records its id after its shmget returned, so
	// the sample is in the ring buffer once the id is in the file.
	waitFor(t, "the spawned helper", func() bool { return len(readIDs(t, out)) == 5 })
	tree := tr.finish()
	if !tree.CreationTracked {
		t.Fatalf("creation not tracked: %s", tree.Note)
	}
	treeIDs, otherIDs := readIDs(t, out), readIDs(t, other)
	want := map[string]bool{}
	for _, id := range treeIDs {
		want[id] = true
	}
	// Every object of the namespace is one of ours.
	objs, err := nstest.HostObjects()
	if err != nil {
		t.Fatal(err)
	}
	if n := len(treeIDs) - 1 + len(otherIDs) + 1; len(objs) != n { // 0x77 counted once
		t.Fatalf("namespace objects %v, want %d", objs, n)
	}
	var got []string
	for typ, ids := range tree.created {
		for id := range ids {
			got = append(got, fmt.Sprintf("%s %d", typ, id))
		}
	}
	if len(got) != len(want) {
		t.Errorf("Created ids %v, want %v", got, treeIDs)
	}
	for _, g := range got {
		if !want[g] {
			t.Errorf("Created %s, not obtained by the tree", g)
		}
	}
	for i, id := range treeIDs {
		typ, n := splitID(t, id)
		c, proven, _, tracked := tree.Created(typ, n)
		if !c || !tracked {
			t.Errorf("Created(%s) = %v, %v; want true, true", id, c, tracked)
		}
		// The helper's gets use IPC_CREAT without IPC_EXCL: only the first
		// two, with IPC_PRIVATE, are sure to have made the object.
		if private := i < 2; proven != private {
			t.Errorf("Created(%s) proven = %v, want %v", id, proven, private)
		}
	}
	for _, id := range otherIDs {
		typ, n := splitID(t, id)
		if c, _, _, _ := tree.Created(typ, n); c {
			t.Errorf("Created(%s) = true for an object made outside the tree", id)
		}
	}
	// The pre-existing queue was obtained, not created: Created is true
	// and only the pre-run snapshot tells them apart.
	pid := readIDs(t, pre)[0]
	if typ, n := splitID(t, pid); tree.created[typ][n].proven {
		t.Errorf("pre-existing %s obtained by the tree is reported as made by it", pid)
	}
	if typ, n := splitID(t, pid); !func() bool { _, ok := tree.created[typ][n]; return ok }() {
		t.Errorf("pre-existing %s obtained by the tree is not reported", pid)
	}
}

func readIDs(t testing.TB, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var ids []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		ids = append(ids, sc.Text())
	}
	return ids
}

func splitID(t testing.TB, s string) (string, int) {
	t.Helper()
	typ, n, _ := strings.Cut(s, " ")
	id, err := strconv.Atoi(n)
	if err != nil {
		t.Fatalf("id %q: %v", s, err)
	}
	return typ, id
}

// TestTrackerAuto checks what TrackAuto picks here, as root and unprivileged.
func TestTrackerAuto(t *testing.T) {
	for _, mode := range []nstest.Mode{nstest.Root, nstest.Unprivileged} {
		t.Run(modeName(mode), func(t *testing.T) {
			t.Parallel()
			if !nstest.Isolate(t, mode) {
				return
			}
			tr, err := newTracker(TrackAuto, true)
			if err != nil {
				t.Fatal(err)
			}
			root, wait := startTracked(t, tr, "/bin/sh", "-c", "/bin/true; exit 3")
			if ws := wait(); ws.ExitStatus() != 3 {
				t.Fatalf("status %v", ws)
			}
			tree := tr.finish()
			t.Logf("auto as %s: tracker %s exact=%v creation=%v note=%q", mode, tree.Tracker, tree.Exact, tree.CreationTracked, tree.Note)
			if m, _ := memberIn(tree, root, time.Now().Add(-time.Minute), time.Now()); !m {
				t.Errorf("root is not a member")
			}
			if len(tree.Pids()) != 2 {
				t.Errorf("pids %v, want the root and /bin/true", tree.Pids())
			}
			if probePerf() == nil {
				want := "perf"
				if mode == nstest.Root && os.Geteuid() == 0 {
					want = "perf+syscalls"
				}
				if tree.Tracker != want || !tree.Exact {
					t.Errorf("tracker %s exact %v, want %s exact", tree.Tracker, tree.Exact, want)
				}
				if (want == "perf+syscalls") != tree.CreationTracked {
					t.Errorf("CreationTracked = %v", tree.CreationTracked)
				}
			}
		})
	}
}

// fakeTracker fails or succeeds to open, for the fallback logic.
type fakeTracker struct {
	kind   string
	err    error
	opened bool
	joined func(int, time.Time)
}

func (f *fakeTracker) name() string                              { return f.kind }
func (f *fakeTracker) beforeStart() error                        { f.opened = f.err == nil; return f.err }
func (f *fakeTracker) started(int, time.Time)                    {}
func (f *fakeTracker) setJoined(fn func(int, time.Time))         { f.joined = fn }
func (f *fakeTracker) setLeft(func(int, time.Time))              {}
func (f *fakeTracker) setGot(func(string, int, bool, time.Time)) {}
func (f *fakeTracker) adoptSelfChildren()                        {}
func (f *fakeTracker) finish() *Tree                             { tr := NewTree(f.kind, 1); tr.Note = "own note"; return tr }

func TestTrackerAutoFallback(t *testing.T) {
	perf := &fakeTracker{kind: "perf", err: fmt.Errorf("perf_event_open: %w (perf_event_paranoid=3)", unix.EACCES)}
	pc := &fakeTracker{kind: "proc-connector", err: errors.New("refused")}
	poll := &fakeTracker{kind: "poll"}
	a := &autoTracker{cands: []tracker{perf, pc, poll}}
	hook := func(int, time.Time) {}
	a.setJoined(hook)
	if err := a.beforeStart(); err != nil {
		t.Fatal(err)
	}
	if a.name() != "poll" || !poll.opened || poll.joined == nil {
		t.Fatalf("auto chose %q (poll opened %v)", a.name(), poll.opened)
	}
	tree := a.finish()
	want := "perf: perf_event_open: permission denied (perf_event_paranoid=3); proc-connector: refused; own note"
	if tree.Note != want {
		t.Fatalf("note %q, want %q", tree.Note, want)
	}

	none := &autoTracker{cands: []tracker{&fakeTracker{kind: "perf", err: errors.New("no")}}}
	if err := none.beforeStart(); !errors.Is(err, errNoTracker) {
		t.Fatalf("no tracker: %v", err)
	}
	if tr := none.finish(); tr.Root != 0 || tr.Note != "perf: no" {
		t.Fatalf("finish without a tracker: %+v", tr)
	}
	if _, err := newTracker("bogus", false); !errors.Is(err, errNoTracker) {
		t.Fatalf("bogus kind: %v", err)
	}
}

// TestTrackerFinishWithoutStart: the command could not be started.
func TestTrackerFinishWithoutStart(t *testing.T) {
	for _, kind := range trackerKinds {
		t.Run(string(kind), func(t *testing.T) {
			tr, err := newTracker(kind, false)
			if err != nil {
				nstest.Require(t, "%s: %v", kind, err)
			}
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			if err := tr.beforeStart(); err != nil {
				t.Fatal(err)
			}
			tree := tr.finish()
			if tree.Root != 0 || len(tree.Pids()) != 0 {
				t.Fatalf("tree %+v", tree)
			}
		})
	}
}

func TestTrackerBuilder(t *testing.T) {
	t0 := time.Unix(1000, 0)
	// One unit of this test's clock is wider than ipcdiff.MembershipSlack, so "after the end"
	// by one unit is outside a span even with the slack.
	unit := ipcdiff.MembershipSlack + time.Second
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * unit) }
	b := newBuilder("test", 10)
	b.join(10, at(0))
	b.fork(10, 11, at(1))  // child
	b.fork(11, 11, at(1))  // a thread of 11: nothing
	b.fork(99, 50, at(2))  // foreign fork of a never-member: nothing
	b.fork(11, 12, at(3))  // grandchild
	b.exit(12, 12, at(4))  // grandchild exits
	b.fork(77, 12, at(10)) // a foreign process reuses 12
	b.exit(12, 12, at(20)) // ... and exits: not the tree's
	b.fork(11, 13, at(5))
	b.exit(13, 13, at(6))  // leader of 13 exits first
	b.exit(13, 14, at(8))  // its last thread later: the span extends
	b.fork(13, 15, at(7))  // it forked in between: a member, and 13 was alive
	b.exit(11, 111, at(9)) // a thread of live 11: span stays open
	tr := b.tree
	check := func(pid int, from, to int, want bool) {
		t.Helper()
		if m, _ := memberIn(tr, pid, at(from), at(to)); m != want {
			t.Errorf("Member(%d, %d..%d) = %v, want %v (spans %v)", pid, from, to, m, want, tr.Spans(pid))
		}
	}
	check(11, 100, 100, true) // still live
	check(12, 3, 3, true)
	check(12, 6, 8, false) // after its end (+slack), before the reuse
	check(12, 15, 25, false)
	check(50, 0, 100, false)
	check(13, 8, 8, true)
	check(13, 10, 12, false)
	check(15, 7, 7, true)
	if got := tr.foreign[12]; len(got) != 1 || !got[0].Equal(at(10)) {
		t.Errorf("foreign holders of 12 = %v", got)
	}
	if s := tr.Spans(13); len(s) != 1 || !s[0].End.Equal(at(8)) {
		t.Errorf("spans of 13 = %v, want end at unit 8", s)
	}
	// A reused number that joins the tree again gets a new span.
	b.fork(11, 12, at(30))
	check(12, 30, 30, true)
	check(12, 15, 25, false)
	var joins []int
	for _, m := range b.events {
		if !m.left && m.get == "" {
			joins = append(joins, m.pid)
		}
	}
	if want := []int{11, 12, 13, 15, 12}; !slices.Equal(joins, want) {
		t.Errorf("joins %v, want %v", joins, want)
	}
	// A foreign holder of a live member's number: the exit was lost.
	b.foreign(11, at(40))
	check(11, 42, 50, false)
	check(11, 38, 38, true)
}

// perfRec builds a ring-buffer record: type, then u32/u64 fields.
func perfRec(typ uint32, fields ...any) []byte {
	ne := binary.NativeEndian
	b := make([]byte, 8)
	ne.PutUint32(b, typ)
	for _, f := range fields {
		switch v := f.(type) {
		case uint32:
			b = ne.AppendUint32(b, v)
		case uint64:
			b = ne.AppendUint64(b, v)
		case []byte:
			b = append(b, v...)
		}
	}
	ne.PutUint16(b[6:], uint16(len(b)))
	return b
}

func TestTrackerPerfDecode(t *testing.T) {
	tp := map[uint16]tracepoint{2045: {typ: "sem"}, 2046: {typ: "sem", enter: true, keyOff: 16, flgOff: 32}}
	enterRaw := make([]byte, 40)
	binary.NativeEndian.PutUint16(enterRaw, 2046)
	binary.NativeEndian.PutUint64(enterRaw[16:], uint64(0xffffffff80000042)) // key 0x80000042, sign-extended
	binary.NativeEndian.PutUint64(enterRaw[32:], unix.IPC_CREAT|unix.IPC_EXCL|0o600)
	raw := make([]byte, 24)
	binary.NativeEndian.PutUint16(raw, 2045)
	binary.NativeEndian.PutUint64(raw[16:], 32769)
	errRaw := append([]byte(nil), raw...)
	binary.NativeEndian.PutUint64(errRaw[16:], uint64(^uint64(0)-1)) // -2
	cases := []struct {
		name string
		rec  []byte
		ok   bool
		want perfRecord
	}{
		{"fork", perfRec(unix.PERF_RECORD_FORK, uint32(20), uint32(10), uint32(20), uint32(10), uint64(555), uint32(10), uint32(10), uint64(555)),
			true, perfRecord{kind: unix.PERF_RECORD_FORK, pid: 20, ppid: 10, tid: 20, time: 555}},
		{"exit", perfRec(unix.PERF_RECORD_EXIT, uint32(20), uint32(1), uint32(21), uint32(1), uint64(600), uint32(20), uint32(21), uint64(600)),
			true, perfRecord{kind: unix.PERF_RECORD_EXIT, pid: 20, ppid: 1, tid: 21, time: 600}},
		{"lost", perfRec(unix.PERF_RECORD_LOST, uint64(7), uint64(42), uint32(1), uint32(1), uint64(700)),
			true, perfRecord{kind: unix.PERF_RECORD_LOST, lost: 42, time: 700}},
		{"lost samples", perfRec(unix.PERF_RECORD_LOST_SAMPLES, uint64(3), uint32(1), uint32(1), uint64(800)),
			true, perfRecord{kind: unix.PERF_RECORD_LOST_SAMPLES, lost: 3, time: 800}},
		{"sample", perfRec(unix.PERF_RECORD_SAMPLE, uint32(30), uint32(31), uint64(900), uint32(28), raw, []byte{0, 0, 0, 0}),
			true, perfRecord{kind: unix.PERF_RECORD_SAMPLE, pid: 30, tid: 31, time: 900, typ: "sem", ret: 32769}},
		{"failed syscall", perfRec(unix.PERF_RECORD_SAMPLE, uint32(30), uint32(31), uint64(900), uint32(24), errRaw),
			true, perfRecord{kind: unix.PERF_RECORD_SAMPLE, pid: 30, tid: 31, time: 900, typ: "sem", ret: -2}},
		{"get entered", perfRec(unix.PERF_RECORD_SAMPLE, uint32(30), uint32(31), uint64(850), uint32(40), enterRaw),
			true, perfRecord{kind: unix.PERF_RECORD_SAMPLE, pid: 30, tid: 31, time: 850, typ: "sem", enter: true,
				key: int64(int32(-0x7fffffbe)), flags: unix.IPC_CREAT | unix.IPC_EXCL | 0o600}},
		{"short entry", perfRec(unix.PERF_RECORD_SAMPLE, uint32(30), uint32(31), uint64(850), uint32(24), enterRaw[:24]), false, perfRecord{}},
		{"unknown tracepoint", perfRec(unix.PERF_RECORD_SAMPLE, uint32(30), uint32(31), uint64(900), uint32(24), make([]byte, 24)), false, perfRecord{}},
		{"short fork", perfRec(unix.PERF_RECORD_FORK, uint32(20)), false, perfRecord{}},
		{"short raw", perfRec(unix.PERF_RECORD_SAMPLE, uint32(30), uint32(31), uint64(900), uint32(24), raw[:8]), false, perfRecord{}},
		{"comm", perfRec(unix.PERF_RECORD_COMM, uint32(1), uint32(1), []byte("sh\x00\x00\x00\x00\x00\x00")), false, perfRecord{}},
		{"empty", nil, false, perfRecord{}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, ok := decodePerfRecord(c.rec, tp)
			if ok != c.ok || (ok && r != c.want) {
				t.Fatalf("decode = %+v, %v; want %+v, %v", r, ok, c.want, c.ok)
			}
		})
	}
}

// TestTrackerPerfLost feeds a synthetic LOST record through the ring buffer
// reader and the tracker: the tree is then neither exact nor
// creation-tracked, and says why.
func TestTrackerPerfLost(t *testing.T) {
	page := 4096
	mem := make([]byte, page+2*page)
	b := &perfBuf{mem: mem, meta: (*unix.PerfEventMmapPage)(unsafe.Pointer(&mem[0])), data: mem[page:]}
	recs := [][]byte{
		perfRec(unix.PERF_RECORD_FORK, uint32(20), uint32(10), uint32(20), uint32(10), uint64(2000), uint32(10), uint32(10), uint64(2000)),
		perfRec(unix.PERF_RECORD_LOST, uint64(1), uint64(9), uint32(0), uint32(0), uint64(1500)),
		perfRec(unix.PERF_RECORD_EXIT, uint32(20), uint32(10), uint32(20), uint32(10), uint64(3000), uint32(20), uint32(20), uint64(3000)),
	}
	// Start near the end of the buffer so the last record wraps around.
	pos := uint64(len(b.data)) - uint64(len(recs[0])+len(recs[1])) - 16
	b.meta.Data_tail = pos
	for _, r := range recs {
		for i := range r {
			b.data[(pos+uint64(i))%uint64(len(b.data))] = r[i]
		}
		pos += uint64(len(r))
	}
	b.meta.Data_head = pos
	tr := newPerfTracker(true)
	tr.tracks = true
	tr.clock = unix.CLOCK_MONOTONIC
	tr.bufs = []*perfBuf{b}
	tr.started(10, time.Unix(0, 1000))
	tr.drain(true)
	tr.bufs = nil // not mmapped: nothing to unmap
	tree := tr.finish()
	if tree.Exact || tree.CreationTracked || !strings.Contains(tree.Note, "9 records lost") {
		t.Fatalf("tree exact=%v creation=%v note=%q", tree.Exact, tree.CreationTracked, tree.Note)
	}
	if s := tree.Spans(20); len(s) != 1 || s[0].Start.UnixNano() != 2000 || s[0].End.UnixNano() != 3000 {
		t.Fatalf("spans of 20: %v", s)
	}
	if b.meta.Data_tail != pos {
		t.Fatalf("tail %d, want %d", b.meta.Data_tail, pos)
	}
}

func TestTreeForeign(t *testing.T) {
	tr := NewTree("x", 1)
	t0 := time.Unix(5000, 0)
	tr.Foreign(7, t0) // never a member: ignored
	if len(tr.foreign[7]) != 0 || len(tr.Spans(7)) != 0 {
		t.Fatalf("foreign non-member recorded")
	}
	tr.Join(7, t0)
	tr.Foreign(7, t0.Add(10*time.Second))
	if m, exact := memberIn(tr, 7, t0.Add(10*time.Second+ipcdiff.MembershipSlack+time.Second), t0.Add(14*time.Second)); m || exact {
		t.Fatalf("Member after reuse = %v, %v", m, exact)
	}
	if m, _ := memberIn(tr, 7, t0.Add(5*time.Second), t0.Add(5*time.Second)); !m {
		t.Fatalf("not a member during its span")
	}
	tr.extend(7, t0.Add(11*time.Second))
	if s := tr.Spans(7); !s[0].End.Equal(t0.Add(11 * time.Second)) {
		t.Fatalf("extend: %v", s)
	}
	tr.extend(7, t0.Add(time.Second)) // earlier: no change
	if s := tr.Spans(7); !s[0].End.Equal(t0.Add(11 * time.Second)) {
		t.Fatalf("extend backwards: %v", s)
	}
}

func TestTrackerParseCPUList(t *testing.T) {
	for in, want := range map[string]string{"0": "[0]", "0-3": "[0 1 2 3]", "0-1,4,6-7": "[0 1 4 6 7]"} {
		got, err := parseCPUList(in)
		if err != nil || fmt.Sprint(got) != want {
			t.Errorf("parseCPUList(%q) = %v, %v; want %s", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "a", "1-b"} {
		if _, err := parseCPUList(bad); err == nil {
			t.Errorf("parseCPUList(%q) accepted", bad)
		}
	}
}

// benchKinds are the trackers benchmarked: perf without and with the
// syscall tracepoints.
var benchKinds = []string{"perf", "perf+syscalls", "proccon", "poll"}

func benchTracker(b *testing.B, name string) func() tracker {
	var kind TrackerKind
	creation := false
	switch name {
	case "perf":
		kind = TrackPerf
	case "perf+syscalls":
		kind, creation = TrackPerf, true
		if os.Geteuid() != 0 {
			b.Skip("creation tracking needs root")
		}
	case "proccon":
		kind = TrackProcCon
	case "poll":
		kind = TrackPoll
	default:
		return nil
	}
	if _, err := newTracker(kind, creation); err != nil {
		b.Skipf("%s: %v", kind, err)
	}
	return func() tracker {
		switch kind {
		case TrackPerf:
			return newPerfTracker(creation)
		case TrackProcCon:
			return newProcConTracker()
		}
		return newPollTracker(proc)
	}
}

// BenchmarkTrackerStart measures a tracker's set-up and tear-down: open
// (on a locked thread), started on a running process, finish.
func BenchmarkTrackerStart(b *testing.B) {
	sleeper := exec.Command("sleep", "600")
	if err := sleeper.Start(); err != nil {
		b.Fatal(err)
	}
	defer sleeper.Wait()
	defer sleeper.Process.Kill()
	for _, name := range benchKinds {
		b.Run(name, func(b *testing.B) {
			mk := benchTracker(b, name)
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			for b.Loop() {
				tr := mk()
				if err := tr.beforeStart(); err != nil {
					b.Fatal(err)
				}
				tr.started(sleeper.Process.Pid, time.Now())
				tr.finish()
			}
		})
	}
}

// BenchmarkTrackerRun measures a whole tracked run of /bin/true (fork,
// exec, wait) against an untracked one.
func BenchmarkTrackerRun(b *testing.B) {
	for _, name := range append([]string{"none"}, benchKinds...) {
		b.Run(name, func(b *testing.B) {
			mk := benchTracker(b, name)
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			attr := &syscall.ProcAttr{Env: os.Environ(), Files: []uintptr{0, 1, 2}}
			argv := []string{"/bin/true"}
			for b.Loop() {
				var tr tracker
				if mk != nil {
					tr = mk()
					if err := tr.beforeStart(); err != nil {
						b.Fatal(err)
					}
				}
				pid, err := syscall.ForkExec(argv[0], argv, attr)
				if err != nil {
					b.Fatal(err)
				}
				if tr != nil {
					tr.started(pid, time.Now())
				}
				var ws unix.WaitStatus
				if _, err := unix.Wait4(pid, &ws, 0, nil); err != nil {
					b.Fatal(err)
				}
				if tr != nil {
					tr.finish()
				}
			}
		})
	}
}

// TestTrackerPerfFullBuffer: a ring buffer found full may have dropped
// records without a PERF_RECORD_LOST to say so: the tree is not exact.
func TestTrackerPerfFullBuffer(t *testing.T) {
	page := 4096
	mem := make([]byte, page+page)
	b := &perfBuf{mem: mem, meta: (*unix.PerfEventMmapPage)(unsafe.Pointer(&mem[0])), data: mem[page:]}
	rec := perfRec(unix.PERF_RECORD_FORK, uint32(20), uint32(10), uint32(20), uint32(10), uint64(2000), uint32(10), uint32(10), uint64(2000))
	pos := uint64(0)
	for pos+uint64(len(rec)) <= uint64(len(b.data)) {
		copy(b.data[pos:], rec)
		pos += uint64(len(rec))
	}
	b.meta.Data_head = pos
	tr := newPerfTracker(false)
	tr.clock = unix.CLOCK_MONOTONIC
	tr.bufs = []*perfBuf{b}
	tr.started(10, time.Unix(0, 1000))
	tr.drain(true)
	if !b.full {
		t.Fatal("a full buffer was not noticed")
	}
	tree := tr.finish() // b was not mmapped: unmapping it fails quietly
	if tree.Exact || !strings.Contains(tree.Note, "filled up") {
		t.Errorf("tree exact %v, note %q: want not exact, saying why", tree.Exact, tree.Note)
	}
}

// memberIn is t.Member, as the tests call it.
func memberIn(t *Tree, pid int, from, to time.Time) (m, exact bool) { return t.Member(pid, from, to) }
