package ipcdiff

import (
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/ipcguard/ipcguard/internal/nstest"
)

// TestDiffIdentsIdentity: an object is new when any part of its identity
// (type, id, key, creator uid) differs from every one before.
func TestDiffIdentsIdentity(t *testing.T) {
	before := &Snapshot{Types: AllTypes,
		Shm: []Shm{{ID: 1, Key: 5, CUID: 1}, {ID: 3, Key: 0, CUID: 1}},
		Sem: []Sem{{ID: 2, Key: -7, CUID: 0}},
		Msg: []Msg{{ID: 4, Key: 9, CUID: 2}},
	}
	after := &Snapshot{Types: AllTypes,
		Shm: []Shm{{ID: 1, Key: 5, CUID: 1}, {ID: 3, Key: 0, CUID: 2}, {ID: 8}}, // 3: same id, other creator
		Sem: []Sem{{ID: 2, Key: -7, CUID: 0}, {ID: 6, Key: 1}},
		Msg: []Msg{{ID: 4, Key: 10, CUID: 2}}, // same id, other key
	}
	got := identsOf(DiffIdents(IdentsOf(before), after))
	want := []Ident{sysvID(TypeShm, 3, 0, 2), sysvID(TypeShm, 8, 0, 0), sysvID(TypeSem, 6, 1, 0), sysvID(TypeMsg, 4, 10, 2)}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("DiffIdents = %v, want %v", got, want)
	}
	ids := IdentsOf(before)
	for _, id := range []Ident{sysvID(TypeShm, 1, 5, 1), sysvID(TypeSem, 2, -7, 0), sysvID(TypeMsg, 4, 9, 2)} {
		if !ids.Contains(id) {
			t.Errorf("Contains(%v) = false", id)
		}
	}
	if ids.Contains(sysvID(TypeSem, 1, 5, 1)) || ids.Contains(sysvID(TypeShm, 3, 0, 2)) {
		t.Errorf("Contains finds what is not there")
	}
}

// TestSnapshotSerialEqualsParallel: both ways of reading give the same
// objects, in a namespace holding some of each type, enough in all for
// Snapshot to read in parallel.
func TestSnapshotSerialEqualsParallel(t *testing.T) {
	if !nstest.Isolate(t, nstest.Root) {
		return
	}
	steps := []string{"shm", "shm:key=0x11", "sem:n=2:op", "msg:send", "msg:key=0x12"}
	for len(steps) < parallelMin+50 {
		steps = append(steps, "sem")
	}
	if out, err := nstest.IPCCmd(steps...).CombinedOutput(); err != nil {
		t.Fatalf("helper: %v\n%s", err, out)
	}
	fs, err := NewFS("/proc")
	if err != nil {
		t.Fatal(err)
	}
	par, err := fs.Snapshot(AllTypes)
	if err != nil {
		t.Fatal(err)
	}
	ser, err := fs.SnapshotWith(AllTypes, false)
	if err != nil {
		t.Fatal(err)
	}
	nsem := len(steps) - 4
	if a, b, c := inUse(TypeShm), inUse(TypeSem), inUse(TypeMsg); a != 2 || b != nsem || c != 2 {
		t.Errorf("inUse = shm %d, sem %d, msg %d; want 2, %d, 2", a, b, c, nsem)
	}
	if par.Len() != len(steps) || !reflect.DeepEqual(par.Shm, ser.Shm) || !reflect.DeepEqual(par.Sem, ser.Sem) || !reflect.DeepEqual(par.Msg, ser.Msg) {
		t.Fatalf("parallel %+v\nserial   %+v", par, ser)
	}
}

// TestReadTableChunks: reading a table in chunks of any size, lines split
// anywhere, gives what parsing it whole gives, errors included.
func TestReadTableChunks(t *testing.T) {
	var b strings.Builder
	b.WriteString("       key      msqid perms      cbytes       qnum lspid lrpid   uid   gid  cuid  cgid      stime      rtime      ctime\n")
	for i := 0; i < 300; i++ {
		fmt.Fprintf(&b, "%10d %10d  600 %11d %10d %5d %5d %5d %5d %5d %5d %10d %10d %10d\n", i*7-500, i, i, i%3, i+1, 0, 1000, 1000, 1000, 1000, 0, 0, 1700000000+i)
	}
	text := b.String()
	want, err := parseMsg([]byte(text))
	if err != nil || len(want) != 300 {
		t.Fatalf("parseMsg: %d rows, %v", len(want), err)
	}
	for _, chunk := range []int{1, 7, 64, 150, 4096, 1 << 20} {
		got, err := readTableChunks(strings.NewReader(text), "msg", appendMsg, chunk, chunk%3*100)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("chunk %d: %d rows, %v", chunk, len(got), err)
		}
	}
	for _, bad := range []string{text + "garbage line\n", "", text[:len(text)-1] + " 1\n"} {
		if _, err := readTableChunks(strings.NewReader(bad), "msg", appendMsg, 64, 0); err == nil {
			t.Errorf("bad table accepted (%d bytes)", len(bad))
		}
	}
	if got, err := readTableChunks(strings.NewReader(text[:strings.IndexByte(text, '\n')+1]), "msg", appendMsg, 16, 5); err != nil || len(got) != 0 {
		t.Errorf("header only: %v, %v", got, err)
	}
	noNL := strings.TrimSuffix(text, "\n")
	if got, err := readTableChunks(strings.NewReader(noNL), "msg", appendMsg, 100, 0); err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("no final newline: %d rows, %v", len(got), err)
	}
}
