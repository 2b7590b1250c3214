package ipcdiff

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ipcguard/ipcguard/internal/posixipc"
)

const shmDev = 0x2a

// pobj is a new POSIX object of type t named name, born at t0+2, owned by
// the run's uid, its users gathered (none).
func pobj(t Type, name string) Object {
	pk := map[Type]posixipc.Kind{TypePshm: posixipc.Shm, TypePsem: posixipc.Sem, TypePmsg: posixipc.Msg}[t]
	born := time.Unix(t0+2, 0)
	p := &Posix{Object: posixipc.Object{Kind: pk, ID: posixipc.ID{FileKey: posixipc.FileKey{Dev: shmDev, Ino: 77}, Name: name},
		UID: uid, GID: uid, Mode: 0o600, Size: 4096, Nlink: 1, Ctime: born, Mtime: born}, Gathered: true}
	if t != TypePmsg {
		p.Btime = born
	}
	return Object{Ident: Ident{Type: t, ID: 77, Dev: shmDev, Name: name}, Data: p}
}

// seen is a creation of name by pid, read by the watcher at t0+3.
func seen(t Type, name string, pid int) Creation {
	return Creation{Type: t, Dev: shmDev, Name: name, Pid: pid, At: time.Unix(t0+3, 0)}
}

// Files (handles) for Posix.Handle and Creation.File.
const (
	fileA posixipc.Handle = "1:0a000000"
	fileB posixipc.Handle = "1:0b000000"
)

// filed is o with its file's handle known.
func filed(o Object, h posixipc.Handle) Object { posixOf(&o).Handle = h; return o }

// made is c made for file h.
func made(c Creation, h posixipc.Handle) Creation { c.File = h; return c }

// movedTo is c, a rename onto its name.
func movedTo(c Creation) Creation { c.Moved = true; return c }

// after says p's name (pshm) is there after the run, its file born at
// second born.
func after(p Policy, name string, born int64) Policy {
	if p.PosixAfter == nil {
		p.PosixAfter = map[NameKey]time.Time{}
	}
	p.PosixAfter[NameKey{TypePshm, shmDev, name}] = time.Unix(born, 0)
	return p
}

// rootPolicy watched every POSIX creation completely.
func rootPolicy(cs ...Creation) Policy {
	p := policy()
	p.CreationsWatched = PosixTypes
	p.Creations = cs
	return p
}

func TestAttributePosix(t *testing.T) {
	type tc struct {
		name     string
		objs     []Object // the first is checked
		tree     func(*fakeTree)
		pol      Policy
		remove   bool
		strength Strength
		reason   string // part of the reason kept
	}
	held := func(o Object, pid int, mapped bool) Object {
		posixOf(&o).Uses = []posixipc.Use{{Pid: pid, FD: !mapped, Mapped: mapped}}
		return o
	}
	born := func(o Object, at int64) Object {
		p := posixOf(&o)
		p.Btime, p.Ctime = time.Unix(at, 0), time.Unix(at, 0)
		return o
	}
	owner := func(o Object, u uint32) Object { posixOf(&o).UID = u; return o }
	unreadable := func(o Object) Object { o.Unreadable = "the fd table of pid 44 (x), which could open it"; return o }
	notify := func(o Object, pid int) Object {
		posixOf(&o).Queue = &posixipc.QueueStatus{NotifyPid: pid, Signo: 10}
		return o
	}
	contended := func(p Policy) Policy { p.PosixContended = "pid 33 (bash) of uid 1000 ran during the run"; return p }
	keepName := func(p Policy, pats ...string) Policy { p.KeepNamePatterns = pats; return p }
	other := func(p Policy, fam, what string) Policy { p.OtherNames = map[string]string{fam: what}; return p }
	lost := func(p Policy) Policy {
		p.CreationsWatched = 0
		p.CreationsWhy = map[Type]string{TypePshm: "events were lost"}
		return p
	}
	moved := seen(TypePshm, "a", treePid)
	moved.Moved = true
	// early is c read before the birth of the objects (t0+2).
	early := func(c Creation) Creation { c.At = time.Unix(t0+1, 0); return c }
	otherDev := func(c Creation) Creation { c.Dev = shmDev + 1; return c }
	late := seen(TypePshm, "a", treePid)
	late.At = time.Unix(t0+1, 0) // read before the birth at t0+2
	cases := []tc{
		// Creation seen (root).
		{name: "creation seen by the tree", objs: []Object{pobj(TypePshm, "a")}, pol: rootPolicy(seen(TypePshm, "a", treePid)),
			remove: true, strength: CreationSeen},
		{name: "semaphore: link seen by the tree", objs: []Object{pobj(TypePsem, "sem.s")}, pol: rootPolicy(seen(TypePsem, "sem.s", tree2)),
			remove: true, strength: CreationSeen},
		{name: "queue, no birth time: creation seen", objs: []Object{pobj(TypePmsg, "q")}, pol: rootPolicy(seen(TypePmsg, "q", treePid)),
			remove: true, strength: CreationSeen},
		{name: "renamed onto the name by the tree: a rename makes a name, not the file", objs: []Object{pobj(TypePshm, "a")}, pol: rootPolicy(moved),
			reason: "its name was made by a rename: the file was made under another name, and that creation is not this name's"},
		{name: "creation by a live stranger", objs: []Object{pobj(TypePshm, "a")}, pol: rootPolicy(seen(TypePshm, "a", outside)),
			reason: "creator is pid 812 (postgres), running outside the tree"},
		{name: "creation by a dead stranger", objs: []Object{pobj(TypePshm, "a")}, pol: rootPolicy(seen(TypePshm, "a", gone)),
			reason: "creator is pid 900, outside the tree"},
		{name: "the last creation counts: the tree's, then a stranger's", objs: []Object{pobj(TypePshm, "a")},
			pol: rootPolicy(seen(TypePshm, "a", treePid), seen(TypePshm, "a", gone)), reason: "creator is pid 900, outside the tree"},
		{name: "the last creation counts: a stranger's, then the tree's", objs: []Object{pobj(TypePshm, "a")},
			pol: rootPolicy(early(seen(TypePshm, "a", gone)), seen(TypePshm, "a", treePid)), remove: true, strength: CreationSeen},
		// A member renamed or linked a file a stranger made during the
		// run (its creation read after the file's birth) onto a name.
		{name: "a stranger made a name after the file's birth, then the tree made its name", objs: []Object{pobj(TypePshm, "a")},
			pol: rootPolicy(seen(TypePshm, "theirs", gone), seen(TypePshm, "a", treePid)), reason: "renamed or linked onto the name"},
		{name: "the same, the stranger's name read in the same batch", objs: []Object{pobj(TypePshm, "a")},
			pol: rootPolicy(seen(TypePshm, "a", treePid), seen(TypePshm, "theirs", gone)), reason: "renamed or linked onto the name"},
		// The stranger's own file still under its name (the last made
		// there, born before its creation was read): it lent no file.
		{name: "a stranger's name made meanwhile, its file still under it", objs: []Object{pobj(TypePshm, "a")},
			pol:    after(rootPolicy(seen(TypePshm, "theirs", gone), seen(TypePshm, "a", treePid)), "theirs", t0+2),
			remove: true, strength: CreationSeen},
		{name: "the same, but the name made again since: the first file may have moved", objs: []Object{pobj(TypePshm, "a")},
			pol:    after(rootPolicy(seen(TypePshm, "theirs", gone), seen(TypePshm, "a", treePid), seen(TypePshm, "theirs", gone)), "theirs", t0+2),
			reason: "renamed or linked onto the name"},
		{name: "the same, but the file under the name born after its creation was read", objs: []Object{pobj(TypePshm, "a")},
			pol:    after(rootPolicy(seen(TypePshm, "theirs", gone), seen(TypePshm, "a", treePid)), "theirs", t0+5),
			reason: "renamed or linked onto the name"},
		{name: "a member made another name after the file's birth", objs: []Object{pobj(TypePshm, "a")},
			pol: rootPolicy(seen(TypePshm, "other", treePid), seen(TypePshm, "a", treePid)), remove: true, strength: CreationSeen},
		{name: "a stranger made a name in another directory", objs: []Object{pobj(TypePshm, "a")},
			pol: rootPolicy(otherDev(seen(TypePmsg, "theirs", gone)), seen(TypePshm, "a", treePid)), remove: true, strength: CreationSeen},
		{name: "creation by an ambiguous pid", objs: []Object{pobj(TypePshm, "a")}, pol: rootPolicy(seen(TypePshm, "a", treePid)),
			tree: func(f *fakeTree) { f.reused = map[int]bool{treePid: true} }, reason: "pid may have been reused"},
		{name: "creation by a pid the watcher could not name", objs: []Object{pobj(TypePshm, "a")}, pol: rootPolicy(seen(TypePshm, "a", 0)),
			reason: "could not name"},
		{name: "no creation seen while watched completely", objs: []Object{pobj(TypePshm, "a")}, pol: rootPolicy(seen(TypePshm, "b", treePid)),
			reason: "no creation of its name was seen"},
		{name: "a creation of the same name in another type does not count", objs: []Object{pobj(TypePshm, "a")},
			pol: rootPolicy(seen(TypePmsg, "a", treePid)), reason: "no creation of its name was seen"},
		{name: "born after the last creation seen", objs: []Object{pobj(TypePshm, "a")}, pol: rootPolicy(late),
			reason: "after the last creation of its name"},
		{name: "creation seen, but an outsider holds it", objs: []Object{held(pobj(TypePshm, "a"), outside, false)},
			pol: rootPolicy(seen(TypePshm, "a", treePid)), reason: "held open by pid 812 (postgres)"},
		{name: "creation seen, but an outsider maps it", objs: []Object{held(pobj(TypePshm, "a"), outside, true)},
			pol: rootPolicy(seen(TypePshm, "a", treePid)), reason: "mapped by pid 812 (postgres)"},
		{name: "creation seen, but a tree member still running holds it", objs: []Object{held(pobj(TypePshm, "a"), treePid, false)},
			tree: func(f *fakeTree) { f.alive = []int{treePid}; f.spans[treePid] = [2]int64{t0, 0} },
			pol:  rootPolicy(seen(TypePshm, "a", treePid)), reason: "a tree member still running"},
		{name: "creation seen, NOTIFY_PID of an outsider", objs: []Object{notify(pobj(TypePmsg, "q"), outside)},
			pol: rootPolicy(seen(TypePmsg, "q", treePid)), reason: "registered for notification (mq_notify) by pid 812"},
		{name: "creation seen, an unreadable process could open it", objs: []Object{unreadable(pobj(TypePshm, "a"))},
			pol: rootPolicy(seen(TypePshm, "a", treePid)), reason: "could not be read"},
		{name: "creation seen in a window contended for POSIX: still removed", objs: []Object{pobj(TypePshm, "a")},
			pol: contended(rootPolicy(seen(TypePshm, "a", treePid))), remove: true, strength: CreationSeen},

		// Window evidence (unprivileged, or the watch incomplete).
		{name: "window evidence, quiet uid", objs: []Object{pobj(TypePshm, "a")}, pol: policy(), remove: true, strength: WindowEvidence},
		{name: "window evidence when the watch lost events", objs: []Object{pobj(TypePshm, "a")}, pol: lost(rootPolicy()),
			remove: true, strength: WindowEvidence},
		{name: "window contended for POSIX", objs: []Object{pobj(TypePshm, "a")}, pol: contended(policy()),
			reason: "contended for POSIX objects: pid 33 (bash) of uid 1000 ran"},
		{name: "window contended for every object", objs: []Object{pobj(TypePshm, "a")},
			pol: func() Policy { p := policy(); p.Contended, p.ContendedWhy = true, "another run overlapped"; return p }(), reason: "another run overlapped"},
		{name: "window, --strict", objs: []Object{pobj(TypePshm, "a")}, pol: func() Policy { p := policy(); p.Strict = true; return p }(),
			reason: "--strict"},
		{name: "window, another owner", objs: []Object{owner(pobj(TypePshm, "a"), 0)}, pol: policy(), reason: "is not the run's"},
		{name: "window, a tree member holds it (use, not creation)", objs: []Object{held(pobj(TypePshm, "a"), treePid, false)},
			tree: func(f *fakeTree) { f.alive = []int{treePid}; f.spans[treePid] = [2]int64{t0, 0} },
			pol:  policy(), reason: "held open by pid 500, a tree member still running"},
		{name: "window, outsider maps it", objs: []Object{held(pobj(TypePshm, "a"), outside, true)}, pol: policy(), reason: "mapped by pid 812"},
		{name: "window, unreadable same-uid process", objs: []Object{unreadable(pobj(TypePshm, "a"))}, pol: policy(), reason: "could not be read"},
		{name: "birth before the run", objs: []Object{born(pobj(TypePshm, "a"), t0-60)}, pol: policy(), reason: "it existed before the run"},
		{name: "window, changes of owner not watched", objs: []Object{pobj(TypePshm, "a")},
			pol: func() Policy {
				p := policy()
				p.PosixChangesWhy = map[Type]string{TypePshm: "changes of owner and mode in its directory were not watched"}
				return p
			}(), reason: "its owner does not show who made it: changes of owner"},
		{name: "window, an owner changed in the directory during the run", objs: []Object{pobj(TypePmsg, "q")},
			pol: func() Policy {
				p := policy()
				p.PosixChangesWhy = map[Type]string{TypePmsg: `the owner of "q" was changed (chown)`}
				return p
			}(), reason: "chown"},
		{name: "window, owner changes in another directory", objs: []Object{pobj(TypePshm, "a")},
			pol: func() Policy {
				p := policy()
				p.PosixChangesWhy = map[Type]string{TypePmsg: `the owner of "q" was changed (chown)`}
				return p
			}(), remove: true, strength: WindowEvidence},
		{name: "users not gathered", objs: []Object{func() Object { o := pobj(TypePshm, "a"); posixOf(&o).Gathered = false; return o }()},
			pol: policy(), remove: true, strength: WindowEvidence},

		// Names.
		{name: "--keep-name pattern", objs: []Object{pobj(TypePshm, "PostgreSQL.42")}, pol: keepName(rootPolicy(seen(TypePshm, "PostgreSQL.42", treePid)), "PostgreSQL.*"),
			reason: "matches --keep-name PostgreSQL.*"},
		{name: "--keep-name matches the listed name of a semaphore", objs: []Object{pobj(TypePsem, "sem.k")}, pol: keepName(policy(), "sem.k"),
			reason: "--keep-name sem.k"},
		{name: "--keep-name of another name", objs: []Object{pobj(TypePsem, "sem.k")}, pol: keepName(policy(), "k"),
			remove: true, strength: WindowEvidence},
		{name: "a name that existed before the run", objs: []Object{pobj(TypePshm, "a")},
			pol: other(rootPolicy(seen(TypePshm, "a", treePid)), "/a", "pshm a"), reason: "same name /a as pshm a, which existed before the run"},
		{name: "a semaphore of a name that existed before as shared memory", objs: []Object{pobj(TypePsem, "sem.a")},
			pol: other(rootPolicy(seen(TypePsem, "sem.a", treePid)), "/a", "pshm a"), reason: "same name /a"},
		{name: "a name kept for another reason keeps its family", objs: []Object{pobj(TypePsem, "sem.a"), held(pobj(TypePshm, "a"), outside, false)},
			pol: rootPolicy(seen(TypePsem, "sem.a", treePid), seen(TypePshm, "a", treePid)), reason: "same name /a as pshm a, which is kept"},
		{name: "a hard link to a file that existed before the run", objs: []Object{pobj(TypePshm, "link")},
			pol: func() Policy {
				p := rootPolicy(seen(TypePshm, "link", treePid))
				p.OtherFiles = map[posixipc.FileKey]string{{Dev: shmDev, Ino: 77}: "precious"}
				return p
			}(), reason: "existed before the run under the name precious"},
		{name: "a file with two names", objs: []Object{func() Object { o := pobj(TypePshm, "a"); posixOf(&o).Nlink = 2; return o }()},
			pol: rootPolicy(seen(TypePshm, "a", treePid)), reason: "has 2 names"},
		{name: "its own name before the run is no hard link", objs: []Object{pobj(TypePshm, "a")},
			pol: func() Policy {
				p := rootPolicy(seen(TypePshm, "a", treePid))
				p.OtherFiles = map[posixipc.FileKey]string{{Dev: shmDev + 1, Ino: 77}: "b"}
				return p
			}(), remove: true, strength: CreationSeen},
		// A sweep: the record ends at t0+3. A file renamed or linked onto
		// the name since has its older birth time, and a newer ctime.
		{name: "sweep: changed after the record ends", objs: []Object{func() Object {
			o := pobj(TypePshm, "a")
			posixOf(&o).Ctime = time.Unix(t0+4, 0)
			return o
		}()}, pol: rootPolicy(seen(TypePshm, "a", treePid)), tree: func(f *fakeTree) { f.until = t0 + 3 },
			reason: "after the record of the run ends"},
		{name: "sweep: not changed since", objs: []Object{pobj(TypePshm, "a")}, pol: rootPolicy(seen(TypePshm, "a", treePid)),
			tree: func(f *fakeTree) { f.until = t0 + 3 }, remove: true, strength: CreationSeen},
		{name: "type not selected", objs: []Object{pobj(TypePmsg, "q")}, pol: func() Policy { p := policy(); p.Types = 1 << TypePshm; return p }(),
			reason: "--types"},

		// Files known (the object's handle, and every creation's): the
		// first creation of its file made the file.
		{name: "files: the tree creates the file", objs: []Object{filed(pobj(TypePshm, "a"), fileA)},
			pol: rootPolicy(made(seen(TypePshm, "a", treePid), fileA)), remove: true, strength: CreationSeen},
		{name: "files: glibc sem_open by the tree (a temporary name, linked)", objs: []Object{filed(pobj(TypePsem, "sem.s"), fileA)},
			pol:    rootPolicy(made(seen(TypePsem, "sem.Xy12ab", tree2), fileA), made(seen(TypePsem, "sem.s", tree2), fileA)),
			remove: true, strength: CreationSeen},
		{name: "files: a stranger's concurrent sem_open does not keep the tree's object", objs: []Object{filed(pobj(TypePsem, "sem.s"), fileA)},
			pol: rootPolicy(made(seen(TypePsem, "sem.Qz98xy", gone), fileB), made(seen(TypePsem, "sem.s", treePid), fileA),
				made(seen(TypePsem, "sem.theirs", gone), fileB)),
			remove: true, strength: CreationSeen},
		{name: "files: the tree links a stranger's file onto the name", objs: []Object{filed(pobj(TypePshm, "a"), fileA)},
			pol:    rootPolicy(made(seen(TypePshm, "theirs", gone), fileA), made(seen(TypePshm, "a", treePid), fileA)),
			reason: "creator is pid 900, outside the tree"},
		{name: "files: the tree links a live stranger's file onto the name", objs: []Object{filed(pobj(TypePshm, "a"), fileA)},
			pol:    rootPolicy(made(seen(TypePshm, "theirs", outside), fileA), made(seen(TypePshm, "a", treePid), fileA)),
			reason: "creator is pid 812 (postgres), running outside the tree"},
		{name: "files: the tree renames a stranger's file onto the name", objs: []Object{filed(pobj(TypePshm, "a"), fileA)},
			pol:    rootPolicy(made(seen(TypePshm, "theirs", gone), fileA), movedTo(made(seen(TypePshm, "a", treePid), fileA))),
			reason: "creator is pid 900, outside the tree"},
		{name: "files: the tree renames its own file onto the name", objs: []Object{filed(pobj(TypePshm, "a"), fileA)},
			pol:    rootPolicy(made(seen(TypePshm, "tmp", treePid), fileA), movedTo(made(seen(TypePshm, "a", tree2), fileA))),
			remove: true, strength: CreationSeen},
		{name: "files: a file first seen renamed in (made elsewhere)", objs: []Object{filed(pobj(TypePshm, "a"), fileA)},
			pol:    rootPolicy(movedTo(made(seen(TypePshm, "a", treePid), fileA))),
			reason: "its file first appeared in the directory renamed onto"},
		{name: "files: the name's last creation was for another file", objs: []Object{filed(pobj(TypePshm, "a"), fileA)},
			pol:    rootPolicy(made(seen(TypePshm, "t", treePid), fileA), made(seen(TypePshm, "a", treePid), fileB)),
			reason: "the last creation of its name seen was made for another file"},
		{name: "files: the tree's file, its name made by a stranger", objs: []Object{filed(pobj(TypePshm, "a"), fileA)},
			pol:    rootPolicy(made(seen(TypePshm, "t", treePid), fileA), made(seen(TypePshm, "a", gone), fileA)),
			reason: "its name was made by pid 900, not proven the tree's"},
		{name: "files: its file made by a process the watcher could not name", objs: []Object{filed(pobj(TypePshm, "a"), fileA)},
			pol:    rootPolicy(made(seen(TypePshm, "t", 0), fileA), made(seen(TypePshm, "a", treePid), fileA)),
			reason: "its file was made by a process the watcher could not name"},
		{name: "files: born after the first creation of its file", objs: []Object{filed(pobj(TypePshm, "a"), fileA)},
			pol:    rootPolicy(made(early(seen(TypePshm, "t", treePid)), fileA), made(seen(TypePshm, "a", treePid), fileA)),
			reason: "after the first creation of its file"},
		// A creation without its file on the device: the names alone
		// judge, as before (the stranger's name made meanwhile keeps it).
		{name: "files: a creation of an unknown file falls back to names", objs: []Object{filed(pobj(TypePshm, "a"), fileA)},
			pol:    rootPolicy(seen(TypePshm, "theirs", gone), made(seen(TypePshm, "a", treePid), fileA)),
			reason: "renamed or linked onto the name"},
		{name: "files: the object's file not known falls back to names", objs: []Object{pobj(TypePshm, "a")},
			pol:    rootPolicy(made(seen(TypePshm, "theirs", gone), fileB), made(seen(TypePshm, "a", treePid), fileA)),
			reason: "renamed or linked onto the name"},
		{name: "files: unknown files on another device do not count", objs: []Object{filed(pobj(TypePshm, "a"), fileA)},
			pol:    rootPolicy(otherDev(seen(TypePmsg, "theirs", gone)), made(seen(TypePshm, "theirs", gone), fileB), made(seen(TypePshm, "a", treePid), fileA)),
			remove: true, strength: CreationSeen},
		{name: "files: the same file on another device is another file", objs: []Object{filed(pobj(TypePshm, "a"), fileA)},
			pol:    rootPolicy(otherDev(made(seen(TypePshm, "theirs", gone), fileA)), made(seen(TypePshm, "a", treePid), fileA)),
			remove: true, strength: CreationSeen},
		{name: "files: sweep, changed after the record ends", objs: []Object{func() Object {
			o := filed(pobj(TypePshm, "a"), fileA)
			posixOf(&o).Ctime = time.Unix(t0+4, 0)
			return o
		}()}, pol: rootPolicy(made(seen(TypePshm, "a", treePid), fileA)), tree: func(f *fakeTree) { f.until = t0 + 3 },
			reason: "after the record of the run ends"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tr := baseTree()
			if c.tree != nil {
				c.tree(&tr)
			}
			if c.pol.Types == 0 {
				c.pol.Types = AllTypes
			}
			ds, _ := Attribute(c.objs, tr, procs, c.pol)
			d := ds[0]
			if d.Remove != c.remove {
				t.Fatalf("remove %v, want %v (reason %q, evidence %q)", d.Remove, c.remove, d.Reason, d.Evidence)
			}
			if c.remove && d.Strength != c.strength {
				t.Errorf("strength %v, want %v (evidence %q)", d.Strength, c.strength, d.Evidence)
			}
			if !c.remove && !strings.Contains(d.Reason, c.reason) {
				t.Errorf("reason %q, want it to contain %q", d.Reason, c.reason)
			}
		})
	}
}

// TestAttributePosixContention: a stranger's creation seen contends the
// window of every object; the POSIX contention turns only POSIX window
// evidence off, and the run's contention says so.
func TestAttributePosixContention(t *testing.T) {
	shmObj := private(shm(0, 0, 0))
	shmObj.Shm.CPID = treePid
	ds, why := Attribute([]Object{pobj(TypePshm, "x"), shmObj}, baseTree(), procs, rootPolicy(seen(TypePshm, "x", outside)))
	if ds[0].Remove || !strings.Contains(why, "outside the tree") {
		t.Errorf("stranger's creation: %+v, contended %q", ds[0], why)
	}
	p := policy()
	p.PosixContended = "pid 33 (bash) of uid 1000 ran during the run"
	sysv := private(msg(0, 0))
	ds, why = Attribute([]Object{pobj(TypePshm, "x"), sysv}, baseTree(), procs, p)
	if ds[0].Remove || !ds[1].Remove || ds[1].Strength != WindowEvidence {
		t.Errorf("POSIX contention: pshm %v (%s), msg %v (%s)", ds[0].Remove, ds[0].Reason, ds[1].Remove, ds[1].Reason)
	}
	if !strings.Contains(why, "POSIX") {
		t.Errorf("contended %q, want it to name POSIX objects", why)
	}
}

func TestCanOpen(t *testing.T) {
	o := &Posix{Object: posixipc.Object{UID: 1000, GID: 1000, Mode: 0o600}}
	cases := []struct {
		c          *procCreds
		mode       uint32
		privileged bool
		want       bool
	}{
		{nil, 0o600, false, true},
		{&procCreds{uids: []uint32{1000, 1000, 1000, 1000}, gids: []uint32{5}}, 0o600, false, true},
		{&procCreds{uids: []uint32{2000, 2000, 2000, 2000}, gids: []uint32{1000}}, 0o600, false, false},
		{&procCreds{uids: []uint32{2000, 2000, 2000, 2000}, gids: []uint32{1000}}, 0o660, false, true},
		{&procCreds{uids: []uint32{2000, 2000, 2000, 2000}, gids: []uint32{5}}, 0o604, false, true},
		{&procCreds{uids: []uint32{0, 0, 0, 0}, gids: []uint32{0}}, 0o666, false, false},
		{&procCreds{uids: []uint32{0, 0, 0, 0}, gids: []uint32{0}}, 0o666, true, true},
	}
	for i, c := range cases {
		o.Mode = c.mode
		if got := canOpen(c.c, o, c.privileged); got != c.want {
			t.Errorf("%d: canOpen = %v, want %v", i, got, c.want)
		}
	}
}

func TestPosixTypeNames(t *testing.T) {
	ts, err := ParseTypeSet("pshm,psem,pmsg")
	if err != nil || ts != PosixTypes || ts.String() != "pshm,psem,pmsg" {
		t.Fatalf("ParseTypeSet: %v %v", ts, err)
	}
	if f := FamilyOf(Ident{Type: TypePsem, Name: "sem.x"}); f.Name != "/x" {
		t.Errorf("family of sem.x: %q", f)
	}
	if TypeOfName("sem.x") != TypePsem || TypeOfName("x") != TypePshm {
		t.Error("TypeOfName")
	}
}

// TestMatchName: --keep-name patterns are shell patterns (fnmatch(3)):
// '!' negates a class as '^' does, and commas, newlines and odd bytes are
// plain characters.
func TestMatchName(t *testing.T) {
	for _, c := range []struct {
		pat, name string
		want      bool
	}{
		{"[!x]*", "abc", true}, {"[!x]*", "xyz", false}, {"[!x]*", "!x", true},
		{"[^x]*", "abc", true}, {"[^x]*", "xyz", false},
		{`\[!x]`, "[!x]", true}, {`\[!x]`, "a", false},
		{"[[!]x", "!x", true}, {"[[!]x", "[x", true}, {"[[!]x", "ax", false},
		{"a,b", "a,b", true}, {"a,b", "a", false},
		{"PostgreSQL.*", "PostgreSQL.1\n2", true}, {"sem.\xff*", "sem.\xffq", true},
		{"[!0-9]", "5", false}, {"[!0-9]", "a", true},
	} {
		if got, err := MatchName(c.pat, c.name); got != c.want || err != nil {
			t.Errorf("MatchName(%q, %q) = %v, %v; want %v", c.pat, c.name, got, err, c.want)
		}
	}
	for _, pat := range []string{"[", "[!", "a[!x", `x\`} {
		if _, err := MatchName(pat, "x"); err == nil {
			t.Errorf("MatchName(%q): no error for a malformed pattern", pat)
		}
	}
}

// BenchmarkAttributePosix10k: 10 000 new files of the shm directory, each
// with the creation of its name seen, by the tree and by strangers alike
// (every name's creation is checked against the others read between its
// file's birth and it).
func BenchmarkAttributePosix10k(b *testing.B) {
	const n = 10000
	objs := make([]Object, n)
	cs := make([]Creation, n)
	for i := range objs {
		name := "px-" + strconv.Itoa(i)
		objs[i] = pobj(TypePshm, name)
		posixOf(&objs[i]).Ino = uint64(1000 + i)
		objs[i].ID = 1000 + i
		pid := treePid
		if i%2 == 1 {
			pid = gone
		}
		cs[i] = seen(TypePshm, name, pid)
		cs[i].At = cs[i].At.Add(time.Duration(i) * time.Microsecond)
	}
	pol := rootPolicy(cs...)
	pol.Types = AllTypes
	tr := baseTree()
	b.ReportAllocs()
	for b.Loop() {
		Attribute(objs, tr, procs, pol)
	}
}
