package main_test

// Hostile inputs against the evidence rules (docs/evidence.md), beyond the
// kinds of evidence_test.go: each is an attempt to make ipcguard remove an
// object its tree did not create (a FALSE REMOVAL), or keep one it did
// create where the evidence leaves no doubt (a leak). Real processes, real
// kernel objects, a private IPC namespace each.

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ipcguard/ipcguard/internal/journal"
	"github.com/ipcguard/ipcguard/internal/nstest"
	"github.com/ipcguard/ipcguard/internal/procfs"
	"github.com/ipcguard/ipcguard/ipcdiff"
	"github.com/ipcguard/ipcguard/supervisor"
	"golang.org/x/sys/unix"
)

// inRootGuard is inGuardModes with ipcguard as root only (what needs
// root: --track-creation, the proc connector).
func inRootGuard(t *testing.T, body func(t *testing.T, e *env, u users)) {
	t.Helper()
	if !nstest.Isolate(t, nstest.Root) {
		return
	}
	requireRealRoot(t)
	e := newEnv(t, t.Name())
	e.dir = sharedDir(t)
	e.state = filepath.Join(e.dir, "state")
	body(t, e, guardModes[0])
}

// strangersOf returns the strangers of a guard mode: another user, and
// ipcguard's own.
func strangersOf(u users) []struct {
	name string
	uid  int
} {
	return []struct {
		name string
		uid  int
	}{{"other", u.other}, {"same", u.same}}
}

// wantCandidates fails unless the report names each of ids: an object
// that was not new since the snapshot before tests nothing here.
func (e *env) wantCandidates(rep *report, ids []string) {
	e.t.Helper()
	if len(ids) == 0 {
		e.fatalf("no objects recorded: the input did not happen")
	}
	for _, id := range ids {
		typ, n := splitID(id)
		if _, ok := rep.object(typ, n); !ok {
			e.fatalf("%s is not in the report: the input did not happen", id)
		}
	}
}

// strangerUsesPL: a stranger that uses objects it did not create. With
// $ARGV[0] "TYPE ID" lines in a file, it does a semop with SEM_UNDO on each
// set (and keeps it: a slot held), sends a message to each queue; then it
// marks $ARGV[1] and stays alive until $ARGV[2] exists.
const strangerUsesPL = `use strict; use warnings;
use IPC::SysV qw(SEM_UNDO);
my ($ids, $ready, $stop) = @ARGV;
open(my $f, '<', $ids) or die "$ids: $!";
while (<$f>) {
	my ($t, $id) = split;
	if ($t eq 'sem') { semop($id, pack("s!3", 0, 1, SEM_UNDO)) or die "semop: $!"; }
	if ($t eq 'msg') { msgsnd($id, pack("l! a*", 1, "outsider"), 0) or die "msgsnd: $!"; }
}
close $f;
open(my $r, '>', $ready) or die; close $r;
select(undef, undef, undef, 0.01) until -e $stop;
`

// treePrivatePL: the tree's program. Creates, mode 0666, an IPC_PRIVATE
// set and queue, writes "TYPE ID" lines to $ARGV[0], waits for $ARGV[1].
const treePrivatePL = `use strict; use warnings;
use IPC::SysV qw(IPC_PRIVATE IPC_CREAT);
my ($out, $await) = @ARGV;
my $s = semget(IPC_PRIVATE, 1, IPC_CREAT | 0666) // die "semget: $!";
my $q = msgget(IPC_PRIVATE, IPC_CREAT | 0666) // die "msgget: $!";
open(my $f, '>', "$out.tmp") or die; print $f "sem $s\nmsg $q\n"; close $f; rename("$out.tmp", $out) or die;
select(undef, undef, undef, 0.01) until -e $await;
`

// TestHostileStrangerUsesTreePrivateObjects: the tree creates an
// IPC_PRIVATE set and queue; a stranger (another user, and ipcguard's own)
// that learned their ids takes a slot with SEM_UNDO and sends a message,
// and lives on. The tree fails. Both objects are in a live outsider's use:
// kept.
func TestHostileStrangerUsesTreePrivateObjects(t *testing.T) {
	inGuardModes(t, func(t *testing.T, e *env, u users) {
		e.writeShared("uses.pl", strangerUsesPL)
		e.writeShared("tree.pl", treePrivatePL)
		for _, s := range strangersOf(u) {
			e.sc = fmt.Sprintf("a %s stranger uses the tree's private objects (ipcguard %s)", s.name, u.mode)
			d := e.freshDir("uses-" + s.name)
			code, out := e.script(u, scriptOpts{}, d, `
asuser $GU "$G" --quiet --report "$D/report.json" --state-dir "$D/state" -- sh -c 'perl "$D/../tree.pl" "$D/ids" "$D/used"; exit 1' &
GP=$!
waitf "$D/ids"
bgas $SU perl "$D/../uses.pl" "$D/ids" "$D/used" "$D/stop" &
SP=$!
wait $GP; echo $? > "$D/guard.status"
: > "$D/stop"; wait $SP || exit 9
`, fmt.Sprintf("SU=%d", s.uid))
			if code != 0 {
				e.fatalf("script: exit %d\n%s", code, out)
			}
			e.guardStatus(filepath.Join(d, "guard.status"), 1)
			rep, ids := e.readReport(filepath.Join(d, "report.json")), e.readIDs(filepath.Join(d, "ids"))
			e.wantCandidates(rep, ids)
			e.strangerKept("the tree's private set and queue, used by a live outsider", rep, ids)
			e.removeObjects(e.objects())
		}
	})
}

// keyReusePL: with $ARGV[0] "make", creates a segment, a set and a queue
// of key $ARGV[1] (IPC_CREAT|IPC_EXCL, mode 0666), uses each and removes
// each again; with "use", opens the objects of that key that someone else
// made and uses them (attach and detach through shmread, semop, msgsnd).
const keyReusePL = `use strict; use warnings;
use IPC::SysV qw(IPC_CREAT IPC_EXCL IPC_RMID);
my ($how, $key) = @ARGV;
$key = hex($key);
if ($how eq 'make') {
	my $m = shmget($key, 4096, IPC_CREAT | IPC_EXCL | 0666) // die "shmget: $!";
	my $s = semget($key, 1, IPC_CREAT | IPC_EXCL | 0666) // die "semget: $!";
	my $q = msgget($key, IPC_CREAT | IPC_EXCL | 0666) // die "msgget: $!";
	semop($s, pack("s!3", 0, 1, 0)) or die "semop: $!";
	msgsnd($q, pack("l! a*", 1, "tree"), 0) or die "msgsnd: $!";
	shmctl($m, IPC_RMID, 0) or die; semctl($s, 0, IPC_RMID, 0) or die; msgctl($q, IPC_RMID, 0) or die;
	exit 0;
}
my $m = shmget($key, 0, 0) // die "shmget: $!";
my $buf; shmread($m, $buf, 0, 1) or die "shmread: $!";
my $s = semget($key, 0, 0) // die "semget: $!";
semop($s, pack("s!3", 0, 1, 0)) or die "semop: $!";
my $q = msgget($key, 0) // die "msgget: $!";
msgsnd($q, pack("l! a*", 1, "tree"), 0) or die "msgsnd: $!";
`

// keyStrangerPL: creates, mode 0666, a segment, a set and a queue of key
// $ARGV[1] (IPC_CREAT|IPC_EXCL: the key is free), writes "TYPE ID" lines to
// $ARGV[0] and exits, leaving them to whoever uses the key.
const keyStrangerPL = `use strict; use warnings;
use IPC::SysV qw(IPC_CREAT IPC_EXCL);
my ($out, $key) = @ARGV;
$key = hex($key);
my $m = shmget($key, 4096, IPC_CREAT | IPC_EXCL | 0666) // die "shmget: $!";
my $s = semget($key, 1, IPC_CREAT | IPC_EXCL | 0666) // die "semget: $!";
my $q = msgget($key, IPC_CREAT | IPC_EXCL | 0666) // die "msgget: $!";
open(my $f, '>', "$out.tmp") or die; print $f "shm $m\nsem $s\nmsg $q\n"; close $f; rename("$out.tmp", $out) or die;
`

// TestHostileKeyRecreatedByStranger: the tree makes and uses objects of a
// key (IPC_CREAT|IPC_EXCL) and removes them itself; a stranger (another
// user, and ipcguard's own) then makes new objects of the same key and
// goes; the tree opens the key again, uses the stranger's objects (attach
// and detach, semop, msgsnd) and fails. The stranger's objects are kept:
// the segment's creator is the stranger, a keyed set or queue needs proof
// that the tree created it — with --track-creation too, which saw the
// tree's first gets of the key return other ids.
func TestHostileKeyRecreatedByStranger(t *testing.T) {
	inGuardModes(t, func(t *testing.T, e *env, u users) {
		e.writeShared("keyreuse.pl", keyReusePL)
		e.writeShared("keystranger.pl", keyStrangerPL)
		flagSets := []string{""}
		if u.guard == 0 {
			flagSets = append(flagSets, "--track-creation")
		}
		n := 0
		for _, flags := range flagSets {
			for _, s := range strangersOf(u) {
				n++
				e.sc = fmt.Sprintf("a %s stranger re-creates the tree's key (ipcguard %s %s)", s.name, u.mode, flags)
				d := e.freshDir(fmt.Sprintf("key-%d", n))
				key := fmt.Sprintf("%#x", 0x4a170000+n)
				code, out := e.script(u, scriptOpts{}, d, `
asuser $GU "$G" --quiet --report "$D/report.json" --state-dir "$D/state" $FLAGS -- sh -c '
	perl "$D/../keyreuse.pl" make $KEY || exit 9
	: > "$D/made"
	while [ ! -e "$D/again" ]; do sleep 0.01; done
	perl "$D/../keyreuse.pl" use $KEY || exit 9
	exit 1' &
GP=$!
waitf "$D/made"
asuser $SU perl "$D/../keystranger.pl" "$D/ids" $KEY || exit 9
: > "$D/again"
wait $GP; echo $? > "$D/guard.status"
`, fmt.Sprintf("SU=%d", s.uid), "KEY="+key, "FLAGS="+flags)
				if code != 0 {
					e.fatalf("script: exit %d\n%s", code, out)
				}
				e.guardStatus(filepath.Join(d, "guard.status"), 1)
				rep, ids := e.readReport(filepath.Join(d, "report.json")), e.readIDs(filepath.Join(d, "ids"))
				e.wantCandidates(rep, ids)
				e.strangerKept("a stranger's objects of a key the tree had used and freed", rep, ids)
				e.removeObjects(e.objects())
			}
		}
	})
}

// destHolderPL: a stranger's segment of key $ARGV[0], made before the run
// and attached; once $ARGV[1] exists it marks the segment for destruction
// (IPC_RMID while attached: the kernel clears its key, so it shows with a
// new identity), marks $ARGV[2] and stays attached until $ARGV[3] exists.
const destHolderPL = `use strict; use warnings;
use IPC::SysV qw(IPC_CREAT IPC_RMID shmat);
my ($key, $go, $done, $stop, $out) = @ARGV;
my $m = shmget(hex($key), 4096, IPC_CREAT | 0600) // die "shmget: $!";
defined shmat($m, undef, 0) or die "shmat: $!";
open(my $f, '>', "$out.tmp") or die; print $f "shm $m\n"; close $f; rename("$out.tmp", $out) or die;
select(undef, undef, undef, 0.01) until -e $go;
shmctl($m, IPC_RMID, 0) or die "IPC_RMID: $!";
open(my $d, '>', $done) or die; close $d;
select(undef, undef, undef, 0.01) until -e $stop;
`

// TestHostileStrangerMarksOwnSegmentDestroyed: a stranger's keyed segment
// exists before the run, attached; during the run the stranger marks it
// for destruction, which clears its key (/proc/sysvipc then shows it as a
// new identity, key 0). ipcguard keeps it and does not call IPC_RMID on it.
func TestHostileStrangerMarksOwnSegmentDestroyed(t *testing.T) {
	inGuardModes(t, func(t *testing.T, e *env, u users) {
		e.writeShared("dest.pl", destHolderPL)
		for i, s := range strangersOf(u) {
			e.sc = fmt.Sprintf("a %s stranger's segment marked for destruction during the run (ipcguard %s)", s.name, u.mode)
			d := e.freshDir("dest-" + s.name)
			code, out := e.script(u, scriptOpts{}, d, `
bgas $SU perl "$D/../dest.pl" $KEY "$D/go" "$D/marked" "$D/stop" "$D/ids" &
SP=$!
waitf "$D/ids"
asuser $GU "$G" --quiet --report "$D/report.json" --state-dir "$D/state" -- sh -c ': > "$D/go"; while [ ! -e "$D/marked" ]; do sleep 0.01; done; exit 1'
echo $? > "$D/guard.status"
: > "$D/stop"; wait $SP || exit 9
`, fmt.Sprintf("SU=%d", s.uid), fmt.Sprintf("KEY=%#x", 0x4a171000+i))
			if code != 0 {
				e.fatalf("script: exit %d\n%s", code, out)
			}
			e.guardStatus(filepath.Join(d, "guard.status"), 1)
			rep, ids := e.readReport(filepath.Join(d, "report.json")), e.readIDs(filepath.Join(d, "ids"))
			e.wantCandidates(rep, ids)
			for _, id := range ids {
				typ, n := splitID(id)
				if o, ok := rep.object(typ, n); ok && o.Action != "kept" {
					e.errorf("%s: action %q (reason %q), want kept: the stranger's own segment, marked by the stranger", id, o.Action, o.Reason)
				}
			}
		}
	})
}

// TestHostileRunsOfTwoUsers: two overlapping runs of different users (root
// and nobody) in one IPC namespace. The other run's command makes a set
// with ipcmk and never uses it, while the failing run ends. Window evidence
// gives a never-used object only to a run of its creator's uid: the set is
// kept, both ways round.
func TestHostileRunsOfTwoUsers(t *testing.T) {
	if !nstest.Isolate(t, nstest.Root) {
		return
	}
	requireRealRoot(t)
	e := newEnv(t, "two runs of different users")
	e.dir = sharedDir(t)
	for _, p := range []struct{ name, fail, other string }{
		{"root fails", "0", fmt.Sprint(nstest.NobodyUID)},
		{"nobody fails", fmt.Sprint(nstest.NobodyUID), "0"},
	} {
		e.sc = "two runs of different users: " + p.name
		d := e.freshDir(strings.ReplaceAll(p.name, " ", "-"))
		code, out := e.script(users{}, scriptOpts{}, d, `
asuser $OU "$G" --quiet --state-dir "$D/ostate" -- sh -c ': > "$D/o.started"; while [ ! -e "$D/o.go" ]; do sleep 0.01; done; ipcmk -S 1 > "$D/o.tmp"; mv "$D/o.tmp" "$D/o.out"; while [ ! -e "$D/o.end" ]; do sleep 0.01; done' &
OP=$!
waitf "$D/o.started"
asuser $FU "$G" --quiet --report "$D/report.json" --state-dir "$D/fstate" -- sh -c ': > "$D/f.started"; while [ ! -e "$D/f.go" ]; do sleep 0.01; done; exit 1' &
FP=$!
waitf "$D/f.started"; : > "$D/o.go"; waitf "$D/o.out"; : > "$D/f.go"
wait $FP; echo $? > "$D/f.status"
: > "$D/o.end"; wait $OP; echo $? > "$D/o.status"
`, "FU="+p.fail, "OU="+p.other)
		if code != 0 {
			e.fatalf("script: exit %d\n%s", code, out)
		}
		e.guardStatus(filepath.Join(d, "f.status"), 1)
		e.guardStatus(filepath.Join(d, "o.status"), 0)
		rep, ids := e.readReport(filepath.Join(d, "report.json")), e.ipcmkIDs(filepath.Join(d, "o.out"))
		e.wantCandidates(rep, ids)
		e.strangerKept("the other user's run's never-used set", rep, ids)
		e.removeObjects(e.objects())
	}
}

// cloneParentPL: the command clones a child with CLONE_PARENT (its parent
// is then the command's parent, ipcguard), which makes an IPC_PRIVATE
// segment and a set (semop) and exits; the command writes the ids to
// $ARGV[0] and fails.
const cloneParentPL = `use strict; use warnings;
use IPC::SysV qw(IPC_PRIVATE IPC_CREAT);
my ($out) = @ARGV;
pipe(my $r, my $w) or die;
my $pid = syscall(56, 0x00008000 | 17, 0, 0, 0, 0); # clone(CLONE_PARENT|SIGCHLD)
die "clone: $!" if $pid < 0;
if ($pid == 0) {
	close $r;
	my $m = shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0600) // die "shmget: $!";
	my $s = semget(IPC_PRIVATE, 1, IPC_CREAT | 0600) // die "semget: $!";
	semop($s, pack("s!3", 0, 1, 0)) or die "semop: $!";
	print $w "shm $m\nsem $s\n"; close $w;
	select(undef, undef, undef, 0.1); # long enough for polling to see it
	exit 0;
}
close $w;
my @ids = <$r>; close $r;
@ids == 2 or die "the clone made no objects";
open(my $f, '>', $out) or die; print $f @ids; close $f;
select(undef, undef, undef, 0.3);
exit 1;
`

// TestHostileCloneParentChild: a child the command clones with
// CLONE_PARENT (reported with ipcguard as its parent) makes objects and
// exits; the command fails. With the perf and poll trackers the child is a
// member: its objects are removed.
func TestHostileCloneParentChild(t *testing.T) {
	inBothModes(t, func(t *testing.T, mode nstest.Mode) {
		for _, tr := range []string{"perf", "poll"} {
			e := newEnv(t, fmt.Sprintf("CLONE_PARENT child (%s, --tracker %s)", mode, tr))
			pl, ids, rep := e.path("clone.pl"), e.path("ids"), e.path("report.json")
			if err := os.WriteFile(pl, []byte(cloneParentPL), 0o644); err != nil {
				e.fatalf("%v", err)
			}
			r := e.run("--tracker", tr, "--report", rep, "--", "perl", pl, ids)
			if r.Code == 125 && strings.Contains(r.Stderr, "tracker") {
				nstest.Require(t, "tracker %s: %s", tr, r.Stderr)
			}
			e.wantExit(r, 1)
			made := e.readIDs(ids)
			wantCount(e, "the clone's objects", made, 2)
			e.wantGone("objects of a CLONE_PARENT child of the command", made)
		}
	})
}

// outsiderServerPL: a server outside the tree. Creates, mode 0666, an
// IPC_PRIVATE set (one semaphore, set to 1 with SETVAL: a free slot) and
// an IPC_PRIVATE queue (where it expects requests), writes "TYPE ID" lines
// to $ARGV[0] and stays alive, holding both, until $ARGV[1] exists.
const outsiderServerPL = `use strict; use warnings;
use IPC::SysV qw(IPC_PRIVATE IPC_CREAT SETVAL);
my ($out, $stop) = @ARGV;
my $s = semget(IPC_PRIVATE, 1, IPC_CREAT | 0666) // die "semget: $!";
semctl($s, 0, SETVAL, 1) or die "SETVAL: $!";
my $q = msgget(IPC_PRIVATE, IPC_CREAT | 0666) // die "msgget: $!";
open(my $f, '>', "$out.tmp") or die; print $f "sem $s\nmsg $q\n"; close $f; rename("$out.tmp", $out) or die;
select(undef, undef, undef, 0.01) until -e $stop;
`

// outsiderClientPL: the tree's client of that server: takes the slot
// (semop -1) and sends a request to the queue named in $ARGV[0].
const outsiderClientPL = `use strict; use warnings;
my ($ids) = @ARGV;
open(my $f, '<', $ids) or die "$ids: $!";
while (<$f>) {
	my ($t, $id) = split;
	if ($t eq 'sem') { semop($id, pack("s!3", 0, -1, 0)) or die "semop: $!"; }
	if ($t eq 'msg') { msgsnd($id, pack("l! a*", 1, "request"), 0) or die "msgsnd: $!"; }
}
`

// outsiderScript: ipcguard runs a client that waits for the server's ids;
// the server (uid $SU) starts during the run and lives on after it.
const outsiderScript = `
asuser $GU "$G" --quiet --report "$D/report.json" --state-dir "$D/state" $FLAGS -- sh -c ': > "$D/started"; while [ ! -e "$D/srv" ]; do sleep 0.01; done; perl "$D/../client.pl" "$D/srv" || exit 9; exit 1' &
GP=$!
waitf "$D/started"
bgas $SU perl "$D/../server.pl" "$D/srv" "$D/stop" &
SP=$!
wait $GP; echo $? > "$D/guard.status"
: > "$D/stop"; wait $SP || exit 9
`

// outsiderObjectsUsedByTree runs outsiderScript once per stranger with
// flags and checks that the server's set and queue are kept.
func outsiderObjectsUsedByTree(e *env, u users, flags string) {
	e.t.Helper()
	e.writeShared("server.pl", outsiderServerPL)
	e.writeShared("client.pl", outsiderClientPL)
	for _, s := range strangersOf(u) {
		fl := flags
		if s.uid == u.guard && fl == "" {
			// A server of ipcguard's own uid that hands a private set or
			// queue to the tree leaves no trace but the tree's use: that
			// is the documented limit of use as evidence (docs/evidence.md,
			// "What remains"); --track-creation closes it as root
			// (TestHostileOutsiderObjectsUsedByTreeTracked).
			continue
		}
		e.sc = fmt.Sprintf("a live %s server's private set and queue, used by the tree (ipcguard %s %s)", s.name, u.mode, fl)
		d := e.freshDir("srv-" + s.name + strings.TrimLeft(fl, "-"))
		if code, out := e.script(u, scriptOpts{}, d, outsiderScript, fmt.Sprintf("SU=%d", s.uid), "FLAGS="+fl); code != 0 {
			e.fatalf("script: exit %d\n%s", code, out)
		}
		e.guardStatus(filepath.Join(d, "guard.status"), 1)
		rep, ids := e.readReport(filepath.Join(d, "report.json")), e.readIDs(filepath.Join(d, "srv"))
		e.wantCandidates(rep, ids)
		e.strangerKept("a live server's IPC_PRIVATE set and queue that the tree used", rep, ids)
		e.removeObjects(e.objects())
	}
}

// TestHostileOutsiderObjectsUsedByTreeTracked: as root with
// --track-creation, a live server's IPC_PRIVATE set and queue, made during
// the run and handed to the tree, which uses them last (semop, msgsnd),
// are kept: no get of the tree returned their ids.
func TestHostileOutsiderObjectsUsedByTreeTracked(t *testing.T) {
	inRootGuard(t, func(t *testing.T, e *env, u users) {
		outsiderObjectsUsedByTree(e, u, "--track-creation")
	})
}

// ipcSetScript: ipcguard runs a command that waits; a stranger ($SU) makes
// an IPC_PRIVATE segment (never attached) and exits, leaving pid P free;
// the command then forks a member that gets P (ns_last_pid) and stays; 3 s
// later a process of the stranger's uid rewrites the segment's permissions
// unchanged (shmctl IPC_STAT, then IPC_SET with the same owner and mode),
// which moves its ctime; the member ends and the command fails.
const ipcSetScript = `
mkfifo "$D/go1" "$D/ack" "$D/go2"; chmod 666 "$D/go1" "$D/ack" "$D/go2"
asuser $GU "$G" --quiet --report "$D/report.json" --state-dir "$D/state" $FLAGS -- sh -c '
	: > "$D/started"
	read x < "$D/go1"
	sh -c "echo \$\$ > \"\$D/ack\"; read y < \"\$D/go2\""
	exit 1' &
GP=$!
waitf "$D/started"
asuser $SU perl "$D/../segmaker.pl" "$D/s" || exit 9
P=$(cat "$D/s.pid"); ID=$(cut -d" " -f2 "$D/s.ids")
# Let the pid watch read the cursor between the stranger's pid and the
# member's: a cursor moved back and forth within one reading is beyond
# what it can see (a documented limit), and not what this test is about.
sleep 0.05
lastpid $((P - 1)); echo go > "$D/go1"; read M < "$D/ack"
if [ "$M" != "$P" ]; then echo > "$D/go2"; wait $GP; exit 3; fi
sleep 3
asuser $SU perl -e 'my $b = ""; shmctl($ARGV[0], 2, $b) or die "IPC_STAT: $!"; shmctl($ARGV[0], 1, $b) or die "IPC_SET: $!"' "$ID" || exit 9
echo > "$D/go2"
wait $GP; echo $? > "$D/guard.status"
`

// TestHostileIPCSetMovesCreationWindowTracked: a stranger makes a segment
// during the run and exits; a tree member later gets the stranger's pid
// number; then the stranger's side rewrites the segment's permissions
// unchanged, which moves its ctime into the member's life. As root with
// --track-creation the segment is kept: no get of the tree returned its id.
func TestHostileIPCSetMovesCreationWindowTracked(t *testing.T) {
	inRootGuard(t, func(t *testing.T, e *env, u users) {
		e.writeShared("segmaker.pl", segmakerPL)
		e.sc = "IPC_SET moves ctime (ipcguard root --track-creation)"
		d := e.scriptTries("ipcset-tracked", u, scriptOpts{pidNS: true}, scriptNoReuse, ipcSetScript, fmt.Sprintf("SU=%d", u.other), "FLAGS=--track-creation")
		e.guardStatus(filepath.Join(d, "guard.status"), 1)
		rep, ids := e.readReport(filepath.Join(d, "report.json")), e.readIDs(filepath.Join(d, "s.ids"))
		e.wantCandidates(rep, ids)
		e.strangerKept("a stranger's segment whose ctime an unchanged IPC_SET moved into a member's life", rep, ids)
	})
}

// ---- attacks that succeed today: each reproduces a bug -------------------

// TestHostileOutsiderObjectsUsedByTree was a FALSE REMOVAL (fixed):
// a server outside the tree (another user, and ipcguard's own) creates
// during the run an IPC_PRIVATE set (SETVAL 1: a free slot) and an
// IPC_PRIVATE queue for requests, hands their ids to the tree and lives
// on, holding both. The tree takes the slot (semop) and sends a request
// (msgsnd), then fails. ipcguard removes the live server's set and queue
// "on pid evidence": for a set or queue without a key, use by the tree is
// taken as creation. (As root with --track-creation they are kept:
// TestHostileOutsiderObjectsUsedByTreeTracked.)
func TestHostileOutsiderObjectsUsedByTree(t *testing.T) {
	inGuardModes(t, func(t *testing.T, e *env, u users) {
		outsiderObjectsUsedByTree(e, u, "")
	})
}

// TestHostileIPCSetMovesCreationWindow was a FALSE REMOVAL (fixed): a
// stranger (another user, and ipcguard's own) makes a segment
// during the run and exits; a tree member later gets the stranger's pid
// number; seconds later the stranger's side rewrites the segment's
// permissions unchanged (IPC_SET with the same owner), which moves its
// ctime into the member's life. ipcguard takes ctime for the time of
// creation (owner and creator are equal), finds the member holding the
// number then, and removes the stranger's segment as the tree's.
func TestHostileIPCSetMovesCreationWindow(t *testing.T) {
	inGuardModes(t, func(t *testing.T, e *env, u users) {
		e.writeShared("segmaker.pl", segmakerPL)
		for _, s := range strangersOf(u) {
			e.sc = fmt.Sprintf("IPC_SET by a %s stranger moves ctime (ipcguard %s)", s.name, u.mode)
			d := e.scriptTries(fmt.Sprintf("ipcset-%s", s.name), u, scriptOpts{pidNS: true}, scriptNoReuse, ipcSetScript, fmt.Sprintf("SU=%d", s.uid), "FLAGS=")
			e.guardStatus(filepath.Join(d, "guard.status"), 1)
			rep, ids := e.readReport(filepath.Join(d, "report.json")), e.readIDs(filepath.Join(d, "s.ids"))
			e.wantCandidates(rep, ids)
			e.strangerKept("a stranger's segment whose ctime an unchanged IPC_SET moved into a member's life", rep, ids)
			e.removeObjects(e.objects())
		}
	})
}

// threadReceiverPL: the tree's program. Makes an IPC_PRIVATE queue and an
// IPC_PRIVATE set (never operated on), writes "TYPE ID" lines to $ARGV[0];
// a worker thread blocks in msgrcv on the queue, the main thread sends,
// the kernel hands the message straight to the waiting thread; then it
// fails.
const threadReceiverPL = `use strict; use warnings; use threads;
use IPC::SysV qw(IPC_PRIVATE IPC_CREAT);
my ($out) = @ARGV;
my $q = msgget(IPC_PRIVATE, IPC_CREAT | 0600) // die "msgget: $!";
my $s = semget(IPC_PRIVATE, 1, IPC_CREAT | 0600) // die "semget: $!";
open(my $f, '>', $out) or die; print $f "msg $q\nsem $s\n"; close $f;
my $t = threads->create(sub { my $b; msgrcv($q, $b, 64, 0, 0) or die "msgrcv: $!"; 1 });
my $i = 0;
# Send once the worker waits in msgrcv (its thread sleeps).
until (grep { -e "/proc/$$/task/$_/stat" && $_ != $$ && do { open(my $st, '<', "/proc/$$/task/$_/wchan"); my $w = <$st> // ''; $w =~ /msg/ } } map { s{.*/}{}r } glob("/proc/$$/task/*")) {
	select(undef, undef, undef, 0.01); die "the worker never waited" if ++$i > 3000;
}
msgsnd($q, pack("l! a*", 1, "job"), 0) or die "msgsnd: $!";
$t->join;
exit 1;
`

// TestHostileThreadReceiverLeak was a LEAK (fixed): the tree makes
// an IPC_PRIVATE queue and a set; a worker thread of the same process
// waits in msgrcv; the main thread sends. The kernel records the
// receiving THREAD's id as the queue's lrpid (ipc/msg.c pipelined_send:
// task_pid, not task_tgid), which no tracker knows as a member: ipcguard
// keeps the queue ("last msgrcv is pid N, outside the tree") and, taking
// the window as contended, the tree's never-used set too.
func TestHostileThreadReceiverLeak(t *testing.T) {
	inBothModes(t, func(t *testing.T, mode nstest.Mode) {
		e := newEnv(t, "a worker thread of the tree receives (leak, "+mode.String()+")")
		pl, ids, rep := e.path("thread.pl"), e.path("ids"), e.path("report.json")
		if err := os.WriteFile(pl, []byte(threadReceiverPL), 0o644); err != nil {
			e.fatalf("%v", err)
		}
		e.wantExit(e.run("--report", rep, "--", "perl", pl, ids), 1)
		made := e.readIDs(ids)
		wantCount(e, "the tree's objects", made, 2)
		r := e.readReport(rep)
		for _, id := range made {
			typ, n := splitID(id)
			if o, ok := r.object(typ, n); ok && o.Action != "removed" {
				e.errorf("LEAK: %s made by the tree: action %q, reason %q", id, o.Action, o.Reason)
			}
		}
		e.wantGone("the tree's queue (received by its own thread) and set", made)
	})
}

// TestHostileCloneParentProcConnectorLeak was a LEAK (fixed): with
// the proc connector, a child the command clones with CLONE_PARENT is
// reported with ipcguard as its parent and not taken as a member: its
// objects are kept ("creator is pid N, outside the tree"), though the only
// processes ipcguard's children can be are the command and such clones.
func TestHostileCloneParentProcConnectorLeak(t *testing.T) {
	inModes(t, []nstest.Mode{nstest.Root}, func(t *testing.T, mode nstest.Mode) {
		e := newEnv(t, "CLONE_PARENT child (--tracker proc-connector)")
		pl, ids, rep := e.path("clone.pl"), e.path("ids"), e.path("report.json")
		if err := os.WriteFile(pl, []byte(cloneParentPL), 0o644); err != nil {
			e.fatalf("%v", err)
		}
		r := e.run("--tracker", "proc-connector", "--report", rep, "--", "perl", pl, ids)
		if r.Code == 125 && strings.Contains(r.Stderr, "tracker") {
			nstest.Require(t, "tracker proc-connector: %s", r.Stderr)
		}
		e.wantExit(r, 1)
		made := e.readIDs(ids)
		wantCount(e, "the clone's objects", made, 2)
		e.wantGone("objects of a CLONE_PARENT child of the command", made)
	})
}

// idCyclePL: allocates and frees sets of $ARGV[1] semaphores with
// IPC_PRIVATE until the kernel hands out id $ARGV[0] again (it cycles the
// index over at least 64 slots and bumps a 16-bit sequence at each wrap:
// 64 * 65536 allocations at most), keeps that one (mode 0600, never
// operated), writes "sem ID" to $ARGV[2] and exits.
const idCyclePL = `use strict; use warnings;
use IPC::SysV qw(IPC_PRIVATE IPC_CREAT IPC_RMID);
my ($want, $nsems, $out) = @ARGV;
my $n = 0;
while (1) {
	my $id = semget(IPC_PRIVATE, $nsems, IPC_CREAT | 0600) // die "semget: $!";
	if ($id == $want) {
		open(my $f, '>', "$out.tmp") or die; print $f "sem $id\n"; close $f; rename("$out.tmp", $out) or die;
		exit 0;
	}
	semctl($id, 0, IPC_RMID, 0) or die "IPC_RMID: $!";
	die "id $want not handed out again in $n allocations" if ++$n > 5_000_000;
}
`

// treeSetPL: the tree's program: makes an IPC_PRIVATE set, operates on it,
// writes "sem ID" to $ARGV[0] and removes it again.
const treeSetPL = `use strict; use warnings;
use IPC::SysV qw(IPC_PRIVATE IPC_CREAT IPC_RMID);
my ($out) = @ARGV;
my $s = semget(IPC_PRIVATE, 1, IPC_CREAT | 0600) // die "semget: $!";
semop($s, pack("s!3", 0, 1, 0)) or die "semop: $!";
open(my $f, '>', "$out.tmp") or die; print $f "sem $s\n"; close $f; rename("$out.tmp", $out) or die;
semctl($s, 0, IPC_RMID, 0) or die "IPC_RMID: $!";
`

// idReuseScript: the tree makes an IPC_PRIVATE set (seen by
// --track-creation), uses it and removes it; a stranger then cycles set
// allocations until the kernel hands out the same id, keeps that set and
// exits; the command fails.
const idReuseScript = `
asuser $GU "$G" --quiet --report "$D/report.json" --state-dir "$D/state" --track-creation -- sh -c '
	perl "$D/../treeset.pl" "$D/tree" || exit 9
	while [ ! -e "$D/go" ]; do sleep 0.01; done
	exit 1' &
GP=$!
waitf "$D/tree"
asuser $OTHER perl "$D/../idcycle.pl" "$(cut -d" " -f2 "$D/tree")" 1 "$D/ids" || exit 9
: > "$D/go"
wait $GP; echo $? > "$D/guard.status"
`

// TestHostileSetIDReusedAfterTreeRemoval was a FALSE REMOVAL (fixed): as
// root with --track-creation, the tree makes an IPC_PRIVATE
// set and removes it; an unprivileged stranger allocates and frees sets
// until the kernel hands out the same id (about 4 million allocations, a
// few seconds), and keeps that set. ipcguard takes the tree's creation of
// the id for the creation of the stranger's set and removes it.
func TestHostileSetIDReusedAfterTreeRemoval(t *testing.T) {
	slow(t, "cycling set ids")
	inRootGuard(t, func(t *testing.T, e *env, u users) {
		e.sc = "a stranger's set at the id of the tree's removed set (ipcguard root --track-creation)"
		e.writeShared("treeset.pl", treeSetPL)
		e.writeShared("idcycle.pl", idCyclePL)
		d := e.freshDir("idreuse")
		if code, out := e.script(u, scriptOpts{}, d, idReuseScript); code != 0 {
			e.fatalf("script: exit %d\n%s", code, out)
		}
		e.guardStatus(filepath.Join(d, "guard.status"), 1)
		rep, ids := e.readReport(filepath.Join(d, "report.json")), e.readIDs(filepath.Join(d, "ids"))
		e.wantCandidates(rep, ids)
		e.strangerKept("a stranger's set that got the id of the tree's removed set", rep, ids)
	})
}

// TestHostileCraftedJournalOldObjects was a FALSE REMOVAL (fixed):
// `ipcguard sweep` acts on a journal crafted by hand in the user's own
// state directory (valid checksums, this boot's and namespaces' N record)
// that lies: its snapshot before is empty, its run started after four
// segments were made (made and then left by short-lived processes: two of
// ipcguard's user, two of another user — in the unprivileged mode given to
// ipcguard's user by IPC_SET, as an owner may), it claims a get of the
// tree returned two of them (G records) and that the creators of the
// other two were members, with a pid watch that saw nothing handed out (J,
// L, P and W records). A journal is trusted as far as its user, but no
// journal may make a sweep remove objects older than its run, nor another
// user's: all four are kept. Today the sweep removes them (in the
// unprivileged mode: its own two, and the two it was given).
func TestHostileCraftedJournalOldObjects(t *testing.T) {
	inGuardModes(t, func(t *testing.T, e *env, u users) {
		e.sc = "a crafted journal names objects older than its run (ipcguard " + u.mode + ")"
		e.writeShared("segmaker.pl", segmakerPL)
		d := e.freshDir("crafted")
		seg := func(name string, uid int) (string, int) {
			if b, err := asUser(uid, "perl", filepath.Join(e.dir, "segmaker.pl"), filepath.Join(d, name)).CombinedOutput(); err != nil {
				e.fatalf("making %s: %v\n%s", name, err, b)
			}
			return e.readIDs(filepath.Join(d, name+".ids"))[0], e.fileInt(filepath.Join(d, name+".pid"))
		}
		ownG, _ := seg("own-g", u.guard)
		ownJ, ownPid := seg("own-j", u.guard)
		otherG, _ := seg("other-g", u.other)
		otherJ, otherPid := seg("other-j", u.other)
		if u.guard != 0 {
			for _, id := range []string{otherG, otherJ} {
				_, n := splitID(id)
				var ds unix.SysvShmDesc
				if _, err := unix.SysvShmCtl(n, unix.IPC_STAT, &ds); err != nil {
					e.fatalf("IPC_STAT %s: %v", id, err)
				}
				ds.Perm.Uid = uint32(u.guard)
				if _, err := unix.SysvShmCtl(n, unix.IPC_SET, &ds); err != nil {
					e.fatalf("IPC_SET %s: %v", id, err)
				}
			}
		}
		dead := exec.Command("true")
		if err := dead.Run(); err != nil {
			e.fatalf("%v", err)
		}
		// Every stamp of the four segments is now more than 3 s older than
		// the run the journal claims.
		time.Sleep(3100 * time.Millisecond)
		started := time.Now()

		base := filepath.Join(d, "jstate")
		dir, err := journal.StateDir(base)
		if err != nil {
			e.fatalf("%v", err)
		}
		h := journal.Header{SupervisorPid: dead.Process.Pid, SupervisorStart: 1, UID: uint32(u.guard), GID: uint32(u.guard),
			Started: started, Types: ipcdiff.AllTypes, Argv: []string{"crafted"}, OnPolicy: "failure"}
		j, err := journal.Begin(dir, h, &ipcdiff.Snapshot{Taken: started, Types: ipcdiff.AllTypes})
		if err != nil {
			e.fatalf("%v", err)
		}
		var ns journal.Namespaces
		ns.Boot, _ = procfs.BootID("/proc")
		ns.IPC, _ = procfs.NamespaceID("/proc", "ipc")
		ns.Pid, _ = procfs.NamespaceID("/proc", "pid")
		j.Namespaces(ns)
		j.Command(dead.Process.Pid, 1, started)
		for _, p := range []int{ownPid, otherPid} {
			j.Join(p, started.Add(-time.Millisecond))
			j.Leave(p, started.Add(time.Millisecond))
		}
		j.Pre([]int{1})
		cur, err := supervisor.ReadCursor("/proc")
		if err != nil {
			e.fatalf("%v", err)
		}
		j.Watch(journal.Crossing{From: started.Add(100 * time.Millisecond), To: started.Add(200 * time.Millisecond), Lo: cur.Cursor, Hi: cur.Cursor},
			journal.Cursor{Cursor: cur.Cursor, Threads: cur.Threads, ForksLo: cur.ForksLo, ForksHi: cur.ForksHi, PidMax: cur.PidMax})
		for _, id := range []string{ownG, otherG} {
			_, n := splitID(id)
			j.Got(ipcdiff.TypeShm, n, true, started.Add(150*time.Millisecond))
		}
		if err := j.Err(); err != nil {
			e.fatalf("writing the crafted journal: %v", err)
		}
		if err := filepath.Walk(base, func(p string, _ os.FileInfo, err error) error {
			if err != nil {
				return err
			}
			return os.Lchown(p, u.guard, u.guard)
		}); err != nil {
			e.fatalf("%v", err)
		}

		rep := filepath.Join(d, "sweep.json")
		sw := asUser(u.guard, guardBin(), "sweep", "--state-dir", base, "--report", rep)
		sw.Env = e.baseEnv()
		out, err := sw.CombinedOutput()
		if ee, ok := err.(*exec.ExitError); err != nil && (!ok || ee.ExitCode() != 1) {
			e.fatalf("sweep: %v\n%s", err, out)
		}
		swept := false
		ids := []string{ownG, ownJ, otherG, otherJ}
		for _, s := range readSweep(e, rep) {
			if s.Run == nil {
				continue
			}
			swept = swept || s.Status == "swept"
			for _, o := range s.Run.Objects {
				if id := fmt.Sprintf("%s %d", o.Type, o.ID); contains(ids, id) && o.Action != "kept" {
					e.errorf("sweep report: %s (made before the journal's run): action %q, want kept", id, o.Action)
				}
			}
		}
		if !swept {
			e.fatalf("the sweep did not act on the crafted journal: the input did not happen\n%s", out)
		}
		e.strangerKept("segments of ipcguard's user made before the crafted journal's run", nil, []string{ownG, ownJ})
		e.strangerKept("another user's segments made before the crafted journal's run", nil, []string{otherG, otherJ})
	})
}
