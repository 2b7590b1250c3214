package journal

import (
	"hash/crc32"
	"math/bits"
	"slices"
	"strconv"
	"time"

	"github.com/ipcguard/ipcguard/ipcdiff"
)

const (
	magic        = "ipcguard-journal "
	firstLineLen = len(magic) + 1 + 1 + 16 + 1 // "ipcguard-journal 2 <16 hex>\n"
	endLineLen   = 2 + 8 + 1                   // "E <8 hex>\n"
)

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromUnixNano(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}

func appendHex(b []byte, v uint64, width int) []byte {
	const digits = "0123456789abcdef"
	for i := width - 1; i >= 0; i-- {
		b = append(b, digits[(v>>(4*uint(i)))&0xf])
	}
	return b
}

func appendBool(b []byte, v bool) []byte {
	if v {
		return append(b, '1')
	}
	return append(b, '0')
}

// encodeHead returns the first part of a journal, complete with its offset
// and end line.
func encodeHead(h *Header, s *ipcdiff.Snapshot) []byte {
	n := 0
	if s != nil {
		n = s.Len()
	}
	b := make([]byte, 0, 256+len(h.OnPolicy)+16*len(h.KeepKeys)+argvLen(h.Argv)+28*n)
	b = append(b, magic...)
	b = strconv.AppendInt(b, FormatVersion, 10)
	b = append(b, ' ')
	b = appendHex(b, 0, 16) // patched below
	b = append(b, '\n')

	b = append(b, 'H', ' ')
	b = strconv.AppendInt(b, int64(h.SupervisorPid), 10)
	b = append(b, ' ')
	b = strconv.AppendUint(b, h.SupervisorStart, 10)
	b = append(b, ' ')
	b = strconv.AppendUint(b, uint64(h.UID), 10)
	b = append(b, ' ')
	b = strconv.AppendUint(b, uint64(h.GID), 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, unixNano(h.Started), 10)
	b = append(b, ' ')
	b = appendTypes(b, h.Types)
	b = append(b, ' ')
	b = appendBool(b, h.Strict)
	b = append(b, '\n')

	b = append(b, 'A', ' ')
	b = strconv.AppendInt(b, int64(len(h.Argv)), 10)
	for _, a := range h.Argv {
		b = append(b, ' ')
		b = strconv.AppendQuote(b, a)
	}
	b = append(b, '\n')

	b = append(b, 'K', ' ')
	b = strconv.AppendInt(b, int64(len(h.KeepKeys)), 10)
	for _, k := range h.KeepKeys {
		b = append(b, ' ')
		b = strconv.AppendInt(b, int64(k), 10)
	}
	b = append(b, '\n')

	b = append(b, 'O', ' ')
	b = strconv.AppendQuote(b, h.OnPolicy)
	b = append(b, '\n')

	var taken time.Time
	var types ipcdiff.TypeSet
	var sections []ipcdiff.Type
	if s != nil {
		taken, types = s.Taken, s.Types
		for t := range s.Types.All() {
			if s.Count(t) > 0 {
				sections = append(sections, t)
			}
		}
	}
	b = append(b, 'B', ' ')
	b = strconv.AppendInt(b, unixNano(taken), 10)
	b = append(b, ' ')
	b = appendTypes(b, types)
	b = append(b, ' ')
	b = strconv.AppendInt(b, int64(len(sections)), 10)
	b = append(b, '\n')
	for _, t := range sections {
		b = append(b, 'T', ' ')
		b = append(b, t.String()...)
		b = append(b, ' ')
		b = strconv.AppendInt(b, int64(s.Count(t)), 10)
		b = append(b, '\n')
		for _, id := range s.TypeIdents(t) {
			b = appendObj(b, &id)
		}
	}

	off := uint64(len(b) + endLineLen)
	appendHex(b[firstLineLen-17:firstLineLen-17], off, 16)
	sum := crc32.ChecksumIEEE(b)
	b = append(b, 'E', ' ')
	b = appendHex(b, uint64(sum), 8)
	b = append(b, '\n')
	return b
}

func argvLen(argv []string) int {
	n := 0
	for _, a := range argv {
		n += len(a) + 3
	}
	return n
}

// appendObj appends an object line: id, key (as uint32, so 0xffffffff is
// "ffffffff") and cuid, in hex without leading zeros — keys read like ipcs
// prints them, and hex formats without divisions (the hot loop of Begin);
// for a named object then its device (hex) and its name (appendName).
func appendObj(b []byte, id *ipcdiff.Ident) []byte {
	b = appendHexVar(b, uint64(id.ID))
	b = append(b, ' ')
	b = appendHexVar(b, uint64(uint32(id.Key)))
	b = append(b, ' ')
	b = appendHexVar(b, uint64(id.CUID))
	if id.Dev != 0 || id.Name != "" {
		b = append(b, ' ')
		b = appendHexVar(b, id.Dev)
		b = append(b, ' ')
		b = appendName(b, id.Name)
	}
	return append(b, '\n')
}

// appendName appends a name as a Go string literal of printable ASCII
// (strconv.QuoteToASCII): whatever bytes it holds (newlines, spaces,
// quotes, bytes that are not UTF-8), the line stays one line, and
// strconv.Unquote gives the name back exactly.
func appendName(b []byte, name string) []byte { return strconv.AppendQuoteToASCII(b, name) }

// appendTypes appends the names of the types of ts, comma-separated
// ("shm,sem,msg"), or "-" for none.
func appendTypes(b []byte, ts ipcdiff.TypeSet) []byte {
	if ts == 0 {
		return append(b, '-')
	}
	return append(b, ts.String()...)
}

func appendHexVar(b []byte, v uint64) []byte {
	const digits = "0123456789abcdef"
	n := (bits.Len64(v) + 3) / 4
	if n == 0 {
		return append(b, '0')
	}
	b = slices.Grow(b, n)
	i := len(b) + n
	b = b[:i]
	for ; v != 0; v >>= 4 {
		i--
		b[i] = digits[v&0xf]
	}
	return b
}

func appendWatch(b []byte, c Crossing, st Cursor) []byte {
	b = append(b, 'W', ' ')
	b = strconv.AppendInt(b, unixNano(c.From), 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, unixNano(c.To), 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, int64(c.Lo), 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, int64(c.Hi), 10)
	switch {
	case c.All:
		b = append(b, " 1"...)
	case c.Merged:
		b = append(b, " 2"...)
	default:
		b = append(b, " 0"...)
	}
	b = append(b, ' ')
	b = strconv.AppendInt(b, int64(st.Threads), 10)
	b = append(b, ' ')
	b = strconv.AppendUint(b, st.ForksLo, 10)
	b = append(b, ' ')
	b = strconv.AppendUint(b, st.ForksHi, 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, int64(st.PidMax), 10)
	return b
}

func appendGet(b []byte, g Get) []byte {
	b = append(b, 'G', ' ')
	b = append(b, g.Type.String()...)
	b = append(b, ' ')
	b = strconv.AppendInt(b, int64(g.ID), 10)
	b = append(b, ' ')
	b = appendBool(b, g.Proven)
	b = append(b, ' ')
	return strconv.AppendInt(b, unixNano(g.At), 10)
}

// appendWatchState is a V record: "V <type> <state> <unix ns>".
func appendWatchState(b []byte, typ ipcdiff.Type, state int, at time.Time) []byte {
	b = append(b, 'V', ' ')
	b = append(b, typ.String()...)
	b = append(b, ' ')
	b = strconv.AppendInt(b, int64(state), 10)
	b = append(b, ' ')
	return strconv.AppendInt(b, unixNano(at), 10)
}

func appendCreated(b []byte, c ipcdiff.Creation) []byte {
	b = append(b, 'M', ' ')
	b = append(b, c.Type.String()...)
	b = append(b, ' ')
	b = appendHexVar(b, c.Dev)
	b = append(b, ' ')
	b = strconv.AppendInt(b, int64(c.Pid), 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, unixNano(c.At), 10)
	b = append(b, ' ')
	b = appendBool(b, c.Moved)
	b = append(b, ' ')
	if c.File != "" {
		b = append(b, c.File...)
		b = append(b, ' ')
	}
	return appendName(b, c.Name)
}

// seal appends the checksum of line and a newline.
func seal(line []byte) []byte {
	sum := crc32.ChecksumIEEE(line)
	line = append(line, ' ')
	line = appendHex(line, uint64(sum), 8)
	return append(line, '\n')
}
