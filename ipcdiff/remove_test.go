package ipcdiff

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/ipcguard/ipcguard/internal/nstest"
	"golang.org/x/sys/unix"
)

// TestRemoveKernel removes each type of object, then removes it again, as
// root and as an ordinary user.
func TestRemoveKernel(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode.String(), func(t *testing.T) {
			t.Parallel()
			if !nstest.Isolate(t, mode) {
				return
			}
			fs := procFS(t)
			runIPC(t, "shm:key=0x10", "sem:key=0x20:n=2:op", "msg:key=0x30:send")
			objs := diff(nil, snap(t, fs))
			if len(objs) != 3 {
				t.Fatalf("objects %+v", objs)
			}
			for _, o := range objs {
				out, err := Remove(fs, o)
				if err != nil || out.Result != Removed {
					t.Errorf("Remove(%v) = %+v, %v; want removed", o.Ident, out, err)
				}
				out, err = Remove(fs, o)
				if err != nil || out.Result != AlreadyGone {
					t.Errorf("second Remove(%v) = %+v, %v; want already gone", o.Ident, out, err)
				}
			}
			if s := snap(t, fs); s.Len() != 0 {
				t.Fatalf("objects left: %+v", s)
			}
		})
	}
}

// TestRemoveAttached removes a segment still attached: it is marked and
// goes when its user detaches.
func TestRemoveAttached(t *testing.T) {
	if !nstest.Isolate(t, nstest.Unprivileged) {
		return
	}
	fs := procFS(t)
	h := startIPC(t, "shm:key=0x77:attach")
	objs := diff(nil, snap(t, fs))
	out, err := Remove(fs, objs[0])
	if err != nil || out.Result != RemovedDeferred {
		t.Fatalf("Remove = %+v, %v; want removed (deferred)", out, err)
	}
	s := snap(t, fs)
	if len(s.Shm) != 1 || s.Shm[0].Perms&ShmDest == 0 || s.Shm[0].Key != 0 || s.Shm[0].Nattch != 1 {
		t.Fatalf("after IPC_RMID: %+v, want one marked segment with key 0", s.Shm)
	}
	if out, err := Remove(fs, objs[0]); err != nil || out.Result != AlreadyGone {
		t.Fatalf("Remove of a marked segment = %+v, %v; want already gone", out, err)
	}
	stopIPC(t, h)
	if s := snap(t, fs); len(s.Shm) != 0 {
		t.Fatalf("segment outlived its last detach: %+v", s.Shm)
	}
}

// TestRemoveChanged gives Remove objects whose identity no longer matches
// what the kernel holds at their id (as after an id reuse): it must keep
// them.
func TestRemoveChanged(t *testing.T) {
	if !nstest.Isolate(t, nstest.Root) {
		return
	}
	fs := procFS(t)
	runIPC(t, "shm:key=0x10", "sem:key=0x20", "msg:key=0x30")
	objs := diff(nil, snap(t, fs))
	for _, o := range objs {
		real := o.Ident
		if res, cur, _, err := recheck(fs, real); res != 0 || cur != real || err != nil {
			t.Fatalf("recheck(%v) = %v, %v, %v; want same", real, res, cur, err)
		}
		for _, doctor := range []func(*Object){
			func(o *Object) { o.Key++ },
			func(o *Object) { o.CUID += 1000 },
		} {
			d := o
			doctor(&d)
			out, err := Remove(fs, d)
			if err != nil || out.Result != Changed || out.Found != real {
				t.Errorf("Remove(doctored %+v) = %+v, %v; want changed, found %+v", d.Ident, out, err, real)
			}
		}
	}
	if s := snap(t, fs); s.Len() != 3 {
		t.Fatalf("a doctored Remove removed something: %+v", s)
	}
	if res, _, _, err := recheck(fs, Ident{Type: numTypes}); res != Failed || !errors.Is(err, ErrUsage) {
		t.Errorf("recheck of a bad type = %v, %v", res, err)
	}
}

// TestRecheckProc checks the /proc fallback of the re-check on fixtures.
func TestRecheckProc(t *testing.T) {
	fs, err := NewFS(filepath.Join(fixtures, "proc"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		id    Ident
		want  RemoveResult
		found Ident
	}{
		{sysvID(TypeShm, 0, 0x12345678, 0), 0, sysvID(TypeShm, 0, 0x12345678, 0)},
		{sysvID(TypeShm, 0, 0x1234567, 0), Changed, sysvID(TypeShm, 0, 0x12345678, 0)},
		{sysvID(TypeShm, 1, -1, 0), AlreadyGone, sysvID(TypeShm, 1, 0, 0)}, // SHM_DEST
		{sysvID(TypeShm, 9, 0, 0), AlreadyGone, Ident{}},
		{sysvID(TypeSem, 1, -0x80000000, 0), 0, sysvID(TypeSem, 1, -0x80000000, 0)},
		{sysvID(TypeSem, 1, -0x80000000, 5), Changed, sysvID(TypeSem, 1, -0x80000000, 0)},
		{sysvID(TypeMsg, 0, 0x1234, 0), 0, sysvID(TypeMsg, 0, 0x1234, 0)},
		{sysvID(TypeMsg, 2, 0x1234, 0), AlreadyGone, Ident{}},
	} {
		res, found, _, err := recheckProc(fs, sysvOf(tc.id.Type), tc.id)
		if err != nil || res != tc.want || found != tc.found {
			t.Errorf("recheckProc(%+v) = %v, %+v, %v; want %v, %+v", tc.id, res, found, err, tc.want, tc.found)
		}
	}
}

const helperRemove = "ipcdiff-remove"

// removeHelper runs Remove on the object "TYPE ID KEY CUID" and prints
// "RESULT ERRNO" (ERRNO 0 when none).
func removeHelper(args []string) int {
	if len(args) != 4 {
		fmt.Fprintln(os.Stderr, "usage: TYPE ID KEY CUID")
		return 2
	}
	typ, err := ParseType(args[0])
	nums := make([]int64, 3)
	for i, a := range args[1:] {
		if nums[i], err = strconv.ParseInt(a, 10, 64); err != nil {
			break
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	fs, err := NewFS(DefaultProcRoot)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	o := Object{Ident: Ident{Type: typ, ID: int(nums[0]), Key: int32(nums[1]), CUID: uint32(nums[2])}}
	out, err := Remove(fs, o)
	var errno unix.Errno
	errors.As(err, &errno)
	fmt.Printf("%s %d\n", out.Result, int(errno))
	return 0
}

// TestRemoveNotOwner has nobody remove root's objects: IPC_STAT says
// EACCES (mode 0600), so the re-check goes through *_STAT_ANY; IPC_RMID
// then fails with EPERM and the objects survive. A doctored identity is
// still refused through that path.
func TestRemoveNotOwner(t *testing.T) {
	if !nstest.Isolate(t, nstest.Root) {
		return
	}
	if os.Geteuid() != 0 {
		t.Skip("needs real root to run a helper as another user (root of a user namespace maps only itself)")
	}
	fs := procFS(t)
	runIPC(t, "shm:key=0x10", "sem:key=0x20", "msg:key=0x30")
	objs := diff(nil, snap(t, fs))
	asNobody := func(id Ident) string {
		cmd := nstest.HelperCmd(helperRemove, id.Type.String(), fmt.Sprint(id.ID), fmt.Sprint(id.Key), fmt.Sprint(id.CUID))
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nstest.NobodyUID, Gid: nstest.NobodyUID, Groups: []uint32{}}}
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("remove helper: %v\n%s", err, stderr.String())
		}
		return strings.TrimSpace(string(out))
	}
	for _, o := range objs {
		if got, want := asNobody(o.Ident), fmt.Sprintf("failed %d", int(unix.EPERM)); got != want {
			t.Errorf("nobody removing %v: %q, want %q", o.Ident, got, want)
		}
		d := o.Ident
		d.Key++
		if got, want := asNobody(d), Changed.String()+" 0"; got != want {
			t.Errorf("nobody removing doctored %v: %q, want %q", d, got, want)
		}
	}
	if s := snap(t, fs); s.Len() != 3 {
		t.Fatalf("objects after nobody's attempts: %+v", s)
	}
}

// TestRecheckReadsWhatProcShows: what IPC_STAT gives, in this
// architecture's struct layout, is what /proc/sysvipc shows of the same
// objects (the re-check before IPC_RMID compares the two).
func TestRecheckReadsWhatProcShows(t *testing.T) {
	for _, mode := range []nstest.Mode{nstest.Root, nstest.Unprivileged} {
		t.Run(mode.String(), func(t *testing.T) {
			if !nstest.Isolate(t, mode) {
				return
			}
			fs := procFS(t)
			runIPC(t, "shm:key=0x10:attach", "sem:key=0x20:n=3:op", "msg:key=0x30:send", "shm", "sem", "msg")
			objs := diff(nil, snap(t, fs))
			if len(objs) != 6 {
				t.Fatalf("%d objects, want 6", len(objs))
			}
			if errs := enrichSems(objs); len(errs) > 0 {
				t.Fatal(errs)
			}
			for _, o := range objs {
				res, _, cur, err := recheck(fs, o.Ident)
				if res != 0 || err != nil {
					t.Fatalf("recheck(%v) = %v, %v", o.Ident, res, err)
				}
				if cur.Sem != nil {
					if cur.Sem.NSems != o.Sem.NSems {
						t.Errorf("%v: nsems %d, /proc says %d", o.Ident, cur.Sem.NSems, o.Sem.NSems)
					}
					cur.Sems = o.Sems
				}
				if why := changed(&o, &cur); why != "" {
					t.Errorf("%v: IPC_STAT and /proc differ: %s\nstat: %+v %+v %+v\nproc: %+v %+v %+v", o.Ident, why,
						cur.Shm, cur.Sem, cur.Msg, o.Shm, o.Sem, o.Msg)
				}
			}
		})
	}
}

// TestRemoveTouched: an object someone used after the decision is kept.
func TestRemoveTouched(t *testing.T) {
	if !nstest.Isolate(t, nstest.Root) {
		return
	}
	fs := procFS(t)
	runIPC(t, "shm:key=0x10", "sem:key=0x20:n=2", "msg:key=0x30")
	objs := diff(nil, snap(t, fs))
	if errs := enrichSems(objs); len(errs) > 0 {
		t.Fatal(errs)
	}
	// Another process attaches the segment, operates on the set and sends
	// to the queue: each now carries another pid and time.
	runIPC(t, "shm:key=0x10:attach", "sem:key=0x20:n=2:op", "msg:key=0x30:send")
	for _, o := range objs {
		out, err := Remove(fs, o)
		if err != nil || out.Result != Touched || out.Why == "" {
			t.Errorf("Remove(%v) after use = %+v, %v; want touched", o.Ident, out, err)
		}
	}
	if n := len(snap(t, fs).Shm) + len(snap(t, fs).Sem) + len(snap(t, fs).Msg); n != 3 {
		t.Errorf("%d objects left, want the 3 touched ones", n)
	}
}

// TestRemoveRaces: what the kernel answers when the object goes, or the
// re-check fails, between the steps of Remove. The interleavings are forced
// by wrapping the kernel calls; the objects and errnos are real.
func TestRemoveRaces(t *testing.T) {
	if !nstest.Isolate(t, nstest.Root) {
		return
	}
	fs := procFS(t)
	runIPC(t, "shm:key=0x10", "sem:key=0x20", "msg:key=0x30")
	objs := diff(nil, snap(t, fs))
	if len(objs) != 3 {
		t.Fatalf("objects %+v", objs)
	}
	realRm := rmFuncs
	t.Cleanup(func() { rmFuncs, statID, statAnyIndex = realRm, nil, nil })

	// A re-check that fails with an errno other than "gone" or "denied"
	// removes nothing and says why.
	statID = func(Type, int, *statBuf) unix.Errno { return unix.ENOMEM }
	for _, o := range objs {
		out, err := Remove(fs, o)
		if out.Result != Failed || !errors.Is(err, unix.ENOMEM) || !errors.Is(out.Err, unix.ENOMEM) {
			t.Errorf("Remove(%v) with the re-check failing = %+v, %v; want failed, ENOMEM", o.Ident, out, err)
		}
	}
	if s := snap(t, fs); s.Len() != 3 {
		t.Fatalf("a failed re-check removed something: %+v", s)
	}

	// Unreadable (EACCES) on a kernel without *_STAT_ANY (EINVAL): the
	// re-check reads the live /proc/sysvipc. A doctored identity is refused
	// there too; the real one passes.
	statID = func(Type, int, *statBuf) unix.Errno { return unix.EACCES }
	statAnyIndex = func(Type, int, *statBuf) (int, unix.Errno) { return -1, unix.EINVAL }
	for _, o := range objs {
		d := o
		d.Key++
		if out, err := Remove(fs, d); err != nil || out.Result != Changed || out.Found != o.Ident {
			t.Errorf("Remove(doctored %v) through /proc = %+v, %v; want changed", d.Ident, out, err)
		}
		if res, cur, _, err := recheck(fs, o.Ident); res != 0 || cur != o.Ident || err != nil {
			t.Errorf("recheck(%v) through /proc = %v, %v, %v; want the same object", o.Ident, res, cur, err)
		}
	}
	if s := snap(t, fs); s.Len() != 3 {
		t.Fatalf("a doctored Remove removed something: %+v", s)
	}
	statID, statAnyIndex = nil, nil

	// The object goes between the re-check and IPC_RMID (another remover
	// won): IPC_RMID then says EINVAL, or EIDRM, and that is "already
	// gone", not a failure.
	for i, o := range objs {
		gone := unix.EINVAL
		if i == 1 {
			gone = unix.EIDRM
		}
		rmFuncs[o.Type] = func(id int) error {
			if err := realRm[o.Type](id); err != nil {
				t.Fatalf("the other remover: %v", err)
			}
			err := realRm[o.Type](id)
			if gone == unix.EIDRM && errors.Is(err, unix.EINVAL) {
				err = fmt.Errorf("wrapped: %w", unix.EIDRM) // as a set removed under a waiter says
			}
			return err
		}
		out, err := Remove(fs, o)
		if err != nil || out.Result != AlreadyGone {
			t.Errorf("Remove(%v) losing the race (%v) = %+v, %v; want already gone", o.Ident, gone, out, err)
		}
		rmFuncs = realRm
	}
	if s := snap(t, fs); s.Len() != 0 {
		t.Fatalf("objects left: %+v", s)
	}
}
