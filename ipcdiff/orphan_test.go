package ipcdiff

import (
	"strings"
	"testing"
	"time"
)

// oprocs are the live processes of an orphan test: pid -> start time
// (seconds since 1970; -1 when the start time cannot be read).
type oprocs map[int]int64

func (p oprocs) Alive(pid int) bool  { _, ok := p[pid]; return ok }
func (p oprocs) Comm(pid int) string { return "" }
func (p oprocs) Started(pid int) (time.Time, bool) {
	s, ok := p[pid]
	return time.Unix(s, 0), ok && s >= 0
}

const (
	oNow   = 1_800_000_000 // the time of the decision
	oStamp = oNow - 3600   // the objects' stamps: an hour ago
)

func oShm(id int, key int32, cpid, lpid int, nattch uint64) Object {
	s := &Shm{Key: key, ID: id, Perms: 0o600, CPID: cpid, LPID: lpid, Nattch: nattch, Ctime: oStamp}
	if lpid > 0 {
		s.Atime, s.Dtime = oStamp, oStamp
	}
	return Object{Ident: Ident{Type: TypeShm, ID: id, Key: key}, Shm: s}
}

func oSem(id int, key int32, sems ...SemState) Object {
	s := &Sem{Key: key, ID: id, Perms: 0o600, NSems: len(sems), Ctime: oStamp}
	for _, x := range sems {
		if x.Pid > 0 {
			s.Otime = oStamp
		}
	}
	return Object{Ident: Ident{Type: TypeSem, ID: id, Key: key}, Sem: s, Sems: sems}
}

func oMsg(id int, key int32, lspid, lrpid int) Object {
	m := &Msg{Key: key, ID: id, Perms: 0o600, LSPID: lspid, LRPID: lrpid, Ctime: oStamp}
	if lspid > 0 {
		m.Stime = oStamp
	}
	if lrpid > 0 {
		m.Rtime = oStamp
	}
	return Object{Ident: Ident{Type: TypeMsg, ID: id, Key: key}, Msg: m}
}

func TestOrphanRules(t *testing.T) {
	const dead, live, reused, reusedEarly, unknown = 100, 200, 300, 301, 400
	procs := oprocs{
		live:        oStamp - 60, // started before the stamps: may be the one that acted
		reused:      oStamp + 10, // started 10 s after the last stamp
		reusedEarly: oStamp + 1,  // within the stamp's second and slack
		unknown:     -1,          // start time unreadable
	}
	cases := []struct {
		name      string
		obj       Object
		olderThan time.Duration
		orphan    bool
		inUse     bool
		class     string
		why       string // a substring of the reasons (for) or (against)
	}{
		{"segment, creator dead, nobody attached", oShm(1, 0, dead, 0, 0), 0, true, false, ClassOrphan, "creator pid 100 is dead"},
		{"segment attached (nattch)", oShm(1, 0, dead, dead, 1), 0, false, true, ClassAttached, "attached by 1 process"},
		{"segment mapped by a process (maps) though nattch 0", with(oShm(1, 0, dead, 0, 0), func(o *Object) { o.Attachers = []int{live} }), 0, false, true, ClassAttached, "attached by pid 200"},
		{"segment, creator alive", oShm(1, 0, live, 0, 0), 0, false, true, ClassLiveUser, "creator is pid 200, running since before"},
		{"segment, creator's pid reused after the last stamp", oShm(1, 0, reused, 0, 0), 0, true, false, ClassOrphan, "pid 300 is reused"},
		{"segment, creator's pid reused within the stamp's slack", oShm(1, 0, reusedEarly, 0, 0), 0, false, true, ClassLiveUser, "running since before"},
		{"segment, creator alive, start time unknown", oShm(1, 0, unknown, 0, 0), 0, false, true, ClassLiveUser, "cannot be read"},
		{"segment, last attach by a live process, detached", oShm(1, 0, dead, live, 0), 0, false, true, ClassLiveUser, "last attach/detach is pid 200"},
		{"segment of another pid namespace's process (cpid 0)", oShm(1, 0, 0, 0, 0), 0, false, true, ClassInvisible, "not visible"},
		{"segment marked for destruction", with(oShm(1, 0, dead, 0, 1), func(o *Object) { o.Shm.Perms |= ShmDest }), 0, false, true, ClassRemoved, "already removed"},
		{"set, last op dead", oSem(2, 0, SemState{Pid: dead}), 0, true, false, ClassOrphan, "semaphore 0 last op pid 100 is dead"},
		{"set with a waiter", oSem(2, 0, SemState{Pid: dead, NCnt: 1}), 0, false, true, ClassWaiting, "1 waiting"},
		{"set waited for zero", oSem(2, 0, SemState{Pid: dead}, SemState{ZCnt: 2}), 0, false, true, ClassWaiting, "semaphore 1 has 2 waiting"},
		{"set last operated by a live process", oSem(2, 0, SemState{Pid: dead}, SemState{Pid: live}), 0, false, true, ClassLiveUser, "semaphore 1 last op is pid 200"},
		{"set, GETPID refused", with(oSem(2, 0, SemState{Pid: dead}), func(o *Object) { o.Sems, o.Unreadable = nil, "semctl GETPID: permission denied" }), 0, false, true, ClassUnreadable, "could not be read"},
		{"set operated by another pid namespace's process (pids 0, otime)", with(oSem(2, 0, SemState{}), func(o *Object) { o.Sem.Otime = oStamp }), 0, false, true, ClassInvisible, "not visible"},
		{"set never operated on, no --older-than", oSem(2, 0, SemState{}), 0, false, false, ClassNoPid, "only its age can tell"},
		{"set never operated on, older than --older-than", oSem(2, 0, SemState{}), time.Minute, true, false, ClassOrphan, "never operated on"},
		{"set never operated on, younger than --older-than", oSem(2, 0, SemState{}), 2 * time.Hour, false, false, ClassYounger, "not older than 2h0m0s"},
		{"queue, sender and receiver dead", oMsg(3, 0, dead, dead), 0, true, false, ClassOrphan, "last msgrcv pid 100 is dead"},
		{"queue, receiver alive", oMsg(3, 0, dead, live), 0, false, true, ClassLiveUser, "last msgrcv is pid 200"},
		{"queue, sender of another pid namespace (lspid 0, messages)", with(oMsg(3, 0, 0, dead), func(o *Object) { o.Msg.QNum = 1 }), 0, false, true, ClassInvisible, "sent to it"},
		{"queue sent to a second ago", with(oMsg(3, 0, dead, 0), func(o *Object) { o.Msg.Stime = oNow - 1 }), 0, false, false, ClassRecent, "less than 3s"},
		{"segment older than --older-than", oShm(1, 0, dead, 0, 0), 30 * time.Minute, true, false, ClassOrphan, "last activity 1h0m0s ago"},
		{"segment younger than --older-than", oShm(1, 0, dead, 0, 0), 2 * time.Hour, false, false, ClassYounger, "1h0m0s ago, not older than 2h0m0s"},
		{"segment, attach after the creator's pid was reused", with(oShm(1, 0, reused, dead, 0), func(o *Object) { o.Shm.Dtime = oStamp + 20 }), 0, false, true, ClassLiveUser, "creator is pid 300, running since before the last activity"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ds := Orphans([]Object{c.obj}, procs, time.Unix(oNow, 0), c.olderThan)
			d := ds[0]
			text := strings.Join(d.For, "; ") + " | " + d.Reason()
			if d.Orphan != c.orphan || d.InUse != c.inUse || d.Class != c.class || !strings.Contains(text, c.why) {
				t.Errorf("orphan %v in use %v class %q (%s), want orphan %v in use %v class %q with %q",
					d.Orphan, d.InUse, d.Class, text, c.orphan, c.inUse, c.class, c.why)
			}
			if d.Orphan != (len(d.Against) == 0) {
				t.Errorf("orphan %v with reasons against %q", d.Orphan, d.Against)
			}
		})
	}
}

// TestOrphanKeyFamilies: a key family is abandoned together or not at all,
// and an object is in use when another of its key is.
func TestOrphanKeyFamilies(t *testing.T) {
	const dead, live = 100, 200
	procs := oprocs{live: oStamp - 60}
	now := time.Unix(oNow, 0)

	// A segment whose creator died, keyed like a set a live process uses:
	// in use (its users may attach it by key).
	ds := Orphans([]Object{oShm(1, 0x51, dead, 0, 0), oSem(2, 0x51, SemState{Pid: live}), oShm(3, 0x52, dead, 0, 0)}, procs, now, 0)
	if d := ds[0]; d.Orphan || !d.InUse || d.Class != ClassKeyFamily || !strings.Contains(d.Reason(), "same key 0x00000051 as sem 2, which is in use") {
		t.Errorf("segment of a family in use: %+v", d)
	}
	if d := ds[1]; d.Orphan || !d.InUse || d.Class != ClassLiveUser {
		t.Errorf("the set in use: %+v", d)
	}
	if d := ds[2]; !d.Orphan {
		t.Errorf("segment of another key: not an orphan: %s", d.Reason())
	}

	// A family member too young keeps the family, without making it in use.
	ds = Orphans([]Object{oShm(1, 0x51, dead, 0, 0), with(oMsg(2, 0x51, dead, 0), func(o *Object) { o.Msg.Stime = oNow - 1 })}, procs, now, 0)
	if d := ds[0]; d.Orphan || d.InUse || d.Class != ClassKeyFamily || !strings.Contains(d.Reason(), "which is not an orphan") {
		t.Errorf("segment whose key family is recent: %+v", d)
	}
	// Private objects (key 0) are no family.
	ds = Orphans([]Object{oShm(1, 0, dead, 0, 0), oSem(2, 0, SemState{Pid: live})}, procs, now, 0)
	if !ds[0].Orphan || ds[1].Orphan {
		t.Errorf("IPC_PRIVATE objects judged together: %v %v", ds[0].Reason(), ds[1].Reason())
	}
	// The whole family abandoned: every member an orphan.
	ds = Orphans([]Object{oShm(1, 0x51, dead, 0, 0), oSem(2, 0x51, SemState{Pid: dead}), oMsg(3, 0x51, dead, dead)}, procs, now, 0)
	for _, d := range ds {
		if !d.Orphan {
			t.Errorf("%v of an abandoned family: %s", d.Ident, d.Reason())
		}
	}
}

func with(o Object, f func(o *Object)) Object { f(&o); return o }
