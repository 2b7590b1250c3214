package ipcdiff

import (
	"bytes"
	"fmt"
	"math"
	"strconv"
)

// The /proc/sysvipc files are tables: a header line naming the columns, then
// one line per object with one whitespace-separated number per column. The
// kernel added columns over the years (shm rss and swap) and pads with
// different widths on 32- and 64-bit kernels, so the parser maps columns by
// header name, needs only the columns a table uses and skips unknown ones.
//
// The scanner works on bytes and converts numbers as it goes: no per-line
// allocation, one allocation for the result.

// colKind is how a column's value is written and which values it may take.
type colKind uint8

const (
	kindSkip  colKind = iota // a column the parser does not use: any token
	kindKey                  // %d of a key_t: signed decimal int32
	kindID                   // %d of an ipc id: decimal 0..MaxInt32
	kindOctal                // %o of a mode: octal uint32, flag bits included
	kindU32                  // %u of a uid or gid: decimal uint32
	kindPid                  // %u of a pid: decimal 0..MaxInt32
	kindU64                  // %lu of a size or count: decimal uint64
	kindTime                 // %llu of a time64_t: decimal 0..MaxInt64
)

// column is a column a table parser knows.
type column struct {
	name     string
	kind     colKind
	optional bool
}

// schema is what a table parser needs: the file's name (for errors) and its
// columns. The index of a column in cols is its slot in a row.
type schema struct {
	table string
	cols  []column
}

// maxHeaderCols bounds the header (the kernel prints at most 16 columns).
const maxHeaderCols = 64

// maxSlots bounds the columns a schema may know.
const maxSlots = 16

// row holds the values of one line by slot; signed values are stored as
// their two's complement.
type row [maxSlots]uint64

// layout is what the header says: the slot and kind of each column.
type layout struct {
	n      int
	slot   [maxHeaderCols]int8
	kinds  [maxHeaderCols]colKind
	header []byte
}

func isBlank(c byte) bool { return c == ' ' || c == '\t' }

// readHeader maps the header's columns to the schema's slots and returns the
// offset of the first data line.
func (s *schema) readHeader(data []byte, lay *layout) (int, error) {
	end := bytes.IndexByte(data, '\n')
	next := end + 1
	if end < 0 {
		end, next = len(data), len(data)
	}
	lay.header = data[:end]
	var seen uint32
	i := 0
	for {
		for i < end && isBlank(data[i]) {
			i++
		}
		if i >= end {
			break
		}
		start := i
		for i < end && !isBlank(data[i]) {
			i++
		}
		if lay.n == maxHeaderCols {
			return 0, fmt.Errorf("%w: %s header: more than %d columns", ErrParse, s.table, maxHeaderCols)
		}
		name := data[start:i]
		lay.slot[lay.n], lay.kinds[lay.n] = -1, kindSkip
		for j := range s.cols {
			if string(name) == s.cols[j].name {
				if seen&(1<<j) != 0 {
					return 0, fmt.Errorf("%w: %s header: column %s appears twice", ErrParse, s.table, name)
				}
				seen |= 1 << j
				lay.slot[lay.n], lay.kinds[lay.n] = int8(j), s.cols[j].kind
				break
			}
		}
		lay.n++
	}
	if lay.n == 0 {
		return 0, fmt.Errorf("%w: %s: no header line", ErrParse, s.table)
	}
	for j, c := range s.cols {
		if !c.optional && seen&(1<<j) == 0 {
			return 0, fmt.Errorf("%w: %s header: missing column %s", ErrParse, s.table, c.name)
		}
	}
	return next, nil
}

// headerName is the name of header column c (for error messages).
func (lay *layout) headerName(c int) string {
	f := bytes.Fields(lay.header)
	if c < len(f) {
		return string(f[c])
	}
	return "?"
}

// maxOf is the largest magnitude each kind admits.
var maxOf = [...]uint64{
	kindSkip:  math.MaxUint64,
	kindKey:   math.MaxInt32, // 1<<31 when negative
	kindID:    math.MaxInt32,
	kindOctal: math.MaxUint32,
	kindU32:   math.MaxUint32,
	kindPid:   math.MaxInt32,
	kindU64:   math.MaxUint64,
	kindTime:  math.MaxInt64,
}

// appendTable parses a whole table: the header, then every line into a T
// made by conv from the line's values, appended to out (a new slice sized
// for the table when out is nil). Lines holding only blanks are skipped;
// every other line must have exactly one valid value per header column.
func appendTable[T any](s *schema, data []byte, conv func(r *row) T, out []T) ([]T, error) {
	var lay layout
	pos, err := s.readHeader(data, &lay)
	if err != nil {
		return nil, err
	}
	if out == nil {
		out = make([]T, 0, bytes.Count(data[pos:], []byte{'\n'})+1)
	}
	line := 1
	r := new(row) // conv is called through a func value: &r would escape per line
	for pos < len(data) {
		line++
		*r = row{}
		i := pos
		c := 0
		for ; c < lay.n; c++ {
			for i < len(data) && isBlank(data[i]) {
				i++
			}
			if i >= len(data) || data[i] == '\n' {
				break
			}
			k := lay.kinds[c]
			if k == kindSkip {
				for i < len(data) && !isBlank(data[i]) && data[i] != '\n' {
					i++
				}
				continue
			}
			start := i
			neg := false
			if k == kindKey && data[i] == '-' {
				neg = true
				i++
			}
			base, maxDigits := uint64(10), 19
			if k == kindOctal {
				base, maxDigits = 8, 21
			}
			var v uint64
			digits0 := i
			for i < len(data) {
				d := uint64(data[i] - '0')
				if d >= base {
					break
				}
				v = v*base + d
				i++
			}
			nd := i - digits0
			if nd == 0 || (i < len(data) && !isBlank(data[i]) && data[i] != '\n') {
				return nil, lay.valueError(s, line, c, data, start, "not a number")
			}
			if nd > maxDigits {
				// Too long for the fast path: may have overflowed.
				v, err = strconv.ParseUint(string(data[digits0:i]), int(base), 64)
				if err != nil {
					return nil, lay.valueError(s, line, c, data, start, "out of range")
				}
			}
			limit := maxOf[k]
			if neg {
				limit++
			}
			if v > limit {
				return nil, lay.valueError(s, line, c, data, start, "out of range")
			}
			if neg {
				v = -v
			}
			r[lay.slot[c]] = v
		}
		for i < len(data) && isBlank(data[i]) {
			i++
		}
		switch {
		case c == 0 && (i >= len(data) || data[i] == '\n'):
			// A blank line.
		case c < lay.n:
			return nil, fmt.Errorf("%w: %s line %d: %d fields, header has %d columns", ErrParse, s.table, line, c, lay.n)
		case i < len(data) && data[i] != '\n':
			return nil, fmt.Errorf("%w: %s line %d: more fields than the %d header columns", ErrParse, s.table, line, lay.n)
		default:
			out = append(out, conv(r))
		}
		pos = i + 1
	}
	return out, nil
}

func (lay *layout) valueError(s *schema, line, c int, data []byte, start int, why string) error {
	end := start
	for end < len(data) && !isBlank(data[end]) && data[end] != '\n' {
		end++
	}
	return fmt.Errorf("%w: %s line %d: column %s: %s: %q", ErrParse, s.table, line, lay.headerName(c), why, data[start:end])
}
