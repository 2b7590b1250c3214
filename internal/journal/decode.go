package journal

import (
	"bytes"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/ipcguard/ipcguard/ipcdiff"
)

// Load reads the journal at path. The error wraps ErrCorrupt when the header
// or snapshot part is incomplete or damaged, ErrVersion for another format
// version. Damaged records are skipped (see Record.TornTail, BadLines).
func Load(path string) (*Record, error) {
	f, err := openRegular(path, os.O_RDONLY, 0)
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	data, err := io.ReadAll(f)
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	r, err := parse(data)
	if err != nil {
		return nil, fmt.Errorf("journal %s: %w", path, err)
	}
	r.Path = path
	return r, nil
}

func corrupt(what string) error { return fmt.Errorf("%w: %s", ErrCorrupt, what) }

func parseFirstLine(b []byte) (version int, off uint64, err error) {
	if len(b) < firstLineLen || !bytes.HasPrefix(b, []byte(magic)) {
		return 0, 0, corrupt("not an ipcguard journal")
	}
	v := b[len(magic)]
	if v < '0'+oldestVersion || v > '0'+FormatVersion {
		if v >= '0' && v <= '9' && b[len(magic)+1] == ' ' {
			return 0, 0, fmt.Errorf("%w %c (want %d)", ErrVersion, v, FormatVersion)
		}
		return 0, 0, corrupt("bad version")
	}
	if b[len(magic)+1] != ' ' || b[firstLineLen-1] != '\n' {
		return 0, 0, corrupt("bad first line")
	}
	off, ok := parseHex(b[firstLineLen-17 : firstLineLen-1])
	if !ok {
		return 0, 0, corrupt("bad first line")
	}
	return int(v - '0'), off, nil
}

// parseHex parses a lower-case hex number of 1 to 16 digits, as appendHex
// and appendHexVar write them (strconv.ParseUint, base 16). Upper case is
// refused: the checksum of the end line and the offset of the first line
// are outside every checksum, and a flipped case bit must not pass.
func parseHex(b []byte) (uint64, bool) {
	if len(b) == 0 || len(b) > 16 || bytes.ContainsAny(b, "ABCDEF") {
		return 0, false
	}
	v, err := strconv.ParseUint(string(b), 16, 64)
	return v, err == nil
}

func parse(data []byte) (*Record, error) {
	version, off, err := parseFirstLine(data)
	if err != nil {
		return nil, err
	}
	if off > uint64(len(data)) || off < uint64(firstLineLen+endLineLen) {
		return nil, corrupt("truncated in the header or snapshot")
	}
	end := data[off-endLineLen : off]
	if end[0] != 'E' || end[1] != ' ' || end[endLineLen-1] != '\n' {
		return nil, corrupt("no end-of-snapshot line")
	}
	want, ok := parseHex(end[2 : 2+8])
	if !ok {
		return nil, corrupt("bad end-of-snapshot line")
	}
	head := data[:off-endLineLen]
	if uint64(crc32.ChecksumIEEE(head)) != want {
		return nil, corrupt("checksum mismatch in the header or snapshot")
	}
	r := &Record{}
	if err := parseHead(head[firstLineLen:], version, r); err != nil {
		// The checksum matched: a writer bug rather than damage.
		return nil, corrupt(err.Error())
	}
	r.Version = version
	parseRecords(data[off:], r)
	return r, nil
}

// lines walks newline-terminated lines.
type lines struct{ b []byte }

func (l *lines) next() ([]byte, bool) {
	i := bytes.IndexByte(l.b, '\n')
	if i < 0 {
		return nil, false
	}
	line := l.b[:i]
	l.b = l.b[i+1:]
	return line, true
}

// field returns the first space-separated field of b and the rest.
func field(b []byte) (f, rest []byte) {
	if i := bytes.IndexByte(b, ' '); i >= 0 {
		return b[:i], b[i+1:]
	}
	return b, nil
}

// atoi parses a signed decimal of 64 bits (strconv.ParseInt).
func atoi(b []byte) (int64, bool) {
	v, err := strconv.ParseInt(string(b), 10, 64)
	return v, err == nil
}

// atou parses an unsigned decimal of 64 bits (strconv.ParseUint).
func atou(b []byte) (uint64, bool) {
	v, err := strconv.ParseUint(string(b), 10, 64)
	return v, err == nil
}

// ints parses exactly len(dst) space-separated signed decimals.
func ints(b []byte, dst []int64) bool {
	for i := range dst {
		var f []byte
		f, b = field(b)
		v, ok := atoi(f)
		if !ok {
			return false
		}
		dst[i] = v
	}
	return b == nil
}

// hex32s parses exactly len(dst) space-separated hex numbers of at most 8
// digits.
func hex32s(b []byte, dst []uint32) bool {
	for i := range dst {
		var f []byte
		f, b = field(b)
		if len(f) > 8 {
			return false
		}
		v, ok := parseHex(f)
		if !ok {
			return false
		}
		dst[i] = uint32(v)
	}
	return b == nil
}

func parseHead(b []byte, version int, r *Record) error {
	ls := lines{b}
	line := func(tag byte) ([]byte, error) {
		l, ok := ls.next()
		if !ok || len(l) < 2 || l[0] != tag || l[1] != ' ' {
			return nil, fmt.Errorf("missing %c line", tag)
		}
		return l[2:], nil
	}

	l, err := line('H')
	if err != nil {
		return err
	}
	var hv [7]int64
	var start uint64
	{
		f, rest := field(l)
		pid, ok1 := atoi(f)
		f, rest = field(rest)
		st, ok2 := atou(f)
		var ok3 bool
		if version >= typeNamesVersion {
			// "<uid> <gid> <started> <types> <strict>": types by name.
			var v [3]int64
			for i := range v {
				f, rest = field(rest)
				v[i], ok3 = atoi(f)
				if !ok3 {
					break
				}
			}
			f, rest = field(rest)
			r.Types, ok3 = parseTypes(f, ok3)
			copy(hv[2:5], v[:])
			ok3 = ok3 && ints(rest, hv[6:])
		} else {
			ok3 = ints(rest, hv[2:])
			r.Types = ipcdiff.TypeSet(hv[5])
		}
		if !ok1 || !ok2 || !ok3 {
			return errors.New("bad H line")
		}
		hv[0], start = pid, st
	}
	r.Version = FormatVersion
	r.SupervisorPid = int(hv[0])
	r.SupervisorStart = start
	r.UID, r.GID = uint32(hv[2]), uint32(hv[3])
	r.Started = fromUnixNano(hv[4])
	r.Strict = hv[6] != 0

	if l, err = line('A'); err != nil {
		return err
	}
	f, rest := field(l)
	n, ok := atoi(f)
	if !ok || n < 0 || n > int64(len(rest)) {
		return errors.New("bad A line")
	}
	s := string(rest)
	r.Argv = make([]string, 0, n)
	for i := int64(0); i < n; i++ {
		if i > 0 {
			if !strings.HasPrefix(s, " ") {
				return errors.New("bad A line")
			}
			s = s[1:]
		}
		q, err := strconv.QuotedPrefix(s)
		if err != nil {
			return errors.New("bad A line")
		}
		a, _ := strconv.Unquote(q)
		r.Argv = append(r.Argv, a)
		s = s[len(q):]
	}
	if s != "" {
		return errors.New("bad A line")
	}
	if n == 0 {
		r.Argv = nil
	}

	if l, err = line('K'); err != nil {
		return err
	}
	f, rest = field(l)
	n, ok = atoi(f)
	if !ok || n < 0 || n > int64(len(rest)) {
		return errors.New("bad K line")
	}
	if n > 0 {
		keys := make([]int64, n)
		if !ints(rest, keys) {
			return errors.New("bad K line")
		}
		for _, k := range keys {
			r.KeepKeys = append(r.KeepKeys, int32(k))
		}
	} else if rest != nil {
		return errors.New("bad K line")
	}

	if l, err = line('O'); err != nil {
		return err
	}
	if r.OnPolicy, err = strconv.Unquote(string(l)); err != nil {
		return errors.New("bad O line")
	}

	if l, err = line('B'); err != nil {
		return err
	}
	if version < typeNamesVersion {
		return parseBefore3(l, &ls, r)
	}
	// "B <taken> <types> <sections>", then each section: "T <type> <n>"
	// and n object lines.
	var taken, nsec int64
	f, rest = field(l)
	taken, ok = atoi(f)
	f, rest = field(rest)
	r.BeforeTypes, ok = parseTypes(f, ok)
	var sec [1]int64
	if !ok || !ints(rest, sec[:]) || sec[0] < 0 || sec[0] > 255 {
		return errors.New("bad B line")
	}
	r.BeforeTaken, nsec = fromUnixNano(taken), sec[0]
	var before []ipcdiff.Ident
	for range nsec {
		l, err := line('T')
		if err != nil {
			return err
		}
		f, rest := field(l)
		typ, terr := ipcdiff.ParseType(string(f))
		var n [1]int64
		if !ints(rest, n[:]) || n[0] < 0 || n[0] > int64(len(ls.b)/6+1) { // a line is at least "0 0 0\n"
			return errors.New("bad T line")
		}
		if terr != nil {
			// A kind this ipcguard does not know: its objects are
			// left out, and so never diffed or removed here.
			for range n[0] {
				if _, ok := ls.next(); !ok {
					return errors.New("bad T line: object count")
				}
			}
			continue
		}
		before = slices.Grow(before, int(n[0]))
		for range n[0] {
			l, ok := ls.next()
			if !ok {
				return fmt.Errorf("bad %s object line", typ)
			}
			id, ok := parseObj(l)
			if !ok {
				return fmt.Errorf("bad %s object line", typ)
			}
			id.Type = typ
			before = append(before, id)
			if id.Name != "" {
				r.BeforeNamed = append(r.BeforeNamed, id)
			}
		}
	}
	r.Before = ipcdiff.NewIdents(before)
	if len(ls.b) != 0 {
		return errors.New("extra data after the snapshot")
	}
	return nil
}

// parseBefore3 reads the before snapshot of a journal of version 2 or 3:
// "B <taken> <types, a number> <n shm> <n sem> <n msg>" and the object
// lines of the three System V kinds, in this order.
func parseBefore3(l []byte, ls *lines, r *Record) error {
	var bv [5]int64
	if !ints(l, bv[:]) || bv[2] < 0 || bv[3] < 0 || bv[4] < 0 {
		return errors.New("bad B line")
	}
	r.BeforeTaken = fromUnixNano(bv[0])
	r.BeforeTypes = ipcdiff.TypeSet(bv[1])
	total := bv[2] + bv[3] + bv[4]
	if total > int64(len(ls.b)/6+1) { // a line is at least "0 0 0\n"
		return errors.New("bad B line: object count")
	}
	before := make([]ipcdiff.Ident, 0, total)
	var v [3]uint32
	for t, cnt := range []int64{bv[2], bv[3], bv[4]} {
		typ := []ipcdiff.Type{ipcdiff.TypeShm, ipcdiff.TypeSem, ipcdiff.TypeMsg}[t]
		for i := int64(0); i < cnt; i++ {
			l, ok := ls.next()
			if !ok || !hex32s(l, v[:]) {
				return fmt.Errorf("bad %s object line", typ)
			}
			before = append(before, ipcdiff.Ident{Type: typ, ID: int(v[0]), Key: int32(v[1]), CUID: v[2]})
		}
	}
	r.Before = ipcdiff.NewIdents(before)
	if len(ls.b) != 0 {
		return errors.New("extra data after the snapshot")
	}
	return nil
}

// parseObj parses an object line of version 4 (see appendObj): "<id>
// <key> <cuid>", then for a named object " <dev> <name>"; the Type is the
// section's.
func parseObj(l []byte) (ipcdiff.Ident, bool) {
	var id ipcdiff.Ident
	f, rest := field(l)
	v, ok := parseHex(f)
	if !ok || v > math.MaxInt {
		return id, false
	}
	id.ID = int(v)
	var kc [2]uint32
	if i := nthSpace(rest, 2); i >= 0 {
		// Named: the device and the name follow.
		if !hex32s(rest[:i], kc[:]) {
			return id, false
		}
		f, rest = field(rest[i+1:])
		dev, ok := parseHex(f)
		name, ok2 := parseName(rest)
		if !ok || !ok2 {
			return id, false
		}
		id.Dev, id.Name = dev, name
	} else if !hex32s(rest, kc[:]) {
		return id, false
	}
	id.Key, id.CUID = int32(kc[0]), kc[1]
	return id, true
}

// nthSpace is the index of the n-th space (from 1) in b, -1 when b has
// fewer.
func nthSpace(b []byte, n int) int {
	off := 0
	for {
		i := bytes.IndexByte(b[off:], ' ')
		if i < 0 {
			return -1
		}
		if n--; n == 0 {
			return off + i
		}
		off += i + 1
	}
}

// parseName parses a name as appendName writes it: one Go string
// literal of printable ASCII, the whole of b.
func parseName(b []byte) (string, bool) {
	if len(b) < 2 || b[0] != '"' {
		return "", false
	}
	for _, c := range b {
		if c < ' ' || c > '~' {
			return "", false
		}
	}
	name, err := strconv.Unquote(string(b))
	return name, err == nil
}

// parseTypes parses a type list as appendTypes writes it; the names of
// kinds this ipcguard does not know are left out. ok is passed through
// (false stays false).
func parseTypes(b []byte, ok bool) (ipcdiff.TypeSet, bool) {
	if !ok || len(b) == 0 {
		return 0, false
	}
	if string(b) == "-" {
		return 0, true
	}
	var ts ipcdiff.TypeSet
	for _, n := range strings.Split(string(b), ",") {
		if n == "" {
			return 0, false
		}
		if t, err := ipcdiff.ParseType(n); err == nil {
			ts |= 1 << t
		}
	}
	return ts, true
}
