package main_test

// End-to-end tests of POSIX IPC: scenario 32 and what real programs leave
// in /dev/shm (Python's multiprocessing.shared_memory, PostgreSQL's dynamic
// shared memory). They are written against the command line ipcguard gets
// once it reads POSIX objects:
//
//   - --types takes pshm, psem and pmsg (util-linux's names) besides shm,
//     sem and msg; the default includes all six;
//   - --keep-name PATTERN (repeatable) keeps POSIX objects whose name, as
//     the directory lists it ("PostgreSQL.*", "sem.foo", a queue "q"),
//     matches the shell pattern;
//   - the report lists a POSIX object with "type" pshm, psem or pmsg, its
//     "name" as listed, and "action" removed, kept or would-remove.
//
// Until then `ipcguard --types pshm` is a usage error, and requirePosixKinds,
// the one place that skips them for that, turns them on by itself.
//
// Each body runs as root in private IPC, pid and mount namespaces with its
// own /dev/shm and /dev/mqueue (nstest.IsolateMounts). Mode "root" runs
// ipcguard as root; mode "unprivileged" runs ipcguard and its command as
// nobody, started by the root body. The body does not run as nobody itself:
// without root the only evidence for a POSIX object is a window in which no
// process of the run's uid outside the tree ran, and a test body of that
// uid (its runtime, its polling) would contend every window it waits in.

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ipcguard/ipcguard/internal/nstest"
)

// px is the context of one POSIX test body.
type px struct {
	*env
	mode nstest.Mode
	uid  int                 // the uid ipcguard and its command run as
	cred *syscall.Credential // nil: root
}

// posixModes runs body in both modes (see above), in parallel subtests.
func posixModes(t *testing.T, scenario string, body func(p *px)) {
	t.Helper()
	for _, mode := range []nstest.Mode{nstest.Root, nstest.Unprivileged} {
		t.Run(mode.String(), func(t *testing.T) {
			t.Parallel()
			if !nstest.IsolateMounts(t, nstest.Root) {
				return
			}
			body(newPx(t, scenario, mode))
		})
	}
}

// rootOnly runs body in mode root only.
func rootOnly(t *testing.T, scenario string, body func(p *px)) {
	t.Helper()
	if !nstest.IsolateMounts(t, nstest.Root) {
		return
	}
	body(newPx(t, scenario, nstest.Root))
}

func newPx(t *testing.T, scenario string, mode nstest.Mode) *px {
	t.Helper()
	p := &px{env: newEnv(t, scenario+" ("+mode.String()+")"), mode: mode}
	if mode == nstest.Unprivileged {
		if os.Geteuid() != 0 || !inInitUserNS() {
			nstest.Require(t, "%s: ipcguard as nobody under a root test body needs real root", p.sc)
		}
		p.uid = nstest.NobodyUID
		p.cred = &syscall.Credential{Uid: nstest.NobodyUID, Gid: nstest.NobodyUID, Groups: []uint32{}}
	}
	// A directory of the run's uid for its state, reports and records.
	dir, err := os.MkdirTemp("", "ipcguard-e2e-posix-")
	if err != nil {
		p.fatalf("%v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		p.fatalf("%v", err)
	}
	if err := os.Chown(dir, p.uid, p.uid); err != nil {
		p.fatalf("%v", err)
	}
	p.dir, p.state = dir, filepath.Join(dir, "state")
	requirePosixKinds(p)
	return p
}

// requirePosixKinds skips the test while ipcguard does not know the POSIX
// kinds (--types pshm is a usage error, exit 125). It is the only such
// guard of these tests.
func requirePosixKinds(p *px) {
	p.t.Helper()
	r := p.guard("--types", "pshm", "--", "true").run()
	switch {
	case r.Signal == 0 && r.Code == 125:
		p.t.Skipf("POSIX kinds not wired yet: ipcguard --types pshm: %s", strings.TrimSpace(r.Stderr))
	case r.Signal != 0 || r.Code != 0:
		p.fatalf("ipcguard --types pshm -- true: %v", r)
	}
}

// guard prepares ipcguard run as the mode's uid.
func (p *px) guard(args ...string) *guardProc {
	p.t.Helper()
	g := p.env.guard(args...)
	if p.cred != nil {
		g.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: p.cred}
	}
	return g
}

// ipc prepares ipcguard running the ipc helper's steps as its command.
func (p *px) ipc(args []string, steps ...string) *guardProc {
	p.t.Helper()
	return p.guard(append(append(args, "--", nstest.Binary()), steps...)...).withEnv(nstest.HelperEnv("ipc"))
}

// sh prepares ipcguard running a shell script (with shPrelude's ipc and
// waitfile) with args as $0...
func (p *px) sh(args []string, script string, shArgs ...string) *guardProc {
	p.t.Helper()
	return p.guard(append(append(args, "--", "sh", "-c", shPrelude()+script), shArgs...)...)
}

// outsider prepares the ipc helper run outside ipcguard as the run's uid.
func (p *px) outsider(steps ...string) *exec.Cmd {
	cmd := nstest.IPCCmd(steps...)
	if p.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: p.cred}
	}
	return cmd
}

// outside runs the ipc helper outside ipcguard to its end.
func (p *px) outside(steps ...string) {
	p.t.Helper()
	if out, err := p.outsider(steps...).CombinedOutput(); err != nil {
		p.fatalf("ipc helper %q outside ipcguard: %v: %s", steps, err, out)
	}
}

// startOutsider starts the ipc helper outside ipcguard and waits until it
// has written its pid to a ready file (its steps must end with
// "ready=PATH", "wait" where PATH is ready); it is killed when the test ends.
func (p *px) startOutsider(ready string, steps ...string) int {
	p.t.Helper()
	cmd := p.outsider(steps...)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		p.fatalf("starting %q: %v", steps, err)
	}
	p.t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return p.waitPidFile(ready)
}

// ---- what is there -----------------------------------------------------------

// posixNames lists the POSIX objects of the body's namespaces as "pshm
// NAME", "psem sem.NAME" and "pmsg NAME" (regular files only).
func (p *px) posixNames() map[string]bool {
	p.t.Helper()
	m := map[string]bool{}
	for _, dir := range []string{nstest.ShmDir, nstest.MqueueDir} {
		ents, err := os.ReadDir(dir)
		if err != nil {
			p.fatalf("%v", err)
		}
		for _, ent := range ents {
			if !ent.Type().IsRegular() {
				continue
			}
			typ := "pmsg"
			if dir == nstest.ShmDir {
				typ = "pshm"
				if strings.HasPrefix(ent.Name(), "sem.") {
					typ = "psem"
				}
			}
			m[typ+" "+ent.Name()] = true
		}
	}
	return m
}

func (p *px) wantPosixGone(what string, objs []string) {
	p.t.Helper()
	now := p.posixNames()
	for _, o := range objs {
		if now[o] {
			p.errorf("%s: %s was not removed", what, o)
		}
	}
}

func (p *px) wantPosixKept(what string, objs []string) {
	p.t.Helper()
	now := p.posixNames()
	for _, o := range objs {
		if !now[o] {
			p.errorf("%s: %s was removed, want it kept", what, o)
		}
	}
}

// inode is the inode number of a file of the shm directory (0: none).
func inode(path string) uint64 {
	var st syscall.Stat_t
	if syscall.Lstat(path, &st) != nil {
		return 0
	}
	return st.Ino
}

// ---- the report ----------------------------------------------------------------

// posixObj is a POSIX object of the report.
type posixObj struct {
	Type     string   `json:"type"`
	Name     string   `json:"name"`
	Action   string   `json:"action"`
	Strength string   `json:"strength"`
	Evidence []string `json:"evidence"`
	Reason   string   `json:"reason"`
}

func (o posixObj) ref() string { return o.Type + " " + o.Name }

// posixReport reads the report at path: the whole of it, and its POSIX
// objects by "TYPE NAME".
func (p *px) posixReport(path string) (*report, map[string]posixObj) {
	p.t.Helper()
	rp := p.readReport(path)
	b, _ := os.ReadFile(path)
	var raw struct {
		Objects []posixObj `json:"objects"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		p.fatalf("report: %v", err)
	}
	m := map[string]posixObj{}
	for _, o := range raw.Objects {
		if o.Type == "pshm" || o.Type == "psem" || o.Type == "pmsg" {
			m[o.ref()] = o
		}
	}
	return rp, m
}

// wantActions checks the report's action of each object, and for removals
// the strength the mode gives: creation seen as root (the watch of the shm
// directory and the mqueue instance), window evidence otherwise.
func (p *px) wantActions(objs map[string]posixObj, action string, refs ...string) {
	p.t.Helper()
	for _, ref := range refs {
		o, ok := objs[ref]
		switch {
		case !ok:
			p.errorf("the report does not list %s (it lists %v)", ref, keys(objs))
		case o.Action != action:
			p.errorf("report: %s action %q (strength %q, reason %q), want %s", ref, o.Action, o.Strength, o.Reason, action)
		case action == "removed" && p.mode == nstest.Root && o.Strength != "creation seen":
			p.errorf("report: %s removed on %q, want creation seen (root watches creations)", ref, o.Strength)
		case action == "removed" && p.mode == nstest.Unprivileged && o.Strength != "window evidence":
			p.errorf("report: %s removed on %q, want window evidence", ref, o.Strength)
		case action == "kept" && o.Reason == "":
			p.errorf("report: %s kept without a reason", ref)
		}
	}
}

// notRemoved checks that the report, if it lists them, removes none of refs.
func (p *px) notRemoved(objs map[string]posixObj, refs ...string) {
	p.t.Helper()
	for _, ref := range refs {
		if o, ok := objs[ref]; ok && o.Action != "kept" {
			p.errorf("report: %s has action %q, want kept or not listed", ref, o.Action)
		}
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// ---- scenario 32 ---------------------------------------------------------------

// TestScenario32PosixFailingCommand: a failing command's shm object, named
// semaphore and queue are removed; ones that existed before (which the
// command used) are kept; a succeeding run's are kept.
func TestScenario32PosixFailingCommand(t *testing.T) {
	posixModes(t, "scenario 32", func(p *px) {
		p.outside("pshm:name=px-pre", "psem:name=px-pre", "pmsg:name=px-pre:send")
		pre := []string{"pshm px-pre", "psem sem.px-pre", "pmsg px-pre"}
		made, rep := p.path("made"), p.path("fail.json")
		r := p.ipc([]string{"--report", rep},
			"pshm:name=px-pre:open:map", "psem:name=px-pre:open", "pmsg:name=px-pre:open",
			"out="+made, "pshm:name=px-a:size=65536:map", "psem:name=px-s", "pmsg:name=px-q:send", "exit=3").run()
		p.wantExit(r, 3)
		objs := lines(string(mustRead(p.env, made)))
		if want := []string{"pshm px-a", "psem sem.px-s", "pmsg px-q"}; strings.Join(objs, ",") != strings.Join(want, ",") {
			p.fatalf("the command recorded %q, want %q", objs, want)
		}
		p.wantPosixGone("failing command", objs)
		p.wantPosixKept("objects that existed before the run", pre)
		_, ro := p.posixReport(rep)
		p.wantActions(ro, "removed", objs...)
		p.notRemoved(ro, pre...)
		p.summaryLine("failing command", r.Stderr, "ipcguard: removed 3 ")

		made, rep = p.path("made-ok"), p.path("ok.json")
		r = p.ipc([]string{"--report", rep}, "out="+made, "pshm:name=px-b", "psem:name=px-t", "pmsg:name=px-r", "exit=0").run()
		p.wantExit(r, 0)
		objs = lines(string(mustRead(p.env, made)))
		p.wantPosixKept("succeeding command, --on failure", objs)
		p.wantPosixKept("objects that existed before the run", pre)
	})
}

// TestScenario32PosixOutsiderHolds: objects of a failing command that a
// process outside the tree holds open or maps when the command ends are
// kept, and the report names that process. As nobody, that process of the
// run's uid also ran during the run: the window is contended, and the
// object nobody holds is kept too (it could be that process's).
func TestScenario32PosixOutsiderHolds(t *testing.T) {
	posixModes(t, "scenario 32, outsider holds", func(p *px) {
		made, ready, held, rep := p.path("made"), p.path("ready"), p.path("held"), p.path("r.json")
		g := p.ipc([]string{"--report", rep}, "out="+made,
			"pshm:name=px-fd", "pshm:name=px-map", "psem:name=px-sem", "pmsg:name=px-q", "pshm:name=px-free",
			"ready="+ready, "await="+held, "exit=1").start()
		p.waitPidFile(ready)
		opid := p.startOutsider(held, "pshm:name=px-fd:open:hold", "pshm:name=px-map:open:map",
			"psem:name=px-sem:open", "pmsg:name=px-q:open", "ready="+held, "wait")
		r := g.wait()
		p.wantExit(r, 1)
		heldObjs := []string{"pshm px-fd", "pshm px-map", "psem sem.px-sem", "pmsg px-q"}
		p.wantPosixKept("objects an outside process holds", heldObjs)
		rp, ro := p.posixReport(rep)
		p.wantActions(ro, "kept", heldObjs...)
		pid := regexp.MustCompile(`\b` + strconv.Itoa(opid) + `\b`)
		for _, ref := range heldObjs {
			if o := ro[ref]; p.mode == nstest.Root && !pid.MatchString(o.Reason+" "+strings.Join(o.Evidence, " ")) {
				p.errorf("report: %s kept for %q, which does not name the outside pid %d", ref, o.Reason, opid)
			}
		}
		if p.mode == nstest.Root {
			p.wantPosixGone("an object nobody outside holds", []string{"pshm px-free"})
			p.wantActions(ro, "removed", "pshm px-free")
		} else {
			p.wantPosixKept("an object nobody outside holds, window contended", []string{"pshm px-free"})
			p.wantActions(ro, "kept", "pshm px-free")
			if !rp.Window.Contended {
				p.errorf("report: window not contended although process %d of the run's uid ran during it", opid)
			}
		}
	})
}

// TestScenario32PosixNamesAreKeys: a name that existed before the run and
// that the failing command made again (unlink, create) is kept, as a
// process may open it again by name.
func TestScenario32PosixNamesAreKeys(t *testing.T) {
	posixModes(t, "scenario 32, names are keys", func(p *px) {
		p.outside("pshm:name=px-n", "psem:name=px-n", "pmsg:name=px-n")
		before := inode(nstest.ShmDir + "/px-n")
		rep := p.path("r.json")
		r := p.ipc([]string{"--report", rep},
			"pshm:name=px-n:unlink", "psem:name=px-n:unlink", "pmsg:name=px-n:unlink",
			"pshm:name=px-n", "psem:name=px-n", "pmsg:name=px-n", "pshm:name=px-own", "exit=1").run()
		p.wantExit(r, 1)
		again := []string{"pshm px-n", "psem sem.px-n", "pmsg px-n"}
		if inode(nstest.ShmDir+"/px-n") == before {
			p.fatalf("px-n was not made again")
		}
		p.wantPosixKept("names that existed before, made again", again)
		p.wantPosixGone("a name of the run alone", []string{"pshm px-own"})
		_, ro := p.posixReport(rep)
		p.wantActions(ro, "kept", again...)
		p.wantActions(ro, "removed", "pshm px-own")
	})
}

// TestPosixKeepName: --keep-name keeps objects whose listed name matches a
// shell pattern, whatever their type.
func TestPosixKeepName(t *testing.T) {
	posixModes(t, "--keep-name", func(p *px) {
		rep := p.path("r.json")
		r := p.ipc([]string{"--keep-name", "PostgreSQL.*", "--keep-name", "sem.px-keep", "--keep-name", "q-*", "--report", rep},
			"pshm:name=PostgreSQL.1804289383", "psem:name=px-keep", "pmsg:name=q-keep",
			"pshm:name=px-go", "psem:name=px-go", "pmsg:name=px-go", "exit=1").run()
		p.wantExit(r, 1)
		keep := []string{"pshm PostgreSQL.1804289383", "psem sem.px-keep", "pmsg q-keep"}
		gone := []string{"pshm px-go", "psem sem.px-go", "pmsg px-go"}
		p.wantPosixKept("--keep-name", keep)
		p.wantPosixGone("names no pattern matches", gone)
		_, ro := p.posixReport(rep)
		p.wantActions(ro, "kept", keep...)
		p.wantActions(ro, "removed", gone...)
		for _, ref := range keep {
			if o := ro[ref]; !strings.Contains(o.Reason, "keep-name") {
				p.errorf("report: %s kept for %q, want it to name --keep-name", ref, o.Reason)
			}
		}
	})
}

// TestPosixTypes: --types shm,sem,msg reads and removes System V objects
// only; --types pshm only POSIX shared memory.
func TestPosixTypes(t *testing.T) {
	posixModes(t, "--types and POSIX kinds", func(p *px) {
		sysv := p.path("sysv")
		r := p.ipc([]string{"--types", "shm,sem,msg"}, "out="+sysv, "shm",
			"pshm:name=px-t1", "psem:name=px-t1", "pmsg:name=px-t1", "exit=1").run()
		p.wantExit(r, 1)
		p.wantGone("--types shm,sem,msg: the segment", p.sysvIDs(sysv))
		p.wantPosixKept("--types shm,sem,msg", []string{"pshm px-t1", "psem sem.px-t1", "pmsg px-t1"})

		// Names of its own for each type: a name is a family across the
		// POSIX types (shm_open and sem_open of "/app" pair), and an
		// object of a type not read keeps the others of its name.
		sysv = p.path("sysv-2")
		r = p.ipc([]string{"--types", "pshm"}, "out="+sysv, "shm",
			"pshm:name=px-t2", "psem:name=px-t2s", "pmsg:name=px-t2q", "pshm:name=px-t3", "psem:name=px-t3", "exit=1").run()
		p.wantExit(r, 1)
		p.wantKept("--types pshm: the segment", p.sysvIDs(sysv))
		p.wantPosixGone("--types pshm", []string{"pshm px-t2"})
		p.wantPosixKept("--types pshm", []string{"psem sem.px-t2s", "pmsg px-t2q"})
		p.wantPosixKept("--types pshm, a name a semaphore not read shares", []string{"pshm px-t3", "psem sem.px-t3"})

		r = p.guard("--types", "pshm,psem,pmsg,shm,sem,msg", "--", "true").run()
		p.wantExit(r, 0)
		r = p.guard("--types", "pshm,posix", "--", "true").run()
		p.wantExit(r, 125)
	})
}

// sysvIDs reads the System V objects the command recorded ("shm ID", ...):
// the out= file lists its POSIX objects too ("pshm NAME", ...), which are
// no ids of /proc/sysvipc. It fails when there is none.
func (p *px) sysvIDs(path string) []string {
	p.t.Helper()
	var ids []string
	for _, l := range p.readIDs(path) {
		switch typ, _, _ := strings.Cut(l, " "); typ {
		case "shm", "sem", "msg":
			ids = append(ids, l)
		}
	}
	if len(ids) == 0 {
		p.fatalf("the command recorded no System V object in %s", path)
	}
	return ids
}

// TestPosixDryRun: --dry-run removes nothing and reports what a real run
// would remove.
func TestPosixDryRun(t *testing.T) {
	posixModes(t, "--dry-run, POSIX", func(p *px) {
		rep := p.path("r.json")
		r := p.ipc([]string{"--dry-run", "--report", rep}, "pshm:name=px-d", "psem:name=px-d", "pmsg:name=px-d", "exit=1").run()
		p.wantExit(r, 1)
		objs := []string{"pshm px-d", "psem sem.px-d", "pmsg px-d"}
		p.wantPosixKept("--dry-run", objs)
		rp, ro := p.posixReport(rep)
		if !rp.Policy.DryRun {
			p.errorf("report: policy.dry_run false")
		}
		for _, ref := range objs {
			if o, ok := ro[ref]; !ok || o.Action != "would-remove" {
				p.errorf("report: %s: %+v, want would-remove", ref, o)
			}
		}
	})
}

// ---- real programs ---------------------------------------------------------------

// pythonShm is a multiprocessing program whose worker creates shared
// memory, hands it over as programs that share segments between unrelated
// processes do (unregistering it from the resource tracker, which would
// otherwise unlink it when the program ends), and crashes.
const pythonShm = `
import multiprocessing as mp, sys
from multiprocessing import shared_memory, resource_tracker

def worker(name):
    shm = shared_memory.SharedMemory(name=name, create=True, size=1 << 20)
    shm.buf[:5] = b"hello"
    resource_tracker.unregister(shm._name, "shared_memory")
    raise RuntimeError("worker crashed")

if __name__ == "__main__":
    mp.set_start_method("fork")
    w = mp.Process(target=worker, args=(sys.argv[1],))
    w.start()
    w.join()
    sys.exit(1 if w.exitcode else 0)
`

// python3 finds a python3 that the run's uid can execute (/root may hold a
// private one).
func (p *px) python3() string {
	p.t.Helper()
	var cands []string
	if pth, err := exec.LookPath("python3"); err == nil {
		cands = append(cands, pth)
	}
	cands = append(cands, "/usr/bin/python3", "/usr/local/bin/python3")
	for _, c := range cands {
		cmd := exec.Command(c, "-c", "import multiprocessing.shared_memory")
		cmd.Dir = p.dir
		if p.cred != nil {
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: p.cred}
		}
		if cmd.Run() == nil {
			return c
		}
	}
	nstest.Require(p.t, "%s: no python3 with multiprocessing.shared_memory that uid %d can run", p.sc, p.uid)
	return ""
}

// TestPosixPythonSharedMemory: the segment of a crashed multiprocessing
// worker is removed.
func TestPosixPythonSharedMemory(t *testing.T) {
	posixModes(t, "Python shared_memory", func(p *px) {
		py := p.python3()
		script := p.path("leak.py")
		if err := os.WriteFile(script, []byte(pythonShm), 0o644); err != nil {
			p.fatalf("%v", err)
		}
		rep := p.path("r.json")
		g := p.guard("--report", rep, "--", py, script, "px_py_seg")
		g.cmd.Dir = p.dir
		r := g.run()
		p.wantExit(r, 1)
		if !strings.Contains(r.Stderr, "worker crashed") {
			p.errorf("the worker did not crash as planned: %v", r)
		}
		p.wantPosixGone("the crashed worker's segment", []string{"pshm px_py_seg"})
		_, ro := p.posixReport(rep)
		p.wantActions(ro, "removed", "pshm px_py_seg")
	})
}

// pgPosixStart starts PostgreSQL 15 with POSIX dynamic shared memory (its
// /dev/shm/PostgreSQL.N files; the main area is an anonymous mapping)
// under ipcguard and waits until it is ready. asPostgres runs ipcguard
// itself as the postgres user; otherwise ipcguard runs as root and the
// command drops to postgres (setpriv).
func pgPosixStart(c *pgCluster, report string, stale int, asPostgres bool) *guardProc {
	c.e.t.Helper()
	pg := []string{filepath.Join(pgBin, "postgres"), "-D", c.data, "-k", c.sock, "-p", c.port,
		"-c", "listen_addresses=", "-c", "shared_memory_type=mmap", "-c", "dynamic_shared_memory_type=posix",
		"-c", "shared_buffers=16MB", "-c", "fsync=off"}
	args := []string{"--report", filepath.Join(c.out, report), "--"}
	if !asPostgres {
		setpriv, err := exec.LookPath("setpriv")
		if err != nil {
			nstest.Require(c.e.t, "%s: no setpriv (util-linux) to drop to postgres in the command", c.e.sc)
		}
		args = append(args, setpriv, "--reuid", strconv.Itoa(int(c.cred.Uid)), "--regid", strconv.Itoa(int(c.cred.Gid)),
			"--clear-groups", "--")
	}
	g := c.e.guard(append(args, pg...)...)
	g.cmd.Dir = c.base
	g.cmd.Env = append(g.cmd.Env, "HOME="+c.base)
	if asPostgres {
		g.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred}
	}
	g.start()
	c.waitReady(g, stale)
	return g
}

// pgSegments lists /dev/shm/PostgreSQL.*.
func pgSegments(p *px) []string {
	var out []string
	for n := range p.posixNames() {
		if strings.HasPrefix(n, "pshm PostgreSQL.") {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}

// TestPosixPostgresKilled: PostgreSQL killed with SIGKILL under ipcguard
// leaves its dynamic shared memory in /dev/shm: ipcguard removes it, and
// postgres starts again. Both ways of running it as the postgres user:
// ipcguard as postgres (window evidence), and ipcguard as root with the
// command dropping to postgres (creation seen; the owner is not the run's
// uid, so no window evidence).
func TestPosixPostgresKilled(t *testing.T) {
	slow(t, "PostgreSQL with POSIX shared memory")
	for _, how := range []string{"ipcguard-as-postgres", "command-drops-to-postgres"} {
		t.Run(how, func(t *testing.T) {
			rootOnly(t, "PostgreSQL, POSIX shared memory, "+how, func(p *px) {
				asPostgres := how == "ipcguard-as-postgres"
				c := newPgCluster(p.env)
				if !asPostgres {
					// ipcguard as root wants a state directory of root's.
					p.state = filepath.Join(p.dir, "state")
				}
				g := pgPosixStart(c, "killed.json", 0, asPostgres)
				segs := pgSegments(p)
				if len(segs) == 0 {
					p.fatalf("no /dev/shm/PostgreSQL.* while postgres runs: %v", keys(p.posixNames()))
				}
				pm := c.postmaster()
				backends := childrenOf(pm)
				if err := syscall.Kill(pm, syscall.SIGKILL); err != nil {
					p.fatalf("kill -KILL postmaster: %v", err)
				}
				r := g.wait()
				if r.Signal != syscall.SIGKILL {
					p.errorf("ipcguard: %v, want killed by SIGKILL like its command", r)
				}
				for _, b := range backends {
					if alive(b) {
						p.errorf("backend %d still runs after ipcguard exited", b)
						syscall.Kill(b, syscall.SIGKILL)
					}
				}
				p.wantPosixGone("postgres killed", segs)
				_, ro := p.posixReport(filepath.Join(c.out, "killed.json"))
				if asPostgres {
					p.mode = nstest.Unprivileged // the strength expected
				}
				p.wantActions(ro, "removed", segs...)
				p.mode = nstest.Root

				g = pgPosixStart(c, "restarted.json", pm, asPostgres)
				if len(pgSegments(p)) == 0 {
					p.fatalf("restarted postgres has no /dev/shm/PostgreSQL.*")
				}
				if err := syscall.Kill(g.pid(), syscall.SIGINT); err != nil {
					p.fatalf("kill -INT ipcguard: %v", err)
				}
				p.wantExit(g.wait(), 0)
				if left := pgSegments(p); len(left) != 0 {
					p.errorf("left after a clean shutdown: %v", left)
				}
			})
		})
	}
}

// ---- hostile ---------------------------------------------------------------------

// TestPosixOutsiderCreatesDuringRun: a process of the run's uid outside
// the tree that creates an object during the run and closes it: its object
// is kept. As root the creation seen names it; as nobody nothing does, and
// the window is contended because that process ran, so the command's own
// object is kept too.
func TestPosixOutsiderCreatesDuringRun(t *testing.T) {
	posixModes(t, "outsider of the uid creates during the run", func(p *px) {
		ready, goOn, rep := p.path("ready"), p.path("go-on"), p.path("r.json")
		g := p.ipc([]string{"--report", rep}, "pshm:name=px-mine", "ready="+ready, "await="+goOn, "exit=1").start()
		p.waitPidFile(ready)
		p.outside("pshm:name=px-stranger", "psem:name=px-stranger", "pmsg:name=px-stranger")
		if err := os.WriteFile(goOn, nil, 0o644); err != nil {
			p.fatalf("%v", err)
		}
		r := g.wait()
		p.wantExit(r, 1)
		stranger := []string{"pshm px-stranger", "psem sem.px-stranger", "pmsg px-stranger"}
		p.wantPosixKept("objects a process outside the tree made during the run", stranger)
		rp, ro := p.posixReport(rep)
		p.wantActions(ro, "kept", stranger...)
		if p.mode == nstest.Root {
			p.wantPosixGone("the command's object, creation seen", []string{"pshm px-mine"})
		} else {
			p.wantPosixKept("the command's object, window contended", []string{"pshm px-mine"})
			p.wantActions(ro, "kept", "pshm px-mine")
			if !rp.Window.Contended {
				p.errorf("report: window not contended although a process of the run's uid ran and created objects")
			}
		}
	})
}

// TestPosixSymlinks: symlinks in /dev/shm are never objects: neither one
// planted before the run pointing at a file outside, nor one the failing
// command makes; their targets and the links stay.
func TestPosixSymlinks(t *testing.T) {
	posixModes(t, "symlinks in /dev/shm", func(p *px) {
		victims := map[string]string{}
		for _, v := range []string{"planted", "planted-sem", "made"} {
			path := p.path("victim-" + v)
			if err := os.WriteFile(path, []byte("precious "+v), 0o644); err != nil {
				p.fatalf("%v", err)
			}
			os.Chown(path, p.uid, p.uid)
			victims[v] = path
		}
		links := map[string]string{
			nstest.ShmDir + "/px-link":     victims["planted"],
			nstest.ShmDir + "/sem.px-link": victims["planted-sem"],
		}
		for l, target := range links {
			if err := os.Symlink(target, l); err != nil {
				p.fatalf("%v", err)
			}
		}
		made := nstest.ShmDir + "/px-made-link"
		links[made] = victims["made"]
		rep := p.path("r.json")
		r := p.sh([]string{"--report", rep}, `ipc pshm:name=px-real && ln -s "$0" "$1" && exit 1`, victims["made"], made).run()
		p.wantExit(r, 1)
		p.wantPosixGone("the command's object", []string{"pshm px-real"})
		for l, target := range links {
			if got, err := os.Readlink(l); err != nil || got != target {
				p.errorf("symlink %s: %q, %v; want it left pointing at %s", l, got, err, target)
			}
		}
		for v, path := range victims {
			if b, err := os.ReadFile(path); err != nil || string(b) != "precious "+v {
				p.errorf("%s: %q, %v; want it untouched", path, b, err)
			}
		}
		_, ro := p.posixReport(rep)
		for ref, o := range ro {
			if strings.Contains(o.Name, "link") {
				p.errorf("report lists a symlink as an object: %s %+v", ref, o)
			}
		}
	})
}

// TestPosixReplacedBeforeSweep: ipcguard is killed while its command holds
// three objects; one of them is replaced (another inode under the name) by
// a process outside before the sweep. The sweep keeps the replacement: as
// root the journal holds the creation the run's watcher saw, and the
// replacement was born after it. It keeps the other two as well: as
// nobody there is no creation seen (a sweep never uses window evidence),
// and as root the creator's pid cannot be proven the tree's after the
// supervisor died, since in a pid namespace other than the initial one
// nobody watched who got the number since (docs/evidence.md, "After the
// supervisor died").
func TestPosixReplacedBeforeSweep(t *testing.T) {
	posixModes(t, "replaced between the run and the sweep", func(p *px) {
		ready := p.path("ready")
		g := p.ipc(nil, "pshm:name=px-r1", "pshm:name=px-r2", "psem:name=px-r3", "ready="+ready, "wait").start()
		pid := p.waitPidFile(ready)
		p.killOnCleanup(pid)
		syscall.Kill(g.pid(), syscall.SIGKILL)
		g.wait()
		syscall.Kill(pid, syscall.SIGKILL)
		p.reap(pid)

		old := inode(nstest.ShmDir + "/px-r1")
		p.outside("pshm:name=px-r1:unlink", "pshm:name=px-r1:size=8192")
		if inode(nstest.ShmDir+"/px-r1") == old {
			p.fatalf("px-r1 was not replaced")
		}
		rep := p.path("sweep.json")
		r := p.guard("sweep", "--report", rep).run()
		p.wantExit(r, 0)
		p.wantPosixKept("replaced after the run", []string{"pshm px-r1"})
		if fi, err := os.Stat(nstest.ShmDir + "/px-r1"); err != nil || fi.Size() != 8192 {
			p.errorf("the replacement: %v %v", fi, err)
		}
		p.wantPosixKept("sweep", []string{"pshm px-r2", "psem sem.px-r3"})
		if p.mode != nstest.Root {
			return
		}
		var runs []struct {
			Run struct {
				Objects []posixObj `json:"objects"`
			} `json:"run"`
		}
		if err := json.Unmarshal(mustRead(p.env, rep), &runs); err != nil || len(runs) != 1 {
			p.fatalf("the sweep's report: %d runs, %v", len(runs), err)
		}
		ro := map[string]posixObj{}
		for _, o := range runs[0].Run.Objects {
			ro[o.ref()] = o
		}
		if o := ro["pshm px-r1"]; !strings.Contains(o.Reason, "after the last creation of its name") {
			p.errorf("the replacement: reason %q, want the journal's creation record to date it", o.Reason)
		}
		for _, ref := range []string{"pshm px-r2", "psem sem.px-r3"} {
			if o := ro[ref]; !strings.Contains(o.Reason, "creator: pid") {
				p.errorf("%s: reason %q, want the creator's pid (recorded by the watcher) to be what is unproven", ref, o.Reason)
			}
		}
	})
}

// mustRead reads a file the command wrote.
func mustRead(e *env, path string) []byte {
	e.t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		e.fatalf("%v", err)
	}
	return b
}

// reap waits for pid, a descendant left by a killed ipcguard: the body is
// pid 1 of its namespace, so such an orphan is its child and stays a
// zombie until it waits for it.
func (p *px) reap(pid int) {
	p.t.Helper()
	var ws syscall.WaitStatus
	if _, err := syscall.Wait4(pid, &ws, 0, nil); err != nil && err != syscall.ECHILD {
		p.fatalf("wait4(%d): %v", pid, err)
	}
}

// TestPosixLsRm: `ipcguard ls` lists POSIX objects with their name, owner,
// mode, size and the processes that hold or map them; `ls --orphans`
// judges them (nobody uses them, and only their age can speak: an orphan
// only with --older-than); `rm pshm:NAME` removes one by name, refusing
// one in use without --force; `rm --orphans` never touches one in use.
func TestPosixLsRm(t *testing.T) {
	posixModes(t, "ls and rm of POSIX objects", func(p *px) {
		p.outside("pshm:name=px-idle:size=65536", "psem:name=px-idle", "pmsg:name=px-idle", "pshm:name=px-byname")
		ready := p.path("ready")
		holder := p.startOutsider(ready, "pshm:name=px-held:map:hold", "ready="+ready, "wait")

		r := p.guard("ls", "--json").run()
		p.wantExit(r, 0)
		var listed []struct {
			Type     string `json:"type"`
			Name     string `json:"name"`
			Size     uint64 `json:"size"`
			Attached []struct {
				Pid int `json:"pid"`
			} `json:"attached_by"`
		}
		if err := json.Unmarshal([]byte(r.Stdout), &listed); err != nil {
			p.fatalf("ls --json: %v: %s", err, r.Stdout)
		}
		seen := map[string]bool{}
		for _, o := range listed {
			ref := o.Type + " " + o.Name
			seen[ref] = true
			if ref == "pshm px-idle" && o.Size != 65536 {
				p.errorf("ls: %s size %d, want 65536", ref, o.Size)
			}
			if ref == "pshm px-held" && (len(o.Attached) != 1 || o.Attached[0].Pid != holder) {
				p.errorf("ls: %s used by %+v, want the holder %d", ref, o.Attached, holder)
			}
		}
		for _, ref := range []string{"pshm px-idle", "psem sem.px-idle", "pmsg px-idle", "pshm px-held"} {
			if !seen[ref] {
				p.errorf("ls does not list %s: %s", ref, r.Stdout)
			}
		}

		// By name: the object in use is refused, the idle one removed.
		r = p.guard("rm", "pshm:px-held").run()
		p.wantExit(r, 1)
		p.wantPosixKept("rm of an object in use", []string{"pshm px-held"})
		r = p.guard("rm", "pshm:px-byname").run()
		p.wantExit(r, 0)
		if !strings.Contains(r.Stdout, "pshm px-byname: removed") {
			p.errorf("rm pshm:px-byname: %s", r)
		}
		p.wantPosixGone("rm by name", []string{"pshm px-byname"})

		// Orphans: only with an age, and never the one in use. Reading a
		// queue's status (every ls and rm reads it) stamps its ctime
		// (ipc/mqueue.c): the queue is quiet again OrphanQuiet after the
		// last reading.
		r = p.guard("rm", "--orphans").run()
		p.wantExit(r, 0)
		p.wantPosixKept("rm --orphans without --older-than", []string{"pshm px-idle", "psem sem.px-idle", "pmsg px-idle"})
		time.Sleep(3500 * time.Millisecond) // ipcdiff.OrphanQuiet
		r = p.guard("rm", "--orphans", "--older-than", "1s").run()
		p.wantExit(r, 0)
		p.wantPosixGone("rm --orphans --older-than 1s", []string{"pshm px-idle", "psem sem.px-idle", "pmsg px-idle"})
		p.wantPosixKept("rm --orphans, in use", []string{"pshm px-held"})
	})
}
