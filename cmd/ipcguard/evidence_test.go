package main_test

// The kinds of input of the evidence rules (docs/evidence.md; docs/scenarios.md 19-22),
// each reproduced with real processes against the built binary. A stranger's
// object that ipcguard removes is a FALSE REMOVAL; a tree's object it keeps
// where the rules say it is garbage is a leak.

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ipcguard/ipcguard/internal/nstest"
	"golang.org/x/sys/unix"
)

// kind1Script: ipcguard runs a command whose two children (tree members)
// record their pids and exit; then, in turn, a stranger of another user gets
// the first pid and a stranger of ipcguard's own user the second, and each
// creates and uses objects of all three types; then the command fails.
const kind1Script = `
mkfifo "$D/go"; chmod 666 "$D/go"
asuser $GU "$G" --quiet --report "$D/report.json" --state-dir "$D/state" $FLAGS -- sh -c '
	sh -c "echo \$\$ > \"\$D/m1\""
	sh -c "echo \$\$ > \"\$D/m2\""
	: > "$D/members"
	read x < "$D/go"
	exit 1' &
GP=$!
waitf "$D/members"
P1=$(cat "$D/m1"); P2=$(cat "$D/m2")
gone $P1; gone $P2
lastpid $((P1 - 1)); asuser $OTHER perl "$D/../stranger.pl" "$D/other" 0x4a120001 || exit 9
lastpid $((P2 - 1)); asuser $SAME perl "$D/../stranger.pl" "$D/same" 0x4a120002 || exit 9
echo go > "$D/go"
wait $GP; echo $? > "$D/guard.status"
[ "$(cat "$D/other.pid")" = "$P1" ] && [ "$(cat "$D/same.pid")" = "$P2" ] || exit 3
`

// TestEvidence1PidReuseDuringRun (scenario 19): a tree member exits; later a
// stranger gets its pid number and creates a segment (cpid), operates a set
// (sempid) and sends to and receives from queues (lspid, lrpid) before the
// command fails. Every stranger object is kept, whether the stranger is
// another user or ipcguard's own, keyed or IPC_PRIVATE. As root also with
// --track-creation.
func TestEvidence1PidReuseDuringRun(t *testing.T) {
	inGuardModes(t, func(t *testing.T, e *env, u users) {
		e.writeShared("stranger.pl", strangerPL)
		flagSets := []string{""}
		if u.guard == 0 {
			flagSets = append(flagSets, "--track-creation")
		}
		for _, flags := range flagSets {
			e.sc = fmt.Sprintf("kind 1 (pid reuse during a run, ipcguard %s %s)", u.mode, flags)
			d := e.scriptTries(fmt.Sprintf("k1-%s", strings.TrimLeft(flags, "-")), u, scriptOpts{pidNS: true}, scriptNoReuse, kind1Script, "FLAGS="+flags)
			e.guardStatus(filepath.Join(d, "guard.status"), 1)
			rep := e.readReport(filepath.Join(d, "report.json"))
			other, same := e.readIDs(filepath.Join(d, "other.ids")), e.readIDs(filepath.Join(d, "same.ids"))
			e.strangerKept("objects of another user whose pid a tree member had held", rep, other)
			e.strangerKept("objects of ipcguard's user whose pid a tree member had held", rep, same)
			e.removeObjects(e.objects())
		}
	})
}

// kind3Script: twice, ipcguard is SIGKILLed while its command waits; the
// command then fails and is gone; a stranger gets the command's pid number
// and creates a segment (a: another user, and exits; b: ipcguard's user, and
// stays alive); then `ipcguard sweep` runs.
const kind3Script = `
run3() {
	local d="$D/$1" uid=$2 hold=$3
	mkdir -m 1777 "$d"
	bgas $GU "$G" --quiet --state-dir "$D/state" -- sh -c 'echo $$ > "$0/p.tmp"; mv "$0/p.tmp" "$0/p"; while [ ! -e "$0/go" ]; do sleep 0.01; done; exit 1' "$d" &
	local gp=$!
	waitf "$d/p"; local p; p=$(cat "$d/p")
	kill -9 $gp; wait $gp 2>/dev/null
	: > "$d/go"; gone $p
	if [ $hold = 1 ]; then
		lastpid $((p - 1)); bgas $uid perl "$D/../segmaker.pl" "$d/s" "$d/release" &
		waitf "$d/s.pid"
	else
		lastpid $((p - 1)); asuser $uid perl "$D/../segmaker.pl" "$d/s" || exit 9
	fi
	[ "$(cat "$d/s.pid")" = "$p" ] || exit 3
	asuser $GU "$G" sweep --state-dir "$D/state" --report "$d/sweep.json" > "$d/sweep.out" 2>&1
	echo $? > "$d/sweep.status"
	: > "$d/release"
}
run3 a $OTHER 0
run3 b $SAME 1
wait
`

// TestEvidence3PidReuseAfterSupervisorKilled (scenario 20): after ipcguard
// was SIGKILLed and its command ended, the command's pid is reused by an
// unrelated process that creates a segment; `ipcguard sweep` keeps it —
// whether that process is another user and gone, or ipcguard's user and
// still alive.
func TestEvidence3PidReuseAfterSupervisorKilled(t *testing.T) {
	inGuardModes(t, func(t *testing.T, e *env, u users) {
		e.sc = "kind 3 (pid reuse after ipcguard was SIGKILLed, ipcguard " + u.mode + ")"
		e.writeShared("segmaker.pl", segmakerPL)
		d := e.scriptTries("k3", u, scriptOpts{pidNS: true}, scriptNoReuse, kind3Script)
		for _, run := range []string{"a", "b"} {
			what := map[string]string{"a": "another user's segment, its maker gone", "b": "a segment of ipcguard's user, its maker alive"}[run]
			rd := filepath.Join(d, run)
			if st := e.fileInt(filepath.Join(rd, "sweep.status")); st != 0 {
				b, _ := os.ReadFile(filepath.Join(rd, "sweep.out"))
				e.errorf("%s: sweep exited %d: %s", what, st, b)
			}
			ids := e.readIDs(filepath.Join(rd, "s.ids"))
			e.strangerKept(what+" (pid of the dead run's command)", nil, ids)
			for _, j := range readSweep(e, filepath.Join(rd, "sweep.json")) {
				if j.Run == nil {
					continue
				}
				for _, o := range j.Run.Objects {
					if contains(ids, fmt.Sprintf("%s %d", o.Type, o.ID)) && o.Action != "kept" {
						e.errorf("%s: sweep report (%s): %s %d action %q reason %q, want kept", what, j.Status, o.Type, o.ID, o.Action, o.Reason)
					}
				}
			}
		}
	})
}

// readSweep decodes a sweep report.
func readSweep(e *env, path string) []sweepOut {
	e.t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		e.fatalf("sweep report: %v", err)
	}
	var res []sweepOut
	if err := json.Unmarshal(b, &res); err != nil {
		e.fatalf("sweep report: %v\n%s", err, b)
	}
	return res
}

// kind4Script: ipcguard in a pid namespace of its own (with its /proc); the
// test, in the parent pid namespace, acts while the command waits.
const kind4Script = `
asuser $GU "$G" --quiet --report "$D/report.json" --state-dir "$D/state" -- sh -c ': > "$D/started"; while [ ! -e "$D/go" ]; do sleep 0.01; done; exit 1'
echo $? > "$D/guard.status"
`

// TestEvidence4OtherPidNamespace: processes of a pid namespace ipcguard
// cannot see (their pids read as 0 in its /proc/sysvipc and GETPID) share
// its IPC namespace, as pods, --ipc=container: and --ipc=host do. During the
// run they create and use objects of all three types (a queue holding a
// message, a set after semop, segments written through an attach), as
// ipcguard's user and as another user. All are kept.
func TestEvidence4OtherPidNamespace(t *testing.T) {
	inGuardModes(t, func(t *testing.T, e *env, u users) {
		e.sc = "kind 4 (users in another pid namespace, ipcguard " + u.mode + ")"
		e.writeShared("stranger.pl", strangerPL)
		d := e.freshDir("k4")
		cmd := e.scriptCmd(u, scriptOpts{pidNS: true}, d, kind4Script)
		var out strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			e.fatalf("%v", err)
		}
		e.t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		e.waitFile(filepath.Join(d, "started"))
		for i, who := range []struct {
			name string
			uid  int
		}{{"same", u.same}, {"other", u.other}} {
			p := asUser(who.uid, "perl", filepath.Join(e.dir, "stranger.pl"), filepath.Join(d, who.name), fmt.Sprintf("%#x", 0x4a140000+i))
			if b, err := p.CombinedOutput(); err != nil {
				e.fatalf("the outsider (%s): %v\n%s", who.name, err, b)
			}
		}
		if err := os.WriteFile(filepath.Join(d, "go"), nil, 0o644); err != nil {
			e.fatalf("%v", err)
		}
		if err := cmd.Wait(); err != nil {
			e.fatalf("script: %v\n%s", err, out.String())
		}
		e.guardStatus(filepath.Join(d, "guard.status"), 1)
		rep := e.readReport(filepath.Join(d, "report.json"))
		e.strangerKept("objects of ipcguard's user in another pid namespace", rep, e.readIDs(filepath.Join(d, "same.ids")))
		e.strangerKept("objects of another user in another pid namespace", rep, e.readIDs(filepath.Join(d, "other.ids")))
	})
}

// unreadablePL creates a set ($ARGV[1]: IPC_PRIVATE when 0, else that key),
// does a semop on it, sets its mode to 000 and appends "sem ID" to $ARGV[0].
const unreadablePL = `use strict; use warnings;
use IPC::SysV qw(IPC_PRIVATE IPC_CREAT);
use IPC::Semaphore;
my ($out, $key) = @ARGV;
my $s = IPC::Semaphore->new(hex($key), 1, 0600 | IPC_CREAT) or die "semget: $!";
$s->op(0, 1, 0) or die "semop: $!";
defined $s->set(mode => 0) or die "IPC_SET: $!";
open(my $f, '>>', $out) or die; print $f "sem ", $s->id, "\n"; close $f or die;
`

// TestEvidence5UnreadableSet (scenario 21): a same-uid stranger's sets whose
// mode forbids reading them (GETPID fails with EACCES for the unprivileged
// ipcguard), made and used during the run, are kept.
func TestEvidence5UnreadableSet(t *testing.T) {
	inBothModes(t, func(t *testing.T, mode nstest.Mode) {
		e := newEnv(t, "kind 5 (unreadable set, "+mode.String()+")")
		pl := e.writeShared("unreadable.pl", unreadablePL)
		started, goOn, ids, rep := e.path("started"), e.path("go"), e.path("ids"), e.path("report.json")
		g := e.guard("--report", rep, "--", "sh", "-c", shPrelude()+`: >"$0" && waitfile "$1" && exit 1`, started, goOn).start()
		e.waitFile(started)
		for _, key := range []string{"0", "0x4a150001"} {
			if b, err := exec.Command("perl", pl, ids, key).CombinedOutput(); err != nil {
				e.fatalf("the stranger: %v\n%s", err, b)
			}
		}
		if err := os.WriteFile(goOn, nil, 0o644); err != nil {
			e.fatalf("%v", err)
		}
		e.wantExit(g.wait(), 1)
		e.strangerKept("a same-uid stranger's set with mode 000", e.readReport(rep), e.readIDs(ids))
	})
}

// kind5bScript: a run whose ipcguard lives, in a pid namespace that kept the
// parent's /proc; a sweep from the same place while it runs. The run's pids
// are chosen where the /proc it sees has no process (else the sweep could
// keep the run by the luck of finding some other process there).
const kind5bScript = `
base=
for b in $(seq 20000 200 32000); do
	ok=1; for n in $(seq $b $((b + 60))); do [ -e /proc/$n ] && { ok=0; break; }; done
	[ $ok = 1 ] && { base=$b; break; }
done
[ -n "$base" ] || exit 4
lastpid $base
asuser $GU "$G" --quiet --state-dir "$D/state" -- perl "$D/../segmaker.pl" "$D/live" "$D/release" &
GP=$!
waitf "$D/live.pid"
asuser $GU "$G" sweep --state-dir "$D/state" --report "$D/sweep.json" > "$D/sweep.out" 2>&1
echo $? > "$D/sweep.status"
cat /proc/sysvipc/shm > "$D/after-sweep"
: > "$D/release"
wait $GP; echo $? > "$D/guard.status"
`

// TestEvidence5SweepWithForeignProc: `ipcguard sweep` in a pid namespace
// whose /proc is another namespace's must not take a live run for dead: the
// live run's segment is kept.
func TestEvidence5SweepWithForeignProc(t *testing.T) {
	inGuardModes(t, func(t *testing.T, e *env, u users) {
		e.sc = "kind 5 (sweep with another namespace's /proc, ipcguard " + u.mode + ")"
		e.writeShared("segmaker.pl", segmakerPL)
		d := e.scriptTries("k5b", u, scriptOpts{pidNSHost: true}, scriptRetry, kind5bScript)
		ids := e.readIDs(filepath.Join(d, "live.ids"))
		b, _ := os.ReadFile(filepath.Join(d, "after-sweep"))
		after, err := parseSysv("shm", string(b))
		if err != nil {
			e.fatalf("%v", err)
		}
		if !setOf(after).has(ids[0]) {
			sw, _ := os.ReadFile(filepath.Join(d, "sweep.out"))
			e.errorf("FALSE REMOVAL: the sweep removed %s of a live run (sweep said %q)", ids[0], sw)
		}
		// Refusing to sweep with a /proc that is not its own is a right
		// answer too (nothing is removed), as one line and a non-zero status.
		if st := e.fileInt(filepath.Join(d, "sweep.status")); st != 0 {
			sw, _ := os.ReadFile(filepath.Join(d, "sweep.out"))
			e.checkOneErrorLine(fmt.Sprintf("sweep exited %d", st), string(sw))
		}
		e.guardStatus(filepath.Join(d, "guard.status"), 0)
		e.strangerKept("the segment of a run that succeeded", nil, ids)
	})
}

func (s objSet) has(id string) bool {
	o, ok := s[id]
	return ok && o.Perms&0o1000 == 0
}

// slotHolderPL: a job-slot holder. Creates (or opens) the set $ARGV[1] and
// the queue $ARGV[2], takes a slot with SEM_UNDO, sends a message, appends
// their "TYPE ID" to $ARGV[0], marks $ARGV[3] and holds until $ARGV[4] exists.
const slotHolderPL = `use strict; use warnings;
use IPC::SysV qw(IPC_CREAT SEM_UNDO);
my ($out, $skey, $qkey, $ready, $stop) = @ARGV;
my $s = semget(hex($skey), 1, IPC_CREAT | 0600) // die "semget: $!";
semop($s, pack("s!3", 0, 1, SEM_UNDO)) or die "semop: $!";
my $q = msgget(hex($qkey), IPC_CREAT | 0600) // die "msgget: $!";
msgsnd($q, pack("l! a*", 1, "slot"), 0) or die "msgsnd: $!";
open(my $f, '>>', $out) or die; print $f "sem $s\nmsg $q\n"; close $f or die;
open(my $r, '>', $ready) or die; close $r;
select(undef, undef, undef, 0.01) until -e $stop;
`

// TestEvidence6KeyedSharedByDesign: a keyed set and a keyed queue that a
// stranger of ipcguard's user created during the run and still holds (a
// job slot taken with SEM_UNDO, a message sent); the tree then operates on
// both last. Both are kept — as root also with --track-creation, which sees
// that the tree did not create them.
func TestEvidence6KeyedSharedByDesign(t *testing.T) {
	inBothModes(t, func(t *testing.T, mode nstest.Mode) {
		for i, flags := range creationFlagSets(mode) {
			e := newEnv(t, fmt.Sprintf("kind 6 (keyed set held by a stranger, %s %v)", mode, flags))
			pl := e.writeShared("slot.pl", slotHolderPL)
			skey, qkey := fmt.Sprintf("%#x", 0x4a160001+2*i), fmt.Sprintf("%#x", 0x4a160002+2*i)
			started, held, stop, ids, rep := e.path("started"), e.path("held"), e.path("stop"), e.path("ids"), e.path("report.json")
			args := append(append([]string{"--report", rep}, flags...), "--", "sh", "-c",
				shPrelude()+`: >"$0" && waitfile "$1" && ipc sem:key=`+skey+`:op msg:key=`+qkey+`:send && exit 1`, started, held)
			g := e.guard(args...).start()
			e.waitFile(started)
			holder := e.startPerl(pl, ids, skey, qkey, held, stop)
			e.wantExit(g.wait(), 1)
			e.strangerKept("keyed objects a live stranger created and holds", e.readReport(rep), e.readIDs(ids))
			os.WriteFile(stop, nil, 0o644)
			if err := holder.Wait(); err != nil {
				e.errorf("the slot holder: %v", err)
			}
			e.removeObjects(e.objects())
		}
	})
}

// familyUserPL: an outside user of a key family. Attaches the segment of key
// $ARGV[0] (and stays attached), does a semop on the set of that key, marks
// $ARGV[1] and holds until $ARGV[2] exists.
const familyUserPL = `use strict; use warnings;
use IPC::SysV qw(shmat);
my ($key, $ready, $stop) = @ARGV;
my $m = shmget(hex($key), 0, 0) // die "shmget: $!";
defined shmat($m, undef, 0) or die "shmat: $!";
my $s = semget(hex($key), 0, 0) // die "semget: $!";
semop($s, pack("s!3", 0, 1, 0)) or die "semop: $!";
open(my $r, '>', $ready) or die; close $r;
select(undef, undef, undef, 0.01) until -e $stop;
`

// TestEvidence6KeyFamily: a program in the tree pairs a segment and a set
// on one key (as ALSA dmix does); an outside process attaches the segment
// and uses the set; the tree uses the set last and fails. Both are kept: the
// segment is in outside use, so is every object of its key. As root also
// with --track-creation (the tree's creation of both is then proven).
func TestEvidence6KeyFamily(t *testing.T) {
	inBothModes(t, func(t *testing.T, mode nstest.Mode) {
		for i, flags := range creationFlagSets(mode) {
			e := newEnv(t, fmt.Sprintf("kind 6 (key family, %s %v)", mode, flags))
			pl := e.writeShared("family.pl", familyUserPL)
			key := fmt.Sprintf("%#x", 0x4a160101+i)
			made, ready, used, stop, rep := e.path("made"), e.path("ready"), e.path("used"), e.path("stop"), e.path("report.json")
			args := append(append([]string{"--report", rep}, flags...), "--", nstest.Binary(),
				"out="+made, "shm:key="+key, "sem:key="+key+":op", "ready="+ready, "await="+used, "sem:key="+key+":op", "exit=1")
			g := e.guard(args...).withEnv(nstest.HelperEnv("ipc")).start()
			e.waitPidFile(ready)
			user := e.startPerl(pl, key, used, stop)
			e.wantExit(g.wait(), 1)
			ids := uniq(e.readIDs(made))
			wantCount(e, "the key family", ids, 2)
			e.strangerKept("a key family in outside use", e.readReport(rep), ids)
			os.WriteFile(stop, nil, 0o644)
			user.Wait()
			e.removeObjects(e.objects())
		}
	})
}

func uniq(s []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, x := range s {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}

// mitShmClientPL: the client. Creates an IPC_PRIVATE segment, writes its
// "shm ID" to $ARGV[0] and its pid to $ARGV[1], waits for the server to
// attach ($ARGV[2]) and dies from SIGKILL.
const mitShmClientPL = `use strict; use warnings;
use IPC::SysV qw(IPC_PRIVATE IPC_CREAT);
my ($ids, $pidf, $attached) = @ARGV;
my $m = shmget(IPC_PRIVATE, 65536, IPC_CREAT | 0600) // die "shmget: $!";
open(my $p, '>', "$pidf.tmp") or die; print $p "$$\n"; close $p; rename("$pidf.tmp", $pidf) or die;
open(my $f, '>', "$ids.tmp") or die; print $f "shm $m\n"; close $f; rename("$ids.tmp", $ids) or die;
select(undef, undef, undef, 0.01) until -e $attached;
kill 'KILL', $$;
`

// mitShmServerPL: the server, outside the tree. Waits for the client's
// segment ($ARGV[0]) and pid ($ARGV[1]), attaches it, marks $ARGV[2], waits
// until the client is gone, detaches, marks $ARGV[3] and lives on until
// $ARGV[4] exists.
const mitShmServerPL = `use strict; use warnings;
use IPC::SysV qw(shmat shmdt);
my ($ids, $pidf, $attached, $detached, $stop) = @ARGV;
select(undef, undef, undef, 0.01) until -e $ids && -e $pidf;
open(my $f, '<', $ids) or die; my ($id) = <$f> =~ /shm (\d+)/; close $f;
open(my $p, '<', $pidf) or die; my $client = <$p> + 0; close $p;
my $addr = shmat($id, undef, 0) // die "shmat: $!";
open(my $a, '>', $attached) or die; close $a;
select(undef, undef, undef, 0.01) while kill(0, $client);
defined shmdt($addr) or die "shmdt: $!";
open(my $d, '>', $detached) or die; close $d;
select(undef, undef, undef, 0.01) until -e $stop;
`

// TestEvidence7DetachedOutsider: the other direction, a leak. A client in
// the tree creates an IPC_PRIVATE segment that a server outside attaches for
// it (X11 MIT-SHM); the client crashes, the server detaches and lives on;
// the command fails. The segment (cpid in the tree, nattch 0, lpid the live
// server) is the tree's garbage: removed.
func TestEvidence7DetachedOutsider(t *testing.T) {
	inBothModes(t, func(t *testing.T, mode nstest.Mode) {
		e := newEnv(t, "kind 7 (detached outsider, "+mode.String()+")")
		client, server := e.writeShared("client.pl", mitShmClientPL), e.writeShared("server.pl", mitShmServerPL)
		ids, pidf, attached, detached, stop, rep := e.path("ids"), e.path("client.pid"), e.path("attached"),
			e.path("detached"), e.path("stop"), e.path("report.json")
		srv := e.startPerl(server, ids, pidf, attached, detached, stop)
		r := e.run("--report", rep, "--", "sh", "-c", shPrelude()+`perl "$0" "$1" "$2" "$3"; waitfile "$4" && exit 1`,
			client, ids, pidf, attached, detached)
		e.wantExit(r, 1)
		if !alive(srv.Process.Pid) {
			e.fatalf("the server is not alive: the input did not happen")
		}
		made := e.readIDs(ids)
		e.wantGone("a segment the tree made, only a detached server (alive) ever attached", made)
		typ, n := splitID(made[0])
		if o, ok := e.readReport(rep).object(typ, n); !ok || o.Action != "removed" {
			e.errorf("report: %s: %+v, want removed", made[0], o)
		}
		os.WriteFile(stop, nil, 0o644)
	})
}

// kind8Script: in namespace Y a run makes a segment and its ipcguard is
// SIGKILLed; the run ends and Y is destroyed, its journal left behind. Then
// new IPC namespaces are made until one has Y's inode number (they are
// reused within seconds); if none does in time, the journal is copied to the
// subdirectory of a new namespace, as the same inode would have it. In that
// namespace, a process of the run's user gets the dead command's pid number
// and creates and uses objects of all three types (the first segment has the
// id Y's segment had); then `ipcguard sweep` runs there.
const kind8Script = `
unshare --ipc bash -c '
	readlink /proc/self/ns/ipc > "$D/y.ns"
	bgas $GU "$G" --quiet --state-dir "$D/state" -- sh -c "echo \$\$ > \"\$D/p\"; ipcmk -M 4096 >/dev/null; : > \"\$D/made\"; while [ ! -e \"\$D/go\" ]; do sleep 0.01; done; exit 1" &
	gp=$!
	waitf "$D/made"; kill -9 $gp; wait $gp 2>/dev/null
	: > "$D/go"; gone "$(cat "$D/p")"
' || exit 9
export Y="$(cat "$D/y.ns")" P="$(cat "$D/p")"
zrun() {
	lastpid $((P - 1)); asuser $SAME perl "$D/../stranger.pl" "$D/z" 0x4a180001 || exit 9
	[ "$(cat "$D/z.pid")" = "$P" ] || exit 3
	asuser $GU "$G" sweep --state-dir "$D/state" --report "$D/sweep.json" > "$D/sweep.out" 2>&1
	echo $? > "$D/sweep.status"
	for t in shm sem msg; do cat /proc/sysvipc/$t > "$D/z.$t"; done
}
export -f zrun
rc=4
for i in $(seq 40); do
	unshare --ipc bash -c '[ "$(readlink /proc/self/ns/ipc)" = "$Y" ] || exit 4; zrun'
	rc=$?
	[ $rc = 4 ] || break
	sleep 0.05
done
if [ $rc = 4 ]; then
	echo "copied the journal" > "$D/how"
	unshare --ipc bash -c '
		z=$(readlink /proc/self/ns/ipc); z=${z#ipc:[}; z=ipc-${z%]}
		y=${Y#ipc:[}; y=ipc-${y%]}
		asuser $GU mkdir -p -m 700 "$D/state/$z" && asuser $GU cp "$D/state/$y"/run-*.journal "$D/state/$z/" || exit 9
		zrun'
	rc=$?
else
	echo "the inode came back" > "$D/how"
fi
exit $rc
`

// TestEvidence8JournalOfDeadNamespace: a journal belongs to one IPC
// namespace instance. A run SIGKILLed in a namespace that is then destroyed
// leaves a journal; a new namespace with the same inode number gets objects
// (made by a process holding the dead command's pid number, with the id of
// the dead run's segment); `ipcguard sweep` there removes none of them.
func TestEvidence8JournalOfDeadNamespace(t *testing.T) {
	inGuardModes(t, func(t *testing.T, e *env, u users) {
		e.sc = "kind 8 (journal of a dead namespace, ipcguard " + u.mode + ")"
		e.writeShared("stranger.pl", strangerPL)
		d := e.scriptTries("k8", u, scriptOpts{pidNS: true}, scriptNoReuse, kind8Script)
		how, _ := os.ReadFile(filepath.Join(d, "how"))
		t.Logf("%s: %s", e.sc, strings.TrimSpace(string(how)))
		var after []sysvObj
		for _, typ := range []string{"shm", "sem", "msg"} {
			b, err := os.ReadFile(filepath.Join(d, "z."+typ))
			if err != nil {
				e.fatalf("%v", err)
			}
			objs, err := parseSysv(typ, string(b))
			if err != nil {
				e.fatalf("%v", err)
			}
			after = append(after, objs...)
		}
		now := setOf(after)
		sw, _ := os.ReadFile(filepath.Join(d, "sweep.out"))
		var gone []string
		for _, id := range e.readIDs(filepath.Join(d, "z.ids")) {
			if !now.has(id) {
				gone = append(gone, id)
			}
		}
		if gone != nil {
			e.errorf("FALSE REMOVAL: the sweep removed %v of the new namespace (sweep said %q)", gone, sw)
		}
		if st := e.fileInt(filepath.Join(d, "sweep.status")); st != 0 {
			e.errorf("sweep exited %d: %s", st, sw)
		}
	})
}

// kind9Script: two overlapping runs of one user, one with XDG_RUNTIME_DIR
// and one without (so with different state directories), in a mount
// namespace whose /run is private. The other run makes a set with ipcmk and
// never uses it; the failing run ends meanwhile. Both ways round.
const kind9Script = `
mount -t tmpfs tmpfs /run || exit 9
mkdir -p "$D/xdg" "$D/tmp" && chown $GU:$GU "$D/xdg" && chmod 700 "$D/xdg" && chmod 1777 "$D/tmp" || exit 9
pair() {
	local d="$D/$1" fenv="XDG_RUNTIME_DIR=" oenv="XDG_RUNTIME_DIR="
	mkdir -m 1777 "$d"
	if [ $2 = 1 ]; then fenv="XDG_RUNTIME_DIR=$D/xdg"; else oenv="XDG_RUNTIME_DIR=$D/xdg"; fi
	asuser $GU env -u IPCGUARD_STATE_DIR "$oenv" TMPDIR="$D/tmp" "$G" --quiet -- sh -c ': > "$0/o.started"; while [ ! -e "$0/o.go" ]; do sleep 0.01; done; ipcmk -S 1 > "$0/o.tmp"; mv "$0/o.tmp" "$0/o.out"; while [ ! -e "$0/o.end" ]; do sleep 0.01; done' "$d" &
	local op=$!
	waitf "$d/o.started"
	asuser $GU env -u IPCGUARD_STATE_DIR "$fenv" TMPDIR="$D/tmp" "$G" --quiet --report "$d/report.json" -- sh -c ': > "$0/f.started"; while [ ! -e "$0/f.go" ]; do sleep 0.01; done; exit 1' "$d" &
	local fp=$!
	waitf "$d/f.started"; : > "$d/o.go"; waitf "$d/o.out"; : > "$d/f.go"
	wait $fp; echo $? > "$d/f.status"
	: > "$d/o.end"; wait $op; echo $? > "$d/o.status"
}
pair a 1
pair b 0
`

// TestEvidence9RunsWithDifferentStateDirs: runs of one user see each other
// whatever their environment. With XDG_RUNTIME_DIR set for one run and
// unset for the other (as with cron), the failing run does not remove the
// other run's never-used set on window evidence.
func TestEvidence9RunsWithDifferentStateDirs(t *testing.T) {
	inGuardModes(t, func(t *testing.T, e *env, u users) {
		e.sc = "kind 9 (overlapping runs, different state directories, ipcguard " + u.mode + ")"
		d := e.freshDir("k9")
		opts := scriptOpts{mountNS: true}
		if code, out := e.script(u, opts, d, kind9Script); code != 0 {
			e.fatalf("script: exit %d\n%s", code, out)
		}
		for _, p := range []struct{ dir, what string }{
			{"a", "the failing run with XDG_RUNTIME_DIR, the other without"},
			{"b", "the failing run without XDG_RUNTIME_DIR, the other with"},
		} {
			pd := filepath.Join(d, p.dir)
			e.guardStatus(filepath.Join(pd, "f.status"), 1)
			e.guardStatus(filepath.Join(pd, "o.status"), 0)
			e.strangerKept(p.what+": the other run's never-used set", e.readReport(filepath.Join(pd, "report.json")),
				e.ipcmkIDs(filepath.Join(pd, "o.out")))
		}
	})
}

// TestScenario06ShortLivedCreatorUnderForkLoad: the stricter rules must not
// make scenario 6 leak. The creator (ipcmk) is short-lived, and processes
// fork all around it — the command forks 200 more, two loops outside the
// tree fork all the time — in an otherwise quiet IPC namespace: the
// segment is still removed.
func TestScenario06ShortLivedCreatorUnderForkLoad(t *testing.T) {
	inBothModes(t, func(t *testing.T, _ nstest.Mode) {
		e := newEnv(t, "scenario 6 (short-lived creator, fork load)")
		stop := e.path("stop")
		for i := 0; i < 2; i++ {
			l := exec.Command("sh", "-c", `while [ ! -e "$0" ]; do /bin/true; done`, stop)
			if err := l.Start(); err != nil {
				e.fatalf("%v", err)
			}
			e.t.Cleanup(func() { l.Process.Kill(); l.Wait() })
		}
		defer os.WriteFile(stop, nil, 0o644)
		ids, rep := e.path("ids"), e.path("report.json")
		r := e.run("--report", rep, "--", "sh", "-c",
			`ipcmk -M 1 >"$0"; i=0; while [ $i -lt 200 ]; do /bin/true; i=$((i+1)); done; sleep 1; exit 1`, ids)
		e.wantExit(r, 1)
		made := e.ipcmkIDs(ids)
		wantCount(e, "short-lived creator", made, 1)
		e.wantGone("segment of a short-lived grandchild among many forks", made)
		typ, n := splitID(made[0])
		if o, ok := e.readReport(rep).object(typ, n); !ok || o.Action != "removed" {
			e.errorf("report: %s: %+v, want removed", made[0], o)
		}
	})
}

// TestEvidence10RecheckBeforeRemoval: decide, then re-check just before
// IPC_RMID. ipcguard runs under strace, which holds it for 0.3 s at the end
// of every shmctl(2) (the data already read). Once the command has ended
// and ipcguard is held in a shmctl SHM_STAT_ANY (its after-run view of the
// segments, listed index by index, taken), a stranger attaches the tree's
// segment. What ipcguard read says nattch 0; a re-check made after it sees
// the attach and keeps the segment. Without a re-check the segment is
// marked for destruction under the attached stranger.
//
// The test places the attach after ipcguard's last SHM_STAT_ANY that
// precedes its decision; an ipcguard that takes its after-run view some
// other way (reading /proc/sysvipc/shm) is never held, and the test says so
// instead of passing.
func TestEvidence10RecheckBeforeRemoval(t *testing.T) {
	inBothModes(t, func(t *testing.T, mode nstest.Mode) {
		e := newEnv(t, "kind 10 (re-check before IPC_RMID, "+mode.String()+")")
		strace, err := exec.LookPath("strace")
		if err != nil {
			if os.Getenv("CI") == "true" {
				e.fatalf("needs strace (delay injection)")
			}
			t.Skip("kind 10 needs strace (delay injection)")
		}
		ids, cmdPid, goOn, rep := e.path("ids"), e.path("cmdpid"), e.path("go"), e.path("report.json")
		st := exec.Command(strace, "-f", "-qq", "-o", "/dev/null",
			"-e", "trace=shmctl", "-e", "inject=shmctl:delay_exit=300000",
			guardBin(), "--quiet", "--report", rep, "--", "sh", "-c",
			shPrelude()+`echo $$ >"$1.tmp" && mv "$1.tmp" "$1" && ipc out="$0" shm:attach && waitfile "$2" && exit 1`, ids, cmdPid, goOn)
		st.Env = e.baseEnv()
		var out strings.Builder
		st.Stdout, st.Stderr = &out, &out
		st.WaitDelay = 5 * time.Second
		if err := st.Start(); err != nil {
			e.fatalf("%v", err)
		}
		e.t.Cleanup(func() { st.Process.Kill(); st.Wait() })
		// The helper appends its line after creating the file: wait for it.
		var made string
		e.waitFor("the command's segment id", 30*time.Second, func() bool {
			b, _ := os.ReadFile(ids)
			made = string(b)
			return strings.HasSuffix(made, "\n")
		})
		typ, id := splitID(strings.TrimSpace(made))
		if typ != "shm" {
			e.fatalf("the command recorded %q", made)
		}
		cmd := e.waitPidFile(cmdPid)
		var guard int
		e.waitFor("ipcguard under strace", 30*time.Second, func() bool {
			c := childrenOf(st.Process.Pid)
			if len(c) == 1 {
				guard = c[0]
			}
			return guard != 0
		})
		if err := os.WriteFile(goOn, nil, 0o644); err != nil {
			e.fatalf("%v", err)
		}
		e.waitFor("the command to end", 30*time.Second, func() bool { s := procState(cmd); return s == 0 || s == 'Z' })
		if !poll(30*time.Second, func() bool { return heldInShmStatAny(guard) }) {
			e.fatalf("ipcguard was never held in a shmctl SHM_STAT_ANY after the command ended: this test cannot place the attach (output: %q)", out.String())
		}
		if _, err := unix.SysvShmAttach(id, 0, unix.SHM_RDONLY); err != nil {
			e.fatalf("the stranger's attach: %v", err)
		}
		err = st.Wait()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
			e.fatalf("ipcguard under strace: %v, want exit 1; output %q", err, out.String())
		}
		objs := e.objects()
		if !present(objs, sysvObj{Type: "shm", ID: id}) {
			e.errorf("FALSE REMOVAL: shm %d, attached by a stranger between ipcguard's reading and its removal, was removed (marked for destruction)", id)
		}
		if o, ok := e.readReport(rep).object("shm", id); ok && o.Action != "kept" {
			e.errorf("report: shm %d action %q, want kept (a stranger attached it before the removal)", id, o.Action)
		}
	})
}

// heldInShmStatAny reports whether a thread of pid is stopped in
// shmctl(2) with the command SHM_STAT_ANY (15, linux/shm.h)
// (/proc/PID/task/TID/syscall: the syscall number and its arguments, the
// command second).
func heldInShmStatAny(pid int) bool {
	tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	for _, tk := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/syscall", pid, tk.Name()))
		if err != nil {
			continue
		}
		f := strings.Fields(string(b))
		if len(f) < 3 || f[0] != strconv.Itoa(unix.SYS_SHMCTL) {
			continue
		}
		if cmd, err := strconv.ParseInt(f[2], 0, 64); err == nil && cmd == 15 {
			return true
		}
	}
	return false
}
