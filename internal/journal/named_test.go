package journal

import (
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ipcguard/ipcguard/internal/posixipc"
	"github.com/ipcguard/ipcguard/ipcdiff"
)

// hostileNames are names a named object may have: any byte but NUL and
// '/' after the leading slash.
var hostileNames = []string{"/a", "/a b", "/new\nline", "/tab\tcr\r", `/"quoted"`, `/back\slash`, "/\xff\xfe not utf-8",
	"/ünïcödé €", "/sem.x", "/" + strings.Repeat("x", 255), "/ ", "/\x01\x7f", "/%41"}

// TestObjectLines: every identity comes back from its object line as it
// was, whatever bytes its name holds, and the line is one line of
// printable ASCII.
func TestObjectLines(t *testing.T) {
	ids := []ipcdiff.Ident{{ID: 0}, {ID: 32769, Key: -1, CUID: 4294967294}, {ID: 1<<31 - 1, Key: 0x51000001, CUID: 1000}}
	for i, n := range hostileNames {
		ids = append(ids, ipcdiff.Ident{ID: 1<<40 + i, Dev: uint64(0x2c + i), Name: n})
	}
	ids = append(ids, ipcdiff.Ident{ID: 7, Dev: 0, Name: "/no device"}, ipcdiff.Ident{ID: 7, Dev: 1 << 63})
	for _, id := range ids {
		l := appendObj(nil, &id)
		if l[len(l)-1] != '\n' {
			t.Fatalf("%q: no newline", l)
		}
		l = l[:len(l)-1]
		for _, c := range l {
			if c < ' ' || c > '~' {
				t.Errorf("%+v: line %q holds byte %#x", id, l, c)
			}
		}
		got, ok := parseObj(l)
		if !ok || got != id {
			t.Errorf("%+v: line %q reads back as %+v (%v)", id, l, got, ok)
		}
	}
	for _, bad := range []string{"", "1", "1 2", "1 2 3 4", "1 2 3 4 x", `1 2 3 4 "a`, "1 2 3 4 \"a\nb\"", "1 2 3 zz \"/a\"",
		"1 123456789 3", "10000000000000000 0 0", "1 2 3 \"/a\" 4", "-1 0 0"} {
		if id, ok := parseObj([]byte(bad)); ok {
			t.Errorf("%q parsed as %+v", bad, id)
		}
	}
}

// TestCreatedRecords: creations come back from Load as recorded, with
// any name; a damaged M record is a bad line; one of a kind this ipcguard
// does not know is skipped without counting as damage.
func TestCreatedRecords(t *testing.T) {
	j, err := Begin(t.TempDir(), Header{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Done()
	t0 := time.Unix(1_700_000_000, 7)
	var want []ipcdiff.Creation
	for i, n := range hostileNames {
		c := ipcdiff.Creation{Type: ipcdiff.Type(i % 3), Dev: uint64(0x2c + i), Name: n, Pid: 100 + i, At: t0.Add(time.Duration(i)), Moved: i%2 == 1}
		if i%3 != 0 {
			c.File = posixipc.NewHandle(int32(i%3), []byte{0xfd, byte(i), 0, 0x59})
		}
		j.Created(c)
		want = append(want, c)
	}
	if err := j.Err(); err != nil {
		t.Fatal(err)
	}
	appendLine(t, j.Path(), `M zzz 2c 5 1 0 "/a"`)
	// A record written before files were recorded, and one with a file.
	appendLine(t, j.Path(), `M pshm 2c 5 1 0 "old"`)
	appendLine(t, j.Path(), `M psem 2c 5 1 1 129:59d756 "sem. x"`)
	want = append(want, ipcdiff.Creation{Type: ipcdiff.TypePshm, Dev: 0x2c, Name: "old", Pid: 5, At: time.Unix(0, 1)},
		ipcdiff.Creation{Type: ipcdiff.TypePsem, Dev: 0x2c, Name: "sem. x", Pid: 5, At: time.Unix(0, 1), Moved: true, File: "129:59d756"})
	r, err := Load(j.Path())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.EqualFunc(r.Created, want, sameCreation) || r.BadLines != 0 {
		t.Errorf("created (bad lines %d)\n got %+v\nwant %+v", r.BadLines, r.Created, want)
	}
	for _, body := range []string{`M shm 2c 0 1 0 "/a"`, `M shm 2c 5 1 2 "/a"`, `M shm 2c 5 1 0 ""`, `M shm 2c 5 1 0 /a`,
		`M shm 2c 5 1 0`, `M shm zz 5 1 0 "/a"`, `M shm 2c 5 x 0 "/a"`,
		`M pshm 2c 5 1 0 1:abc "/a"`, `M pshm 2c 5 1 0 1: "/a"`, `M pshm 2c 5 1 0 x:00 "/a"`, `M pshm 2c 5 1 0 1:00`, `M pshm 2c 5 1 0 1:00 1:00 "/a"`} {
		var r Record
		if parseRecord(sealed(body), &r) {
			t.Errorf("%q parsed: %+v", body, r.Created)
		}
	}
}

func sameCreation(a, b ipcdiff.Creation) bool {
	return a.Type == b.Type && a.Dev == b.Dev && a.Name == b.Name && a.Pid == b.Pid && a.At.Equal(b.At) && a.Moved == b.Moved && a.File == b.File
}

// sealed is body as a record line: its checksum appended.
func sealed(body string) []byte {
	l := append([]byte(body), ' ')
	return appendHex(l, uint64(crc32.ChecksumIEEE([]byte(body))), 8)
}

func appendLine(t *testing.T, path, body string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(append(sealed(body), '\n')); err != nil {
		t.Fatal(err)
	}
}

// TestCompactionCreated: compaction keeps each name's latest creation,
// once, and an M record of a kind it does not know as it is.
func TestCompactionCreated(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	latest := map[ipcdiff.Creation]ipcdiff.Creation{}
	var part []byte
	for i := range 400 {
		// The same name on two devices is two names.
		c := ipcdiff.Creation{Type: ipcdiff.TypeShm, Dev: uint64(0x2c + i%2), Name: fmt.Sprintf("/n%d", i%40), Pid: 1000 + i,
			At: t0.Add(time.Duration(i) * time.Millisecond), Moved: i%3 == 0, File: posixipc.NewHandle(1, []byte{byte(i), byte(i >> 8)})}
		if i%7 == 0 {
			c.At = t0 // an earlier time recorded later: not the latest
		}
		part = append(part, seal(appendCreated(nil, c))...)
		k := ipcdiff.Creation{Type: c.Type, Dev: c.Dev, Name: c.Name}
		if w, ok := latest[k]; !ok || !c.At.Before(w.At) {
			latest[k] = c
		}
	}
	part = append(part, append(sealed(`M zzz 2c 5 1 0 "/a"`), '\n')...)
	out, c := compactRecords(part, limitsFor(64<<10), nil)
	var r Record
	parseRecords(out, &r)
	if r.BadLines != 0 || c.Created != 0 || r.Compacted.Times != 1 {
		t.Errorf("bad lines %d, compaction %+v", r.BadLines, c)
	}
	if !strings.Contains(string(out), `M zzz 2c 5 1 0 "/a"`) {
		t.Errorf("the record of an unknown kind is gone")
	}
	seen := map[ipcdiff.Creation]bool{}
	for _, got := range r.Created {
		k := ipcdiff.Creation{Type: got.Type, Dev: got.Dev, Name: got.Name}
		if seen[k] {
			t.Errorf("%s on %#x kept twice", got.Name, got.Dev)
		}
		seen[k] = true
		if !sameCreation(got, latest[k]) {
			t.Errorf("kept %+v, latest %+v", got, latest[k])
		}
	}
	if len(seen) != len(latest) {
		t.Errorf("%d names kept, want %d", len(seen), len(latest))
	}
	// Within a small budget the most recent names stay, the others are counted.
	out, c = compactRecords(part, limitsFor(8<<10), nil)
	r = Record{}
	parseRecords(out, &r)
	if len(r.Created) == 0 || len(r.Created)+c.Created != len(latest) || r.Compacted.Created != c.Created {
		t.Errorf("small budget: %d kept, %d dropped (X says %d), want %d in all", len(r.Created), c.Created, r.Compacted.Created, len(latest))
	}
}

// journalText is a journal of version v: its first part from head lines,
// with offset and checksum, then records.
func journalText(v int, head []string, records ...string) []byte {
	b := []byte(fmt.Sprintf("%s%d %016x\n", magic, v, 0))
	for _, l := range head {
		b = append(b, l...)
		b = append(b, '\n')
	}
	off := uint64(len(b) + endLineLen)
	appendHex(b[firstLineLen-17:firstLineLen-17], off, 16)
	sum := crc32.ChecksumIEEE(b)
	b = append(b, 'E', ' ')
	b = appendHex(b, uint64(sum), 8)
	b = append(b, '\n')
	for _, r := range records {
		b = append(b, sealed(r)...)
		b = append(b, '\n')
	}
	return b
}

// TestReadVersion3: a journal of version 3 (types as a number, the before
// snapshot of the three System V kinds) reads as it did.
func TestReadVersion3(t *testing.T) {
	path := filepath.Join(t.TempDir(), "run-1-1.journal")
	data := journalText(3, []string{
		"H 10 20 1000 1001 1700000000000000005 5 1",
		`A 1 "x"`, "K 0", `O "failure"`,
		"B 1700000000000000001 7 2 1 1",
		"8001 51000001 3e8", "1 ffffffff 0",
		"2 0 3e8",
		"3 2a 0",
	}, "C 42 99 1700000000000000002", "X 1 2 3 4 0")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	r, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if r.Types != 1<<ipcdiff.TypeShm|1<<ipcdiff.TypeMsg || r.BeforeTypes != ipcdiff.SysvTypes || !r.Strict || r.CommandPid != 42 ||
		r.Compacted != (Compaction{Times: 1, Stays: 2, Gets: 3, Watch: 4}) || r.BadLines != 0 {
		t.Errorf("record %+v", r)
	}
	for _, id := range []ipcdiff.Ident{{Type: ipcdiff.TypeShm, ID: 0x8001, Key: 0x51000001, CUID: 1000}, {Type: ipcdiff.TypeShm, ID: 1, Key: -1},
		{Type: ipcdiff.TypeSem, ID: 2, CUID: 1000}, {Type: ipcdiff.TypeMsg, ID: 3, Key: 0x2a}} {
		if !r.Before.Contains(id) {
			t.Errorf("before lacks %v", id)
		}
	}
	if r.Before.Len() != 4 {
		t.Errorf("before holds %d objects", r.Before.Len())
	}
}

// TestUnknownKind: types and sections of a kind this ipcguard does not
// know (a journal written by a newer one) are left out; the rest reads.
func TestUnknownKind(t *testing.T) {
	path := filepath.Join(t.TempDir(), "run-1-1.journal")
	data := journalText(FormatVersion, []string{
		"H 10 20 1000 1001 1700000000000000005 shm,zzz 0",
		"A 0", "K 0", `O "failure"`,
		"B 1700000000000000001 zzz,shm 2",
		"T zzz 2", `1 0 0 2c "/a"`, `2 0 0 2c "/b c"`,
		"T shm 2", "8001 51000001 3e8", `5 0 0 2c "/named"`,
	}, `M zzz 2c 5 1 0 "/a"`, "X 1 0 0 0 0 3")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	r, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if r.Types != 1<<ipcdiff.TypeShm || r.BeforeTypes != 1<<ipcdiff.TypeShm || r.Before.Len() != 2 || r.BadLines != 0 ||
		len(r.Created) != 0 || r.Compacted.Created != 3 {
		t.Errorf("types %v/%v, %d objects, %d bad lines, created %+v, compacted %+v", r.Types, r.BeforeTypes, r.Before.Len(), r.BadLines, r.Created, r.Compacted)
	}
	if !r.Before.Contains(ipcdiff.Ident{Type: ipcdiff.TypeShm, ID: 5, Dev: 0x2c, Name: "/named"}) {
		t.Errorf("before lacks the named object")
	}
	for _, bad := range [][]string{
		{"B 1 - 1", "T shm 2", "1 0 0"},
		{"B 1 - 1", "T shm 1", "1 0 0", "2 0 0"},
		{"B 1 shm,,sem 0"},
		{"B 1 shm"},
		{"B 1 - 1", "U shm 1", "1 0 0"},
	} {
		data := journalText(FormatVersion, append([]string{"H 10 20 1000 1001 5 shm 0", "A 0", "K 0", `O ""`}, bad...))
		os.WriteFile(path, data, 0o600)
		if _, err := Load(path); err == nil {
			t.Errorf("%q loaded", bad)
		}
	}
}
