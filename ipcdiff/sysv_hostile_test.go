package ipcdiff

import (
	"fmt"
	"os"
	"runtime"
	"slices"
	"sync"
	"syscall"
	"testing"
	"unsafe"

	"github.com/ipcguard/ipcguard/internal/nstest"
	"golang.org/x/sys/unix"
)

// Attacks on the snapshot by index (*_STAT_ANY) and on the re-check
// before IPC_RMID, each with real objects in a private IPC namespace; the
// scan is compared with /proc/sysvipc, which lists every object.

// scanned reports, per System V type, whether fs's table of it would be
// scanned by index (not read from /proc).
func scanned(t *testing.T, fs FS) map[Type]bool {
	t.Helper()
	out := map[Type]bool{}
	for ty := range SysvTypes.All() {
		r, err := kinds[ty].open(fs)
		if err != nil {
			t.Fatal(err)
		}
		switch r := r.(type) {
		case *sysvTable[Shm]:
			out[ty] = r.ns != nsIdent{}
		case *sysvTable[Sem]:
			out[ty] = r.ns != nsIdent{}
		case *sysvTable[Msg]:
			out[ty] = r.ns != nsIdent{}
		}
		r.close()
	}
	return out
}

// sameAsProc compares fs's snapshots (scan, sequential and parallel) with
// /proc/sysvipc, shm rss and swap aside.
func sameAsProc(t *testing.T, fs FS) *Snapshot {
	t.Helper()
	text := fs
	text.textOnly = true
	proc := snap(t, text)
	for i := range proc.Shm {
		proc.Shm[i].RSS, proc.Shm[i].Swap = 0, 0
	}
	for _, parallel := range []bool{false, true} {
		got, err := fs.SnapshotWith(SysvTypes, parallel)
		if err != nil {
			t.Fatal(err)
		}
		for i := range got.Shm {
			got.Shm[i].RSS, got.Shm[i].Swap = 0, 0
		}
		if !slices.Equal(proc.Shm, got.Shm) || !slices.Equal(proc.Sem, got.Sem) || !slices.Equal(proc.Msg, got.Msg) {
			t.Fatalf("parallel %v:\n/proc:    %+v\nsnapshot: %+v", parallel, proc, got)
		}
	}
	return proc
}

func setNextID(t *testing.T, ty Type, id int) {
	t.Helper()
	f := "/proc/sys/kernel/" + ty.String() + "_next_id"
	if err := os.WriteFile(f, []byte(fmt.Sprint(id)), 0o644); err != nil {
		t.Fatalf("%s: %v", f, err)
	}
}

func mkObj(t *testing.T, ty Type, key, flags int) int {
	t.Helper()
	var r uintptr
	var e syscall.Errno
	switch ty {
	case TypeShm:
		r, _, e = unix.Syscall(unix.SYS_SHMGET, uintptr(key), 4096, uintptr(unix.IPC_CREAT|flags))
	case TypeSem:
		r, _, e = unix.Syscall(unix.SYS_SEMGET, uintptr(key), 2, uintptr(unix.IPC_CREAT|flags))
	case TypeMsg:
		r, _, e = unix.Syscall(unix.SYS_MSGGET, uintptr(key), uintptr(unix.IPC_CREAT|flags), 0)
	}
	if e != 0 {
		t.Fatalf("%vget(%#x): %v", ty, key, e)
	}
	return int(r)
}

// mkObjErr makes a private object of type ty, readable by its owner.
func mkObjErr(ty Type) (int, error) {
	var r uintptr
	var e syscall.Errno
	switch ty {
	case TypeShm:
		r, _, e = unix.Syscall(unix.SYS_SHMGET, 0, 4096, unix.IPC_CREAT|0o600)
	case TypeSem:
		r, _, e = unix.Syscall(unix.SYS_SEMGET, 0, 2, unix.IPC_CREAT|0o600)
	case TypeMsg:
		r, _, e = unix.Syscall(unix.SYS_MSGGET, 0, unix.IPC_CREAT|0o600, 0)
	}
	if e != 0 {
		return 0, fmt.Errorf("%vget: %w", ty, e)
	}
	return int(r), nil
}

// setOwner makes uid the owner of object id and mode its permissions
// (IPC_SET).
func setOwner(t *testing.T, ty Type, id int, uid uint32, mode uint32) {
	t.Helper()
	var b statBuf
	if e := ipcStatID(ty, id, &b); e != 0 {
		t.Fatalf("IPC_STAT %v %d: %v", ty, id, e)
	}
	b.perm().Uid, b.perm().Mode = uid, mode
	if _, e := ctl(ty, id, 0, unix.IPC_SET|ipcVersion(), unsafe.Pointer(&b)); e != 0 {
		t.Fatalf("IPC_SET %v %d: %v", ty, id, e)
	}
}

// TestStatAnyHostileFields lists, as nobody, objects nobody may read
// (mode 0, owned by root or by nobody), a segment of more than 4 GiB, one
// marked for destruction while attached, keys with the sign bit, a queue
// holding messages, and ids made with *_next_id at chosen indexes and the
// highest sequence number: the scan shows what /proc shows. Then the
// re-check before IPC_RMID, which must use *_STAT_ANY where IPC_STAT is
// refused, removes nobody's unreadable objects, and refuses an id whose
// index was taken by another object with the same key and creator.
func TestStatAnyHostileFields(t *testing.T) {
	if runtime.GOARCH != "amd64" && runtime.GOARCH != "arm64" {
		t.Skip("64-bit layouts only")
	}
	if !nstest.Isolate(t, nstest.Root) {
		return
	}
	fs := procFS(t)
	// A big segment: its pages are never touched.
	big, err := unix.SysvShmGet(0x7fff0001, 5<<30, unix.IPC_CREAT|0o644)
	if err != nil {
		t.Fatal(err)
	}
	// Attached, then removed: SHM_DEST, key cleared, still listed.
	dest, err := unix.SysvShmGet(0x1111, 8192, unix.IPC_CREAT|0o600)
	if err != nil {
		t.Fatal(err)
	}
	mem, err := unix.SysvShmAttach(dest, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.SysvShmDetach(mem)
	if err := rmShm(dest); err != nil {
		t.Fatal(err)
	}
	// A queue holding a message, with stime set.
	q := mkObj(t, TypeMsg, -0x7ffffffe, 0o600) // key 0x80000002
	msg := struct {
		typ  int64
		text [8]byte
	}{typ: 1}
	if _, _, e := unix.Syscall6(unix.SYS_MSGSND, uintptr(q), uintptr(unsafe.Pointer(&msg)), 8, 0, 0, 0); e != 0 {
		t.Fatal(e)
	}
	// Unreadable objects: root's mode 0, and nobody's mode 0 (its owner
	// may remove but not read them).
	var rootOwned, nobodyOwned []Ident
	for ty := range SysvTypes.All() {
		id := mkObj(t, ty, 0, 0o600)
		setOwner(t, ty, id, 0, 0)
		rootOwned = append(rootOwned, Ident{Type: ty, ID: id})
		id = mkObj(t, ty, 0, 0o600)
		setOwner(t, ty, id, 65534, 0)
		nobodyOwned = append(nobodyOwned, Ident{Type: ty, ID: id})
	}
	// Ids with the highest sequence number at index 200 (still scanned:
	// up to scanSlack free indexes), then the lowest free index again.
	for ty := range SysvTypes.All() {
		setNextID(t, ty, 0xffff<<ipcmniShift|200)
		if id := mkObj(t, ty, 0x2000+int(ty), 0o600); id != 0xffff<<ipcmniShift|200 {
			t.Fatalf("%v next_id: got id %d", ty, id)
		}
		mkObj(t, ty, 0x3000+int(ty), 0o640)
	}
	// From here on as nobody, who may read none of root's objects.
	if err := syscall.Setresuid(65534, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	for ty, ok := range scanned(t, fs) {
		if !ok {
			t.Errorf("%v would not be scanned", ty)
		}
	}
	proc := sameAsProc(t, fs)
	var sawBig, sawDest bool
	for _, s := range proc.Shm {
		sawBig = sawBig || s.ID == big && s.Size == 5<<30
		sawDest = sawDest || s.ID == dest && s.Perms&ShmDest != 0 && s.Key == 0 && s.Nattch == 1
	}
	if !sawBig || !sawDest {
		t.Errorf("big segment seen %v, destroyed one %v: %+v", sawBig, sawDest, proc.Shm)
	}
	if n := len(proc.Shm) + len(proc.Sem) + len(proc.Msg); n != 15 {
		t.Errorf("%d objects listed, want 15", n)
	}
	find := func(id Ident) Object {
		t.Helper()
		o, ok := proc.find(id.Type, id.ID)
		if !ok {
			t.Fatalf("%v not listed", id)
		}
		return o
	}
	for _, id := range nobodyOwned {
		if e := ipcStatID(id.Type, id.ID, new(statBuf)); e != unix.EACCES {
			t.Fatalf("IPC_STAT of %v as its owner with mode 0: %v, want EACCES", id, e)
		}
		o := find(id)
		out, err := Remove(fs, o)
		if err != nil || out.Result != Removed {
			t.Errorf("Remove(%v) unreadable, nobody's: %+v, %v; want removed", id, out, err)
		}
	}
	for _, id := range rootOwned {
		o := find(id)
		if out, err := Remove(fs, o); out.Result == Removed {
			t.Errorf("Remove(%v) of root's object as nobody: %+v, %v", id, out, err)
		}
	}
}

// TestStatAnyReusedIndex: an object is removed and the same index handed
// out again with another sequence number, same key and creator (the
// kernel does after 2^16 objects there; *_next_id does it at once). The
// re-check of the old identity must not remove the new object, also when
// IPC_STAT is refused and the index is looked up with *_STAT_ANY.
func TestStatAnyReusedIndex(t *testing.T) {
	if runtime.GOARCH != "amd64" && runtime.GOARCH != "arm64" {
		t.Skip("64-bit layouts only")
	}
	if !nstest.Isolate(t, nstest.Root) {
		return
	}
	fs := procFS(t)
	var old []Object
	for ty := range SysvTypes.All() {
		id := mkObj(t, ty, 0, 0o600)
		setOwner(t, ty, id, 65534, 0) // nobody's, unreadable even to nobody
		o, ok := snap(t, fs).find(ty, id)
		if !ok {
			t.Fatalf("%v %d not listed", ty, id)
		}
		old = append(old, o)
		if err := rmFuncs[ty](id); err != nil {
			t.Fatal(err)
		}
		// The same index, the next sequence number, same key and creator.
		setNextID(t, ty, id+1<<ipcmniShift)
		if got := mkObj(t, ty, 0, 0o600); got != id+1<<ipcmniShift {
			t.Fatalf("%v: next id %d, want %d", ty, got, id+1<<ipcmniShift)
		}
		setOwner(t, ty, id+1<<ipcmniShift, 65534, 0)
	}
	if err := syscall.Setresuid(65534, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	proc := sameAsProc(t, fs)
	if n := len(proc.Shm) + len(proc.Sem) + len(proc.Msg); n != 3 {
		t.Fatalf("%d objects, want 3: %+v", n, proc)
	}
	for _, o := range old {
		out, err := Remove(fs, o)
		if err != nil || out.Result != AlreadyGone && out.Result != Changed {
			t.Errorf("Remove(%v) of the old identity: %+v, %v; want already gone", o.Ident, out, err)
		}
	}
	if got := snap(t, fs); got.Len() != 3 {
		t.Errorf("the new objects were removed: %+v", got)
	}
}

// TestScanChurn lists the namespace again and again while other threads
// remove objects and make new ones, every other one at the index just
// freed with a new sequence number (*_next_id), so below the scan's
// position as often as above: every object that lives through a snapshot is listed exactly
// once, no id twice, and nothing is listed that never existed.
func TestScanChurn(t *testing.T) {
	if !nstest.Isolate(t, nstest.Root) {
		return
	}
	fs := procFS(t)
	stable := map[Ident]bool{}
	for ty := range SysvTypes.All() {
		for i := range 40 {
			id := mkObj(t, ty, 0x10000+i, 0o600)
			stable[Ident{Type: ty, ID: id}] = true
		}
	}
	var mu sync.Mutex
	made := map[Ident]bool{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for ty := range SysvTypes.All() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine, freed []int
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				if len(mine) > 30 || len(mine) > 0 && n%3 == 0 {
					j := n % len(mine)
					if err := rmFuncs[ty](mine[j]); err != nil {
						t.Error(err)
						return
					}
					freed = append(freed, mine[j])
					mine = slices.Delete(mine, j, j+1)
					continue
				}
				if len(freed) > 0 && n%2 == 0 {
					// The index just freed (below where a scan may be),
					// with the next sequence number: the allocator would
					// go on upwards, *_next_id takes it back at once.
					old := freed[len(freed)-1]
					freed = freed[:len(freed)-1]
					f := "/proc/sys/kernel/" + ty.String() + "_next_id"
					if err := os.WriteFile(f, []byte(fmt.Sprint(old+1<<ipcmniShift)), 0o644); err != nil {
						t.Error(err)
						return
					}
				}
				// Made and recorded under mu: a snapshot checked after it
				// took mu knows every object it can have seen.
				mu.Lock()
				id, err := mkObjErr(ty)
				if err == nil {
					made[Ident{Type: ty, ID: id}] = true
				}
				mu.Unlock()
				if err != nil {
					t.Error(err)
					return
				}
				mine = append(mine, id)
			}
		}()
	}
	for range 300 {
		s, err := fs.Snapshot(SysvTypes)
		if err != nil {
			t.Fatal(err)
		}
		seen := map[Ident]int{}
		for _, o := range s.Objects() {
			seen[Ident{Type: o.Type, ID: o.ID}]++
		}
		mu.Lock()
		for id, n := range seen {
			if n != 1 || !stable[id] && !made[id] {
				t.Errorf("%v listed %d times (made: %v)", id, n, made[id])
			}
		}
		mu.Unlock()
		for id := range stable {
			if seen[id] != 1 {
				t.Errorf("%v, alive throughout, listed %d times", id, seen[id])
			}
		}
		if t.Failed() {
			break
		}
	}
	close(stop)
	wg.Wait()
}

// TestScanLimits: a set at the last index (32767) among few others is
// too sparse to scan (the table is read from /proc), among enough others
// it is scanned; and a namespace with every index in use (*_INFO then
// says ipc_mni - 1 whatever max_idx) is listed whole. Each time as /proc
// lists it.
func TestScanLimits(t *testing.T) {
	if runtime.GOARCH != "amd64" && runtime.GOARCH != "arm64" {
		t.Skip("64-bit layouts only")
	}
	if !nstest.Isolate(t, nstest.Root) {
		return
	}
	const mni = 1 << ipcmniShift
	if err := os.WriteFile("/proc/sys/kernel/sem", []byte(fmt.Sprintf("2 %d 32 %d", 2*mni, mni)), 0o644); err != nil {
		t.Fatal(err)
	}
	fs := procFS(t)
	for range 10 {
		mkObj(t, TypeSem, 0, 0o600)
	}
	setNextID(t, TypeSem, mni-1)
	last := mkObj(t, TypeSem, 0, 0o600)
	if last != mni-1 {
		t.Fatalf("sem_next_id %d: got %d", mni-1, last)
	}
	if scanned(t, fs)[TypeSem] {
		t.Errorf("11 sets up to index %d: scanned", mni-1)
	}
	if s := sameAsProc(t, fs); len(s.Sem) != 11 {
		t.Fatalf("%d sets, want 11", len(s.Sem))
	}
	// Enough sets for a scan of every index (4n + 256 >= 32768).
	n := 11
	for ; n < (mni-scanSlack)/scanSparse; n++ {
		mkObj(t, TypeSem, 0, 0o600)
	}
	if !scanned(t, fs)[TypeSem] {
		t.Errorf("%d sets up to index %d: not scanned", n, mni-1)
	}
	if s := sameAsProc(t, fs); len(s.Sem) != n {
		t.Fatalf("%d sets, want %d", len(s.Sem), n)
	}
	// Every index.
	for ; n < mni; n++ {
		mkObj(t, TypeSem, 0, 0o600)
	}
	if _, _, e := unix.Syscall(unix.SYS_SEMGET, 0, 1, unix.IPC_CREAT|0o600); e != unix.ENOSPC {
		t.Fatalf("semget with every index in use: %v, want ENOSPC", e)
	}
	if got, maxIdx := info(TypeSem); got != mni || maxIdx != mni-1 {
		t.Fatalf("SEM_INFO: %d in use, highest index %d", got, maxIdx)
	}
	if s := sameAsProc(t, fs); len(s.Sem) != mni {
		t.Fatalf("%d sets, want %d", len(s.Sem), mni)
	}
}
