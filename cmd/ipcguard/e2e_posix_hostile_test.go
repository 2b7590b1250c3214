package main_test

// Hostile users against the POSIX rules (docs/evidence.md, "POSIX
// objects"): each test is an attack that must not make ipcguard remove an
// object the failing command's tree did not make (the worst bug), nor, where
// the evidence is there, leave one it made. Both modes where meaningful (see
// e2e_posix_test.go): root decides on the creation seen, nobody on window
// evidence.

import (
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"unsafe"

	"github.com/ipcguard/ipcguard/internal/nstest"
	"golang.org/x/sys/unix"
)

// TestPosixHostileIdleOutsider: a process of the run's uid that started
// before the run (so the pid watch does not see it) wakes during the run,
// makes an object of each kind and closes them, and keeps running. Its
// objects are kept; as nobody the window is contended (it ran), so the
// command's own object is kept too.
func TestPosixHostileIdleOutsider(t *testing.T) {
	posixModes(t, "an outsider of the uid, started before the run, creates during it", func(p *px) {
		oready, ogo, odone := p.path("o-ready"), p.path("o-go"), p.path("o-done")
		p.startOutsider(oready, "ready="+oready, "await="+ogo,
			"pshm:name=px-idle", "psem:name=px-idle", "pmsg:name=px-idle", "ready="+odone, "wait")
		ready, goOn, rep := p.path("ready"), p.path("go-on"), p.path("r.json")
		g := p.ipc([]string{"--report", rep}, "pshm:name=px-cmd", "ready="+ready, "await="+goOn, "exit=1").start()
		p.waitPidFile(ready)
		touch(p, ogo)
		p.waitPidFile(odone)
		touch(p, goOn)
		p.wantExit(g.wait(), 1)
		theirs := []string{"pshm px-idle", "psem sem.px-idle", "pmsg px-idle"}
		p.wantPosixKept("objects an outsider made during the run", theirs)
		rp, ro := p.posixReport(rep)
		p.wantActions(ro, "kept", theirs...)
		if p.mode == nstest.Root {
			p.wantPosixGone("the command's object, creation seen", []string{"pshm px-cmd"})
			p.wantActions(ro, "removed", "pshm px-cmd")
		} else {
			p.wantPosixKept("the command's object, window contended", []string{"pshm px-cmd"})
			if !rp.Window.Contended {
				p.errorf("report: window not contended although a process of the run's uid ran and made objects")
			}
		}
	})
}

// TestPosixHostileOutsiderMaps: a process of the run's uid starts during
// the run, makes objects and keeps them mapped (and the queue open): kept,
// and as root the report names it.
func TestPosixHostileOutsiderMaps(t *testing.T) {
	posixModes(t, "an outsider creates and keeps its objects mapped", func(p *px) {
		ready, goOn, rep, held := p.path("ready"), p.path("go-on"), p.path("r.json"), p.path("held")
		g := p.ipc([]string{"--report", rep}, "ready="+ready, "await="+goOn, "exit=1").start()
		p.waitPidFile(ready)
		opid := p.startOutsider(held, "pshm:name=px-map:size=8192:map", "psem:name=px-map", "pmsg:name=px-map",
			"ready="+held, "wait")
		touch(p, goOn)
		p.wantExit(g.wait(), 1)
		theirs := []string{"pshm px-map", "psem sem.px-map", "pmsg px-map"}
		p.wantPosixKept("objects an outsider made and maps", theirs)
		_, ro := p.posixReport(rep)
		p.wantActions(ro, "kept", theirs...)
		pid := regexp.MustCompile(`\b` + strconv.Itoa(opid) + `\b`)
		for _, ref := range theirs {
			if o := ro[ref]; p.mode == nstest.Root && !pid.MatchString(o.Reason) {
				p.errorf("report: %s kept for %q, which does not name the outsider %d", ref, o.Reason, opid)
			}
		}
	})
}

// TestPosixHostileRecreated: the command makes objects; while it still
// runs, a process of its uid outside unlinks each name and makes it again
// (a new inode under the command's name). The objects under the names now
// are the outsider's: kept.
func TestPosixHostileRecreated(t *testing.T) {
	posixModes(t, "an outsider re-creates the command's names", func(p *px) {
		ready, goOn, rep := p.path("ready"), p.path("go-on"), p.path("r.json")
		g := p.ipc([]string{"--report", rep}, "pshm:name=px-re", "psem:name=px-re", "pmsg:name=px-re",
			"pshm:name=px-mine", "ready="+ready, "await="+goOn, "exit=1").start()
		p.waitPidFile(ready)
		before := inode(nstest.ShmDir + "/px-re")
		p.outside("pshm:name=px-re:unlink", "psem:name=px-re:unlink", "pmsg:name=px-re:unlink",
			"pshm:name=px-re:size=8192", "psem:name=px-re", "pmsg:name=px-re")
		if inode(nstest.ShmDir+"/px-re") == before {
			p.fatalf("px-re was not made again")
		}
		touch(p, goOn)
		p.wantExit(g.wait(), 1)
		theirs := []string{"pshm px-re", "psem sem.px-re", "pmsg px-re"}
		p.wantPosixKept("names an outsider made again during the run", theirs)
		_, ro := p.posixReport(rep)
		p.notRemoved(ro, theirs...)
		if p.mode == nstest.Root {
			p.wantPosixGone("the command's other object, creation seen", []string{"pshm px-mine"})
		}
		if fi, err := os.Stat(nstest.ShmDir + "/px-re"); err != nil || fi.Size() != 8192 {
			p.errorf("the outsider's px-re: %v %v", fi, err)
		}
	})
}

// TestPosixHostileRootChowns: a root process that started before the run
// (here the test body itself: no pid is handed out) makes a file in the shm
// directory and a queue during the run and gives them to the run's uid and
// gid (chown). Nothing of the run's uid ran, the objects are owned by it,
// born in the window and unused: window evidence alone would remove them.
// They are kept in both modes.
func TestPosixHostileRootChowns(t *testing.T) {
	posixModes(t, "a root process gives objects to the run's uid during the run", func(p *px) {
		ready, goOn, rep := p.path("ready"), p.path("go-on"), p.path("r.json")
		g := p.ipc([]string{"--report", rep}, "pshm:name=px-cmd", "ready="+ready, "await="+goOn, "exit=1").start()
		p.waitPidFile(ready)
		shm := nstest.ShmDir + "/px-given"
		if err := os.WriteFile(shm, []byte("root's data"), 0o600); err != nil {
			p.fatalf("%v", err)
		}
		if err := os.Chown(shm, p.uid, p.uid); err != nil {
			p.fatalf("%v", err)
		}
		fd, err := mqCreate("px-given", 0o600)
		if err != nil {
			p.fatalf("mq_open: %v", err)
		}
		syscall.Close(fd)
		if err := os.Chown(nstest.MqueueDir+"/px-given", p.uid, p.uid); err != nil {
			p.fatalf("%v", err)
		}
		touch(p, goOn)
		p.wantExit(g.wait(), 1)
		given := []string{"pshm px-given", "pmsg px-given"}
		p.wantPosixKept("objects root made and gave to the run's uid", given)
		_, ro := p.posixReport(rep)
		p.wantActions(ro, "kept", given...)
		for _, ref := range given {
			// As nobody only the watch of the directories' changes of owner
			// tells: no process of the run's uid ran.
			if o := ro[ref]; p.mode == nstest.Unprivileged && !strings.Contains(o.Reason, "chown") {
				p.errorf("report: %s kept for %q, want the change of owner named", ref, o.Reason)
			}
		}
		if b, err := os.ReadFile(shm); err != nil || string(b) != "root's data" {
			p.errorf("%s: %q %v", shm, b, err)
		}
	})
}

// TestPosixHostileLinks: names that are not objects of the command. A hard
// link the command makes to a file of the run's uid that existed before the
// run (a new name, an old inode: born before the run) is kept, and the
// file stays; a symlink an outsider puts in place of the command's object
// during the run is no object, and its target stays.
func TestPosixHostileLinks(t *testing.T) {
	posixModes(t, "hard links and symlinks under candidate names", func(p *px) {
		precious := nstest.ShmDir + "/px-precious"
		if err := os.WriteFile(precious, []byte("precious"), 0o600); err != nil {
			p.fatalf("%v", err)
		}
		os.Chown(precious, p.uid, p.uid)
		victim := p.path("victim")
		if err := os.WriteFile(victim, []byte("victim"), 0o644); err != nil {
			p.fatalf("%v", err)
		}
		os.Chown(victim, p.uid, p.uid)
		ready, goOn, rep := p.path("ready"), p.path("go-on"), p.path("r.json")
		hl, sl := nstest.ShmDir+"/px-hardlink", nstest.ShmDir+"/px-sl"
		g := p.sh([]string{"--report", rep}, `ln "$0" "$1" && ipc pshm:name=px-sl pshm:name=px-mine ready="$2" await="$3" && exit 1`,
			precious, hl, ready, goOn).start()
		p.waitPidFile(ready)
		// An outsider puts a symlink in place of the command's object.
		if err := os.Remove(sl); err != nil {
			p.fatalf("%v", err)
		}
		if err := os.Symlink(victim, sl); err != nil {
			p.fatalf("%v", err)
		}
		touch(p, goOn)
		p.wantExit(g.wait(), 1)
		for path, want := range map[string]string{precious: "precious", hl: "precious", victim: "victim"} {
			if b, err := os.ReadFile(path); err != nil || string(b) != want {
				p.errorf("%s: %q %v, want it kept with %q", path, b, err, want)
			}
		}
		if got, err := os.Readlink(sl); err != nil || got != victim {
			p.errorf("symlink %s: %q %v, want it left pointing at %s", sl, got, err, victim)
		}
		_, ro := p.posixReport(rep)
		p.wantActions(ro, "kept", "pshm px-hardlink")
		if o, ok := ro["pshm px-sl"]; ok {
			p.errorf("report lists the symlink as an object: %+v", o)
		}
		if p.mode == nstest.Root {
			p.wantPosixGone("the command's object", []string{"pshm px-mine"})
		}
	})
}

// TestPosixHostileOddEntries: a directory, fifos and a socket named like
// objects are no objects (left alone, not listed); an object whose name
// holds a newline is removed under its exact name, and its name cannot
// forge a line of ipcguard's output.
func TestPosixHostileOddEntries(t *testing.T) {
	posixModes(t, "directories, fifos, newlines", func(p *px) {
		rep := p.path("r.json")
		// (mqueue has no directories, fifos or sockets: mknod and mkdir
		// fail there.)
		odd := []string{nstest.ShmDir + "/px-dir", nstest.ShmDir + "/px-fifo", nstest.ShmDir + "/sem.px-fifo"}
		// The helper splits its steps at ':', so the forged line has none.
		nl := "px-nl\nipcguard removed 0 objects"
		r := p.sh([]string{"--report", rep}, `mkdir "$0" && mkfifo "$1" "$2" && ipc "pshm:name=$3" "psem:name=$3" "pmsg:name=$3" && exit 1`,
			append(odd, nl)...).run()
		p.wantExit(r, 1)
		for _, path := range odd {
			if _, err := os.Lstat(path); err != nil {
				p.errorf("%s: %v, want it left alone", path, err)
			}
		}
		objs := []string{"pshm " + nl, "psem sem." + nl, "pmsg " + nl}
		p.wantPosixGone("names with a newline", objs)
		_, ro := p.posixReport(rep)
		p.wantActions(ro, "removed", objs...)
		for ref := range ro {
			if strings.Contains(ref, "px-dir") || strings.Contains(ref, "px-fifo") {
				p.errorf("report lists %q as an object", ref)
			}
		}
		for _, l := range lines(r.Stderr) {
			if strings.HasPrefix(l, "ipcguard removed 0 objects") {
				p.errorf("an object's name forged a line of ipcguard's output: %q", r.Stderr)
			}
		}
	})
}

// TestPosixHostileNotify: a process of the run's uid outside the tree
// registers for notification on the command's queue (mq_notify): kept.
func TestPosixHostileNotify(t *testing.T) {
	posixModes(t, "an outsider registered for a queue's notification", func(p *px) {
		ready, goOn, rep, held := p.path("ready"), p.path("go-on"), p.path("r.json"), p.path("held")
		g := p.ipc([]string{"--report", rep}, "pmsg:name=px-nq", "pmsg:name=px-free",
			"ready="+ready, "await="+goOn, "exit=1").start()
		p.waitPidFile(ready)
		opid := p.startOutsider(held, "pmsg:name=px-nq:open:notify", "ready="+held, "wait")
		touch(p, goOn)
		p.wantExit(g.wait(), 1)
		p.wantPosixKept("a queue an outsider waits on", []string{"pmsg px-nq"})
		_, ro := p.posixReport(rep)
		p.wantActions(ro, "kept", "pmsg px-nq")
		if o := ro["pmsg px-nq"]; p.mode == nstest.Root && !strings.Contains(o.Reason, strconv.Itoa(opid)) {
			p.errorf("report: pmsg px-nq kept for %q, which does not name the outsider %d", o.Reason, opid)
		}
		if p.mode == nstest.Root {
			p.wantPosixGone("the queue nobody waits on", []string{"pmsg px-free"})
		}
	})
}

// TestPosixHostileConcurrentRuns: two ipcguard runs of the same uid, one
// inside the other's window, each making objects; the inner one fails. Only
// the failing run's objects may go: as root on the creation seen (the other
// run's creations are by processes outside its tree); as nobody the runs
// overlapped, so window evidence is off and both runs' objects stay.
func TestPosixHostileConcurrentRuns(t *testing.T) {
	posixModes(t, "two runs of the uid at once", func(p *px) {
		bReady, bGo, bRep := p.path("b-ready"), p.path("b-go"), p.path("b.json")
		b := p.ipc([]string{"--report", bRep}, "ready="+bReady, "await="+bGo,
			"pshm:name=px-b", "psem:name=px-b", "pmsg:name=px-b", "exit=0").start()
		p.waitPidFile(bReady)
		aReady, aGo, aRep := p.path("a-ready"), p.path("a-go"), p.path("a.json")
		a := p.ipc([]string{"--report", aRep}, "pshm:name=px-a", "psem:name=px-a", "pmsg:name=px-a",
			"ready="+aReady, "await="+aGo, "exit=1").start()
		p.waitPidFile(aReady)
		touch(p, bGo) // b makes its objects inside a's window, and ends
		p.wantExit(b.wait(), 0)
		touch(p, aGo)
		p.wantExit(a.wait(), 1)
		bObjs := []string{"pshm px-b", "psem sem.px-b", "pmsg px-b"}
		aObjs := []string{"pshm px-a", "psem sem.px-a", "pmsg px-a"}
		p.wantPosixKept("the succeeding run's objects", bObjs)
		rp, ro := p.posixReport(aRep)
		p.notRemoved(ro, bObjs...)
		if p.mode == nstest.Root {
			p.wantPosixGone("the failing run's objects, creation seen", aObjs)
			p.wantActions(ro, "removed", aObjs...)
		} else {
			p.wantPosixKept("the failing run's objects, window contended", aObjs)
			if !rp.Window.Contended {
				p.errorf("report: window not contended although another run of the uid overlapped")
			}
		}
	})
}

func touch(p *px, path string) {
	p.t.Helper()
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		p.fatalf("%v", err)
	}
}

// mqCreate makes queue name (no leading '/') of the caller's IPC
// namespace with O_CREAT|O_EXCL and returns its descriptor.
func mqCreate(name string, mode uint32) (int, error) {
	b, err := unix.BytePtrFromString(name)
	if err != nil {
		return -1, err
	}
	fd, _, errno := unix.Syscall6(unix.SYS_MQ_OPEN, uintptr(unsafe.Pointer(b)),
		uintptr(unix.O_RDWR|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC), uintptr(mode), 0, 0, 0)
	if errno != 0 {
		return -1, errno
	}
	return int(fd), nil
}

// TestPosixHostileKeepNameSpecial: --keep-name patterns with the
// characters of shell patterns and of names: a comma is part of the
// pattern (not a separator of two), and "[!...]" is a negated class as in
// the shell (fnmatch), not a class of '!' and its letters (which would
// remove qx-neg and keep px-neg).
func TestPosixHostileKeepNameSpecial(t *testing.T) {
	posixModes(t, "--keep-name with commas and [!...]", func(p *px) {
		rep := p.path("r.json")
		r := p.ipc([]string{"--keep-name", "px,c", "--keep-name", "[!p]x-neg*", "--report", rep},
			"pshm:name=px,c", "pshm:name=qx-neg", "pmsg:name=qx-neg-q",
			"pshm:name=px", "pshm:name=px-neg", "pshm:name=!x-neg", "exit=1").run()
		p.wantExit(r, 1)
		keep := []string{"pshm px,c", "pshm qx-neg", "pmsg qx-neg-q", "pshm !x-neg"}
		gone := []string{"pshm px", "pshm px-neg"}
		p.wantPosixKept("names --keep-name matches", keep)
		p.wantPosixGone("names no pattern matches", gone)
		_, ro := p.posixReport(rep)
		p.wantActions(ro, "kept", keep...)
		p.wantActions(ro, "removed", gone...)
	})
}

// TestPosixHostileTreeRenamesStrangers: a process of the run's uid
// outside the tree makes an object during the run; the command renames it
// (rename(2): FAN_MOVED_TO by a member) to a name of its own. The rename
// made the name, not the object: it is the stranger's, and kept. The same
// for link(2) and unlink of the old name (link reports FAN_CREATE).
func TestPosixHostileTreeRenamesStrangers(t *testing.T) {
	posixModes(t, "the command renames a stranger's object", func(p *px) {
		ready, goOn, rep := p.path("ready"), p.path("go-on"), p.path("r.json")
		g := p.sh([]string{"--report", rep}, `ipc pshm:name=px-mine ready="$0" await="$1" && mv "$2/px-theirs" "$2/px-moved" &&
			ln "$2/px-theirs2" "$2/px-linked" && rm "$2/px-theirs2" && exit 1`,
			ready, goOn, nstest.ShmDir).start()
		p.waitPidFile(ready)
		p.outside("pshm:name=px-theirs:size=8192", "pshm:name=px-theirs2:size=8192")
		touch(p, goOn)
		p.wantExit(g.wait(), 1)
		theirs := []string{"pshm px-moved", "pshm px-linked"}
		p.wantPosixKept("a stranger's objects the command renamed or linked", theirs)
		_, ro := p.posixReport(rep)
		p.wantActions(ro, "kept", theirs...)
		if p.mode == nstest.Root {
			p.wantPosixGone("the command's object, creation seen", []string{"pshm px-mine"})
		}
	})
}

// TestPosixHostileStrangerRenamesOnto: a process of the run's uid outside
// the tree renames its file, older than the run, onto the name the
// command made (FAN_MOVED_TO by a stranger; the birth time is before the
// run). The file under the name is the stranger's: kept, with its data.
func TestPosixHostileStrangerRenamesOnto(t *testing.T) {
	posixModes(t, "a stranger renames its older file onto the command's name", func(p *px) {
		p.outside("pshm:name=px-old:size=8192")
		ready, goOn, rep := p.path("ready"), p.path("go-on"), p.path("r.json")
		g := p.ipc([]string{"--report", rep}, "pshm:name=px-cmd", "pshm:name=px-mine", "ready="+ready, "await="+goOn, "exit=1").start()
		p.waitPidFile(ready)
		mv := exec.Command("mv", nstest.ShmDir+"/px-old", nstest.ShmDir+"/px-cmd")
		if p.cred != nil {
			mv.SysProcAttr = &syscall.SysProcAttr{Credential: p.cred}
		}
		if out, err := mv.CombinedOutput(); err != nil {
			p.fatalf("mv: %v: %s", err, out)
		}
		touch(p, goOn)
		p.wantExit(g.wait(), 1)
		p.wantPosixKept("a stranger's older file renamed onto the command's name", []string{"pshm px-cmd"})
		if fi, err := os.Stat(nstest.ShmDir + "/px-cmd"); err != nil || fi.Size() != 8192 {
			p.errorf("the stranger's file: %v %v", fi, err)
		}
		_, ro := p.posixReport(rep)
		p.wantActions(ro, "kept", "pshm px-cmd")
		if p.mode == nstest.Root {
			p.wantPosixGone("the command's other object, creation seen", []string{"pshm px-mine"})
		}
	})
}
