package guard

import (
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/ipcguard/ipcguard/internal/journal"
	"github.com/ipcguard/ipcguard/internal/posixipc"
	"github.com/ipcguard/ipcguard/internal/procfs"
	"github.com/ipcguard/ipcguard/ipcdiff"
	"golang.org/x/sys/unix"
)

// shmDir is where glibc keeps POSIX shared memory and named semaphores.
const shmDir = "/dev/shm"

// maxHandOuts bounds the pid numbers handed out during a run that are
// looked at one by one (posixRun.strangers): a run with more is contended
// for POSIX objects.
const maxHandOuts = 4096

// posixRun is what a run learns for its POSIX objects besides the
// objects themselves (docs/evidence.md, "POSIX objects"): the names made
// in their directories while it ran (creation watchers, root only), and
// which processes of its uid outside the tree ran (the quiet-outsider
// sampler), from before the snapshot before to after the one after.
type posixRun struct {
	types   ipcdiff.TypeSet // the POSIX types of the run
	uid     uint32
	watches []posixWatch
	why     map[ipcdiff.Type]string // why a type's directory is not watched
	sample  *posixipc.Sample
	sampErr error
	stopped bool
	stopAt  time.Time // when stop took the watchers' marks off
	recs    []posixRecord
	// ownTids are threads of ipcguard made for the run that exited (the
	// thread that forked the command): their numbers are no stranger's.
	ownTids []int
}

type posixWatch struct {
	w     *posixipc.Watch
	dev   uint64
	queue bool
	types ipcdiff.TypeSet
}

type posixRecord struct {
	posixWatch
	rec posixipc.Record
}

// startPosix starts, before the snapshot before, what a run with POSIX
// types needs: a watcher on each directory, which records every name made
// after the snapshot (with the creator's pid as root) and every change of
// an entry's owner or mode, and, unless window evidence is off (strict), a
// first sample of the processes of the run's uid. It returns nil when
// types has no POSIX type.
func startPosix(fs ipcdiff.FS, types ipcdiff.TypeSet, strict bool) *posixRun {
	types &= ipcdiff.PosixTypes
	if types == 0 {
		return nil
	}
	pr := &posixRun{types: types, uid: uint32(os.Geteuid()), why: map[ipcdiff.Type]string{}}
	// An mqueue mount not proven ours yet is watched too: the record
	// counts only if the mount is proven, through the same descriptor,
	// before its queues are read after the run.
	ufs := fs.Unproven()
	groups := []ipcdiff.TypeSet{1<<ipcdiff.TypePshm | 1<<ipcdiff.TypePsem, 1 << ipcdiff.TypePmsg}
	for _, g := range groups {
		g &= types
		if g == 0 {
			continue
		}
		var first ipcdiff.Type
		for t := range g.All() {
			first = t
			break
		}
		note := func(why string) {
			for t := range g.All() {
				pr.why[t] = why
			}
		}
		d, err := ufs.PosixDir(first)
		if err != nil {
			note("its directory is not open: " + ipcdiff.ErrText(err))
			continue
		}
		w, err := d.Watch()
		if err != nil {
			note("the creation watcher did not start: " + ipcdiff.ErrText(err))
			continue
		}
		pr.watches = append(pr.watches, posixWatch{w: w, dev: d.Dev, queue: d.Queues, types: g})
	}
	// Window evidence is never used for a type whose creations the watch
	// sees with their pids (creation seen decides, for or against); the
	// sample, which costs three /proc reads per process of the uid (every
	// process, as root), is taken only when a type may need it.
	if !strict && !pr.seesAll() {
		pr.sample, pr.sampErr = posixipc.SampleUID(procRoot, pr.uid)
	}
	return pr
}

// seesAll reports whether every POSIX type of the run has a creation
// watcher that sees the creators' pids.
func (pr *posixRun) seesAll() bool {
	var seen ipcdiff.TypeSet
	for _, w := range pr.watches {
		if !w.w.PidsHidden() {
			seen |= w.types
		}
	}
	return pr.types&^seen == 0
}

// journal records in jr, from now on and for what they saw so far, the
// creations the watchers see with their pids, and when a watcher loses
// events: a sweep after ipcguard died then judges the POSIX objects by
// creation seen as the run would have (docs/evidence.md, "After the
// supervisor died"). Watchers that cannot see pids are not recorded.
func (pr *posixRun) journal(jr *journal.Journal) {
	if pr == nil || jr == nil {
		return
	}
	for _, w := range pr.watches {
		if w.w.PidsHidden() {
			continue
		}
		for t := range w.types.All() {
			jr.Watching(t)
		}
		dev, queue, types := w.dev, w.queue, w.types
		w.w.Follow(func(c posixipc.Creation) {
			jr.Created(creationOf(c, dev, queue))
		}, func() {
			for t := range types.All() {
				jr.Lost(t)
			}
		})
	}
}

// creationOf is c, seen in the directory of device dev (the mqueue
// filesystem when queue), as ipcdiff has it.
func creationOf(c posixipc.Creation, dev uint64, queue bool) ipcdiff.Creation {
	t := ipcdiff.TypePmsg
	if !queue {
		t = ipcdiff.TypeOfName(c.Name)
	}
	return ipcdiff.Creation{Type: t, Dev: dev, Name: c.Name, Pid: c.Pid, At: c.Time, Moved: c.Moved, File: c.File}
}

// stop stops the creation watchers (after the snapshot after: every name
// made before it is in their records). Later calls do nothing. Their
// descriptors stay open until close: the later that comes after stop, the
// less closing them waits (posixipc.Watch.Stop).
func (pr *posixRun) stop() {
	if pr == nil || pr.stopped {
		return
	}
	pr.stopped = true
	for _, w := range pr.watches {
		pr.recs = append(pr.recs, posixRecord{w, w.w.Stop()})
	}
	pr.stopAt = time.Now()
}

// stopEarly stops the creation watchers before the run ends and records
// in jr (nil: none) that their record ends now, as a watcher that lost
// events does: a sweep must not take the creations they did not see for
// none. A name made again after the stop would otherwise show the tree's
// creation as its last one to a sweep that judges by names.
func (pr *posixRun) stopEarly(jr *journal.Journal) {
	if pr == nil || pr.stopped {
		return
	}
	pr.stop()
	if jr == nil {
		return
	}
	for _, w := range pr.watches {
		if w.w.PidsHidden() {
			continue
		}
		for t := range w.types.All() {
			jr.Lost(t)
		}
	}
}

// close stops the creation watchers if stop was not called and releases
// them.
func (pr *posixRun) close() {
	if pr == nil {
		return
	}
	pr.stop()
	if len(pr.watches) == 0 {
		return
	}
	// The marks stop took off are destroyed by kernel workers after a
	// grace period of their SRCU (fs/notify/mark.c); a close that comes
	// while that is still under way waits for a second, full one (2 to 15
	// ms here), one that comes after it mostly does not (0.1 ms). A sleep
	// lets the workers run on a busy machine. It is nanosleep(2) on this
	// thread: time.Sleep of a fraction of a millisecond in a process with
	// nothing else to do waits for the runtime's poller, whose timeout
	// counts whole milliseconds (1.1 ms for 200 µs here).
	if d := closeDelay - time.Since(pr.stopAt); d > 0 {
		ts := unix.NsecToTimespec(d.Nanoseconds())
		for unix.Nanosleep(&ts, &ts) == unix.EINTR {
		}
	}
	for _, w := range pr.watches {
		w.w.Close()
	}
}

// closeDelay is the least time between stop and close (see close).
const closeDelay = 200 * time.Microsecond

// policy adds to p what the run learned: the creations seen and which
// types they cover completely, and whether window evidence is contended
// for POSIX objects. tree is the run's tree; handedOut lists the pid
// numbers handed out during the run (supervisor.PidWatch.HandedOut).
func (pr *posixRun) policy(p *ipcdiff.Policy, tree ipcdiff.Tree, handedOut func(int) ([]int, bool)) {
	if pr == nil {
		return
	}
	pr.stop()
	p.CreationsWhy = map[ipcdiff.Type]string{}
	for t, why := range pr.why {
		p.CreationsWhy[t] = why
	}
	p.PosixChangesWhy = map[ipcdiff.Type]string{}
	for t := range pr.types.All() {
		p.PosixChangesWhy[t] = "changes of owner and mode in its directory were not watched (" + orNone(pr.why[t]) + ")"
	}
	for _, r := range pr.recs {
		complete := !r.rec.Lost && !r.rec.PidsHidden
		for t := range r.types.All() {
			switch {
			case complete:
				p.CreationsWatched |= 1 << t
			case r.rec.Lost:
				p.CreationsWhy[t] = "the creation watcher lost events (" + r.rec.LostWhy + ")"
			default:
				p.CreationsWhy[t] = "not root: fanotify hides the pids of the creators"
			}
			switch {
			case r.rec.Lost:
				p.PosixChangesWhy[t] = "the watcher of its directory lost events (" + r.rec.LostWhy + ")"
			case len(r.rec.Changes) > 0:
				p.PosixChangesWhy[t] = fmt.Sprintf("the owner, mode or times of %s in its directory were changed during the run (chown, chmod, utimes): a process of another uid may have made an object and given it to the run's uid",
					strconv.Quote(r.rec.Changes[0].Name))
			default:
				delete(p.PosixChangesWhy, t)
			}
		}
		for _, c := range r.rec.Creations {
			p.Creations = append(p.Creations, creationOf(c, r.dev, r.queue))
		}
	}
	if p.Strict {
		return
	}
	if pr.sample == nil && pr.sampErr == nil && pr.types&^p.CreationsWatched == 0 {
		// Not sampled (startPosix), and not needed: creation seen decided
		// every type.
		return
	}
	p.PosixContended = pr.contention(p.Start, tree, handedOut)
}

// contention says why window evidence is off for POSIX objects ("" when
// the run's uid was quiet): a process of the uid outside the tree that
// ran, exited or started during the run (the sampler), or a pid handed out
// during the run that is not a member's (strangers).
func (pr *posixRun) contention(start time.Time, tree ipcdiff.Tree, handedOut func(int) ([]int, bool)) string {
	if pr.sample == nil {
		why := "no sample of the uid's processes"
		switch {
		case pr.sampErr != nil:
			why += " (" + ipcdiff.ErrText(pr.sampErr) + ")"
		case pr.seesAll():
			why += " (the creation watchers were to see every creation, and one lost events)"
		}
		return why
	}
	pfs, err := procfs.NewFS(procRoot)
	if err != nil {
		return "no /proc: " + ipcdiff.ErrText(err)
	}
	members := map[posixipc.ProcKey]bool{}
	for _, pid := range tree.Alive() {
		if st, err := pfs.StartTicks(pid); err == nil {
			members[posixipc.ProcKey{Pid: pid, Start: st}] = true
		}
	}
	q, err := pr.sample.Compare(members)
	if err != nil {
		return "the uid's processes could not be sampled again (" + ipcdiff.ErrText(err) + ")"
	}
	name := func(k posixipc.ProcKey) string {
		if c := pfs.Comm(k.Pid); c != "" {
			return fmt.Sprintf("pid %d (%s)", k.Pid, c)
		}
		return fmt.Sprintf("pid %d", k.Pid)
	}
	switch {
	case len(q.Ran) > 0:
		return fmt.Sprintf("%s of uid %d, outside the tree, ran during the run", name(q.Ran[0]), pr.uid)
	case len(q.New) > 0:
		return fmt.Sprintf("%s of uid %d, outside the tree, started during the run", name(q.New[0]), pr.uid)
	case len(q.Gone) > 0:
		return fmt.Sprintf("pid %d of uid %d, outside the tree, exited during the run", q.Gone[0].Pid, pr.uid)
	case len(q.Unknown) > 0:
		return fmt.Sprintf("the CPU time of %s of uid %d could not be read", name(q.Unknown[0]), pr.uid)
	}
	return pr.strangers(start, tree, pfs, handedOut)
}

// strangers looks at each pid number handed out during the run (the pid
// watch): one that was a member's (a process or a thread the tracker saw
// join) is the tree's; a live thread of a live
// member or of ipcguard, or a live process of another uid, or one that
// started before the run (a number the cursor passed over in use), made
// nothing of the run's uid; any other — a process of the uid outside the
// tree, or one gone, which may have made an object and closed it — contends.
func (pr *posixRun) strangers(start time.Time, tree ipcdiff.Tree, pfs procfs.FS, handedOut func(int) ([]int, bool)) string {
	if handedOut == nil {
		return "no pid watch: processes started during the run are not known"
	}
	pids, ok := handedOut(maxHandOuts)
	if !ok {
		return fmt.Sprintf("the pid watch cannot list the pids handed out during the run (more than %d, or not watched)", maxHandOuts)
	}
	ours := map[int]bool{os.Getpid(): true}
	for _, pid := range tree.Alive() {
		ours[pid] = true
	}
	own := map[int]bool{}
	for _, tid := range pr.ownTids {
		own[tid] = true
	}
	// Each number was handed out at most once in the run (HandedOut says
	// so): a member's number, its processes' and threads' alike, was the
	// member's hand-out.
	member := map[int]bool{}
	if t, ok := tree.(interface{ Pids() []int }); ok {
		for _, pid := range t.Pids() {
			member[pid] = true
		}
	}
	for _, n := range pids {
		if member[n] || own[n] {
			continue
		}
		status, err := pfs.Status(n) // n may be a thread's id: /proc shows it too
		if err != nil {
			return fmt.Sprintf("pid %d was handed out during the run, is gone, and was not known to be the tree's", n)
		}
		if ours[status.Tgid] {
			continue
		}
		if st, ok := pfs.Started(n); ok && st.Before(start) {
			continue
		}
		for _, u := range status.Uids {
			if u == pr.uid {
				return fmt.Sprintf("pid %d of uid %d, outside the tree, started during the run", n, pr.uid)
			}
		}
	}
	return ""
}

// otherNames are the families of the POSIX objects of before (by
// family name, "/foo", the object that has it): a new object of the same
// name is kept with it (names are keys).
func otherNames(before []ipcdiff.Ident) map[string]string {
	m := map[string]string{}
	for _, id := range before {
		if id.Name == "" {
			continue
		}
		f := ipcdiff.FamilyOf(id)
		if _, ok := m[f.Name]; !ok && f.Name != "" {
			m[f.Name] = id.String()
		}
	}
	return m
}

// otherFiles are the POSIX objects of before by device and inode, with
// their names (Policy.OtherFiles).
func otherFiles(before []ipcdiff.Ident) map[posixipc.FileKey]string {
	m := map[posixipc.FileKey]string{}
	for _, id := range before {
		if id.Type.IsPosix() {
			m[posixipc.FileKey{Dev: id.Dev, Ino: uint64(id.ID)}] = id.Name
		}
	}
	return m
}
