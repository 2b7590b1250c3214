package main_test

// End-to-end tests of the edges of the command line, the files ipcguard
// writes and its output (scenarios 23 to 26).

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/ipcguard/ipcguard/internal/nstest"
)

func TestScenario23KeepKeyDecimal(t *testing.T) {
	inBothModes(t, func(t *testing.T, _ nstest.Mode) {
		e := newEnv(t, "scenario 23")
		made := e.path("made")
		// 017 is decimal 17; read as octal it would be 15 and keep the wrong one.
		r := e.guard("--keep-key", "017", "--quiet", "--", nstest.Binary(), "out="+made,
			"shm:key=17", "shm:key=15", "exit=1").withEnv(nstest.HelperEnv("ipc")).run()
		e.wantExit(r, 1)
		ids := e.readIDs(made)
		wantCount(e, "keys 17 and 15", ids, 2)
		e.wantKept("--keep-key 017 (decimal 17)", ids[0:1])
		e.wantGone("key 15, not kept", ids[1:2])

		for _, bad := range []string{"0b10001", "0o21", "1_7", "0x1_1"} {
			r := e.run("--keep-key", bad, "--", "true")
			e.wantExit(r, 125)
			e.checkOneErrorLine("--keep-key "+bad, r.Stderr)
		}
	})
}

// wantNotRun checks a run refused before the command: 125, one line, the
// marker the command would have made absent.
func (e *env) wantNotRun(what string, r guardResult, marker string) {
	e.t.Helper()
	if r.Signal != 0 || r.Code != 125 {
		e.errorf("%s: %v, want exit 125", what, r)
	}
	e.checkOneErrorLine(what, r.Stderr)
	if exists(marker) {
		e.errorf("%s: the command ran", what)
		os.Remove(marker)
	}
}

// noTemps fails when a temporary report file was left in dir.
func (e *env) noTemps(dir string) {
	e.t.Helper()
	ents, _ := os.ReadDir(dir)
	for _, ent := range ents {
		if strings.HasSuffix(ent.Name(), ".tmp") {
			e.errorf("a temporary file was left behind: %s", ent.Name())
		}
	}
}

func TestScenario24ReportFile(t *testing.T) {
	inBothModes(t, func(t *testing.T, _ nstest.Mode) {
		e := newEnv(t, "scenario 24")
		marker := e.path("ran")
		touch := []string{"--", "touch", marker}
		syscall.Umask(0o022)

		// A FIFO is refused without being opened (opening it would block
		// until a reader came), before the command runs.
		fifo := e.path("fifo")
		if err := syscall.Mkfifo(fifo, 0o600); err != nil {
			e.fatalf("mkfifo: %v", err)
		}
		r := e.run(append([]string{"--report", fifo}, touch...)...)
		e.wantNotRun("--report FIFO", r, marker)
		if !strings.Contains(r.Stderr, "FIFO") {
			e.errorf("--report FIFO: stderr %q does not say why", r.Stderr)
		}
		r = e.run(append([]string{"--report", e.dir}, touch...)...)
		e.wantNotRun("--report DIRECTORY", r, marker)
		r = e.run("--report", "/dev/null", "--", "touch", marker)
		e.wantNotRun("--report /dev/null", r, marker)

		// A regular file is replaced whole, mode 0600 under umask 022.
		rep := e.path("r.json")
		if err := os.WriteFile(rep, []byte("old report\n"), 0o644); err != nil {
			e.fatalf("%v", err)
		}
		e.wantExit(e.run("--report", rep, "--", "true"), 0)
		if rp := e.readReport(rep); rp.ExitCode == nil || *rp.ExitCode != 0 {
			e.errorf("the report after exit 0: %+v", rp)
		}
		if st, err := os.Stat(rep); err != nil || st.Mode().Perm() != 0o600 {
			e.errorf("report mode %v (%v), want 0600", st.Mode(), err)
		}
		e.noTemps(e.dir)

		// The user's own link is followed: the report goes to its target.
		target, link := e.path("target.json"), e.path("link.json")
		if err := os.Symlink("target.json", link); err != nil {
			e.fatalf("%v", err)
		}
		e.wantExit(e.run("--report", link, "--", "sh", "-c", "exit 4"), 4)
		if rp := e.readReport(target); rp.ExitCode == nil || *rp.ExitCode != 4 {
			e.errorf("the report through our own link: %+v", rp)
		}
		if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
			e.errorf("our own link was replaced: %v %v", fi, err)
		}

		// A run whose command never runs leaves a report that says so,
		// not the previous one.
		e.wantExit(e.guard("--report", rep, "--", "no-such-command-e2e").withEnv("PATH=/usr/bin:/bin").run(), 127)
		rp := e.readReport(rep)
		if rp.ExitCode == nil || *rp.ExitCode != 127 || len(rp.Warnings) != 1 || !strings.Contains(rp.Warnings[0], "not found") {
			e.errorf("the report of a command not found: exit %v, warnings %q", rp.ExitCode, rp.Warnings)
		}

		// A SIGKILLed ipcguard leaves no report rather than the last one:
		// it is gone once the command has started.
		ready := e.path("ready")
		p := e.guard("--report", rep, "--", "sh", "-c", `echo $$ >"$0"; exec sleep 60`, ready).start()
		pid := e.waitPidFile(ready)
		e.killOnCleanup(pid)
		if exists(rep) {
			e.errorf("the previous report is still at %s while a new run is under way", rep)
		}
		syscall.Kill(p.pid(), syscall.SIGKILL)
		if r := p.wait(); r.Signal != syscall.SIGKILL {
			e.errorf("ipcguard was not killed: %v", r)
		}
		syscall.Kill(pid, syscall.SIGKILL)
		if exists(rep) {
			e.errorf("a report appeared after ipcguard was killed")
		}
		e.noTemps(e.dir)
	})
}

// TestScenario24ReportForeignLink: as real root, a link that another user
// planted in a directory they may write is neither followed nor replaced.
func TestScenario24ReportForeignLink(t *testing.T) {
	inModes(t, []nstest.Mode{nstest.Root}, func(t *testing.T, _ nstest.Mode) {
		e := newEnv(t, "scenario 24")
		if !inInitUserNS() {
			nstest.Require(t, "%s: needs real root to plant a link of another user", e.sc)
		}
		victim := e.path("victim")
		if err := os.WriteFile(victim, []byte("root data\n"), 0o600); err != nil {
			e.fatalf("%v", err)
		}
		w := e.path("world")
		if err := os.Mkdir(w, 0o777); err != nil {
			e.fatalf("%v", err)
		}
		os.Chmod(w, 0o777)
		for _, dir := range []string{w, e.path("sticky")} {
			if dir != w {
				if err := os.Mkdir(dir, 0o777); err != nil {
					e.fatalf("%v", err)
				}
				os.Chmod(dir, os.ModeSticky|0o777)
			}
			link := filepath.Join(dir, "ipc.json")
			if err := os.Symlink(victim, link); err != nil {
				e.fatalf("%v", err)
			}
			if err := os.Lchown(link, nstest.NobodyUID, nstest.NobodyUID); err != nil {
				e.fatalf("%v", err)
			}
			marker := e.path("ran")
			r := e.run("--report", link, "--", "touch", marker)
			e.wantNotRun("--report through a link of uid 65534 in "+filepath.Base(dir), r, marker)
			if b, _ := os.ReadFile(victim); string(b) != "root data\n" {
				e.errorf("the link's target was written: %q", b)
			}
			if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
				e.errorf("the foreign link was removed or replaced: %v", err)
			}
		}
	})
}

func TestScenario25ScriptWithoutShebang(t *testing.T) {
	inBothModes(t, func(t *testing.T, _ nstest.Mode) {
		e := newEnv(t, "scenario 25")
		script := e.path("script")
		body := "echo \"ran: $1 $2\"\nipcmk -M 4096 >>\"$1\"\nexit 7\n"
		if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
			e.fatalf("%v", err)
		}
		ids := e.path("ids")
		r := e.run("--", script, ids, "two")
		e.wantExit(r, 7)
		if r.Stdout != "ran: "+ids+" two\n" {
			e.errorf("stdout %q: the script did not run through /bin/sh with its arguments", r.Stdout)
		}
		made := e.ipcmkIDs(ids)
		wantCount(e, "ipcmk", made, 1)
		e.wantGone("a failing script without #!", made)

		// Found through PATH, the same.
		r = e.guard("--", "script", ids, "x").withEnv("PATH=" + e.dir + ":/usr/bin:/bin").run()
		e.wantExit(r, 7)
		if !strings.HasPrefix(r.Stdout, "ran: ") {
			e.errorf("through PATH: stdout %q", r.Stdout)
		}
	})
}

func TestScenario26BoundedSummary(t *testing.T) {
	inBothModes(t, func(t *testing.T, _ nstest.Mode) {
		e := newEnv(t, "scenario 26")
		const n = 1500
		made, rep := e.path("made"), e.path("r.json")
		steps := []string{"out=" + made}
		for range n {
			steps = append(steps, "shm:size=1")
		}
		steps = append(steps, "exit=1")
		r := e.guard(append([]string{"--report", rep, "--", nstest.Binary()}, steps...)...).
			withEnv(nstest.HelperEnv("ipc")).run()
		e.wantExit(r, 1)
		ids := e.readIDs(made)
		wantCount(e, "shm", ids, n)
		e.wantGone("a failing command's segments", ids)
		e.summaryLine("thousands of objects", r.Stderr, "ipcguard: removed 1500 (1500 shm; shm ")
		if len(r.Stderr) > 300 || !strings.Contains(r.Stderr, "the full list is in "+rep) {
			e.errorf("summary of %d bytes: %q", len(r.Stderr), r.Stderr)
		}
		if rp := e.readReport(rep); rp.Removed != n || len(rp.Objects) != n {
			e.errorf("the report lists %d objects, %d removed; want %d", len(rp.Objects), rp.Removed, n)
		}
	})
}

// TestTrackerByName: a tracker asked for by name is used, and one that
// cannot work here is an error before the command runs (the proc connector
// does not answer in a user namespace other than the initial one).
func TestTrackerByName(t *testing.T) {
	inBothModes(t, func(t *testing.T, mode nstest.Mode) {
		e := newEnv(t, "--tracker")
		marker := e.path("ran")
		for _, kind := range []string{"poll", "perf", "proc-connector"} {
			rep := e.path(kind + ".json")
			var r guardResult
			if kind == "poll" {
				r = e.guard("--report", rep, "--", "sh", "-c", "ipcmk -M 4096 >/dev/null; exit 3").
					withEnv("IPCGUARD_TRACKER=poll").run()
			} else {
				r = e.run("--tracker", kind, "--report", rep, "--", "sh", "-c", "ipcmk -M 4096 >/dev/null; exit 3")
			}
			if r.Code == 125 && kind != "poll" {
				// perf needs perf_event_paranoid <= 2 or root; the proc
				// connector needs the initial user namespace.
				e.checkOneErrorLine("--tracker "+kind+" refused", r.Stderr)
				if nstest.UnderCI() {
					e.errorf("CI=true, and --tracker %s does not work here: %s", kind, r.Stderr)
				}
				t.Logf("--tracker %s does not work here: %s", kind, r.Stderr)
				continue
			}
			e.wantExit(r, 3)
			rp := e.readReport(rep)
			// Polling may miss a process that lived a millisecond (ipcmk):
			// its segment is then rightly kept. The exact trackers see it.
			if rp.Tracker.Name != kind || (kind != "poll" && rp.Removed != 1) {
				e.errorf("--tracker %s: the report names tracker %q, removed %d", kind, rp.Tracker.Name, rp.Removed)
			}
		}
		if mode != nstest.Root {
			return
		}
		for _, args := range [][]string{{"--tracker", "proc-connector"}, {}} {
			p := e.guard(append(args, "--", "touch", marker)...)
			if len(args) == 0 {
				p.withEnv("IPCGUARD_TRACKER=proc-connector")
			}
			p.cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWUSER,
				UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getuid(), Size: 1}},
				GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getgid(), Size: 1}}}
			r := p.run()
			e.wantNotRun("proc connector in a user namespace", r, marker)
			if !strings.Contains(r.Stderr, "proc-connector") {
				e.errorf("the error does not name the tracker: %q", r.Stderr)
			}
		}
	})
}

// TestNestedRunEnvironment: IPCGUARD_CMD and IPCGUARD_REPORT describe one
// run and do not reach its command; the policy variables do, so a nested
// ipcguard runs its own command with the same policy and writes no report
// over the outer one.
func TestNestedRunEnvironment(t *testing.T) {
	inBothModes(t, func(t *testing.T, _ nstest.Mode) {
		e := newEnv(t, "nested runs")
		envFile, rep, inner := e.path("env"), e.path("r.json"), e.path("inner")
		ids := e.path("ids")
		script := `env >"$0"; "$IPCGUARD_E2E_BINARY" -- sh -c 'ipcmk -M 4096 >"$0"; exit 5' "$2"; echo "inner $?" >"$1"`
		r := e.guard().withEnv(
			"IPCGUARD_CMD=sh -c '"+strings.ReplaceAll(script, "'", `'\''`)+"' "+envFile+" "+inner+" "+ids,
			"IPCGUARD_REPORT="+rep, "IPCGUARD_QUIET=1").run()
		e.wantExit(r, 0)
		vars := map[string]bool{}
		for _, l := range scanLines(envFile) {
			name, _, _ := strings.Cut(l, "=")
			vars[name] = true
		}
		if vars["IPCGUARD_CMD"] || vars["IPCGUARD_REPORT"] {
			e.errorf("IPCGUARD_CMD or IPCGUARD_REPORT reached the command: %v", vars)
		}
		if !vars["IPCGUARD_QUIET"] || !vars["IPCGUARD_STATE_DIR"] {
			e.errorf("the policy variables did not reach the command: %v", vars)
		}
		got := scanLines(inner)
		if len(got) != 1 || got[0] != "inner 5" {
			e.fatalf("the nested ipcguard: %q, want its command's status 5", got)
		}
		made := e.ipcmkIDs(ids)
		wantCount(e, "ipcmk", made, 1)
		e.wantGone("the nested run's failing command", made)
		if rp := e.readReport(rep); len(rp.Command) != 6 || rp.Command[0] != "sh" || rp.Command[3] != envFile {
			e.errorf("the report is not the outer run's: command %q", rp.Command)
		}
		if r.Stderr != "" {
			e.errorf("IPCGUARD_QUIET did not reach the nested run: stderr %q", r.Stderr)
		}
	})
}

// TestReportActionFailed: an unprivileged ipcguard whose command runs a
// setuid-root program that creates a segment (creator root, creator pid in
// the tree) cannot remove it: the report says "failed" with the errno, the
// summary says so, and the segment is still there.
func TestReportActionFailed(t *testing.T) {
	inModes(t, []nstest.Mode{nstest.Root}, func(t *testing.T, _ nstest.Mode) {
		e := newEnv(t, "action failed")
		if !inInitUserNS() {
			nstest.Require(t, "%s: needs real root to make a setuid-root program", e.sc)
		}
		// nobody must reach the directory, run the program, keep state.
		for _, d := range []string{filepath.Dir(e.dir), e.dir} {
			os.Chmod(d, 0o755)
		}
		suid := e.path("suid-ipc")
		b, err := os.ReadFile(nstest.Binary())
		if err != nil {
			e.fatalf("%v", err)
		}
		if err := os.WriteFile(suid, b, 0o755); err != nil {
			e.fatalf("%v", err)
		}
		if err := os.Chmod(suid, os.ModeSetuid|0o755); err != nil {
			e.fatalf("%v", err)
		}
		out := e.path("out")
		if err := os.Mkdir(out, 0o700); err != nil || os.Chown(out, nstest.NobodyUID, nstest.NobodyUID) != nil {
			e.fatalf("a directory for nobody: %v", err)
		}
		rep := filepath.Join(out, "r.json")
		p := e.guard("--state-dir", filepath.Join(out, "state"), "--report", rep, "--", suid, "shm", "exit=1").
			withEnv(nstest.HelperEnv("ipc"))
		p.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nstest.NobodyUID, Gid: nstest.NobodyUID, Groups: []uint32{}}}
		r := p.run()
		e.wantExit(r, 1)
		objs := e.objects()
		if len(objs) != 1 || objs[0].CUID != 0 {
			e.fatalf("want the one segment of creator root, have %v", setOf(objs).sorted())
		}
		rp := e.readReport(rep)
		o, ok := rp.object("shm", objs[0].ID)
		if !ok || o.Action != "failed" || !strings.Contains(o.Error, "not permitted") || rp.Failed != 1 {
			e.errorf("report: %+v (failed %d), want action failed, operation not permitted", o, rp.Failed)
		}
		e.summaryLine("a removal that failed", r.Stderr, "ipcguard: failed to remove 1 (shm ")
		e.removeObjects(objs)
	})
}

// TestLowFileLimit: with too few descriptors allowed, one line and 125
// before the command runs, never a Go stack trace or a misleading 126.
func TestLowFileLimit(t *testing.T) {
	inBothModes(t, func(t *testing.T, _ nstest.Mode) {
		e := newEnv(t, "low limits")
		marker := e.path("ran")
		for _, n := range []string{"6", "10", "19"} {
			p := e.guard("--", "touch", marker)
			p.cmd.Path = "/bin/sh"
			p.cmd.Args = append([]string{"sh", "-c", `ulimit -n "$0" && exec "$@"`, n}, p.cmd.Args...)
			r := p.run()
			e.wantNotRun("ulimit -n "+n, r, marker)
			if !strings.Contains(r.Stderr, "open files") {
				e.errorf("ulimit -n %s: %q does not say why", n, r.Stderr)
			}
		}
		p := e.guard("--", "touch", marker)
		p.cmd.Path = "/bin/sh"
		p.cmd.Args = append([]string{"sh", "-c", `ulimit -n 64 && exec "$@"`, "sh"}, p.cmd.Args...)
		e.wantExit(p.run(), 0)
		if !exists(marker) {
			e.errorf("ulimit -n 64: the command did not run")
		}
	})
}
