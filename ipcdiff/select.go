package ipcdiff

import (
	"fmt"
	"strconv"
	"strings"
)

// Selector names objects on a command line, as ipcrm(1) does with
// -m/-s/-q ID and -M/-S/-Q KEY, in one word:
//
//	ID          the object with this id, of whichever type has it
//	0xKEY       every object with this key (hex), of every type
//	shm:ID      the segment with this id (sem:ID, msg:ID alike)
//	shm:0xKEY   the segment with this key (sem:0xKEY, msg:0xKEY alike)
//	pshm:NAME   the POSIX object of this type with this name, as its
//	            directory lists it (psem:sem.NAME, pmsg:NAME alike)
//
// A key is always hex with 0x; IPC_PRIVATE (0x0) names no object.
type Selector struct {
	Text    string // as given
	Type    Type
	AnyType bool
	ByKey   bool
	ID      int
	Key     int32
	Name    string // a POSIX object's name (Type is a POSIX type)
}

// ParseSelector parses one selector. Errors wrap ErrUsage.
func ParseSelector(s string) (Selector, error) {
	sel := Selector{Text: s, AnyType: true}
	v := s
	if t, rest, ok := strings.Cut(s, ":"); ok {
		typ, err := ParseType(t)
		if err != nil {
			return sel, fmt.Errorf("%w: %q: type %q: want %s", ErrUsage, s, t, typeNames())
		}
		sel.Type, sel.AnyType, v = typ, false, rest
		if typ.IsPosix() {
			if q, err := strconv.Unquote(v); err == nil && strings.HasPrefix(v, `"`) {
				v = q // as ls prints an odd name
			}
			if v == "" || strings.ContainsAny(v, "/\x00") || v == "." || v == ".." {
				return sel, fmt.Errorf("%w: %q: want %s:NAME, the name as its directory lists it", ErrUsage, s, typ)
			}
			sel.Name = v
			return sel, nil
		}
	}
	if h, ok := strings.CutPrefix(strings.ToLower(v), "0x"); ok {
		k, err := strconv.ParseUint(h, 16, 32)
		if err != nil || h == "" {
			return sel, fmt.Errorf("%w: %q: key %q is not a 32-bit hex number", ErrUsage, s, v)
		}
		if k == 0 {
			return sel, fmt.Errorf("%w: %q: key 0 is IPC_PRIVATE, which names no object: give the id", ErrUsage, s)
		}
		sel.ByKey, sel.Key = true, int32(uint32(k))
		return sel, nil
	}
	id, err := strconv.ParseUint(v, 10, 31)
	if err != nil {
		return sel, fmt.Errorf("%w: %q: want ID, 0xKEY, TYPE:ID or TYPE:0xKEY (TYPE %s)", ErrUsage, s, typeNames())
	}
	sel.ID = int(id)
	return sel, nil
}

// Matches reports whether the selector names the object id.
func (s Selector) Matches(id Ident) bool {
	if !s.AnyType && id.Type != s.Type {
		return false
	}
	switch {
	case s.Name != "":
		return id.Name == s.Name
	case s.ByKey:
		return id.Key == s.Key
	}
	return id.ID == s.ID && id.Name == ""
}

// Ambiguous reports whether the selector, matching ids, is a bare id that
// several types hold: the caller should ask for TYPE:ID.
func (s Selector) Ambiguous(ids []Ident) bool {
	if s.ByKey || !s.AnyType || s.Name != "" {
		return false
	}
	var types TypeSet
	for _, id := range ids {
		if s.Matches(id) {
			types |= 1 << id.Type
		}
	}
	return types&(types-1) != 0
}
