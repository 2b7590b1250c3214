package main_test

// Keyed client/server programs (README, "Keyed sets and queues: which option"): a server in the tree makes a
// keyed set, queue and segment with ftok(3) keys and IPC_CREAT (no
// IPC_EXCL, as such programs do), clients in the tree use them, and the
// command fails. Without proof of creation the set and the queue are kept
// (anyone may get a keyed object), and the segment with them (key
// family); --own-keys and the seccomp creation
// tracker (--track-creation-seccomp) each give the proof. A stranger of ipcguard's own user that made
// a keyed set during the run, which the tree then used last, is kept in
// every mode.

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ipcguard/ipcguard/internal/journal"
	"github.com/ipcguard/ipcguard/internal/nstest"
)

// ftokServerPL: the server. Makes the set, queue and segment of key
// ftok($ARGV[0], 1), mode 0600, without IPC_EXCL, posts the set, sends a
// message and writes to the segment; writes "TYPE ID" lines to $ARGV[1]
// and the key (0x hex) to $ARGV[2].
const ftokServerPL = `use strict; use warnings;
use IPC::SysV qw(ftok IPC_CREAT);
my ($path, $ids, $keyf) = @ARGV;
my $key = ftok($path, 1) // die "ftok: $!";
my $shm = shmget($key, 4096, IPC_CREAT | 0600) // die "shmget: $!";
shmwrite($shm, "s", 0, 1) or die "shmwrite: $!";
my $sem = semget($key, 1, IPC_CREAT | 0600) // die "semget: $!";
semop($sem, pack("s!3", 0, 1, 0)) or die "semop: $!";
my $msg = msgget($key, IPC_CREAT | 0600) // die "msgget: $!";
msgsnd($msg, pack("l! a*", 1, "hello"), 0) or die "msgsnd: $!";
sub put { my ($p, $t) = @_; open(my $f, '>', "$p.tmp") or die "$p: $!"; print $f $t; close $f or die; rename("$p.tmp", $p) or die; }
put($ids, "shm $shm\nsem $sem\nmsg $msg\n");
put($keyf, sprintf("0x%08x\n", $key));
`

// ftokClientPL: a client of key ftok($ARGV[0], $ARGV[1]). Opens the set
// (takes and gives back the semaphore), and for project 1 also the queue
// (takes the message if there is one, answers) and the segment (reads).
const ftokClientPL = `use strict; use warnings;
use IPC::SysV qw(ftok IPC_NOWAIT);
my ($path, $proj) = @ARGV;
my $key = ftok($path, $proj + 0) // die "ftok: $!";
my $sem = semget($key, 0, 0) // die "semget: $!";
semop($sem, pack("s!3", 0, -1, 0)) or die "semop: $!";
semop($sem, pack("s!3", 0, 1, 0)) or die "semop: $!";
exit 0 if $proj != 1;
my $msg = msgget($key, 0) // die "msgget: $!";
my $buf; msgrcv($msg, $buf, 64, 1, IPC_NOWAIT);
msgsnd($msg, pack("l! a*", 2, "thanks"), 0) or die "msgsnd: $!";
my $shm = shmget($key, 0, 0) // die "shmget: $!";
my $v; shmread($shm, $v, 0, 1) or die "shmread: $!";
`

// ftokStrangerPL: a stranger outside the tree. Makes the set of key
// ftok($ARGV[0], 2), posts it, writes "sem ID" to $ARGV[1] and exits.
const ftokStrangerPL = `use strict; use warnings;
use IPC::SysV qw(ftok IPC_CREAT);
my ($path, $ids) = @ARGV;
my $key = ftok($path, 2) // die "ftok: $!";
my $sem = semget($key, 1, IPC_CREAT | 0600) // die "semget: $!";
semop($sem, pack("s!3", 0, 1, 0)) or die "semop: $!";
open(my $f, '>', "$ids.tmp") or die; print $f "sem $sem\n"; close $f or die; rename("$ids.tmp", $ids) or die;
`

// ftok is ftok(3) as glibc computes it: the low 16 bits of the inode, the
// low 8 bits of the device and of proj.
func ftok(t *testing.T, path string, proj int) string {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("0x%08x", uint32(st.Ino&0xffff)|uint32(st.Dev&0xff)<<16|uint32(proj&0xff)<<24)
}

// keyedServerRun is one run of the keyed client/server pair under flags
// (%s is replaced by the server's key), with a stranger's keyed set made
// while it runs.
type keyedServerRun struct {
	flags []string
	env   []string // NAME=VALUE, %s replaced as in flags
	// proven: the server's set and queue are removed; otherwise kept
	// because their creator is not proven.
	proven bool
	// seccomp: the creation tracker made them (creation seen).
	seccomp bool
}

func (r keyedServerRun) check(t *testing.T, mode nstest.Mode, i int) {
	e := newEnv(t, fmt.Sprintf("keyed client/server (%s %q %q)", mode, strings.Join(r.flags, " "), strings.Join(r.env, " ")))
	for name, text := range map[string]string{"server.pl": ftokServerPL, "client.pl": ftokClientPL, "stranger.pl": ftokStrangerPL} {
		if err := os.WriteFile(e.path(name), []byte(text), 0o644); err != nil {
			e.fatalf("%v", err)
		}
	}
	// One ftok file per run: the keys differ from run to run.
	keyFile := e.path(fmt.Sprintf("service-%d", i))
	if err := os.WriteFile(keyFile, nil, 0o644); err != nil {
		e.fatalf("%v", err)
	}
	key := ftok(t, keyFile, 1)
	var flags []string
	for _, f := range r.flags {
		flags = append(flags, strings.ReplaceAll(f, "%s", key))
	}
	ids, keyOut, started, strangerDone, strangerIDs, rep :=
		e.path("ids"), e.path("key"), e.path("started"), e.path("stranger-done"), e.path("stranger.ids"), e.path("report.json")
	script := shPrelude() + `perl "$0/server.pl" "$1" "$2" "$3" && : > "$0/started" && waitfile "$0/stranger-done" &&
		perl "$0/client.pl" "$1" 1 && perl "$0/client.pl" "$1" 1 && perl "$0/client.pl" "$1" 2 && exit 1`
	args := append(append([]string{"--report", rep}, flags...), "--", "sh", "-c", script, e.dir, keyFile, ids, keyOut)
	var env []string
	for _, kv := range r.env {
		env = append(env, strings.ReplaceAll(kv, "%s", key))
	}
	g := e.guard(args...).withEnv(env...).start()
	e.waitFile(started)
	stranger := exec.Command("perl", e.path("stranger.pl"), keyFile, strangerIDs)
	if out, err := stranger.CombinedOutput(); err != nil {
		e.fatalf("the stranger: %v\n%s", err, out)
	}
	if err := os.WriteFile(strangerDone, nil, 0o644); err != nil {
		e.fatalf("%v", err)
	}
	res := g.wait()
	e.wantExit(res, 1)
	if got := strings.TrimSpace(e.waitFile(keyOut)); got != key {
		e.fatalf("the server's key is %s, the test computed %s", got, key)
	}
	report := e.readReport(rep)
	if r.seccomp && (!strings.HasSuffix(report.Tracker.Name, "+seccomp") || !strings.Contains(report.Tracker.Note, "2 of 2 creating gets made for the tree")) {
		e.errorf("tracker %q note %q: want the seccomp watch to have made the server's set and queue", report.Tracker.Name, report.Tracker.Note)
	}
	e.strangerKept("a keyed set a stranger made during the run, used by the tree last", report, e.readIDs(strangerIDs))
	now := setOf(e.objects())
	for _, id := range e.readIDs(ids) {
		typ, n := splitID(id)
		o, ok := report.object(typ, n)
		if !ok {
			e.errorf("%s is not in the report", id)
			continue
		}
		_, present := now[id]
		if r.seccomp && typ != "shm" && o.Strength != "creation seen" {
			e.errorf("the server's %s under the seccomp tracker: strength %q evidence %q, want creation seen", id, o.Strength, o.Evidence)
		}
		switch {
		case r.proven:
			if present || o.Action != "removed" {
				e.errorf("the server's %s: action %q reason %q, still present %v; want it removed", id, o.Action, o.Reason, present)
			}
		case typ == "shm":
			// Its creator is proven (cpid), but it stays with its key's family.
			if !present || o.Action != "kept" || !strings.Contains(o.Reason, "same key") {
				e.errorf("the server's %s without proof of creation of its set: action %q reason %q; want it kept with its key family", id, o.Action, o.Reason)
			}
		default:
			if !present || o.Action != "kept" || !strings.Contains(o.Reason, "creator is not proven") {
				e.errorf("the server's %s without proof of creation: action %q reason %q; want it kept as keyed", id, o.Action, o.Reason)
			}
		}
	}
	e.removeObjects(e.objects())
}

// TestKeyedClientServer: see the top of the file. Each mode runs the pair
// without proof of creation (the keyed set and queue leak), with
// --own-keys naming the server's key, and with the same declaration in
// IPCGUARD_OWN_KEYS.
func TestKeyedClientServer(t *testing.T) {
	inBothModes(t, func(t *testing.T, mode nstest.Mode) {
		runs := []keyedServerRun{
			{flags: nil},
			{flags: []string{"--own-keys", "%s"}, proven: true},
			{flags: []string{"--own-keys", "0x7fff0001,%s"}, proven: true},
			{env: []string{"IPCGUARD_OWN_KEYS=%s"}, proven: true},
			{flags: []string{"--track-creation-seccomp"}, proven: true, seccomp: true},
			{env: []string{"IPCGUARD_TRACK_CREATION_SECCOMP=1"}, proven: true, seccomp: true},
		}
		for i, r := range runs {
			r.check(t, mode, i)
		}
	})
}

// TestKeyedClientServerSweep: the same pair, but ipcguard is SIGKILLed
// once the clients are done, and the command then fails: `ipcguard sweep`
// decides from the journal, where the gets the seccomp tracker made (G
// records) and the declared keys (Y record) are. Without either, the set
// and queue are kept; with either they are removed; a stranger's keyed set
// made during the run is kept.
func TestKeyedClientServerSweep(t *testing.T) {
	inBothModes(t, func(t *testing.T, mode nstest.Mode) {
		for i, r := range []keyedServerRun{
			{flags: nil},
			{flags: []string{"--own-keys", "%s"}, proven: true},
			{flags: []string{"--track-creation-seccomp"}, proven: true, seccomp: true},
		} {
			e := newEnv(t, fmt.Sprintf("keyed client/server, sweep (%s %q)", mode, strings.Join(r.flags, " ")))
			for name, text := range map[string]string{"server.pl": ftokServerPL, "client.pl": ftokClientPL, "stranger.pl": ftokStrangerPL} {
				if err := os.WriteFile(e.path(name), []byte(text), 0o644); err != nil {
					e.fatalf("%v", err)
				}
			}
			keyFile := e.path(fmt.Sprintf("service-%d", i))
			if err := os.WriteFile(keyFile, nil, 0o644); err != nil {
				e.fatalf("%v", err)
			}
			key := ftok(t, keyFile, 1)
			var flags []string
			for _, f := range r.flags {
				flags = append(flags, strings.ReplaceAll(f, "%s", key))
			}
			// Each program in the background, its pid noted, then waited for.
			script := shPrelude() + `run() { "$@" & echo $! >> "$D/pids"; wait $!; }; D=$0; echo $$ > "$0/cmd.pid"
				run perl "$0/server.pl" "$1" "$2" "$3" && : > "$0/started" && waitfile "$0/stranger-done" &&
				run perl "$0/client.pl" "$1" 1 && run perl "$0/client.pl" "$1" 2 && : > "$0/clients-done" && waitfile "$0/fail" && exit 1`
			args := append(append([]string{"--quiet"}, flags...), "--", "sh", "-c", script, e.dir, keyFile, e.path("ids"), e.path("key"))
			g := e.guard(args...).start()
			e.waitFile(e.path("started"))
			if out, err := exec.Command("perl", e.path("stranger.pl"), keyFile, e.path("stranger.ids")).CombinedOutput(); err != nil {
				e.fatalf("the stranger: %v\n%s", err, out)
			}
			os.WriteFile(e.path("stranger-done"), nil, 0o644)
			e.waitFile(e.path("clients-done"))
			// What a sweep can prove is what the journal holds: wait until
			// it has each program's exit, the pid watch past them, and the
			// gets the tracker made, then kill ipcguard.
			var pids []int
			for _, f := range strings.Fields(e.waitFile(e.path("pids"))) {
				n, _ := strconv.Atoi(f)
				pids = append(pids, n)
			}
			e.waitFor("the journal to hold the run", 30*time.Second, func() bool { return journalHolds(e.state, pids, r.seccomp) })
			syscall.Kill(g.pid(), syscall.SIGKILL)
			g.wait()
			cmdPid, _ := strconv.Atoi(strings.TrimSpace(e.waitFile(e.path("cmd.pid"))))
			os.WriteFile(e.path("fail"), nil, 0o644)
			e.waitFor("the command to end", 30*time.Second, func() bool { return !alive(cmdPid) })
			rep := e.path("sweep.json")
			if out, err := exec.Command(guardBin(), "sweep", "--state-dir", e.state, "--report", rep).CombinedOutput(); err != nil {
				e.fatalf("sweep: %v\n%s", err, out)
			}
			b, err := os.ReadFile(rep)
			var res []sweepOut
			if err != nil || json.Unmarshal(b, &res) != nil || len(res) != 1 || res[0].Run == nil {
				e.fatalf("sweep report: %v\n%s", err, b)
			}
			actions := map[string]string{}
			for _, o := range res[0].Run.Objects {
				actions[fmt.Sprintf("%s %d", o.Type, o.ID)] = o.Action + ": " + o.Reason
			}
			for _, id := range e.readIDs(e.path("stranger.ids")) {
				if !strings.HasPrefix(actions[id], "kept") || !setOf(e.objects()).has(id) {
					e.errorf("FALSE REMOVAL? the stranger's %s: %q", id, actions[id])
				}
			}
			for _, id := range e.readIDs(e.path("ids")) {
				typ, _ := splitID(id)
				want := "kept"
				if r.proven {
					want = "removed"
				}
				if typ == "shm" && !r.proven {
					want = "kept" // with its key family
				}
				if !strings.HasPrefix(actions[id], want) {
					e.errorf("the server's %s after the sweep: %q, want %s", id, actions[id], want)
				}
			}
			e.removeObjects(e.objects())
		}
	})
}

// journalHolds reports whether the one journal under state records the
// exit of each of pids, the pid watch up to after the last of them, and
// (gets) two gets the creation tracker saw.
func journalHolds(state string, pids []int, gets bool) bool {
	var rec *journal.Record
	filepath.WalkDir(state, func(path string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if r, err := journal.Load(path); err == nil {
				rec = r
			}
		}
		return nil
	})
	if rec == nil || (gets && len(rec.Gets) < 2) || len(rec.Watch) == 0 {
		return false
	}
	var last time.Time
	for _, pid := range pids {
		found := false
		for _, m := range rec.Members {
			if m.Pid == pid && !m.Left.IsZero() {
				found = true
				if m.Left.After(last) {
					last = m.Left
				}
			}
		}
		if !found {
			return false
		}
	}
	return rec.Watch[len(rec.Watch)-1].To.After(last)
}
