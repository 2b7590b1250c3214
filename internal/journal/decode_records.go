package journal

import (
	"hash/crc32"
	"slices"
	"strings"

	"github.com/ipcguard/ipcguard/internal/posixipc"
	"github.com/ipcguard/ipcguard/ipcdiff"
)

// The record part of a journal: one line per record (see journal.go).

// parseRecords reads the appended records into r.
func parseRecords(b []byte, r *Record) {
	ls := lines{b}
	for {
		l, ok := ls.next()
		if !ok {
			break
		}
		if !parseRecord(l, r) {
			r.BadLines++
		}
	}
	if len(ls.b) > 0 {
		r.TornTail = true
	}
}

func parseRecord(l []byte, r *Record) bool {
	// "<tag> ... <crc 8 hex>"
	if len(l) < 2+1+8 || l[1] != ' ' || l[len(l)-9] != ' ' {
		return false
	}
	want, ok := parseHex(l[len(l)-8:])
	if !ok || uint64(crc32.ChecksumIEEE(l[:len(l)-9])) != want {
		return false
	}
	body := l[2 : len(l)-9]
	switch l[0] {
	case 'C':
		f, rest := field(body)
		pid, ok1 := atoi(f)
		f, rest = field(rest)
		start, ok2 := atou(f)
		var at [1]int64
		if !ok1 || !ok2 || pid <= 0 || !ints(rest, at[:]) {
			return false
		}
		r.CommandPid, r.CommandStart, r.CommandAt = int(pid), start, fromUnixNano(at[0])
	case 'J', 'L':
		var v [2]int64
		if !ints(body, v[:]) || v[0] <= 0 || v[0] > 1<<31-1 {
			return false
		}
		pid, at := int(v[0]), fromUnixNano(v[1])
		if l[0] == 'J' {
			r.Members = append(r.Members, Member{Pid: pid, Joined: at})
			return true
		}
		// Close the latest open stay of pid.
		for i := len(r.Members) - 1; i >= 0; i-- {
			if m := &r.Members[i]; m.Pid == pid && m.Left.IsZero() {
				m.Left = at
				return true
			}
		}
		r.Members = append(r.Members, Member{Pid: pid, Left: at})
	case 'P':
		for len(body) > 0 {
			var f []byte
			f, body = field(body)
			pid, ok := atoi(f)
			if !ok || pid <= 0 || pid > 1<<31-1 {
				return false
			}
			r.Pre = append(r.Pre, int(pid))
		}
		slices.Sort(r.Pre)
	case 'W':
		var v [9]int64
		if !ints(body, v[:]) || v[4] < 0 || v[4] > 2 || v[2] < 0 || v[3] < 0 || v[5] < 0 || v[6] < 0 || v[7] < v[6] || v[8] <= 0 {
			return false
		}
		r.Watch = append(r.Watch, Crossing{From: fromUnixNano(v[0]), To: fromUnixNano(v[1]),
			Lo: int(v[2]), Hi: int(v[3]), All: v[4] == 1, Merged: v[4] == 2})
		r.LastCursor = Cursor{Cursor: int(v[3]), Threads: int(v[5]), ForksLo: uint64(v[6]), ForksHi: uint64(v[7]), PidMax: int(v[8])}
	case 'N':
		f := strings.Fields(string(body))
		if len(f) != 3 {
			return false
		}
		r.Namespaces = Namespaces{Boot: f[0], IPC: f[1], Pid: f[2]}
	case 'G':
		f, rest := field(body)
		typ, err := ipcdiff.ParseType(string(f))
		var v [3]int64
		if err != nil || !ints(rest, v[:]) || v[0] < 0 || v[1] < 0 || v[1] > 1 {
			return false
		}
		r.Gets = append(r.Gets, Get{Type: typ, ID: int(v[0]), Proven: v[1] == 1, At: fromUnixNano(v[2])})
	case 'Y':
		f, rest := field(body)
		all, ok1 := atoi(f)
		f, rest = field(rest)
		n, ok2 := atoi(f)
		if !ok1 || !ok2 || all < 0 || all > 1 || n < 0 || n > int64(len(rest)) {
			return false
		}
		keys := make([]int64, n)
		if n > 0 && !ints(rest, keys) || n == 0 && rest != nil {
			return false
		}
		for _, k := range keys {
			if k < -1<<31 || k > 1<<31-1 {
				return false
			}
			r.OwnKeys = append(r.OwnKeys, int32(k))
		}
		r.OwnAllKeys = r.OwnAllKeys || all == 1
	case 'Z':
		p, ok := parseName(body)
		if !ok || p == "" {
			return false
		}
		r.KeepNames = append(r.KeepNames, p)
	case 'M':
		// "M <type> <dev> <pid> <at> <moved> [<file>] <name>"
		var c ipcdiff.Creation
		f, rest := field(body)
		typ, terr := ipcdiff.ParseType(string(f))
		f, rest = field(rest)
		dev, ok := parseHex(f)
		var v [3]int64
		for i := range v {
			if !ok {
				break
			}
			f, rest = field(rest)
			v[i], ok = atoi(f)
		}
		if ok && len(rest) > 0 && rest[0] != '"' {
			// The file the name was made for (absent in records written
			// before files were recorded: not known).
			f, rest = field(rest)
			c.File, ok = posixipc.ParseHandle(string(f))
		}
		name, ok2 := parseName(rest)
		if !ok || !ok2 || name == "" || v[0] <= 0 || v[0] > 1<<31-1 || v[2] < 0 || v[2] > 1 {
			return false
		}
		if terr != nil {
			return true // a kind this ipcguard does not know: nothing to use it for
		}
		c.Type, c.Dev, c.Pid, c.At, c.Moved, c.Name = typ, dev, int(v[0]), fromUnixNano(v[1]), v[2] == 1, name
		r.Created = append(r.Created, c)
	case 'V':
		// "V <type> <state> <unix ns>"
		f, rest := field(body)
		typ, terr := ipcdiff.ParseType(string(f))
		var v [2]int64
		if !ints(rest, v[:]) || v[0] < 1 || v[0] > 2 || v[1] < 0 {
			return false
		}
		if terr != nil {
			return true // a kind this ipcguard does not know
		}
		if v[0] == 1 {
			r.Watched |= 1 << typ
		} else {
			r.WatchLost |= 1 << typ
		}
	case 'X':
		// Version 3 wrote five counts, version 4 six (Created).
		var v [6]int64
		if !ints(body, v[:]) && !ints(body, v[:5]) || slices.Min(v[:]) < 0 || v[0] == 0 {
			return false
		}
		r.Compacted = Compaction{Times: int(v[0]), Stays: int(v[1]), Gets: int(v[2]), Watch: int(v[3]), Bad: int(v[4]), Created: int(v[5])}
	default:
		return false
	}
	return true
}
