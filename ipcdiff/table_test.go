package ipcdiff

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

const fixtures = "../testdata/fixtures"

func readFixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(fixtures, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The real fixtures were captured on Linux 6.18/amd64 in a private IPC
// namespace (pid 8744 made the objects; testdata/fixtures/proc/100/maps is its
// maps): a segment attached once, one removed while attached (SHM_DEST, key
// cleared), an unused one; sets with keys 0x7fffffff and 0x80000000; queues
// with messages sent and received.
func TestParseShm(t *testing.T) {
	const now = 1795450253
	for _, tc := range []struct {
		file string
		want []Shm
	}{
		{"proc/sysvipc/shm", []Shm{
			{Key: 0x12345678, ID: 0, Perms: 0o600, Size: 8192, CPID: 8744, LPID: 8744, Nattch: 1, Atime: now, Ctime: now},
			{Key: 0, ID: 1, Perms: ShmDest | 0o640, Size: 100, CPID: 8744, LPID: 8744, Nattch: 1, Atime: now, Ctime: now},
			{Key: 0, ID: 2, Perms: 0o666, Size: 4096, CPID: 8744, Ctime: now},
		}},
		{"sysvipc/shm-32bit", []Shm{
			{Key: 0x12345678, ID: 0, Perms: 0o600, Size: 8192, CPID: 8744, LPID: 8744, Nattch: 1, UID: 1000, GID: 100, CUID: 1000, CGID: 100, Atime: now, Ctime: now, RSS: 8192},
			{Key: -559038737, ID: 32769, Perms: ShmDest | 0o600, Size: math.MaxUint32, CPID: 812, Nattch: 2, Ctime: now, Swap: 4096},
		}},
		{"sysvipc/shm-old", []Shm{
			{Key: 0, ID: 65536, Perms: 0o644, Size: 65536, CPID: 1234, LPID: 1240, UID: 999, GID: 999, CUID: 999, CGID: 999, Atime: 1400000000, Dtime: 1400000100, Ctime: 1399999000},
		}},
		{"sysvipc/shm-reordered", []Shm{
			{Key: -1, ID: 7, Perms: ShmLocked | 0o600, Size: math.MaxUint64, CPID: 4194304, LPID: 1, Nattch: math.MaxUint64, UID: 4294967294, GID: math.MaxUint32, CUID: 65534, CGID: 65534, Atime: math.MaxInt64, Ctime: 1},
		}},
		{"sysvipc/shm-empty", []Shm{}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			got, err := parseShm(readFixture(t, tc.file))
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.want) || (len(got) > 0 && !reflect.DeepEqual(got, tc.want)) {
				t.Fatalf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
	if k := KeyString(mustParseShm(t, "sysvipc/shm-32bit")[1].Key); k != "0xdeadbeef" {
		t.Errorf("negative key prints as %s, want 0xdeadbeef", k)
	}
}

func mustParseShm(t *testing.T, file string) []Shm {
	s, err := parseShm(readFixture(t, file))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestParseSem(t *testing.T) {
	const now = 1795450253
	for _, tc := range []struct {
		file string
		want []Sem
	}{
		{"proc/sysvipc/sem", []Sem{
			{Key: math.MaxInt32, ID: 0, Perms: 0o600, NSems: 4, Otime: now, Ctime: now},
			{Key: math.MinInt32, ID: 1, Perms: 0o400, NSems: 1, Ctime: now},
		}},
		{"sysvipc/sem-32bit", []Sem{
			{Key: math.MaxInt32, ID: 0, Perms: 0o600, NSems: 4, Otime: now, Ctime: now},
			{Key: math.MinInt32, ID: 32768, Perms: 0o400, NSems: 32000, UID: 1000, GID: 1000, Ctime: now},
		}},
		{"sysvipc/sem-empty", []Sem{}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			got, err := parseSem(readFixture(t, tc.file))
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.want) || (len(got) > 0 && !reflect.DeepEqual(got, tc.want)) {
				t.Fatalf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestParseMsg(t *testing.T) {
	const now = 1795450253
	for _, tc := range []struct {
		file string
		want []Msg
	}{
		{"proc/sysvipc/msg", []Msg{
			{Key: 0x1234, ID: 0, Perms: 0o620, CBytes: 12, QNum: 2, LSPID: 8744, Stime: now, Ctime: now},
			{Key: 0, ID: 1, Perms: 0o600, LSPID: 8744, LRPID: 8744, Stime: now, Rtime: now, Ctime: now},
		}},
		{"sysvipc/msg-32bit", []Msg{
			{Key: 0x1234, ID: 0, Perms: 0o620, CBytes: 12, QNum: 2, LSPID: 8744, UID: 1000, GID: 1000, CUID: 1000, CGID: 1000, Stime: now, Ctime: now},
			{Key: -1, ID: math.MaxInt32, Perms: 0o1777, CBytes: 16384, QNum: 1, LSPID: 2, LRPID: 3, UID: 4, GID: 5, CUID: 6, CGID: 7, Stime: 8, Rtime: 9, Ctime: 10},
		}},
		{"sysvipc/msg-empty", []Msg{}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			got, err := parseMsg(readFixture(t, tc.file))
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.want) || (len(got) > 0 && !reflect.DeepEqual(got, tc.want)) {
				t.Fatalf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

const (
	shmHeader = "       key      shmid perms                  size  cpid  lpid nattch   uid   gid  cuid  cgid      atime      dtime      ctime                   rss                  swap\n"
	shmLine   = "         0          1   600                  4096  8744     0      0     0     0     0     0          0          0 1795450253                     0                     0\n"
	semHeader = "       key      semid perms      nsems   uid   gid  cuid  cgid      otime      ctime\n"
	msgHeader = "       key      msqid perms      cbytes       qnum lspid lrpid   uid   gid  cuid  cgid      stime      rtime      ctime\n"
)

func TestParseErrors(t *testing.T) {
	type parser func([]byte) error
	shmP := func(b []byte) error { _, err := parseShm(b); return err }
	semP := func(b []byte) error { _, err := parseSem(b); return err }
	msgP := func(b []byte) error { _, err := parseMsg(b); return err }
	for _, tc := range []struct {
		name  string
		parse parser
		in    string
		want  string // in the error message
	}{
		{"empty file", shmP, "", "no header"},
		{"blank header", semP, "   \n", "no header"},
		{"missing column", shmP, strings.Replace(shmHeader, " cpid", " xpid", 1), "missing column cpid"},
		{"missing sem column", semP, strings.Replace(semHeader, "nsems", "nsem", 1), "missing column nsems"},
		{"missing msg column", msgP, strings.Replace(msgHeader, "lrpid", "", 1), "missing column lrpid"},
		{"duplicate column", msgP, strings.Replace(msgHeader, "lrpid", "lspid", 1), "column lspid appears twice"},
		{"no header, data first", shmP, shmLine, "missing column key"},
		{"non-numeric pid", shmP, shmHeader + strings.Replace(shmLine, "8744", "87x4", 1), "shm line 2: column cpid: not a number: \"87x4\""},
		{"pid as dash", shmP, shmHeader + strings.Replace(shmLine, "8744", "   -", 1), "column cpid: not a number"},
		{"negative pid", shmP, shmHeader + strings.Replace(shmLine, "8744", "-8744", 1), "column cpid: not a number"},
		{"plus sign", shmP, shmHeader + strings.Replace(shmLine, "  1  ", " +1  ", 1), "column shmid: not a number"},
		{"perms not octal", shmP, shmHeader + strings.Replace(shmLine, "600", "680", 1), "column perms: not a number: \"680\""},
		{"key too big", shmP, shmHeader + strings.Replace(shmLine, "         0 ", "2147483648 ", 1), "column key: out of range"},
		{"key too small", shmP, shmHeader + strings.Replace(shmLine, "         0 ", "-2147483649", 1), "column key: out of range"},
		{"uid too big", shmP, shmHeader + "0 1 600 4096 8744 0 0 4294967296 0 0 0 0 0 1 0 0\n", "column uid: out of range"},
		{"id too big", semP, semHeader + "0 2147483648 600 1 0 0 0 0 0 0\n", "column semid: out of range"},
		{"pid too big", msgP, msgHeader + "0 1 600 0 0 2147483648 0 0 0 0 0 0 0 0\n", "column lspid: out of range"},
		{"perms too big", msgP, msgHeader + "0 1 77777777777 0 0 0 0 0 0 0 0 0 0 0\n", "column perms: out of range"},
		{"size overflow", shmP, shmHeader + strings.Replace(shmLine, "  4096", "  18446744073709551616", 1), "column size: out of range"},
		{"time overflow", shmP, shmHeader + strings.Replace(shmLine, "1795450253", "9223372036854775808", 1), "column ctime: out of range"},
		{"short line", shmP, shmHeader + shmLine[:60] + "\n", "shm line 2: 5 fields, header has 16 columns"},
		{"long line", semP, semHeader + "0 0 600 1 0 0 0 0 0 0 0\n", "more fields"},
		{"garbage line", msgP, msgHeader + "hello world\n", "msg line 2: column key: not a number: \"hello\""},
		{"binary", semP, semHeader + "\x00\xff\n", "not a number"},
		{"CRLF", semP, semHeader + "0 0 600 1 0 0 0 0 0 0\r\n", "column ctime: not a number"},
		{"third line bad", semP, semHeader + "0 0 600 1 0 0 0 0 0 0\n1 1 600 1 0 0 0 0 0 x\n", "sem line 3: column ctime"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.parse([]byte(tc.in))
			if !errors.Is(err, ErrParse) {
				t.Fatalf("err = %v, want ErrParse", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %q, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestParseTolerates(t *testing.T) {
	for _, in := range []string{
		shmHeader + shmLine,
		shmHeader + strings.TrimSuffix(shmLine, "\n"), // no final newline
		shmHeader + "\n" + shmLine + "  \t \n",        // blank lines
		strings.ReplaceAll(shmHeader+shmLine, " ", "\t"),
		strings.Replace(shmHeader, " rss", " extra rss", 1) + "0 1 600 4096 8744 0 0 0 0 0 0 0 0 1795450253 whatever 0 0\n",
	} {
		got, err := parseShm([]byte(in))
		if err != nil {
			t.Fatalf("%q: %v", in, err)
		}
		want := Shm{ID: 1, Perms: 0o600, Size: 4096, CPID: 8744, Ctime: 1795450253}
		if len(got) != 1 || got[0] != want {
			t.Fatalf("%q: got %+v, want %+v", in, got, want)
		}
	}
}

func TestFSReads(t *testing.T) {
	fs, err := NewFS(filepath.Join(fixtures, "proc"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := fs.Path("sysvipc", "shm"), filepath.Join(fixtures, "proc", "sysvipc", "shm"); got != want {
		t.Errorf("Path = %q, want %q", got, want)
	}
	s, err := fs.Snapshot(AllTypes)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Shm) != 3 || len(s.Sem) != 2 || len(s.Msg) != 2 || s.Types != SysvTypes || s.Taken.IsZero() || len(s.Unread) != 3 {
		t.Fatalf("snapshot of fixtures: %+v", s)
	}
	s, err = fs.Snapshot(1 << TypeSem)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Shm) != 0 || len(s.Sem) != 2 || len(s.Msg) != 0 {
		t.Fatalf("sem-only snapshot read other types: %+v", s)
	}
	if _, err := fs.Snapshot(0); !errors.Is(err, ErrUsage) {
		t.Fatalf("empty type set: %v, want ErrUsage", err)
	}

	empty, err := NewFS(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := empty.Snapshot(1 << TypeShm); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("missing /proc/sysvipc/shm: %v, want ErrUnavailable", err)
	}
	if _, err := NewFS(filepath.Join(t.TempDir(), "nope")); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("NewFS of a missing dir: %v, want ErrUnavailable", err)
	}
}

// TestReadAllLarge checks that reading does not stop at a buffer boundary.
func TestReadAllLarge(t *testing.T) {
	var b strings.Builder
	b.WriteString(semHeader)
	for i := range 20000 {
		fmt.Fprintf(&b, "%10d %10d  %4o %10d %5d %5d %5d %5d %10d %10d\n", -i, i, 0o600, 1, 0, 0, 0, 0, 0, i)
	}
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "sysvipc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "sysvipc", "sem"), []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	fs, _ := NewFS(dir)
	for range 2 { // the second time with a pooled buffer
		s, err := fs.SnapshotWith(1<<TypeSem, false)
		if err != nil {
			t.Fatal(err)
		}
		sems := s.Sem
		if len(sems) != 20000 || sems[19999].ID != 19999 || sems[19999].Key != -19999 || sems[19999].Ctime != 19999 {
			t.Fatalf("read %d sets, last %+v", len(sems), sems[len(sems)-1])
		}
	}
}

// refParse is an independent, slow reference parser for the fuzz tests:
// strings and strconv instead of the byte scanner. It returns, per line,
// column name -> value (signed values as their two's complement).
func refParse(s *schema, data string) ([]map[string]uint64, error) {
	blank := func(r rune) bool { return r == ' ' || r == '\t' }
	lines := strings.Split(data, "\n")
	head := strings.FieldsFunc(lines[0], blank)
	if len(head) == 0 || len(head) > maxHeaderCols {
		return nil, errors.New("header")
	}
	kinds := make([]colKind, len(head))
	seen := map[string]bool{}
	for i, h := range head {
		for _, c := range s.cols {
			if c.name == h {
				if seen[h] {
					return nil, errors.New("duplicate")
				}
				seen[h] = true
				kinds[i] = c.kind
			}
		}
	}
	for _, c := range s.cols {
		if !c.optional && !seen[c.name] {
			return nil, errors.New("missing")
		}
	}
	var out []map[string]uint64
	for _, l := range lines[1:] {
		f := strings.FieldsFunc(l, blank)
		if len(f) == 0 {
			continue
		}
		if len(f) != len(head) {
			return nil, errors.New("field count")
		}
		m := map[string]uint64{}
		for i, tok := range f {
			k := kinds[i]
			if k == kindSkip {
				continue
			}
			digits := strings.TrimPrefix(tok, "-")
			if digits == "" || (k != kindKey && digits != tok) || strings.TrimLeft(digits, "0123456789") != "" {
				return nil, errors.New("not a number")
			}
			var v uint64
			var err error
			switch k {
			case kindKey:
				var n int64
				n, err = strconv.ParseInt(tok, 10, 32)
				v = uint64(n)
			case kindOctal:
				v, err = strconv.ParseUint(tok, 8, 32)
			case kindID, kindPid:
				v, err = strconv.ParseUint(tok, 10, 31)
			case kindU32:
				v, err = strconv.ParseUint(tok, 10, 32)
			case kindU64:
				v, err = strconv.ParseUint(tok, 10, 64)
			case kindTime:
				v, err = strconv.ParseUint(tok, 10, 63)
			}
			if err != nil {
				return nil, err
			}
			m[head[i]] = v
		}
		out = append(out, m)
	}
	return out, nil
}

func shmValues(s Shm) map[string]uint64 {
	return map[string]uint64{
		"key": uint64(int64(s.Key)), "shmid": uint64(s.ID), "perms": uint64(s.Perms), "size": s.Size,
		"cpid": uint64(s.CPID), "lpid": uint64(s.LPID), "nattch": s.Nattch,
		"uid": uint64(s.UID), "gid": uint64(s.GID), "cuid": uint64(s.CUID), "cgid": uint64(s.CGID),
		"atime": uint64(s.Atime), "dtime": uint64(s.Dtime), "ctime": uint64(s.Ctime), "rss": s.RSS, "swap": s.Swap,
	}
}

func semValues(s Sem) map[string]uint64 {
	return map[string]uint64{
		"key": uint64(int64(s.Key)), "semid": uint64(s.ID), "perms": uint64(s.Perms), "nsems": uint64(s.NSems),
		"uid": uint64(s.UID), "gid": uint64(s.GID), "cuid": uint64(s.CUID), "cgid": uint64(s.CGID),
		"otime": uint64(s.Otime), "ctime": uint64(s.Ctime),
	}
}

func msgValues(m Msg) map[string]uint64 {
	return map[string]uint64{
		"key": uint64(int64(m.Key)), "msqid": uint64(m.ID), "perms": uint64(m.Perms), "cbytes": m.CBytes, "qnum": m.QNum,
		"lspid": uint64(m.LSPID), "lrpid": uint64(m.LRPID),
		"uid": uint64(m.UID), "gid": uint64(m.GID), "cuid": uint64(m.CUID), "cgid": uint64(m.CGID),
		"stime": uint64(m.Stime), "rtime": uint64(m.Rtime), "ctime": uint64(m.Ctime),
	}
}

// checkAgainstRef fails unless parse and refParse agree: both fail, or both
// succeed with the same rows, every column present in the input having the
// value the reference read (columns absent from the header must be 0).
func checkAgainstRef[T any](t *testing.T, s *schema, data []byte, got []T, err error, values func(T) map[string]uint64) {
	want, werr := refParse(s, string(data))
	if (err == nil) != (werr == nil) {
		t.Fatalf("parser err = %v, reference err = %v\ninput %q", err, werr, data)
	}
	if err != nil {
		if !errors.Is(err, ErrParse) {
			t.Fatalf("error does not wrap ErrParse: %v", err)
		}
		return
	}
	if len(got) != len(want) {
		t.Fatalf("parser read %d rows, reference %d\ninput %q", len(got), len(want), data)
	}
	for i := range got {
		for name, v := range values(got[i]) {
			if v != want[i][name] { // absent: 0
				t.Fatalf("row %d column %s = %d, reference %d\ninput %q", i, name, v, want[i][name], data)
			}
		}
	}
}

func addSeeds(f *testing.F, table string) {
	for _, p := range []string{"proc/sysvipc/" + table} {
		b, err := os.ReadFile(filepath.Join(fixtures, p))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	matches, _ := filepath.Glob(filepath.Join(fixtures, "sysvipc", table+"-*"))
	for _, m := range matches {
		b, err := os.ReadFile(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
}

func FuzzParseShm(f *testing.F) {
	addSeeds(f, "shm")
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := parseShm(data)
		checkAgainstRef(t, &shmSchema, data, got, err, shmValues)
	})
}

func FuzzParseSem(f *testing.F) {
	addSeeds(f, "sem")
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := parseSem(data)
		checkAgainstRef(t, &semSchema, data, got, err, semValues)
	})
}

func FuzzParseMsg(f *testing.F) {
	addSeeds(f, "msg")
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := parseMsg(data)
		checkAgainstRef(t, &msgSchema, data, got, err, msgValues)
	})
}

// TestParseAllocs keeps the parser at two allocations per table, whatever
// its length (the result slice and the scratch row).
func TestParseAllocs(t *testing.T) {
	var b strings.Builder
	b.WriteString(msgHeader)
	for i := range 1000 {
		fmt.Fprintf(&b, "%10d %10d  %4o  %10d %10d %5d %5d %5d %5d %5d %5d %10d %10d %10d\n", i, i, 0o600, 0, 0, 1, 2, 0, 0, 0, 0, 0, 0, 1)
	}
	data := []byte(b.String())
	allocs := testing.AllocsPerRun(10, func() {
		if m, err := parseMsg(data); err != nil || len(m) != 1000 {
			t.Fatal(len(m), err)
		}
	})
	if allocs > 2 {
		t.Fatalf("parseMsg of 1000 lines: %v allocations, want at most 2", allocs)
	}
}
