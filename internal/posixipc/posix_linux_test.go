package posixipc

import (
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/ipcguard/ipcguard/internal/nstest"
	"golang.org/x/sys/unix"
)

// shmFile makes a shm object as shm_open(3) does (a file of the shm
// directory), sized and mapped; it returns the open file.
func shmFile(t *testing.T, name string, size int) *os.File {
	t.Helper()
	f, err := os.OpenFile("/dev/shm/"+name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	if err := f.Truncate(int64(size)); err != nil {
		t.Fatal(err)
	}
	b, err := unix.Mmap(int(f.Fd()), 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Munmap(b) })
	return f
}

func byName(objs []Object) map[string]Object {
	m := map[string]Object{}
	for _, o := range objs {
		m[o.Name] = o
	}
	return m
}

func list(t *testing.T, d *Dir, opt ListOptions) map[string]Object {
	t.Helper()
	objs, err := d.List(opt)
	if err != nil {
		t.Fatal(err)
	}
	return byName(objs)
}

// TestList: regular files only, classified, with their identity, and never
// through a symlink; queues with their status.
func TestList(t *testing.T) {
	e, ok := isolate(t)
	if !ok {
		return
	}
	shmFile(t, marker+"-seg", 8192)
	e.start(t, nil, "sem", "/"+marker+"-sem", "shm", "/"+marker+"-glibc")
	nl := marker + "-a\nb"
	if err := os.WriteFile("/dev/shm/"+nl, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	// Not objects: a symlink (to an object), a directory, a fifo, a socket.
	if err := os.Symlink("/dev/shm/"+marker+"-seg", "/dev/shm/"+marker+"-link"); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir("/dev/shm/"+marker+"-dir", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mkfifo("/dev/shm/"+marker+"-fifo", 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("unix", "/dev/shm/"+marker+"-sock")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	before := time.Now()
	got := list(t, e.shm, ListOptions{})
	if len(got) != 4 {
		t.Fatalf("listed %d objects, want 4: %v", len(got), got)
	}
	seg := got[marker+"-seg"]
	if seg.Kind != Shm || seg.Size != 8192 || seg.Mode != 0o600 || seg.Nlink != 1 || seg.UID != 0 || seg.Dev != e.shm.Dev || seg.Ino == 0 {
		t.Errorf("segment: %+v", seg)
	}
	if seg.Btime.IsZero() || seg.Btime.After(before) || seg.Ctime.Before(seg.Btime) {
		t.Errorf("segment times: birth %v change %v", seg.Btime, seg.Ctime)
	}
	if o := got["sem."+marker+"-sem"]; o.Kind != Sem || o.Size == 0 {
		t.Errorf("semaphore: %+v (all: %v)", o, got)
	}
	if o := got[marker+"-glibc"]; o.Kind != Shm || o.Size != 4096 {
		t.Errorf("shm_open: %+v", o)
	}
	if o := got[nl]; o.Kind != Shm {
		t.Errorf("name with a newline: %+v", o)
	}

	// Queues: our instance, status read on request.
	mq, err := OpenMqueue("/proc")
	if err != nil {
		t.Fatal(err)
	}
	defer mq.Close()
	if mq.NS != NSOurs || !mq.Queues || mq.where() != e.mq {
		t.Fatalf("mqueue: %+v", mq)
	}
	p := e.start(t, nil, "mqsend", "/"+marker+"-q1", "mqnotify", "/"+marker+"-q2")
	qs := list(t, mq, ListOptions{QueueStatus: true})
	q1, q2 := qs[marker+"-q1"], qs[marker+"-q2"]
	if q1.Kind != Msg || q1.Queue == nil || q1.Queue.QSize != 5 || q1.Queue.NotifyPid != 0 {
		t.Errorf("queue 1: %+v %+v", q1, q1.Queue)
	}
	if q2.Queue == nil || q2.Queue.NotifyPid != p.pid() || q2.Queue.Signo != int(unix.SIGUSR1) || q2.ReadCtime.IsZero() {
		t.Errorf("queue 2: %+v %+v, want NOTIFY_PID %d", q2, q2.Queue, p.pid())
	}
	if !q2.Btime.IsZero() {
		t.Errorf("mqueue has no birth time, got %v", q2.Btime)
	}
	// Without status, nothing is read.
	if q := list(t, mq, ListOptions{})[marker+"-q1"]; q.Queue != nil || q.Ino != q1.Ino {
		t.Errorf("%+v", q)
	}
}

// TestOpenShmRefusesSymlink: the shm directory itself is not followed.
func TestOpenShmRefusesSymlink(t *testing.T) {
	e, ok := isolate(t)
	if !ok {
		return
	}
	link := filepath.Join(e.tmp, "shm")
	if err := os.Symlink("/dev/shm", link); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenShm(link); !errors.Is(err, ErrNotDir) {
		t.Fatalf("OpenShm(symlink): %v", err)
	}
	if _, err := OpenShm(filepath.Join(e.tmp, "none")); err == nil {
		t.Fatal("OpenShm of a missing directory succeeded")
	}
	// A directory that is not a tmpfs is still listed.
	d, err := OpenShm(e.tmp)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if d.Magic == unix.TMPFS_MAGIC && d.Dev == e.shm.Dev {
		t.Fatalf("%+v", d)
	}
}

// TestMqueueNamespace: which mqueue mount is ours, proven either way.
func TestMqueueNamespace(t *testing.T) {
	e, ok := isolate(t)
	if !ok {
		return
	}
	ours := e.start(t, nil, "mq", "/"+marker+"-ours")
	_ = ours
	open := func(path string) *Dir {
		t.Helper()
		fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		d, err := newDir(fd, path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { d.Close() })
		return d
	}
	if ns, why := proveMount(open(e.mq)); ns != NSOurs {
		t.Errorf("our mount: %v (%s)", ns, why)
	}
	// Another IPC namespace's instance, mounted in ours.
	other := filepath.Join(e.tmp, "other")
	if err := os.Mkdir(other, 0o755); err != nil {
		t.Fatal(err)
	}
	// Another IPC namespace's instance, mounted in ours by a process of
	// that namespace, which keeps it alive (a namespace that died leaves
	// its mount orphaned: ipc/mqueue.c, mq_clear_sbinfo).
	theirs := exec.Command("sh", "-c", `mount -t mqueue none "$1" && exec "$2" mq /`+marker+`-theirs`, "sh", other, e.helper)
	theirs.SysProcAttr = &unix.SysProcAttr{Cloneflags: unix.CLONE_NEWIPC}
	if out := startCmd(t, theirs); out != "ready\n" {
		t.Fatalf("helper in another IPC namespace: %q", out)
	}
	od := open(other)
	if od.Dev == e.shm.Dev || od.Dev == open(e.mq).Dev {
		t.Fatalf("another instance has our device")
	}
	// Its queue: our namespace has none of its name.
	if ns, why := proveMount(od); ns != NSForeign {
		t.Errorf("foreign mount: %v (%s)", ns, why)
	}
	// The same name in ours, another inode: still foreign.
	e.start(t, nil, "mq", "/"+marker+"-theirs")
	if ns, why := proveMount(od); ns != NSForeign {
		t.Errorf("foreign mount, name in both: %v (%s)", ns, why)
	}
	// Removal through a foreign directory is refused.
	o := list(t, od, ListOptions{})[marker+"-theirs"]
	od.NS, od.NSWhy = proveMount(od)
	if out, err := od.Remove(o); err != nil || out.Result != Refused {
		t.Errorf("remove through a foreign mount: %+v %v", out, err)
	}
	// Unprivileged: no detached mount; our mount has only root's 0600
	// queues, which nobody cannot open: unknown.
	var got []string
	nobodyRun(t, &got, "openmq")
	if got[0] != NSUnknown.String() {
		t.Errorf("nobody: %v", got)
	}
	// Proven later, once it holds a queue nobody may open (what a run's
	// command makes): ours; the foreign mount, which does not hold it,
	// is never proven ours.
	got = nil
	nobodyRun(t, &got, "provemq", e.mq, marker+"-nobody")
	if got[0] != NSUnknown.String() || got[1] != NSOurs.String() || got[2] != NSOurs.String() {
		t.Errorf("nobody, our mount proven later: %v", got)
	}
	got = nil
	nobodyRun(t, &got, "provemq", other, marker+"-nobody")
	if got[1] == NSOurs.String() || got[2] == NSOurs.String() {
		t.Errorf("nobody, the foreign mount proven later: %v", got)
	}
}

// TestUsers: a descriptor holder, a mapper, a mapper of an unlinked file,
// a queue holder; nobody cannot read root's processes.
func TestUsers(t *testing.T) {
	e, ok := isolate(t)
	if !ok {
		return
	}
	shmFile(t, marker+"-held", 4096).Close() // our own mapping stays
	for _, n := range []string{"-mapped", "-unlinked", "-idle"} {
		if err := os.WriteFile("/dev/shm/"+marker+n, make([]byte, 4096), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	objs := list(t, e.shm, ListOptions{})
	holder := e.start(t, nil, "mq", "/"+marker+"-q")
	f, err := os.Open("/dev/shm/" + marker + "-idle")
	if err != nil {
		t.Fatal(err)
	}
	// A process holding a descriptor of "-idle" (passed as fd 3).
	cmd := fdHolderCmd(e, f)
	mapper := e.start(t, nil, "map", "/dev/shm/"+marker+"-mapped", "mapunlink", "/dev/shm/"+marker+"-unlinked")
	f.Close()
	mq, err := OpenMqueue("/proc")
	if err != nil {
		t.Fatal(err)
	}
	defer mq.Close()
	q := list(t, mq, ListOptions{})[marker+"-q"]
	keys := []FileKey{q.FileKey}
	for _, o := range objs {
		keys = append(keys, o.FileKey)
	}
	u, err := FindUsers("/proc", keys)
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range u.Unreadable {
		// Root may be refused too (a host's init under a stricter
		// ptrace policy), but not for the test's own processes.
		if x.Pid == os.Getpid() || x.Pid == cmd.Process.Pid {
			t.Errorf("root could not read: %+v", x)
		}
	}
	find := func(k FileKey, pid int) *Use {
		for _, x := range u.Uses[k] {
			if x.Pid == pid {
				return &x
			}
		}
		return nil
	}
	self := os.Getpid()
	if x := find(objs[marker+"-held"].FileKey, self); x == nil || !x.Mapped || x.FD {
		t.Errorf("our own mapping: %+v", x)
	}
	if x := find(objs[marker+"-mapped"].FileKey, mapper.pid()); x == nil || !x.Mapped || x.FD || x.Deleted {
		t.Errorf("mapper: %+v (%+v)", x, u.Uses)
	}
	if x := find(objs[marker+"-unlinked"].FileKey, mapper.pid()); x == nil || !x.Mapped || !x.Deleted {
		t.Errorf("mapper of an unlinked file: %+v", x)
	}
	if x := find(objs[marker+"-idle"].FileKey, cmd.Process.Pid); x == nil || !x.FD || x.Mapped || x.Start == 0 {
		t.Errorf("descriptor holder: %+v", x)
	}
	if x := find(q.FileKey, holder.pid()); x == nil || !x.FD {
		t.Errorf("queue holder: %+v", x)
	}
	// As nobody: root's processes are unreadable, not absent.
	var res struct {
		Uses       []Use
		Unreadable []struct {
			Pid  int
			What string
			Err  string
		}
	}
	args := []string{"users"}
	for _, k := range keys {
		args = append(args, strconv.FormatUint(k.Dev, 10)+":"+strconv.FormatUint(k.Ino, 10))
	}
	nobodyRun(t, &res, args...)
	if len(res.Uses) != 0 {
		t.Errorf("nobody sees uses: %+v", res.Uses)
	}
	unread := map[int]bool{}
	for _, x := range res.Unreadable {
		unread[x.Pid] = true
	}
	for _, pid := range []int{self, mapper.pid(), holder.pid(), cmd.Process.Pid} {
		if !unread[pid] {
			t.Errorf("pid %d not reported unreadable to nobody: %+v", pid, res.Unreadable)
		}
	}
}

// TestUsersThreadFdTable: a thread with its own fd table is read too.
func TestUsersThreadFdTable(t *testing.T) {
	if _, ok := isolate(t); !ok {
		return
	}
	name := "/dev/shm/" + marker + "-t"
	if err := os.WriteFile(name, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	// This thread gets its own table (never unlocked: the thread ends
	// with the test's goroutine); the descriptor opened after is in no
	// other thread's table.
	runtime.LockOSThread()
	if err := unix.Unshare(unix.CLONE_FILES); err != nil {
		t.Fatal(err)
	}
	fd, err := unix.Open(name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		t.Fatal(err)
	}
	k := FileKey{st.Dev, st.Ino}
	u, err := FindUsers("/proc", []FileKey{k})
	if err != nil {
		t.Fatal(err)
	}
	var found *Use
	for _, x := range u.Uses[k] {
		if x.Pid == os.Getpid() && x.FD {
			found = &x
		}
	}
	if found == nil {
		t.Fatalf("descriptor in a thread's own table not found: %+v", u)
	}
	if tid := unix.Gettid(); tid != os.Getpid() && found.Tid != tid {
		t.Fatalf("found in thread %d, want %d", found.Tid, tid)
	}
}

// TestRemove: removal, and every re-check that keeps.
func TestRemove(t *testing.T) {
	e, ok := isolate(t)
	if !ok {
		return
	}
	mk := func(name string) Object {
		t.Helper()
		if err := os.WriteFile("/dev/shm/"+name, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		return list(t, e.shm, ListOptions{})[name]
	}
	exists := func(name string) bool {
		_, err := os.Lstat("/dev/shm/" + name)
		return err == nil
	}
	check := func(what string, o Object, want RemoveResult) RemoveOutcome {
		t.Helper()
		out, err := e.shm.Remove(o)
		if out.Result != want || (err != nil) != (want == Failed) {
			t.Errorf("%s: %v (%v, %s), want %v", what, out.Result, err, out.Why, want)
		}
		return out
	}
	o := mk(marker + "-plain")
	check("plain", o, Removed)
	if exists(marker + "-plain") {
		t.Error("not removed")
	}
	check("again", o, AlreadyGone)

	nl := mk(marker + "-a\nb")
	check("newline", nl, Removed)

	// Replaced by another file: another inode.
	o = mk(marker + "-replaced")
	os.Remove("/dev/shm/" + marker + "-replaced")
	mk(marker + "-replaced")
	if out := check("replaced", o, Changed); out.Found.Ino == o.Ino || out.Found.Ino == 0 {
		t.Errorf("found %+v", out.Found)
	}
	// A symlink to the very object swapped in under the name.
	o = mk(marker + "-sym")
	os.Rename("/dev/shm/"+marker+"-sym", "/dev/shm/"+marker+"-target")
	os.Symlink("/dev/shm/"+marker+"-target", "/dev/shm/"+marker+"-sym")
	check("symlink", o, Changed)
	if !exists(marker+"-target") || !exists(marker+"-sym") {
		t.Error("symlink or its target removed")
	}
	// A directory under the name.
	o = mk(marker + "-dir")
	os.Remove("/dev/shm/" + marker + "-dir")
	os.Mkdir("/dev/shm/"+marker+"-dir", 0o700)
	check("directory", o, Changed)
	// Written since the decision.
	o = mk(marker + "-written")
	os.WriteFile("/dev/shm/"+marker+"-written", []byte("longer"), 0o600)
	check("written", o, Touched)
	// Names that are not one entry.
	for _, n := range []string{"", ".", "..", "../etc", "a/b"} {
		o := Object{ID: ID{FileKey: FileKey{e.shm.Dev, 1}, Name: n}}
		check("name "+strconv.Quote(n), o, Refused)
	}
	// Another filesystem's object.
	o = mk(marker + "-dev")
	o.Dev++
	check("other device", o, Refused)

	// Queues: through our instance's directory, and by name.
	mq, err := OpenMqueue("/proc")
	if err != nil {
		t.Fatal(err)
	}
	defer mq.Close()
	e.start(t, nil, "mq", "/"+marker+"-q1", "mqsend", "/"+marker+"-q2", "mq", "/"+marker+"-q3")
	qs := list(t, mq, ListOptions{QueueStatus: true})
	if out, err := mq.Remove(qs[marker+"-q1"]); err != nil || out.Result != Removed {
		t.Errorf("queue: %+v %v", out, err)
	}
	// Status was read (ctime stamped): the re-check uses the stamp.
	if out, err := mq.Remove(qs[marker+"-q2"]); err != nil || out.Result != Removed {
		t.Errorf("queue read before: %+v %v", out, err)
	}
	byName := *mq
	byName.NS = NSUnknown
	if out, err := byName.Remove(qs[marker+"-q3"]); err != nil || out.Result != Removed {
		t.Errorf("queue by name: %+v %v", out, err)
	}
	if out, _ := byName.Remove(qs[marker+"-q3"]); out.Result != AlreadyGone {
		t.Errorf("queue by name again: %+v", out)
	}
	if left := list(t, mq, ListOptions{}); len(left) != 0 {
		t.Errorf("queues left: %v", left)
	}
}

// TestWatch: creations by other processes with their pids, glibc's
// semaphore link, a rename into the directory; as nobody, names without pids.
func TestWatch(t *testing.T) {
	e, ok := isolate(t)
	if !ok {
		return
	}
	w, err := e.shm.Watch()
	if err != nil {
		nstest.Require(t, "%v", err)
	}
	defer w.Close()
	p := e.start(t, nil, "shm", "/"+marker+"-s", "sem", "/"+marker+"-sem")
	if err := os.WriteFile(filepath.Join(e.tmp, "f"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	// A rename across filesystems is a copy; rename within /dev/shm.
	os.WriteFile("/dev/shm/.tmp", nil, 0o600)
	if err := os.Rename("/dev/shm/.tmp", "/dev/shm/"+marker+"-moved"); err != nil {
		t.Fatal(err)
	}
	// A change of owner is a change; a write and a truncation are not.
	if err := os.Chown("/dev/shm/"+marker+"-moved", nstest.NobodyUID, nstest.NobodyUID); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile("/dev/shm/"+marker+"-moved", []byte("data"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate("/dev/shm/"+marker+"-moved", 8192); err != nil {
		t.Fatal(err)
	}
	// A link and a rename make names for an existing file: their events
	// name that file (its handle), as Dir.Handle does.
	if err := os.WriteFile("/dev/shm/"+marker+"-orig", nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Link("/dev/shm/"+marker+"-orig", "/dev/shm/"+marker+"-link"); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename("/dev/shm/"+marker+"-orig", "/dev/shm/"+marker+"-ren"); err != nil {
		t.Fatal(err)
	}
	handles := map[string]Handle{}
	for name, o := range list(t, e.shm, ListOptions{}) {
		h, err := e.shm.Handle(o.ID)
		if err != nil || h == "" {
			t.Fatalf("Handle(%s): %q, %v", o.ID, h, err)
		}
		handles[name] = h
	}
	if h := handles[marker+"-link"]; h != handles[marker+"-ren"] || h == handles[marker+"-moved"] {
		t.Errorf("handles: %q", handles)
	}
	rec := w.Stop()
	if len(rec.Changes) != 1 || rec.Changes[0].Name != marker+"-moved" || rec.Changes[0].Pid != os.Getpid() {
		t.Errorf("changes: %+v", rec.Changes)
	}
	if rec.Lost || rec.PidsHidden {
		t.Fatalf("record: %+v", rec)
	}
	got := map[string]Creation{}
	for _, c := range rec.Creations {
		got[c.Name] = c
	}
	if c, ok := got[marker+"-s"]; !ok || c.Pid != p.pid() || c.Moved || c.Time.IsZero() {
		t.Errorf("shm_open: %+v (%+v)", c, rec.Creations)
	}
	if c, ok := got["sem."+marker+"-sem"]; !ok || c.Pid != p.pid() {
		t.Errorf("sem_open (link): %+v (%+v)", c, rec.Creations)
	}
	if c, ok := got[marker+"-moved"]; !ok || !c.Moved || c.Pid != os.Getpid() {
		t.Errorf("rename: %+v", c)
	}
	// Every creation names its file; the link and the rename name the
	// file made as "-orig".
	for _, c := range rec.Creations {
		if want, ok := handles[c.Name]; c.File == "" || ok && c.File != want {
			t.Errorf("creation of %q names file %q, want %q", c.Name, c.File, want)
		}
	}
	if c := got[marker+"-orig"]; c.File != handles[marker+"-link"] || c.Moved {
		t.Errorf("the creation of -orig: %+v, its file now under -link is %q", c, handles[marker+"-link"])
	}
	if c := got[marker+"-ren"]; c.File != handles[marker+"-link"] || !c.Moved {
		t.Errorf("the rename to -ren: %+v", c)
	}
	if _, err := e.shm.Handle(ID{FileKey: FileKey{Dev: e.shm.Dev, Ino: 1}, Name: marker + "-link"}); !errors.Is(err, ErrReplaced) {
		t.Errorf("Handle of another inode: %v", err)
	}

	// Queues: mq_open through the system call is seen on the instance.
	mq, err := OpenMqueue("/proc")
	if err != nil {
		t.Fatal(err)
	}
	defer mq.Close()
	wq, err := mq.Watch()
	if err != nil {
		t.Fatalf("watch on mqueue: %v", err)
	}
	defer wq.Close()
	q := e.start(t, nil, "mq", "/"+marker+"-q")
	if err := os.Chown(e.mq+"/"+marker+"-q", nstest.NobodyUID, nstest.NobodyUID); err != nil {
		t.Fatal(err)
	}
	rq := wq.Stop()
	if len(rq.Changes) != 1 || rq.Changes[0].Name != marker+"-q" {
		t.Errorf("chown of a queue: %+v", rq.Changes)
	}
	if len(rq.Creations) != 1 || rq.Creations[0].Name != marker+"-q" || rq.Creations[0].Pid != q.pid() {
		t.Errorf("mq_open: %+v", rq)
	}
	// A queue's handle, where the kernel encodes one (AT_HANDLE_FID), is
	// the one its creation named.
	if o, ok := list(t, mq, ListOptions{})[marker+"-q"]; !ok {
		t.Error("the queue is not listed")
	} else if h, err := mq.Handle(o.ID); err == nil && len(rq.Creations) == 1 && h != rq.Creations[0].File {
		t.Errorf("queue handle %q, its creation names %q", h, rq.Creations[0].File)
	}

	// Unprivileged: inode marks work, pids are hidden.
	cmd := nstest.HelperCmd(helperNobody, "watch")
	cmd.SysProcAttr = &unix.SysProcAttr{Credential: nobody}
	in, _ := cmd.StdinPipe()
	outp, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, len("watching\n"))
	if _, err := ioReadFull(outp, buf); err != nil || string(buf) != "watching\n" {
		t.Fatalf("nobody watch: %q %v", buf, err)
	}
	e.start(t, nil, "shm", "/"+marker+"-n")
	in.Close()
	var nrec Record
	if err := jsonDecode(outp, &nrec); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	if !nrec.PidsHidden || len(nrec.Creations) != 1 || nrec.Creations[0].Name != marker+"-n" || nrec.Creations[0].Pid != 0 {
		t.Errorf("nobody's record: %+v", nrec)
	}
}

// TestSample: idle, ran, gone and new processes of a uid; members and
// other uids left out.
func TestSample(t *testing.T) {
	e, ok := isolate(t)
	if !ok {
		return
	}
	idle := e.start(t, nobody)
	ran := e.start(t, nobody)
	gone := e.start(t, nobody)
	member := e.start(t, nobody)
	root := e.start(t, nil)
	// Wait until the idle one sleeps in its read (state S), so that the
	// end of its start-up is not counted as running.
	for _, p := range []*proc{idle, member} {
		for {
			st, _, err := statFlags("/proc/" + strconv.Itoa(p.pid()))
			if err == nil && st.State == 'S' {
				break
			}
			time.Sleep(time.Millisecond)
		}
	}
	s, err := SampleUID("/proc", nstest.NobodyUID)
	if err != nil {
		t.Fatal(err)
	}
	ran.poke(t)
	member.poke(t)
	gone.stop()
	fresh := e.start(t, nobody)
	mst, _, _ := statFlags("/proc/" + strconv.Itoa(member.pid()))
	q, err := s.Compare(map[ProcKey]bool{{member.pid(), mst.Start}: true})
	if err != nil {
		t.Fatal(err)
	}
	// Other processes of nobody (none in the body's pid namespace) would
	// be in the lists too.
	ours := map[int]bool{idle.pid(): true, ran.pid(): true, gone.pid(): true, member.pid(): true, fresh.pid(): true, root.pid(): true}
	pids := func(l []ProcKey) []int {
		var r []int
		for _, k := range l {
			if ours[k.Pid] {
				r = append(r, k.Pid)
			}
		}
		return r
	}
	if got := pids(q.Idle); !slices.Equal(got, []int{idle.pid()}) {
		t.Errorf("idle %v, want [%d]", got, idle.pid())
	}
	if got := pids(q.Ran); !slices.Equal(got, []int{ran.pid()}) {
		t.Errorf("ran %v, want [%d]", got, ran.pid())
	}
	if got := pids(q.Gone); !slices.Equal(got, []int{gone.pid()}) {
		t.Errorf("gone %v, want [%d]", got, gone.pid())
	}
	if got := pids(q.New); !slices.Equal(got, []int{fresh.pid()}) {
		t.Errorf("new %v, want [%d]", got, fresh.pid())
	}
	if got := pids(q.Unknown); len(got) != 0 {
		t.Errorf("unknown %v", got)
	}
}

// TestReachableAfterReap: the proof of Sample.one, that a lookup in a
// process's /proc directory opened before fails once the process is
// reaped (its number free for another) and succeeds while it is alive or
// a zombie.
func TestReachableAfterReap(t *testing.T) {
	cmd := exec.Command("/bin/true")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	dir, err := unix.Open("/proc/"+strconv.Itoa(cmd.Process.Pid), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(dir)
	if !reachable(dir) {
		t.Error("a live process's directory: not reachable")
	}
	var si unix.Siginfo
	if err := unix.Waitid(unix.P_PID, cmd.Process.Pid, &si, unix.WEXITED|unix.WNOWAIT, nil); err != nil {
		t.Fatal(err)
	}
	if !reachable(dir) {
		t.Error("a zombie's directory: not reachable")
	}
	cmd.Wait()
	if reachable(dir) {
		t.Error("a reaped process's directory: reachable")
	}
}
