package main_test

// End-to-end tests of the options not covered elsewhere, each by its short
// form or its environment variable: -n, -q, --strict, --grace,
// --leave-descendants, --track-creation, --sweep and `sweep --dry-run`,
// `sweep --quiet`, and the run and help subcommands.

import (
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ipcguard/ipcguard/internal/nstest"
)

const makeShm = `ipcmk -M 4096 >>"$0"; exit 1`

func TestOptionsShortFormsAndEnvironment(t *testing.T) {
	inBothModes(t, func(t *testing.T, _ nstest.Mode) {
		e := newEnv(t, "options")
		ids := e.path("ids")

		// run -n -q: the run subcommand, dry, silent.
		r := e.run("run", "-n", "-q", "--", "sh", "-c", makeShm, ids)
		e.wantExit(r, 1)
		if r.Stderr != "" {
			e.errorf("-q: stderr %q", r.Stderr)
		}
		made := e.ipcmkIDs(ids)
		wantCount(e, "ipcmk", made, 1)
		e.wantKept("-n", made)
		e.removeObjects(newSince(nil, e.objects()))

		// IPCGUARD_DRY_RUN and IPCGUARD_STRICT, in the report.
		os.Remove(ids)
		rep := e.path("r.json")
		r = e.guard("--report", rep, "--", "sh", "-c", makeShm, ids).
			withEnv("IPCGUARD_DRY_RUN=1", "IPCGUARD_STRICT=1").run()
		e.wantExit(r, 1)
		made = e.ipcmkIDs(ids)
		e.wantKept("IPCGUARD_DRY_RUN", made)
		rp := e.readReport(rep)
		if !rp.Policy.DryRun || !rp.Policy.Strict {
			e.errorf("IPCGUARD_DRY_RUN, IPCGUARD_STRICT: policy %+v", rp.Policy)
		}
		if o, ok := rp.object("shm", idOf(e, made[0])); !ok || o.Action != "would-remove" {
			e.errorf("dry run: the segment's action %+v", o)
		}
		e.summaryLine("dry run", r.Stderr, "ipcguard: would remove 1 (shm ")
		e.removeObjects(newSince(nil, e.objects()))

		// IPCGUARD_CMD alone.
		r = e.guard().withEnv("IPCGUARD_CMD=sh -c 'exit 4'").run()
		e.wantExit(r, 4)

		// help, and help of a subcommand.
		r = e.run("help")
		e.wantExit(r, 0)
		if !strings.Contains(r.Stdout, "Exit status") {
			e.errorf("help: %q", r.Stdout)
		}
		r = e.run("help", "sweep")
		e.wantExit(r, 0)
		if !strings.Contains(r.Stdout, "--dry-run") {
			e.errorf("help sweep: %q", r.Stdout)
		}
	})
}

func idOf(e *env, tid string) int {
	e.t.Helper()
	_, s, _ := strings.Cut(tid, " ")
	n, err := strconv.Atoi(s)
	if err != nil {
		e.fatalf("id of %q: %v", tid, err)
	}
	return n
}

// TestGraceAndLeaveDescendants: a descendant that ignores SIGTERM is
// killed after IPCGUARD_GRACE, or left running with
// IPCGUARD_LEAVE_DESCENDANTS.
func TestGraceAndLeaveDescendants(t *testing.T) {
	inBothModes(t, func(t *testing.T, _ nstest.Mode) {
		e := newEnv(t, "descendants")
		// The command fails only once the descendant ignores SIGTERM (a
		// SIGTERM before its trap would end it, which says nothing).
		script := `(trap "" TERM; : > "$0.trap"; exec sleep 600) & echo $! >"$0"
while [ ! -e "$0.trap" ]; do sleep 0.01; done; exit 1`
		for _, leave := range []bool{false, true} {
			pidf, rep := e.path("pid"), e.path("r.json")
			os.Remove(pidf)
			os.Remove(pidf + ".trap")
			p := e.guard("--report", rep, "--", "sh", "-c", script, pidf).withEnv("IPCGUARD_GRACE=50ms")
			if leave {
				p.withEnv("IPCGUARD_LEAVE_DESCENDANTS=true")
			}
			e.wantExit(p.run(), 1)
			pid := e.waitPidFile(pidf)
			e.killOnCleanup(pid)
			d := e.readReport(rep).Descendants
			switch {
			case leave && (!slices.Contains(d.Remaining, pid) || !alive(pid)):
				e.errorf("IPCGUARD_LEAVE_DESCENDANTS: %d not left running (%+v)", pid, d)
			case !leave && (!slices.Contains(d.Killed, pid) || alive(pid)):
				e.errorf("IPCGUARD_GRACE: %d ignoring SIGTERM was not killed (%+v)", pid, d)
			}
			syscall.Kill(pid, syscall.SIGKILL)
		}
	})
}

// TestTrackCreation: as real root, --track-creation (and its variable)
// watches the tree's gets; the report says so and the segment goes.
func TestTrackCreation(t *testing.T) {
	inModes(t, []nstest.Mode{nstest.Root}, func(t *testing.T, _ nstest.Mode) {
		e := newEnv(t, "--track-creation")
		if !inInitUserNS() {
			nstest.Require(t, "%s: needs real root (tracefs and syscall tracepoints)", e.sc)
		}
		for _, args := range [][]string{{"--track-creation"}, {}} {
			ids, rep := e.path("ids"), e.path("r.json")
			os.Remove(ids)
			// A segment: its creation is unambiguous (ipcmk -S uses a random
			// key, and a keyed get does not prove the creator).
			p := e.guard(append(args, "--report", rep, "--", "sh", "-c", `ipcmk -M 4096 >>"$0"; exit 1`, ids)...)
			if len(args) == 0 {
				p.withEnv("IPCGUARD_TRACK_CREATION=1")
			}
			e.wantExit(p.run(), 1)
			made := e.ipcmkIDs(ids)
			wantCount(e, "ipcmk", made, 1)
			rp := e.readReport(rep)
			if !rp.Tracker.CreationTracked {
				e.errorf("%v: creation not tracked: %+v", args, rp.Tracker)
				continue
			}
			e.wantGone("creation seen", made)
			for _, o := range rp.Objects {
				if ev := strings.Join(o.Evidence, " "); !strings.Contains(ev, "creat") && !strings.Contains(ev, "obtained") {
					e.errorf("%s: evidence %q does not mention the get seen", tid(o), o.Evidence)
				}
			}
		}
	})
}

// TestSweepOptions: --sweep (and IPCGUARD_SWEEP) first finishes the work
// of a killed ipcguard; `sweep --dry-run` decides and keeps the journal;
// `sweep --quiet` prints nothing.
func TestSweepOptions(t *testing.T) {
	inBothModes(t, func(t *testing.T, _ nstest.Mode) {
		e := newEnv(t, "sweep options")
		for _, how := range []string{"--sweep", "IPCGUARD_SWEEP"} {
			made := e.killedRun()
			r := e.run("sweep", "--dry-run")
			e.wantExit(r, 0)
			if !strings.Contains(r.Stderr, "would remove 1 (shm ") {
				e.errorf("sweep --dry-run: stderr %q", r.Stderr)
			}
			e.wantKept("sweep --dry-run", made)
			var p *guardProc
			if how == "--sweep" {
				p = e.guard("--sweep", "--", "true")
			} else {
				p = e.guard("--", "true").withEnv("IPCGUARD_SWEEP=1")
			}
			r = p.run()
			e.wantExit(r, 0)
			if !strings.Contains(r.Stderr, "removed 1 (shm ") {
				e.errorf("%s: stderr %q", how, r.Stderr)
			}
			e.wantGone(how, made)
		}
		made := e.killedRun()
		r := e.run("sweep", "--quiet")
		e.wantExit(r, 0)
		if r.Stderr != "" {
			e.errorf("sweep --quiet: stderr %q", r.Stderr)
		}
		e.wantGone("sweep --quiet", made)
	})
}

// killedRun leaves the journal of an ipcguard killed while its command
// held a segment, once that command has ended too; it returns the segment.
func (e *env) killedRun() []string {
	e.t.Helper()
	ids, ready := e.path("killed.ids"), e.path("killed.ready")
	os.Remove(ids)
	os.Remove(ready)
	p := e.guard("--", nstest.Binary(), "out="+ids, "shm", "ready="+ready, "wait").
		withEnv(nstest.HelperEnv("ipc")).start()
	pid := e.waitPidFile(ready)
	e.killOnCleanup(pid)
	syscall.Kill(p.pid(), syscall.SIGKILL)
	p.wait()
	syscall.Kill(pid, syscall.SIGKILL)
	// Gone, not a zombie: a zombie creator still counts as running.
	e.waitFor("the command to be reaped", 30*time.Second, func() bool { return syscall.Kill(pid, 0) == syscall.ESRCH })
	made := e.readIDs(ids)
	wantCount(e, "shm", made, 1)
	return made
}

// TestTrackCreationIncomplete: --track-creation asked for where it cannot
// be complete (unprivileged: no syscall tracepoints) says so on stderr and
// in the report, and the run goes on with the other evidence.
func TestTrackCreationIncomplete(t *testing.T) {
	inModes(t, []nstest.Mode{nstest.Unprivileged}, func(t *testing.T, _ nstest.Mode) {
		e := newEnv(t, "--track-creation, incomplete")
		ids, rep := e.path("ids"), e.path("r.json")
		r := e.guard("--track-creation", "--report", rep, "--", "sh", "-c", `ipcmk -M 4096 >>"$0"; exit 1`, ids).run()
		e.wantExit(r, 1)
		if !strings.Contains(r.Stderr, "creation tracking was incomplete") {
			e.errorf("stderr %q does not say creation tracking was incomplete", r.Stderr)
		}
		rp := e.readReport(rep)
		if rp.Tracker.CreationTracked || !strings.Contains(strings.Join(rp.Warnings, "\n"), "creation tracking was incomplete") {
			e.errorf("report: creation_tracked %v, warnings %q", rp.Tracker.CreationTracked, rp.Warnings)
		}
		e.wantGone("a segment with pid evidence", e.ipcmkIDs(ids))
	})
}

// TestTypesKeepKeyFamilies: --types shm reads and removes only segments,
// but a segment of key K whose family has a set of key K (present before
// the run) is kept all the same.
func TestTypesKeepKeyFamilies(t *testing.T) {
	inBothModes(t, func(t *testing.T, _ nstest.Mode) {
		e := newEnv(t, "--types and key families")
		if out, err := nstest.IPCCmd("sem:key=0x4a0000f0").CombinedOutput(); err != nil {
			e.fatalf("the set of the family: %v: %s", err, out)
		}
		ids, rep := e.path("ids"), e.path("r.json")
		r := e.guard("--types", "shm", "--report", rep, "--", nstest.Binary(), "out="+ids, "shm:key=0x4a0000f0", "shm", "exit=1").
			withEnv(nstest.HelperEnv("ipc")).run()
		e.wantExit(r, 1)
		made := e.readIDs(ids)
		wantCount(e, "segments", made, 2)
		e.wantKept("a segment whose key a set has", made[:1])
		e.wantGone("a private segment", made[1:])
		if why := reasonOf(e.readReport(rep), made[0]); !strings.Contains(why, "same key") {
			e.errorf("%s kept for %q, want its key family", made[0], why)
		}
	})
}
