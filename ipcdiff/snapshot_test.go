package ipcdiff

import (
	"errors"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/ipcguard/ipcguard/internal/nstest"
	"golang.org/x/sys/unix"
)

// TestSnapshotKernel checks what the kernel reports for objects a helper
// made and used, as root and as an ordinary user: the snapshot's fields,
// per-semaphore pids, attachers, and that Diff finds exactly these objects.
func TestSnapshotKernel(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode.String(), func(t *testing.T) {
			t.Parallel()
			if !nstest.Isolate(t, mode) {
				return
			}
			fs := procFS(t)
			before := snap(t, fs)
			if before.Len() != 0 {
				t.Fatalf("fresh namespace has objects: %+v", before)
			}
			start := time.Now().Unix()
			h := startIPC(t, "shm:key=0x1234:size=8192:attach", "sem:key=0x80000001:n=3:op", "msg:key=0x5678:send", "shm")
			after := snap(t, fs)
			if !after.Taken.After(before.Taken) {
				t.Errorf("Taken %v not after %v", after.Taken, before.Taken)
			}
			uid := uint32(os.Geteuid())
			gid := uint32(os.Getegid())
			if len(after.Shm) != 2 || len(after.Sem) != 1 || len(after.Msg) != 1 {
				t.Fatalf("snapshot: %+v", after)
			}
			sh := after.Shm[0]
			if sh.ID != h.ids[TypeShm][0] || sh.Key != 0x1234 || sh.Size != 8192 || sh.Perms != 0o600 ||
				sh.CPID != h.pid || sh.LPID != h.pid || sh.Nattch != 1 ||
				sh.UID != uid || sh.CUID != uid || sh.GID != gid || sh.CGID != gid ||
				sh.Atime < start || sh.Ctime < start || sh.Dtime != 0 {
				t.Errorf("attached shm = %+v, want id %d key 0x1234 cpid=lpid=%d nattch 1 uid %d", sh, h.ids[TypeShm][0], h.pid, uid)
			}
			if sh2 := after.Shm[1]; sh2.Key != 0 || sh2.CPID != h.pid || sh2.LPID != 0 || sh2.Nattch != 0 || sh2.Size != 4096 {
				t.Errorf("private shm = %+v", sh2)
			}
			se := after.Sem[0]
			if se.ID != h.ids[TypeSem][0] || se.Key != -0x7fffffff || KeyString(se.Key) != "0x80000001" || se.NSems != 3 ||
				se.Otime < start || se.CUID != uid || se.Perms != 0o600 {
				t.Errorf("sem = %+v", se)
			}
			mq := after.Msg[0]
			if mq.ID != h.ids[TypeMsg][0] || mq.Key != 0x5678 || mq.QNum != 1 || mq.CBytes != 5 ||
				mq.LSPID != h.pid || mq.LRPID != 0 || mq.Stime < start || mq.CUID != uid {
				t.Errorf("msg = %+v", mq)
			}

			objs := diff(before, after)
			var got []Ident
			for _, o := range objs {
				got = append(got, o.Ident)
			}
			want := []Ident{
				sysvID(TypeShm, sh.ID, 0x1234, uid), sysvID(TypeShm, after.Shm[1].ID, 0, uid),
				sysvID(TypeSem, se.ID, se.Key, uid), sysvID(TypeMsg, mq.ID, 0x5678, uid),
			}
			if !slices.Equal(got, want) {
				t.Fatalf("Diff = %v, want %v", got, want)
			}
			if again := diff(after, snap(t, fs)); len(again) != 0 {
				t.Fatalf("Diff of unchanged namespace = %+v", again)
			}

			st, err := semStates(se.ID, se.NSems)
			if err != nil {
				t.Fatal(err)
			}
			for n, s := range st {
				if s != (SemState{Pid: h.pid}) {
					t.Errorf("semaphore %d: %+v, want pid %d and no waiters", n, s, h.pid)
				}
			}
			if errs := enrichSems(objs); len(errs) != 0 {
				t.Fatalf("enrichSems: %v", errs)
			}
			if !slices.Equal(objs[2].Sems, st) {
				t.Errorf("enrichSems filled %+v, want %+v", objs[2].Sems, st)
			}

			who, unreadable, err := fs.Attachers(map[int]bool{sh.ID: true, after.Shm[1].ID: true})
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(who[sh.ID], []int{h.pid}) || len(who) != 1 {
				t.Errorf("Attachers = %v, want {%d: [%d]} (unreadable %v)", who, sh.ID, h.pid, unreadable)
			}
			if slices.Contains(unreadable, h.pid) {
				t.Errorf("could not read the maps of our own helper %d", h.pid)
			}

			stopIPC(t, h)
			sh = snap(t, fs).Shm[0]
			if sh.Nattch != 0 || sh.LPID != h.pid || sh.Dtime < start {
				t.Errorf("after the helper died: %+v, want nattch 0, lpid %d", sh, h.pid)
			}
			who, _, err = fs.Attachers(map[int]bool{sh.ID: true})
			if err != nil || len(who) != 0 {
				t.Errorf("Attachers after detach = %v, %v", who, err)
			}
		})
	}
}

// TestEnrichVanished checks that a set removed after the snapshot is
// reported as vanished while the others are still filled.
func TestEnrichVanished(t *testing.T) {
	if !nstest.Isolate(t, nstest.Unprivileged) {
		return
	}
	fs := procFS(t)
	h := runIPC(t, "sem:n=2:op", "sem:n=1", "msg")
	objs := diff(nil, snap(t, fs))
	if len(objs) != 3 {
		t.Fatalf("objects %+v", objs)
	}
	if err := rmSem(h.ids[TypeSem][0]); err != nil {
		t.Fatal(err)
	}
	errs := enrichSems(objs)
	if len(errs) != 1 || errs[0].ID != h.ids[TypeSem][0] || !errors.Is(errs[0].Err, ErrVanished) || !errors.Is(errs[0].Err, unix.EINVAL) {
		t.Fatalf("enrichSems errors = %v, want the removed set vanished (EINVAL)", errs)
	}
	if objs[0].Sems != nil {
		t.Errorf("vanished set has Sems %+v", objs[0].Sems)
	}
	if !slices.Equal(objs[1].Sems, []SemState{{}}) {
		t.Errorf("unused set: Sems %+v, want one zero state", objs[1].Sems)
	}
	if objs[2].Sems != nil {
		t.Errorf("queue got Sems")
	}
}
