package ipcdiff

import (
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ipcguard/ipcguard/internal/posixipc"
)

// posixVerdict is what the run's creation record says against a POSIX
// object (docs/evidence.md, "POSIX objects").
type posixVerdict struct {
	against []string
}

// posixCreation applies the creation record to a POSIX object: when the
// creations of its type were watched completely, the last creation of its
// name (type, device, name) is the one that made the name. Where the
// object's file and the files of every creation on its device are known
// (Posix.Handle, Creation.File), the first creation made for its file is
// the one that made the file (posixFile). Otherwise the last creation of
// the name is taken for the one that made the object, unless a rename made
// it or posixMadeBetween says another file may have been put under it. The
// creator's pid becomes a creator fact of ev with the window the watcher
// observed (from the birth time, less StampSlack, to when the event was
// read), for Tree.Holder to judge like any pid; a creation by a process
// the watcher could not name, a birth after that creation, or no creation
// of the name at all, is evidence against.
func (a *attributor) posixCreation(o *Object, ev *Evidence) posixVerdict {
	var v posixVerdict
	p := posixOf(o)
	if p == nil || !a.p.CreationsWatched.Has(o.Type) {
		return v
	}
	last := a.lastCreation(o.Type, o.Dev, o.Name)
	switch {
	case last == nil:
		v.against = append(v.against, "no creation of its name was seen while every creation in its directory was watched (made before the watch began, or through another mount)")
	case !p.Btime.IsZero() && p.Btime.After(last.At.Add(a.p.ClockSlack)):
		v.against = append(v.against, fmt.Sprintf("born at %s, after the last creation of its name the watcher saw (%s): not the object that creation made",
			p.Btime.Format("15:04:05.000"), last.At.Format("15:04:05.000")))
	case !a.until.IsZero() && p.Ctime.After(a.posixUntil().Add(a.p.ClockSlack)):
		// Changed after the end of the record (a sweep: the supervisor
		// died): nobody watched what happened then. A queue, which has no
		// birth time, may have been made again; a file may have been
		// renamed or linked onto the name (rename(2) and link(2) stamp the
		// file's ctime, keeping its older birth time).
		v.against = append(v.against, fmt.Sprintf("changed at %s, after the record of the run ends (%s): its name may have been made again, or another file put under it, since",
			p.Ctime.Format("15:04:05.000"), a.posixUntil().Format("15:04:05.000")))
	case p.Handle != "" && a.filesSeen(o.Dev):
		// The file is known: the creation that made it is the first one
		// made for it, and posixMadeBetween's guess is not needed.
		a.posixFile(p, last, ev, &v)
	case last.Moved:
		// rename(2) makes a name, not a file: the file was made under
		// another name, perhaps by someone else, perhaps before the run.
		v.against = append(v.against, "its name was made by a rename: the file was made under another name, and that creation is not this name's")
	case last.Pid <= 0:
		v.against = append(v.against, "its name was made by a process the watcher could not name (outside this pid namespace)")
	case !p.Btime.IsZero() && a.posixMadeBetween(last, p.Btime.Add(-a.p.ClockSlack)) != "":
		v.against = append(v.against, a.posixMadeBetween(last, p.Btime.Add(-a.p.ClockSlack)))
	default:
		f := PidFact{Role: "creator", Pid: last.Pid, To: last.At, Creator: true}
		if last.Moved {
			f.Role = "renamer"
		}
		if !p.Btime.IsZero() {
			f.From = p.Btime.Add(-StampSlack - a.p.ClockSlack)
		}
		ev.Pids = append(ev.Pids, f)
	}
	return v
}

// posixFile judges an object whose file is known (p.Handle) by the
// creations seen on its device, every one with its file (filesSeen): last
// is the last creation of its name, first (firstCreation) the first
// creation made for its file, in the order the watcher read them. The
// file is the tree's only if first is a creation (FAN_CREATE: open with
// O_CREAT, or link(2), of a file made with O_TMPFILE) by a pid Tree.Holder
// gives to the tree, read no earlier than the file's birth: first's pid
// is the creator fact. A first that is a rename (the file was made in
// another directory, unseen), or by a process the watcher could not
// name, is evidence against; so is a last made for another file (the
// name was made again, unseen), and a last made by a pid not the tree's
// over the file's life up to it (the name is then a stranger's, even for
// the tree's file). A stranger's creations of other files say nothing.
func (a *attributor) posixFile(p *Posix, last *Creation, ev *Evidence, v *posixVerdict) {
	first := a.firstCreation(p.Dev, p.Handle)
	from := p.Birth().Add(-StampSlack - a.p.ClockSlack)
	switch {
	case last.File != p.Handle || first == nil:
		v.against = append(v.against, "the last creation of its name seen was made for another file: its file was put under the name unseen")
	case first.Moved:
		v.against = append(v.against, fmt.Sprintf("its file first appeared in the directory renamed onto %s: it was made elsewhere, by a process not seen",
			strconv.Quote(first.Name)))
	case first.Pid <= 0:
		v.against = append(v.against, "its file was made by a process the watcher could not name (outside this pid namespace)")
	case last.Pid <= 0:
		v.against = append(v.against, "its name was made by a process the watcher could not name (outside this pid namespace)")
	case !p.Btime.IsZero() && p.Btime.After(first.At.Add(a.p.ClockSlack)):
		v.against = append(v.against, fmt.Sprintf("born at %s, after the first creation of its file the watcher saw (%s)",
			p.Btime.Format("15:04:05.000"), first.At.Format("15:04:05.000")))
	default:
		if last.Pid != first.Pid {
			if h, _, _ := a.tree.Holder(last.Pid, from, last.At); h != HeldByTree {
				v.against = append(v.against, fmt.Sprintf("its name was made by pid %d, not proven the tree's, for the file the tree made: the name is not the tree's alone",
					last.Pid))
				return
			}
		}
		ev.Pids = append(ev.Pids, PidFact{Role: "creator", Pid: first.Pid, From: from, To: first.At, Creator: true})
	}
}

// fileKey names a file in one filesystem instance.
type fileKey struct {
	dev  uint64
	file posixipc.Handle
}

// indexFiles fills a.firstMade (the first creation made for each file, in
// the order of Policy.Creations) and a.noFile (the devices with a creation
// whose file is not known) once per Attribute.
func (a *attributor) indexFiles() {
	if a.firstMade != nil {
		return
	}
	a.firstMade = make(map[fileKey]*Creation, len(a.p.Creations))
	a.noFile = map[uint64]bool{}
	for i := range a.p.Creations {
		c := &a.p.Creations[i]
		if c.File == "" {
			a.noFile[c.Dev] = true
			continue
		}
		k := fileKey{c.Dev, c.File}
		if _, ok := a.firstMade[k]; !ok {
			a.firstMade[k] = c
		}
	}
}

// filesSeen reports whether every creation seen on device dev names its
// file (Creation.File): a creation without one (a kernel that reports
// none, an event whose handle could not be encoded, a journal written
// before files were recorded, or compacted) may be the first of any file.
func (a *attributor) filesSeen(dev uint64) bool {
	a.indexFiles()
	return !a.noFile[dev]
}

// firstCreation is the first creation made for file h on device dev, nil
// when there is none.
func (a *attributor) firstCreation(dev uint64, h posixipc.Handle) *Creation {
	a.indexFiles()
	return a.firstMade[fileKey{dev, h}]
}

// posixMadeBetween says why the creation seen of a name (last) may not
// have made the file now under it ("" when nothing says so): another
// process made a name in the same directory after the file was born
// (from) and before the watcher read that creation. The file may be that
// process's, which a member then renamed or linked (link(2) reports a
// creation, as open(O_CREAT) does) onto the name: a rename or link makes
// a name, not the file. Every creation of that process lies in the
// window: its event was read after its file was born and, queued before
// the member's, before the member's. A creation by a member (Tree.Holder)
// does not count, nor one by the creator's own pid.
//
// Only the creations in a.suspect can count: one whose pid is the tree's
// over the whole run up to it (Tree.Holder from the run's start) is the
// tree's over any later part of that window too.
func (a *attributor) posixMadeBetween(last *Creation, from time.Time) string {
	a.sortCreations()
	i, _ := slices.BinarySearchFunc(a.suspect, from, func(c *Creation, t time.Time) int { return c.At.Compare(t) })
	for ; i < len(a.suspect) && !a.suspect[i].At.After(last.At); i++ {
		c := a.suspect[i]
		if c == last || c.Dev != last.Dev || c.Pid > 0 && c.Pid == last.Pid {
			// The creator's own other names: its pid is a fact of the
			// object over a window that holds this one (Tree.Holder
			// judges it there).
			continue
		}
		if c.Pid > 0 {
			if h, _, _ := a.tree.Holder(c.Pid, from, c.At); h == HeldByTree {
				continue
			}
		}
		if a.lastCreation(c.Type, c.Dev, c.Name) == c {
			if b := a.p.PosixAfter[NameKey{c.Type, c.Dev, c.Name}]; !b.IsZero() && !b.After(c.At.Add(a.p.ClockSlack)) {
				// The file that creation made is still under its own name
				// (the last made there, and the file there now was born
				// no later than that creation was read): it was not
				// renamed onto this name, and a link to it would show in
				// this object's link count.
				continue
			}
		}
		who := "a process the watcher could not name"
		if c.Pid > 0 {
			who = fmt.Sprintf("pid %d, not proven the tree's,", c.Pid)
		}
		return fmt.Sprintf("%s made %s in its directory after the file was born (%s) and before the creation of its name was seen: the file may be that process's, renamed or linked onto the name",
			who, strconv.Quote(c.Name), from.Format("15:04:05.000"))
	}
	return ""
}

// sortCreations fills a.byAt once, and a.suspect: the creations (in the
// same order) whose pid is not the tree's over the run up to them.
func (a *attributor) sortCreations() {
	if a.byAt != nil {
		return
	}
	a.byAt = make([]*Creation, 0, len(a.p.Creations))
	for i := range a.p.Creations {
		a.byAt = append(a.byAt, &a.p.Creations[i])
	}
	slices.SortStableFunc(a.byAt, func(x, y *Creation) int { return x.At.Compare(y.At) })
	a.suspect = make([]*Creation, 0, 8)
	for _, c := range a.byAt {
		if c.Pid > 0 {
			if h, _, _ := a.tree.Holder(c.Pid, a.p.Start, c.At); h == HeldByTree {
				continue
			}
		}
		a.suspect = append(a.suspect, c)
	}
}

// posixUntil is when the record of the POSIX directories ends: the tree's
// record (Tree.Until), or the last creation the watchers read if later
// (their events are read in the order they were queued: a name made
// before that one was read too).
func (a *attributor) posixUntil() time.Time {
	a.sortCreations()
	if n := len(a.byAt); n > 0 && a.byAt[n-1].At.After(a.until) {
		return a.byAt[n-1].At
	}
	return a.until
}

// posixLinks says why a POSIX object is more than its name ("" when it
// is not): its file had another name before the run (a hard link to an
// older object: Policy.OtherFiles), or has other names now (a link count
// above one: a name elsewhere keeps the file, which may be older than the
// run, and removing this name would not remove it).
func (a *attributor) posixLinks(o *Object) string {
	p := posixOf(o)
	if p == nil {
		return ""
	}
	if other, ok := a.p.OtherFiles[p.FileKey]; ok && other != o.Name {
		return fmt.Sprintf("its file existed before the run under the name %s (this name is a hard link)", other)
	}
	if p.Nlink > 1 {
		return fmt.Sprintf("its file has %d names (hard links): it is not this name's alone", p.Nlink)
	}
	return ""
}

// keepPattern is the --keep-name pattern that the name of a POSIX object
// matches (MatchName, against the name as its directory lists it). A
// malformed pattern keeps every POSIX object: it was meant to keep some.
func (a *attributor) keepPattern(id Ident) (string, bool) {
	if !id.Type.IsPosix() {
		return "", false
	}
	for _, pat := range a.p.KeepNamePatterns {
		if ok, err := MatchName(pat, id.Name); ok || err != nil {
			return pat, true
		}
	}
	return "", false
}

// MatchName reports whether name matches the shell pattern pat, as
// fnmatch(3) without flags matches it: '*', '?', '[...]' with ranges, a
// class negated by '!' or '^' (path.Match knows only '^': a '!' right
// after '[' is translated), '\' quoting the next character. The only
// error is path.ErrBadPattern, for a malformed pattern.
func MatchName(pat, name string) (bool, error) {
	return path.Match(fnmatchToPath(pat), name)
}

// fnmatchToPath rewrites the fnmatch(3) negation "[!" of each class of
// pat (not one quoted by '\', nor a '[' inside a class) as path.Match's
// "[^".
func fnmatchToPath(pat string) string {
	if !strings.Contains(pat, "[!") {
		return pat
	}
	b := []byte(pat)
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '[':
			if i+1 < len(b) && b[i+1] == '!' {
				b[i+1] = '^'
			}
			// Skip the class: up to its unquoted ']' (a ']' right after the
			// opening or the negation is no end for fnmatch, and
			// path.Match refuses the pattern anyway).
			for i++; i < len(b) && b[i] != ']'; i++ {
				if b[i] == '\\' {
					i++
				}
			}
		}
	}
	return string(b)
}

// FamilyOf is the family of the object with identity id: its SysV key, or
// its POSIX name ("/foo" for the shm file foo and the semaphore sem.foo).
func FamilyOf(id Ident) Family {
	o := Object{Ident: id}
	return o.Evidence().Family
}

// creationKey names a POSIX name in one filesystem instance.
type creationKey struct {
	typ  Type
	dev  uint64
	name string
}

// lastCreation is the last creation of the name in Policy.Creations (in
// the order the watchers recorded them), nil when there is none; the index
// is built once per Attribute.
func (a *attributor) lastCreation(t Type, dev uint64, name string) *Creation {
	if a.lastMade == nil {
		a.lastMade = make(map[creationKey]*Creation, len(a.p.Creations))
		for i := range a.p.Creations {
			c := &a.p.Creations[i]
			a.lastMade[creationKey{c.Type, c.Dev, c.Name}] = c
		}
	}
	return a.lastMade[creationKey{t, dev, name}]
}
