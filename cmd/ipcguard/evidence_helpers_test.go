package main_test

// Helpers of the evidence tests (docs/evidence.md, "A pid counts only with
// its time"): bodies that need more than a private IPC namespace — a private pid
// namespace whose pid allocation they steer through
// /proc/sys/kernel/ns_last_pid, a per-namespace pid_max, another user than
// the one ipcguard runs as — run as real root in their private IPC namespace
// and start ipcguard and the other processes under the uid each needs. The
// steps that must happen inside the private pid namespace (forcing a pid to
// be handed out again) are a bash script run there; its bash is the
// namespace's init and reaps the orphans.

import (
	"encoding/json"
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
)

// users says who is who in a body run by inGuardModes: ipcguard runs as
// guard; same is another process of that uid; other is a different user.
type users struct {
	mode  string
	guard int
	same  int
	other int
}

// guardModes are the two privilege modes of the evidence tests: ipcguard as
// root (strangers: nobody, and root), and ipcguard as nobody (strangers:
// uid 65533, and nobody).
var guardModes = []users{
	{mode: "root", guard: 0, same: 0, other: nstest.NobodyUID},
	{mode: "unprivileged", guard: nstest.NobodyUID, same: nstest.NobodyUID, other: nstest.NobodyUID - 1},
}

// inGuardModes runs body isolated (private IPC namespace, real root), once
// with ipcguard as root and once with ipcguard as an unprivileged user, in
// parallel subtests named after the mode. It needs real root: a pid
// namespace of our own, ns_last_pid, and switching to other users.
func inGuardModes(t *testing.T, body func(t *testing.T, e *env, u users)) {
	t.Helper()
	for _, u := range guardModes {
		t.Run(u.mode, func(t *testing.T) {
			t.Parallel()
			if !nstest.Isolate(t, nstest.Root) {
				return
			}
			requireRealRoot(t)
			e := newEnv(t, t.Name())
			e.dir = sharedDir(t)
			e.state = filepath.Join(e.dir, "state")
			body(t, e, u)
		})
	}
}

// requireRealRoot skips (fails under CI) unless this process is root of the
// initial user namespace.
func requireRealRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() == 0 && inInitUserNS() {
		return
	}
	const why = "needs real root (private pid namespaces, ns_last_pid, processes of other users)"
	if os.Getenv("CI") == "true" {
		t.Fatal(why)
	}
	t.Skip(why)
}

// sharedDir is a scratch directory every user may write (mode 1777, in a
// 0755 parent): ipcguard and the strangers of other uids leave their marks
// and reports there.
func sharedDir(t *testing.T) string {
	t.Helper()
	base, err := os.MkdirTemp("", "ipcguard-evidence-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(base, "d")
	if err := os.Mkdir(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, os.ModeSticky|0o777); err != nil {
		t.Fatal(err)
	}
	return dir
}

// freshDir makes a new shared subdirectory name of e.dir, for one attempt.
func (e *env) freshDir(name string) string {
	e.t.Helper()
	d := filepath.Join(e.dir, name)
	os.RemoveAll(d)
	if err := os.Mkdir(d, 0o777); err != nil {
		e.fatalf("%v", err)
	}
	if err := os.Chmod(d, os.ModeSticky|0o777); err != nil {
		e.fatalf("%v", err)
	}
	return d
}

// writeShared writes a file every user may read.
func (e *env) writeShared(name, text string) string {
	e.t.Helper()
	p := filepath.Join(e.dir, name)
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		e.fatalf("%v", err)
	}
	return p
}

// startPerl starts perl on the script at path with args; it is killed and
// reaped when the test ends.
func (e *env) startPerl(path string, args ...string) *exec.Cmd {
	e.t.Helper()
	cmd := exec.Command("perl", append([]string{path}, args...)...)
	if err := cmd.Start(); err != nil {
		e.fatalf("%v", err)
	}
	e.t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd
}

// asUser is a command run as uid (and gid uid), with no supplementary groups.
func asUser(uid int, argv ...string) *exec.Cmd {
	c := exec.Command(argv[0], argv[1:]...)
	c.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(uid), Groups: []uint32{}}}
	return c
}

// creationFlagSets: a run with no flags and, as root (where the creation
// tracker may run), one with --track-creation.
func creationFlagSets(mode nstest.Mode) [][]string {
	if mode == nstest.Root {
		return [][]string{nil, {"--track-creation"}}
	}
	return [][]string{nil}
}

// scriptPrelude defines the shell functions of the scripts:
//
//	asuser UID CMD...    run CMD as UID (and its gid), no supplementary groups
//	bgas UID CMD... &    the same in the background, $! being CMD's own pid
//	waitf PATH           wait until PATH exists (a minute at most, then exit 97)
//	gone PID             wait until PID is no longer in this pid namespace
//	lastpid N            the next pid handed out in this pid namespace is N+1
//	                     (unless another fork comes first: callers check)
//
// The functions are exported to the bash scripts these start.
const scriptPrelude = `set -u
asuser() { local u=$1; shift; if [ "$u" = 0 ]; then "$@"; else setpriv --reuid "$u" --regid "$u" --clear-groups -- "$@"; fi; }
bgas() { local u=$1; shift; if [ "$u" = 0 ]; then exec "$@"; else exec setpriv --reuid "$u" --regid "$u" --clear-groups -- "$@"; fi; }
waitf() { local i=0; while [ ! -e "$1" ]; do i=$((i+1)); if [ $i -gt 3000 ]; then echo "timed out waiting for $1" >&2; exit 97; fi; sleep 0.02; done; }
gone() { local i=0; while [ -e "/proc/$1" ]; do i=$((i+1)); if [ $i -gt 3000 ]; then echo "timed out waiting for pid $1 to go" >&2; exit 97; fi; sleep 0.02; done; }
lastpid() { echo "$1" > /proc/sys/kernel/ns_last_pid; }
export -f asuser bgas waitf gone lastpid
`

// Exit statuses of the scripts with a meaning for the test.
const (
	scriptNoReuse = 3 // the pid could not be handed out again (a fork came first)
	scriptRetry   = 4 // some other race of the set-up: try again
)

// scriptOpts says where a script runs.
type scriptOpts struct {
	pidNS     bool // in a private pid namespace with its own /proc
	pidNSHost bool // in a private pid namespace that keeps this /proc (no --mount-proc)
	mountNS   bool // in a private mount namespace
	ipcNS     bool // in a new IPC namespace (instead of the body's)
}

// script runs a bash script as root under the options, with the variables
// G (ipcguard), D (dir), H (the ipc helper binary), GU, SAME, OTHER and the
// extra ones, and returns its exit status and combined output.
func (e *env) script(u users, o scriptOpts, dir, text string, extra ...string) (int, string) {
	e.t.Helper()
	cmd := e.scriptCmd(u, o, dir, text, extra...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode(), string(out)
		}
		e.fatalf("running the script: %v\n%s", err, out)
	}
	return 0, string(out)
}

func (e *env) scriptCmd(u users, o scriptOpts, dir, text string, extra ...string) *exec.Cmd {
	var argv []string
	if o.mountNS || o.ipcNS || o.pidNS || o.pidNSHost {
		argv = append(argv, "unshare")
		if o.mountNS {
			argv = append(argv, "--mount", "--propagation", "private")
		}
		if o.ipcNS {
			argv = append(argv, "--ipc")
		}
		if o.pidNS {
			argv = append(argv, "--pid", "--fork", "--mount-proc")
		}
		if o.pidNSHost {
			argv = append(argv, "--pid", "--fork")
		}
	}
	argv = append(argv, "bash", "-c", scriptPrelude+text)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.Env = append(e.baseEnv(), "G="+guardBin(), "D="+dir, "H="+nstest.Binary(),
		"GU="+strconv.Itoa(u.guard), "SAME="+strconv.Itoa(u.same), "OTHER="+strconv.Itoa(u.other))
	cmd.Env = append(cmd.Env, extra...)
	cmd.WaitDelay = 10 * time.Second
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	return cmd
}

// attempts runs try until it returns true (the set-up worked) or n attempts
// failed to set up the input, then fails: a test whose input did not happen
// has checked nothing.
func (e *env) attempts(what string, n int, try func(attempt int) bool) {
	e.t.Helper()
	for a := 1; a <= n; a++ {
		if try(a) {
			return
		}
		e.t.Logf("%s: attempt %d did not produce the input, again", what, a)
		e.removeObjects(e.objects())
	}
	e.fatalf("%s: no attempt of %d produced the input", what, n)
}

// scriptTries runs script (see script) in a fresh shared directory
// name-N, up to four times while it exits with retry (the kernel did not
// produce the input the script forces, such as a pid handed out again),
// fails on any other non-zero exit, and returns the directory of the try
// that produced it.
func (e *env) scriptTries(name string, u users, opts scriptOpts, retry int, script string, vars ...string) string {
	e.t.Helper()
	var d string
	e.attempts(e.sc, 4, func(a int) bool {
		d = e.freshDir(fmt.Sprintf("%s-%d", name, a))
		switch code, out := e.script(u, opts, d, script, vars...); code {
		case 0:
			return true
		case retry:
			return false
		default:
			e.fatalf("script: exit %d\n%s", code, out)
		}
		return false
	})
	return d
}

// fileInt reads an integer from a file the script wrote.
func (e *env) fileInt(path string) int {
	e.t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		e.fatalf("%v", err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		e.fatalf("%s: %q is not a number", path, b)
	}
	return n
}

// splitID splits "shm 3" into "shm", 3.
func splitID(s string) (string, int) {
	var typ string
	var id int
	fmt.Sscanf(s, "%s %d", &typ, &id)
	return typ, id
}

// strangerKept checks that each of ids is still in the namespace and, when
// rep is not nil, that the report keeps it with a reason. A missing object
// is a false removal; an attempt that the kernel refused (action "failed")
// is one too, stopped only by permissions.
func (e *env) strangerKept(what string, rep *report, ids []string) {
	e.t.Helper()
	now := setOf(e.objects())
	for _, id := range ids {
		var bad []string
		o, ok := now[id]
		switch {
		case !ok:
			bad = append(bad, "FALSE REMOVAL: gone")
		case o.Perms&0o1000 != 0:
			bad = append(bad, "FALSE REMOVAL: marked for destruction")
		}
		if rep != nil {
			typ, n := splitID(id)
			if ro, ok := rep.object(typ, n); ok && (ro.Action != "kept" || ro.Reason == "") {
				bad = append(bad, fmt.Sprintf("report: action %q reason %q evidence %q, want kept with a reason", ro.Action, ro.Reason, ro.Evidence))
			}
		}
		if bad != nil {
			e.errorf("%s: %s: %s", what, id, strings.Join(bad, "; "))
			if rep != nil && os.Getenv("IPCGUARD_DUMP") != "" {
				b, _ := json.MarshalIndent(rep, "", "  ")
				e.t.Logf("report:\n%s", b)
			}
		}
	}
}

// guardStatus reads the exit status the script recorded for ipcguard.
func (e *env) guardStatus(path string, want int) {
	e.t.Helper()
	if got := e.fileInt(path); got != want {
		e.fatalf("ipcguard exited %d, want %d", got, want)
	}
}

// strangerPL creates and uses, mode 0644, one object of each type with
// IPC_PRIVATE and one of each type with the key $ARGV[1] (shm: written
// through an attach, so lpid too; sem: semop; msg: sent, and the keyed queue
// also received from, so lspid and lrpid). It writes "TYPE ID" lines to
// $ARGV[0].ids, then its pid to $ARGV[0].pid. With $ARGV[2] it then stays
// alive until that file exists.
const strangerPL = `use strict; use warnings;
use IPC::SysV qw(IPC_PRIVATE IPC_CREAT IPC_NOWAIT);
my ($out, $key, $hold) = @ARGV;
my @ids;
for my $k (IPC_PRIVATE, hex($key)) {
	my $shm = shmget($k, 4096, IPC_CREAT | 0644) // die "shmget: $!";
	shmwrite($shm, "s", 0, 1) or die "shmwrite: $!";
	my $sem = semget($k, 1, IPC_CREAT | 0644) // die "semget: $!";
	semop($sem, pack("s!3", 0, 1, 0)) or die "semop: $!";
	my $msg = msgget($k, IPC_CREAT | 0644) // die "msgget: $!";
	msgsnd($msg, pack("l! a*", 1, "s"), 0) or die "msgsnd: $!";
	if ($k) { my $buf; msgrcv($msg, $buf, 64, 0, IPC_NOWAIT) or die "msgrcv: $!"; }
	push @ids, "shm $shm", "sem $sem", "msg $msg";
}
sub put { my ($p, $t) = @_; open(my $f, '>', "$p.tmp") or die "$p: $!"; print $f $t; close $f or die; rename("$p.tmp", $p) or die; }
put("$out.ids", join("", map { "$_\n" } @ids));
put("$out.pid", "$$\n");
if (defined $hold) { select(undef, undef, undef, 0.01) until -e $hold; }
`

// segmakerPL creates one IPC_PRIVATE segment, mode 0644, without attaching
// it, writes "shm ID" to $ARGV[0].ids and its pid to $ARGV[0].pid; with
// $ARGV[1] it then stays alive until that file exists.
const segmakerPL = `use strict; use warnings;
use IPC::SysV qw(IPC_PRIVATE IPC_CREAT);
my ($out, $hold) = @ARGV;
my $shm = shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0644) // die "shmget: $!";
sub put { my ($p, $t) = @_; open(my $f, '>', "$p.tmp") or die "$p: $!"; print $f $t; close $f or die; rename("$p.tmp", $p) or die; }
put("$out.ids", "shm $shm\n");
put("$out.pid", "$$\n");
if (defined $hold) { select(undef, undef, undef, 0.01) until -e $hold; }
`
