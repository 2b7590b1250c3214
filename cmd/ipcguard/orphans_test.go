package main_test

// ipcguard ls --orphans and ipcguard rm, against real objects and real
// processes: orphans are found, and only orphans; rm refuses each kind of
// object in use, --force removes it, --dry-run removes nothing.

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ipcguard/ipcguard/internal/guard"
	"github.com/ipcguard/ipcguard/internal/nstest"
	"golang.org/x/sys/unix"
)

// orphanQuiet is ipcdiff.OrphanQuiet plus the second a stamp truncates to.
const orphanQuiet = 4 * time.Second

// verdict is one object of ls --orphans --json.
type verdict = guard.Listed

// vtid is "type id" of a verdict.
func vtid(v verdict) string { return fmt.Sprintf("%s %d", v.Type, v.ID) }

// verdicts runs ls --orphans --json with args and returns its objects by "type id".
func (e *env) verdicts(args ...string) map[string]verdict {
	e.t.Helper()
	r := e.run(append([]string{"ls", "--orphans", "--json"}, args...)...)
	e.wantExit(r, 0)
	var vs []verdict
	if err := json.Unmarshal([]byte(r.Stdout), &vs); err != nil {
		e.fatalf("ls --orphans --json: %v\n%s", err, r.Stdout)
	}
	out := map[string]verdict{}
	for _, v := range vs {
		if v.Orphan == nil || v.InUse == nil {
			e.errorf("ls --orphans --json: %s has no verdict: %+v", vtid(v), v)
			continue
		}
		if *v.Orphan != (len(v.Reasons) == 0) || len(v.Evidence) == 0 && *v.Orphan {
			e.errorf("ls --orphans --json: %s orphan %v with evidence %q and reasons %q", vtid(v), *v.Orphan, v.Evidence, v.Reasons)
		}
		out[vtid(v)] = v
	}
	return out
}

// startHolder starts the ipc helper with steps, then keeps it alive until
// the test ends; it returns the ids it made and its pid.
func (e *env) startHolder(name string, steps ...string) ([]string, int) {
	e.t.Helper()
	ids, ready := e.path(name+".ids"), e.path(name+".ready")
	cmd := nstest.IPCCmd(append(append([]string{"out=" + ids}, steps...), "ready="+ready, "wait")...)
	if err := cmd.Start(); err != nil {
		e.fatalf("%v", err)
	}
	e.t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	pid := e.waitPidFile(ready)
	return e.readIDs(ids), pid
}

// runHelper runs the ipc helper with steps to its end and returns the ids it made.
func (e *env) runHelper(name string, steps ...string) []string {
	e.t.Helper()
	ids := e.path(name + ".ids")
	if out, err := nstest.IPCCmd(append([]string{"out=" + ids}, steps...)...).CombinedOutput(); err != nil {
		e.fatalf("ipc helper %q: %v\n%s", steps, err, out)
	}
	return e.readIDs(ids)
}

// startZeroWaiter starts a process that waits, in semop, for semaphore 0
// of set id to become zero, and waits until the kernel counts it (GETZCNT).
func (e *env) startZeroWaiter(id int) {
	e.t.Helper()
	cmd := exec.Command("perl", "-e", `semop($ARGV[0], pack("s!3", 0, 0, 0)); exit 0`, fmt.Sprint(id))
	if err := cmd.Start(); err != nil {
		e.fatalf("perl: %v", err)
	}
	e.t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	e.waitFor(fmt.Sprintf("a process waiting on sem %d", id), 30*time.Second, func() bool {
		n, _, errno := unix.Syscall6(unix.SYS_SEMCTL, uintptr(id), 0, 15 /* GETZCNT */, 0, 0, 0)
		return errno == 0 && n == 1
	})
}

// quiet waits until every stamp of the objects made so far is older than
// the quiet time of ls --orphans.
func (e *env) quiet() {
	made := time.Now()
	e.waitFor("the objects to be left alone long enough", time.Minute, func() bool { return time.Since(made) > orphanQuiet })
}

// TestLsOrphans: orphans found, and only orphans.
func TestLsOrphans(t *testing.T) {
	inBothModes(t, func(t *testing.T, _ nstest.Mode) {
		e := newEnv(t, "ls --orphans")
		// A process that made these and died: a segment nobody attaches,
		// a set and a queue it used, a keyed segment, a keyed set.
		dead := e.runHelper("dead", "shm", "sem:op", "msg:send", "shm:key=0x4a00a006", "sem:key=0x4a00a003:op")
		wantCount(e, "dead", dead, 5)
		// A live process attaches a segment, operated on a set last, and
		// uses the key of the dead one's keyed segment.
		live, _ := e.startHolder("live", "shm:attach", "sem:op", "sem:key=0x4a00a006:op")
		wantCount(e, "live", live, 3)
		// Someone waits on the dead one's keyed set.
		_, c := splitID(dead[4])
		e.startZeroWaiter(c)
		e.quiet()

		vs := e.verdicts()
		want := map[string]string{
			dead[0]: "orphan", dead[1]: "orphan", dead[2]: "orphan",
			dead[3]: "key_family", dead[4]: "waiting",
			live[0]: "attached", live[1]: "live_user", live[2]: "live_user",
		}
		if len(vs) != len(want) {
			e.errorf("ls --orphans --json lists %d objects, want every one of the %d", len(vs), len(want))
		}
		for id, class := range want {
			v, ok := vs[id]
			if !ok {
				e.errorf("%s not listed", id)
				continue
			}
			if v.Class != class || *v.Orphan != (class == "orphan") || *v.InUse != (class != "orphan") {
				e.errorf("%s: orphan %v in use %v class %q (%q), want class %q", id, *v.Orphan, *v.InUse, v.Class, v.Reasons, class)
			}
		}
		if v := vs[dead[0]]; !strings.Contains(strings.Join(v.Evidence, "; "), "is dead") {
			e.errorf("%s: evidence %q does not say the creator is dead", dead[0], v.Evidence)
		}

		// The table: the orphans, each with why, and nothing else.
		r := e.run("ls", "--orphans")
		e.wantExit(r, 0)
		var rows []string
		for _, l := range lines(r.Stdout)[1:] {
			f := strings.Fields(l)
			rows = append(rows, f[0]+" "+f[1])
			if !strings.Contains(l, "dead") {
				e.errorf("ls --orphans: no why in %q", l)
			}
		}
		if strings.Join(rows, ",") != strings.Join(dead[:3], ",") {
			e.errorf("ls --orphans lists %q, want %q:\n%s", rows, dead[:3], r.Stdout)
		}

		// --older-than: nothing is an hour old.
		for id, v := range e.verdicts("--older-than", "1h") {
			if *v.Orphan || (want[id] == "orphan" && v.Class != "younger") {
				e.errorf("--older-than 1h: %s orphan %v class %q", id, *v.Orphan, v.Class)
			}
		}
		if vs := e.verdicts("--older-than", "2s"); !*vs[dead[0]].Orphan {
			e.errorf("--older-than 2s: %s is not an orphan: %q", dead[0], vs[dead[0]].Reasons)
		}
		// --types lists fewer objects but decides on all (key families).
		vs = e.verdicts("--types", "shm")
		if len(vs) != 3 || vs[dead[3]].Class != "key_family" {
			e.errorf("--types shm: %+v", vs)
		}

		// Metrics: mode orphans, the orphans as would_remove.
		m := e.path("m.prom")
		e.wantExit(e.run("ls", "--orphans", "--metrics", m), 0)
		b, _ := os.ReadFile(m)
		for _, l := range []string{`ipcguard_runs_total{mode="orphans",result="succeeded"} 1`,
			`ipcguard_last_run_objects{action="would_remove",mode="orphans"} 3`,
			`ipcguard_last_run_objects{action="kept",mode="orphans"} 5`,
			`ipcguard_objects_total{action="kept",mode="orphans",reason="waiting",type="sem"} 1`} {
			if !strings.Contains(string(b), l+"\n") {
				e.errorf("metrics lack %q:\n%s", l, b)
			}
		}
		for _, bad := range [][]string{{"ls", "--older-than", "1h"}, {"ls", "--metrics", m}, {"ls", "--orphans", "--older-than", "-1s"}} {
			r := e.run(bad...)
			e.wantExit(r, 125)
			e.checkOneErrorLine(strings.Join(bad, " "), r.Stderr)
		}
	})
}

// TestRm: rm refuses each kind of object in use, --force removes it,
// --dry-run removes nothing, rm --orphans removes the orphans only.
func TestRm(t *testing.T) {
	inBothModes(t, func(t *testing.T, _ nstest.Mode) {
		e := newEnv(t, "rm")
		dead := e.runHelper("dead", "shm", "sem:op", "msg:key=0x4a00b003:send", "sem:op")
		live, _ := e.startHolder("live", "shm:attach", "sem:op", "shm:key=0x4a00b003:attach")
		_, w := splitID(dead[3])
		e.startZeroWaiter(w)
		sel := func(id string) string { return strings.Replace(id, " ", ":", 1) }

		// Each kind of use refused, with the reason, status 1.
		for _, c := range []struct{ id, why string }{
			{live[0], "refused, in use: attached by pid"},
			{live[1], "refused, in use: semaphore 0 last op is pid"},
			{dead[2], "refused, in use: same key 0x4a00b003 as shm"},
			{dead[3], "refused, in use: semaphore 0 has 1 waiting"},
		} {
			r := e.run("rm", sel(c.id))
			e.wantExit(r, 1)
			if ls := lines(r.Stdout); len(ls) != 1 || !strings.HasPrefix(ls[0], c.id+" key ") || !strings.Contains(ls[0], c.why) {
				e.errorf("rm %s: %q, want one line with %q", sel(c.id), r.Stdout, c.why)
			}
			e.wantKept("rm of an object in use", []string{c.id})
		}
		// --dry-run removes nothing and says what it would do.
		r := e.run("rm", "--dry-run", sel(dead[0]), sel(live[0]))
		e.wantExit(r, 1)
		if !strings.Contains(r.Stdout, dead[0]+" key 0x00000000: would remove\n") || !strings.Contains(r.Stdout, "would refuse, in use") {
			e.errorf("rm --dry-run: %q", r.Stdout)
		}
		r = e.run("rm", "--dry-run", "--force", sel(live[0]))
		e.wantExit(r, 0)
		e.wantKept("rm --dry-run", []string{dead[0], live[0]})

		// Not found, ambiguous, bad selectors.
		r = e.run("rm", "shm:99999")
		e.wantExit(r, 1)
		if r.Stdout != "shm:99999: not found\n" {
			e.errorf("rm shm:99999: %q", r.Stdout)
		}
		for _, bad := range [][]string{{"rm"}, {"rm", "0x0"}, {"rm", "-rf", "x"}, {"rm", "bogus"}, {"rm", "--orphans", "3"}} {
			r := e.run(bad...)
			e.wantExit(r, 125)
			e.checkOneErrorLine(strings.Join(bad, " "), r.Stderr)
		}
		e.wantKept("bad usage", append(append([]string{}, dead...), live...))

		// --force removes what is in use, as ipcrm does.
		r = e.run("rm", "--force", sel(live[0]), sel(dead[3]))
		e.wantExit(r, 0)
		if !strings.Contains(r.Stdout, "removed (destroyed at last detach) (in use: attached by") || !strings.Contains(r.Stdout, dead[3]+" key 0x00000000: removed (in use: semaphore 0 has 1 waiting") {
			e.errorf("rm --force: %q", r.Stdout)
		}
		e.wantGone("rm --force", []string{live[0], dead[3]})

		// An orphan by id, then by key with its family.
		e.quiet()
		r = e.run("rm", sel(dead[0]))
		e.wantExit(r, 0)
		if r.Stdout != dead[0]+" key 0x00000000: removed\n" {
			e.errorf("rm %s: %q", sel(dead[0]), r.Stdout)
		}
		e.wantGone("rm of an unused segment", dead[:1])

		// rm --orphans: the set the dead process used, only.
		r = e.run("rm", "--orphans")
		e.wantExit(r, 0)
		if r.Stdout != dead[1]+" key 0x00000000: removed\n" {
			e.errorf("rm --orphans: %q, want %s removed", r.Stdout, dead[1])
		}
		e.wantGone("rm --orphans", dead[1:2])
		e.wantKept("rm --orphans", []string{dead[2], live[1], live[2]})
	})
}

// orphanReuseScript: in a private pid namespace, a process makes a segment
// and exits; its pid is handed to a new process either after the
// segment's last activity ($MODE=after: the reuse is seen, an orphan) or
// before it ($MODE=before: another process attaches the segment after the
// reuse, so the new process may be the one that acted: not an orphan).
const orphanReuseScript = `
asuser $GU perl "$D/../segmaker.pl" "$D/s" || exit 9
P=$(cat "$D/s.pid"); ID=$(cut -d' ' -f2 "$D/s.ids")
gone $P
[ "$MODE" = after ] && sleep 3.5
lastpid $((P - 1)); bgas $GU bash -c 'echo $$ > "$D/r.pid"; exec sleep 600' &
R=$!
waitf "$D/r.pid"; [ "$(cat "$D/r.pid")" = "$P" ] || exit 3
[ "$MODE" = before ] && { asuser $GU perl -e 'my $b; shmread($ARGV[0], $b, 0, 1) or die "shmread: $!"' "$ID" || exit 9; }
sleep 4.5
asuser $GU "$G" ls --orphans --json > "$D/ls.json" || exit 9
kill $R
`

// TestLsOrphansPidReuse: a recorded pid held now by a process that started
// after the object's last activity is reused (an orphan); one that started
// before it may be the process that acted (not an orphan).
func TestLsOrphansPidReuse(t *testing.T) {
	inGuardModes(t, func(t *testing.T, e *env, u users) {
		e.writeShared("segmaker.pl", segmakerPL)
		for _, mode := range []string{"after", "before"} {
			e.sc = fmt.Sprintf("ls --orphans, pid reused %s the last activity (%s)", mode, u.mode)
			d := e.scriptTries(fmt.Sprintf("reuse-%s", mode), u, scriptOpts{pidNS: true, mountNS: true}, scriptNoReuse, orphanReuseScript, "MODE="+mode)
			b, err := os.ReadFile(filepath.Join(d, "ls.json"))
			if err != nil {
				e.fatalf("%v", err)
			}
			var vs []verdict
			if err := json.Unmarshal(b, &vs); err != nil || len(vs) != 1 {
				e.fatalf("ls --orphans --json: %v: %s", err, b)
			}
			v := vs[0]
			ev, why := strings.Join(v.Evidence, "; "), strings.Join(v.Reasons, "; ")
			switch mode {
			case "after":
				if !*v.Orphan || !strings.Contains(ev, "is reused") {
					e.errorf("reused after: orphan %v, evidence %q, reasons %q; want an orphan whose creator pid is reused", *v.Orphan, ev, why)
				}
			case "before":
				if *v.Orphan || v.Class != "live_user" || !strings.Contains(why, "running since before the last activity") {
					e.errorf("reused before: orphan %v class %q, reasons %q; want kept for a live user", *v.Orphan, v.Class, why)
				}
			}
			e.removeObjects(e.objects())
		}
	})
}
