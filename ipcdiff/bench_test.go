package ipcdiff

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/ipcguard/ipcguard/internal/nstest"
	"github.com/ipcguard/ipcguard/internal/procfs"
	"golang.org/x/sys/unix"
)

// Benchmarks run at the kernel's limits (4096 segments, 32000 semaphore
// sets, 32000 queues) and at 1/8, 1/4 and 1/2 of them, each in a private
// IPC namespace of its own (nstest.LockedNamespace): every sub-benchmark
// builds its population before b.Loop, and all its work stays on its
// goroutine, whose thread holds the namespace.

const (
	limitShm = 4096
	limitSem = 32000
	limitMsg = 32000
)

var scales = []struct {
	name     string
	num, den int
}{{"1of8", 1, 8}, {"1of4", 1, 4}, {"1of2", 1, 2}, {"full", 1, 1}}

// population is how many objects of each type a namespace gets.
type population struct{ shm, sem, msg int }

func (p population) total() int { return p.shm + p.sem + p.msg }

func scaled(num, den int) population {
	return population{limitShm * num / den, limitSem * num / den, limitMsg * num / den}
}

// benchNamespace locks b's goroutine into a private IPC namespace, raises
// its limits to hold p (plus room for extra objects) and creates p.
func benchNamespace(b *testing.B, p population) FS {
	b.Helper()
	nstest.LockedNamespace(b)
	for _, s := range []struct{ file, val string }{
		{"/proc/sys/kernel/shmmni", fmt.Sprint(limitShm)},
		{"/proc/sys/kernel/sem", fmt.Sprintf("32000 %d 500 %d", 32000*limitSem, limitSem)},
		{"/proc/sys/kernel/msgmni", fmt.Sprint(limitMsg)},
	} {
		if err := os.WriteFile(s.file, []byte(s.val), 0o644); err != nil {
			b.Fatalf("raising %s in the private namespace: %v", s.file, err)
		}
		if got, _ := os.ReadFile(s.file); strings.Join(strings.Fields(string(got)), " ") != s.val {
			b.Fatalf("%s = %q after writing %q", s.file, got, s.val)
		}
	}
	if err := createObjects(p, 0); err != nil {
		b.Fatal(err)
	}
	fs, err := NewFS(DefaultProcRoot)
	if err != nil {
		b.Fatal(err)
	}
	s, err := fs.Snapshot(AllTypes)
	if err != nil {
		b.Fatal(err)
	}
	if len(s.Shm) != p.shm || len(s.Sem) != p.sem || len(s.Msg) != p.msg {
		b.Fatalf("namespace holds %d/%d/%d objects, want %+v", len(s.Shm), len(s.Sem), len(s.Msg), p)
	}
	return fs
}

// createObjects creates p in the calling thread's namespace, with keys
// from keyBase+1 (IPC_PRIVATE when keyBase is 0).
func createObjects(p population, keyBase int) error {
	key := func(i int) int {
		if keyBase == 0 {
			return 0
		}
		return keyBase + i + 1
	}
	for i := range p.shm {
		if _, err := unix.SysvShmGet(key(i), 1, unix.IPC_CREAT|0o600); err != nil {
			return fmt.Errorf("shmget #%d: %w", i, err)
		}
	}
	for i := range p.sem {
		if _, _, e := unix.Syscall(unix.SYS_SEMGET, uintptr(key(i)), 1, unix.IPC_CREAT|0o600); e != 0 {
			return fmt.Errorf("semget #%d: %w", i, e)
		}
	}
	for i := range p.msg {
		if _, _, e := unix.Syscall(unix.SYS_MSGGET, uintptr(key(i)), unix.IPC_CREAT|0o600, 0); e != 0 {
			return fmt.Errorf("msgget #%d: %w", i, e)
		}
	}
	return nil
}

func forScales(b *testing.B, f func(b *testing.B, p population)) {
	for _, s := range scales {
		b.Run(s.name, func(b *testing.B) { f(b, scaled(s.num, s.den)) })
	}
}

// rawRead reads the three tables into buf and returns the bytes read.
func rawRead(fs FS, buf *[]byte) (int, error) {
	n := 0
	for _, t := range []string{"shm", "sem", "msg"} {
		b, err := procfs.ReadAll(fs.Path("sysvipc", t), *buf)
		*buf = b
		if err != nil {
			return 0, err
		}
		n += len(b)
	}
	return n, nil
}

// timeRaw is the mean time of n raw reads of the three tables.
func timeRaw(b *testing.B, fs FS, n int) time.Duration {
	buf := make([]byte, 0, 8<<20)
	start := time.Now()
	for range n {
		if _, err := rawRead(fs, &buf); err != nil {
			b.Fatal(err)
		}
	}
	return time.Since(start) / time.Duration(n)
}

func perOp(b *testing.B) time.Duration { return b.Elapsed() / time.Duration(max(b.N, 1)) }

// BenchmarkRawRead reads /proc/sysvipc/{shm,sem,msg} to EOF without parsing:
// the kernel's cost of producing them, the floor for Snapshot.
func BenchmarkRawRead(b *testing.B) {
	forScales(b, func(b *testing.B, p population) {
		fs := benchNamespace(b, p)
		buf := make([]byte, 0, 8<<20)
		b.ReportAllocs()
		var n int
		for b.Loop() {
			var err error
			if n, err = rawRead(fs, &buf); err != nil {
				b.Fatal(err)
			}
		}
		b.SetBytes(int64(n))
		b.ReportMetric(float64(perOp(b).Nanoseconds())/float64(p.total()), "ns/object")
	})
}

// BenchmarkSnapshot reads and parses the three tables; x-raw is its time
// over that of a raw read measured in the same namespace.
func BenchmarkSnapshot(b *testing.B) {
	forScales(b, func(b *testing.B, p population) {
		fs := benchNamespace(b, p)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := fs.Snapshot(AllTypes); err != nil {
				b.Fatal(err)
			}
		}
		snap := perOp(b)
		raw := timeRaw(b, fs, max(b.N, 5))
		b.ReportMetric(float64(snap)/float64(raw), "x-raw")
		b.ReportMetric(float64(snap.Nanoseconds())/float64(p.total()), "ns/object")
	})
}

// BenchmarkParse parses tables already in memory: Snapshot minus the kernel.
func BenchmarkParse(b *testing.B) {
	forScales(b, func(b *testing.B, p population) {
		fs := benchNamespace(b, p)
		var files [3][]byte
		for i, t := range []string{"shm", "sem", "msg"} {
			var err error
			if files[i], err = procfs.ReadAll(fs.Path("sysvipc", t), nil); err != nil {
				b.Fatal(err)
			}
		}
		b.SetBytes(int64(len(files[0]) + len(files[1]) + len(files[2])))
		b.ReportAllocs()
		for b.Loop() {
			_, e1 := parseShm(files[0])
			_, e2 := parseSem(files[1])
			_, e3 := parseMsg(files[2])
			if e1 != nil || e2 != nil || e3 != nil {
				b.Fatal(e1, e2, e3)
			}
		}
	})
}

// diffPair makes a before snapshot of p minus 1% of each type, then adds
// those objects and returns before and after.
func diffPair(b *testing.B, p population) (FS, *Snapshot, *Snapshot, int) {
	extra := population{p.shm / 100, p.sem / 100, p.msg / 100}
	fs := benchNamespace(b, population{p.shm - extra.shm, p.sem - extra.sem, p.msg - extra.msg})
	before, err := fs.Snapshot(AllTypes)
	if err != nil {
		b.Fatal(err)
	}
	if err := createObjects(extra, 0x10000000); err != nil {
		b.Fatal(err)
	}
	after, err := fs.Snapshot(AllTypes)
	if err != nil {
		b.Fatal(err)
	}
	if got := len(diff(before, after)); got != extra.total() {
		b.Fatalf("DiffIdents found %d new objects, want %d", got, extra.total())
	}
	return fs, before, after, extra.total()
}

// BenchmarkSnapshotAndDiff is the post-run work: a snapshot and its diff
// against the pre-run one.
func BenchmarkSnapshotAndDiff(b *testing.B) {
	forScales(b, func(b *testing.B, p population) {
		fs, before, _, _ := diffPair(b, p)
		ids := IdentsOf(before)
		b.ReportAllocs()
		for b.Loop() {
			after, err := fs.Snapshot(AllTypes)
			if err != nil {
				b.Fatal(err)
			}
			DiffIdents(ids, after)
		}
		raw := timeRaw(b, fs, max(b.N, 5))
		b.ReportMetric(float64(perOp(b))/float64(raw), "x-raw")
	})
}

// BenchmarkStatAny lists the namespace with SHM_STAT_ANY, SEM_STAT_ANY and
// MSG_STAT_ANY over every index up to the highest in use (one syscall per
// index) instead of reading /proc: compare with BenchmarkSnapshot.
func BenchmarkStatAny(b *testing.B) {
	if runtime.GOARCH != "amd64" {
		b.Skip("the struct layouts decoded here are amd64's")
	}
	forScales(b, func(b *testing.B, p population) {
		fs := benchNamespace(b, p)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := statAnySnapshot(); err != nil {
				b.Fatal(err)
			}
		}
		snap := perOp(b)
		proc := func() time.Duration {
			start := time.Now()
			for range 5 {
				if _, err := fs.Snapshot(AllTypes); err != nil {
					b.Fatal(err)
				}
			}
			return time.Since(start) / 5
		}()
		b.ReportMetric(float64(snap)/float64(proc), "x-procsnapshot")
		b.ReportMetric(float64(snap.Nanoseconds())/float64(p.total()), "ns/object")
	})
}

// statAnySnapshot builds a Snapshot from *_STAT_ANY (amd64 layouts). It
// lacks shm rss and swap, which only /proc shows per segment.
func statAnySnapshot() (*Snapshot, error) {
	s := &Snapshot{Taken: time.Now(), Types: SysvTypes}
	var b statBuf
	for t := TypeShm; t <= TypeMsg; t++ {
		infoCmd := [...]int{shmInfo, semInfo, msgInfo}[t]
		maxIdx, e := ctl(t, 0, 0, infoCmd|ipcVersion(), unsafe.Pointer(&b))
		if e != 0 {
			return nil, fmt.Errorf("%v info: %w", t, e)
		}
		for idx := 0; idx <= maxIdx; idx++ {
			id, e := statIndex(t, idx, &b)
			if e == unix.EINVAL || e == unix.EIDRM {
				continue
			}
			if e != 0 {
				return nil, fmt.Errorf("%v stat any %d: %w", t, idx, e)
			}
			p := b.perm()
			switch t {
			case TypeShm:
				d := (*unix.SysvShmDesc)(unsafe.Pointer(&b))
				s.Shm = append(s.Shm, Shm{Key: p.Key, ID: id, Perms: uint32(p.Mode) & 0xffff, Size: d.Segsz,
					CPID: int(d.Cpid), LPID: int(d.Lpid), Nattch: d.Nattch,
					UID: p.Uid, GID: p.Gid, CUID: p.Cuid, CGID: p.Cgid, Atime: d.Atime, Dtime: d.Dtime, Ctime: d.Ctime})
			case TypeSem:
				// x86_64 semid64_ds: perm, otime, pad, ctime, pad, nsems.
				w := (*[32]int64)(unsafe.Pointer(&b))
				s.Sem = append(s.Sem, Sem{Key: p.Key, ID: id, Perms: uint32(p.Mode) & 0xffff, NSems: int(w[10]),
					UID: p.Uid, GID: p.Gid, CUID: p.Cuid, CGID: p.Cgid, Otime: w[6], Ctime: w[8]})
			case TypeMsg:
				// msqid64_ds: perm, stime, rtime, ctime, cbytes, qnum, qbytes, lspid, lrpid.
				w := (*[32]int64)(unsafe.Pointer(&b))
				pids := (*[64]int32)(unsafe.Pointer(&b))
				s.Msg = append(s.Msg, Msg{Key: p.Key, ID: id, Perms: uint32(p.Mode) & 0xffff,
					CBytes: uint64(w[9]), QNum: uint64(w[10]), LSPID: int(pids[24]), LRPID: int(pids[25]),
					UID: p.Uid, GID: p.Gid, CUID: p.Cuid, CGID: p.Cgid, Stime: w[6], Rtime: w[7], Ctime: w[8]})
			}
		}
	}
	return s, nil
}

// BenchmarkIdentsOf is the work on the snapshot before a run that delays
// the command's start: its identities, sorted.
func BenchmarkIdentsOf(b *testing.B) {
	forScales(b, func(b *testing.B, p population) {
		_, before, _, _ := diffPair(b, p)
		b.ReportAllocs()
		for b.Loop() {
			IdentsOf(before)
		}
		b.ReportMetric(float64(perOp(b).Nanoseconds())/float64(p.total()), "ns/object")
	})
}

// BenchmarkDiffIdents diffs the snapshot after a run against the
// identities of the one before, as a run does.
func BenchmarkDiffIdents(b *testing.B) {
	forScales(b, func(b *testing.B, p population) {
		_, before, after, n := diffPair(b, p)
		ids := IdentsOf(before)
		b.ReportAllocs()
		for b.Loop() {
			if got := len(DiffIdents(ids, after)); got != n {
				b.Fatalf("DiffIdents found %d new objects, want %d", got, n)
			}
		}
		b.ReportMetric(float64(perOp(b).Nanoseconds())/float64(p.total()), "ns/object")
	})
}

// benchObjects makes n objects of each type, every third with pids of the
// tree, every third with a stranger's, every third with none, as
// attribution and orphans see them (no kernel involved).
func benchObjects(n int) []Object {
	objs := make([]Object, 0, 3*n)
	pid := func(i int) int { return []int{treePid, outside, 0}[i%3] }
	for i := range n {
		objs = append(objs, Object{Ident: Ident{Type: TypeShm, ID: i, Key: int32(i % 5)},
			Shm: &Shm{ID: i, Key: int32(i % 5), Perms: 0o600, CPID: pid(i) + 1, LPID: pid(i), UID: uid, GID: uid, CUID: uid, CGID: uid,
				Ctime: t0 + 2, Atime: t0 + 3}})
		objs = append(objs, Object{Ident: Ident{Type: TypeSem, ID: i, Key: int32(i % 7)},
			Sem:  &Sem{ID: i, Key: int32(i % 7), Perms: 0o600, NSems: 2, UID: uid, GID: uid, CUID: uid, CGID: uid, Otime: t0 + 3, Ctime: t0 + 2},
			Sems: []SemState{{Pid: pid(i)}, {Pid: pid(i + 1)}}})
		objs = append(objs, Object{Ident: Ident{Type: TypeMsg, ID: i},
			Msg: &Msg{ID: i, Perms: 0o600, LSPID: pid(i), LRPID: pid(i + 2), UID: uid, GID: uid, CUID: uid, CGID: uid,
				Stime: t0 + 3, Rtime: t0 + 4, Ctime: t0 + 2}})
	}
	return objs
}

// BenchmarkAttribute decides on 3000 new objects (a run that leaked a
// lot) with a fake tree and processes.
func BenchmarkAttribute(b *testing.B) {
	objs := benchObjects(1000)
	tree := baseTree()
	pol := Policy{UID: uid, GID: uid, Start: time.Unix(t0, 0), End: time.Unix(t1, 0)}
	b.ReportAllocs()
	for b.Loop() {
		Attribute(objs, tree, procs, pol)
	}
	b.ReportMetric(float64(perOp(b).Nanoseconds())/float64(len(objs)), "ns/object")
}

// BenchmarkOrphans judges 3000 objects as ls --orphans does.
func BenchmarkOrphans(b *testing.B) {
	objs := benchObjects(1000)
	now := time.Unix(t1+3600, 0)
	b.ReportAllocs()
	for b.Loop() {
		Orphans(objs, procs, now, 0)
	}
	b.ReportMetric(float64(perOp(b).Nanoseconds())/float64(len(objs)), "ns/object")
}
