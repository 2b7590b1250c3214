package supervisor

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ipcguard/ipcguard/internal/nstest"
	"golang.org/x/sys/unix"
)

func init() {
	helpers["seccomp-run"] = seccompRunHelper
	helpers["gets"] = getsHelper
	helpers["getloop"] = getloopHelper
}

// seccompRunReport is what seccomp-run writes.
type seccompRunReport struct {
	Tracker string
	Note    string
	Code    int
	Made    []string // "sem 3": the ids Got reported
	Created []string // the ids the tree says were created (proven)
	Nanos   int64    // the run's duration
}

// seccompRunHelper runs a command under Run with CreationSeccomp:
//
//	seccomp-run [-plain] OUT -- CMD ARGS...
//
// and writes a seccompRunReport to OUT. -plain runs without the filter.
func seccompRunHelper(args []string) int {
	plain := len(args) > 0 && args[0] == "-plain"
	if plain {
		args = args[1:]
	}
	if len(args) < 3 || args[1] != "--" {
		fmt.Fprintln(os.Stderr, "usage: seccomp-run [-plain] OUT -- CMD ARGS...")
		return 125
	}
	var made []string
	start := time.Now()
	res, err := Run(Options{Args: args[2:], CreationSeccomp: !plain, Tracker: TrackPoll,
		Got: func(typ string, id int, proven bool, _ time.Time) {
			if proven {
				made = append(made, fmt.Sprintf("%s %d", typ, id))
			}
		}})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 125
	}
	rep := seccompRunReport{Tracker: res.Tree.Tracker, Note: res.Tree.Note, Code: res.Status.ExitStatus(), Made: made,
		Nanos: time.Since(start).Nanoseconds()}
	for _, typ := range []string{"sem", "msg", "shm"} {
		for id := range res.Tree.created[typ] {
			if created, proven, _, _ := res.Tree.Created(typ, id); created && proven {
				rep.Created = append(rep.Created, fmt.Sprintf("%s %d", typ, id))
			}
		}
	}
	b, _ := json.Marshal(rep)
	if err := os.WriteFile(args[0], b, 0o644); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 125
	}
	return 0
}

// getsHelper makes gets and prints one line per get: "TYPE ID" or
// "TYPE errno N". Each argument is TYPE:KEY:NSEMS:FLAGS (numbers in any
// base strconv reads; NSEMS ignored for msg). Without arguments it prints
// its effective uid. A last line gives NoNewPrivs from /proc/self/status.
func getsHelper(args []string) int {
	for _, a := range args {
		f := strings.Split(a, ":")
		if len(f) != 4 {
			fmt.Fprintln(os.Stderr, "gets: bad step", a)
			return 2
		}
		key, _ := strconv.ParseInt(f[1], 0, 64)
		n, _ := strconv.ParseInt(f[2], 0, 64)
		flg, _ := strconv.ParseInt(f[3], 0, 64)
		var r uintptr
		var e syscall.Errno
		switch f[0] {
		case "sem":
			r, _, e = unix.Syscall(unix.SYS_SEMGET, uintptr(int32(key)), uintptr(n), uintptr(flg))
		case "msg":
			r, _, e = unix.Syscall(unix.SYS_MSGGET, uintptr(int32(key)), uintptr(flg), 0)
		}
		if e != 0 {
			fmt.Printf("%s errno %d\n", f[0], int(e))
		} else {
			fmt.Printf("%s %d\n", f[0], int(r))
		}
	}
	if len(args) == 0 {
		fmt.Printf("euid %d\n", os.Geteuid())
	}
	b, _ := os.ReadFile("/proc/self/status")
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "NoNewPrivs:") {
			fmt.Println(strings.Join(strings.Fields(l), " "))
		}
	}
	return 0
}

// getloopHelper makes N private sets and removes each (semget with
// IPC_CREAT, semctl IPC_RMID) and writes the nanoseconds per pair to OUT:
//
//	getloop N OUT
func getloopHelper(args []string) int {
	n, _ := strconv.Atoi(args[0])
	start := time.Now()
	for range n {
		id, _, e := unix.Syscall(unix.SYS_SEMGET, 0, 1, unix.IPC_CREAT|0o600)
		if e != 0 {
			fmt.Fprintln(os.Stderr, "semget:", e)
			return 1
		}
		if _, _, e := unix.Syscall6(unix.SYS_SEMCTL, id, 0, unix.IPC_RMID, 0, 0, 0); e != 0 {
			fmt.Fprintln(os.Stderr, "semctl:", e)
			return 1
		}
	}
	per := time.Since(start).Nanoseconds() / int64(max(n, 1))
	if err := os.WriteFile(args[1], []byte(strconv.FormatInt(per, 10)), 0o644); err != nil {
		return 1
	}
	return 0
}

func runSeccomp(t *testing.T, plain bool, cmd ...string) (seccompRunReport, string) {
	t.Helper()
	dir := t.TempDir()
	out := filepath.Join(dir, "report.json")
	args := []string{out, "--"}
	if plain {
		args = append([]string{"-plain"}, args...)
	}
	c := nstest.HelperCmd("seccomp-run", append(args, cmd...)...)
	b, err := c.CombinedOutput()
	if err != nil {
		t.Fatalf("seccomp-run: %v\n%s", err, b)
	}
	var rep seccompRunReport
	rb, err := os.ReadFile(out)
	if err != nil || json.Unmarshal(rb, &rep) != nil {
		t.Fatalf("seccomp-run report: %v %s\n%s", err, rb, b)
	}
	return rep, string(b)
}

// TestSeccompCreation: the tree's creating gets are made by the
// supervisor and given to the tree as proven creations, and each caller
// gets what the kernel would have given it: the new id, the existing
// object, EEXIST, EINVAL; gets that cannot create are not stopped; the
// command runs with no_new_privs.
func TestSeccompCreation(t *testing.T) {
	inModes(t, func(t *testing.T, mode nstest.Mode) {
		self := nstest.Binary()
		const k1, k2 = "0x5ec0001", "0x5ec0002"
		creat, excl := strconv.Itoa(unix.IPC_CREAT|0o600), strconv.Itoa(unix.IPC_CREAT|unix.IPC_EXCL|0o600)
		rep, out := runSeccomp(t, false, "env", nstest.HelperEnv("gets"), self,
			"sem:"+k1+":2:"+creat,      // made here
			"sem:"+k1+":2:"+creat,      // exists: the caller opens it
			"sem:"+k1+":2:"+excl,       // exists: EEXIST
			"msg:0:0:384",              // IPC_PRIVATE without IPC_CREAT: made here
			"sem:"+k2+":0:0",           // cannot create: not stopped, ENOENT
			"sem:"+k2+":100000:"+creat) // too many semaphores: EINVAL
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 7 {
			t.Fatalf("gets printed %q", out)
		}
		semID, msgID := lines[0], lines[3]
		want := []string{semID, semID, "sem errno 17", msgID, "sem errno 2", "sem errno 22", "NoNewPrivs: 1"}
		for i, w := range want {
			if lines[i] != w || strings.Contains(semID, "errno") || strings.Contains(msgID, "errno") {
				t.Fatalf("gets printed %q, want %q", lines, want)
			}
		}
		if !strings.HasSuffix(rep.Tracker, "+seccomp") || !strings.Contains(rep.Note, "2 of 5 creating gets made for the tree") {
			t.Errorf("tracker %q note %q", rep.Tracker, rep.Note)
		}
		if strings.Join(rep.Made, ",") != semID+","+msgID || len(rep.Created) != 2 {
			t.Errorf("made %q, created %q; want %s and %s", rep.Made, rep.Created, semID, msgID)
		}
		// The objects are the caller's as if it had made them.
		for _, l := range []string{semID, msgID} {
			typ, id := splitGet(l)
			o := findSysv(t, typ, id)
			if o == nil || o.uid != os.Geteuid() || o.cuid != os.Geteuid() || o.perms != 0o600 {
				t.Errorf("%s: %+v, want uid %d, mode 600", l, o, os.Geteuid())
			}
		}
	})
}

// TestSeccompOtherCredentials: as root, a process of the tree that became
// another user creates a set: the supervisor does not make it (it could
// not make it as that user) and says so; the caller's own call creates it.
func TestSeccompOtherCredentials(t *testing.T) {
	if !nstest.Isolate(t, nstest.Root) {
		return
	}
	if os.Geteuid() != 0 {
		nstest.Require(t, "needs real root to switch users")
	}
	if _, err := exec.LookPath("setpriv"); err != nil {
		nstest.Require(t, "needs setpriv")
	}
	rep, out := runSeccomp(t, false, "setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups", "--",
		"env", nstest.HelperEnv("gets"), nstest.Binary(), "sem:0x5ec0101:1:"+strconv.Itoa(unix.IPC_CREAT|0o644))
	lines := strings.Split(strings.TrimSpace(out), "\n")
	typ, id := splitGet(lines[0])
	o := findSysv(t, typ, id)
	if o == nil || o.cuid != nstest.NobodyUID {
		t.Fatalf("the set: %+v (gets printed %q), want one made by 65534", o, out)
	}
	if len(rep.Made) != 0 || !strings.Contains(rep.Note, "0 of 1") || !strings.Contains(rep.Note, "1 other credentials") {
		t.Errorf("made %q note %q: want the call left to the caller, for other credentials", rep.Made, rep.Note)
	}
}

// TestSeccompNested: a command that already has a listener (an ipcguard
// with this tracker inside another) runs without a second one, and the
// tree's Note says why.
func TestSeccompNested(t *testing.T) {
	inModes(t, func(t *testing.T, mode nstest.Mode) {
		dir := t.TempDir()
		inner := filepath.Join(dir, "inner.json")
		outer, out := runSeccomp(t, false, "env", nstest.HelperEnv("seccomp-run"), nstest.Binary(), inner, "--",
			"env", nstest.HelperEnv("gets"), nstest.Binary(), "sem:0:1:"+strconv.Itoa(unix.IPC_CREAT|0o600))
		var rep seccompRunReport
		b, err := os.ReadFile(inner)
		if err != nil || json.Unmarshal(b, &rep) != nil {
			t.Fatalf("inner report: %v %s\n%s", err, b, out)
		}
		if strings.HasSuffix(rep.Tracker, "+seccomp") || !strings.Contains(rep.Note, "seccomp: not installed") || !strings.Contains(rep.Note, "already has a seccomp listener") {
			t.Errorf("inner tracker %q note %q: want the filter refused (EBUSY), said", rep.Tracker, rep.Note)
		}
		// The outer watch made the inner command's set.
		if len(outer.Made) != 1 {
			t.Errorf("outer made %q, want the inner command's set", outer.Made)
		}
	})
}

// TestSeccompSetuidHelper: as root, a set-uid program of another user in
// the tree runs without that privilege under the tracker (no_new_privs),
// and the tree's Note says so; without the tracker it gets it.
func TestSeccompSetuidHelper(t *testing.T) {
	if !nstest.Isolate(t, nstest.Root) {
		return
	}
	if os.Geteuid() != 0 {
		nstest.Require(t, "needs real root to make a set-uid program of another user")
	}
	dir, err := os.MkdirTemp("", "ipcguard-setuid-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o755)
	helper := filepath.Join(dir, "helper")
	b, err := os.ReadFile(nstest.Binary())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(helper, b, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(helper, nstest.NobodyUID, nstest.NobodyUID); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(helper, 0o755|os.ModeSetuid); err != nil {
		t.Fatal(err)
	}
	plain, out := runSeccomp(t, true, "env", nstest.HelperEnv("gets"), helper)
	if !strings.Contains(out, fmt.Sprintf("euid %d", nstest.NobodyUID)) {
		nstest.Require(t, "set-uid programs do not work in %s (nosuid?): %q", dir, out)
	}
	if strings.Contains(plain.Note, "no_new_privs") {
		t.Errorf("without the tracker the note says %q", plain.Note)
	}
	rep, out := runSeccomp(t, false, "env", nstest.HelperEnv("gets"), helper)
	if !strings.Contains(out, "euid 0\n") || !strings.Contains(out, "NoNewPrivs: 1") {
		t.Errorf("under the tracker the set-uid helper printed %q, want euid 0 and no_new_privs", out)
	}
	if !strings.Contains(rep.Note, "ran with no_new_privs: set-uid and set-gid programs in it ran without their privilege") {
		t.Errorf("note %q does not say that set-uid programs ran without their privilege", rep.Note)
	}
}

func inModes(t *testing.T, body func(t *testing.T, mode nstest.Mode)) {
	for _, mode := range []nstest.Mode{nstest.Root, nstest.Unprivileged} {
		t.Run(mode.String(), func(t *testing.T) {
			if !nstest.Isolate(t, mode) {
				return
			}
			body(t, mode)
		})
	}
}

func splitGet(l string) (string, int) {
	typ, n, _ := strings.Cut(l, " ")
	id, err := strconv.Atoi(n)
	if err != nil {
		return typ, -1
	}
	return typ, id
}

type sysvObj struct{ uid, cuid, perms int }

// findSysv reads one object of /proc/sysvipc/TYPE (sem or msg).
func findSysv(t *testing.T, typ string, id int) *sysvObj {
	t.Helper()
	b, err := os.ReadFile("/proc/sysvipc/" + typ)
	if err != nil {
		t.Fatal(err)
	}
	// sem: key semid perms nsems uid gid cuid cgid ...
	// msg: key msqid perms cbytes qnum lspid lrpid uid gid cuid cgid ...
	uidCol := map[string]int{"sem": 4, "msg": 7}[typ]
	for _, l := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(l)
		if len(f) <= uidCol+2 || f[1] != strconv.Itoa(id) {
			continue
		}
		perms, _ := strconv.ParseInt(f[2], 8, 32)
		uid, _ := strconv.Atoi(f[uidCol])
		cuid, _ := strconv.Atoi(f[uidCol+2])
		return &sysvObj{uid: uid, cuid: cuid, perms: int(perms)}
	}
	return nil
}

// BenchmarkSeccompGet: what a creating semget costs the command under
// the seccomp creation tracker (a notification, the supervisor's checks
// and its own get), against the same call without it: each op is one
// semget(IPC_PRIVATE, IPC_CREAT) and its IPC_RMID, timed inside the
// command, in a private IPC namespace.
func BenchmarkSeccompGet(b *testing.B) {
	for _, plain := range []bool{true, false} {
		b.Run(map[bool]string{true: "plain", false: "seccomp"}[plain], func(b *testing.B) {
			dir := b.TempDir()
			per := filepath.Join(dir, "per")
			args := []string{filepath.Join(dir, "rep.json"), "--", "env", nstest.HelperEnv("getloop"), nstest.Binary(), strconv.Itoa(b.N), per}
			if plain {
				args = append([]string{"-plain"}, args...)
			}
			benchInIPCNS(b, args)
			v, err := os.ReadFile(per)
			if err != nil {
				b.Fatal(err)
			}
			ns, _ := strconv.ParseFloat(string(v), 64)
			b.ReportMetric(ns, "ns/op")
		})
	}
}

// BenchmarkSeccompRun: a whole supervised run of /bin/true, started
// directly (plain) or through the trampoline with the filter (seccomp):
// the cost per run of the tracker (a second start of the binary, the
// filter, the listener's passing and watch).
func BenchmarkSeccompRun(b *testing.B) {
	for _, plain := range []bool{true, false} {
		b.Run(map[bool]string{true: "plain", false: "seccomp"}[plain], func(b *testing.B) {
			dir := b.TempDir()
			var total int64
			for i := 0; i < b.N; i++ {
				rep := filepath.Join(dir, "rep.json")
				args := []string{rep, "--", "/bin/true"}
				if plain {
					args = append([]string{"-plain"}, args...)
				}
				benchInIPCNS(b, args)
				var r seccompRunReport
				rb, _ := os.ReadFile(rep)
				if err := json.Unmarshal(rb, &r); err != nil {
					b.Fatal(err)
				}
				if !plain && !strings.HasSuffix(r.Tracker, "+seccomp") {
					b.Fatalf("no seccomp watch: %s", r.Note)
				}
				total += r.Nanos
			}
			b.ReportMetric(float64(total)/float64(b.N), "ns/op")
		})
	}
}

// benchInIPCNS runs seccomp-run with args in a new IPC namespace (as root,
// or in a user namespace of its own).
func benchInIPCNS(b *testing.B, args []string) {
	b.Helper()
	c := nstest.HelperCmd("seccomp-run", args...)
	c.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWIPC, Pdeathsig: syscall.SIGKILL}
	if os.Geteuid() != 0 {
		c.SysProcAttr.Cloneflags |= syscall.CLONE_NEWUSER
		c.SysProcAttr.UidMappings = []syscall.SysProcIDMap{{ContainerID: os.Getuid(), HostID: os.Getuid(), Size: 1}}
		c.SysProcAttr.GidMappings = []syscall.SysProcIDMap{{ContainerID: os.Getgid(), HostID: os.Getgid(), Size: 1}}
	}
	if out, err := c.CombinedOutput(); err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			b.Skipf("no private IPC namespace here: %v", err)
		}
		b.Fatalf("seccomp-run: %v\n%s", err, out)
	}
}
