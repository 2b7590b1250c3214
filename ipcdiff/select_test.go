package ipcdiff

import (
	"errors"
	"testing"
)

func TestParseSelector(t *testing.T) {
	ok := []struct {
		in   string
		want Selector
	}{
		{"32769", Selector{Text: "32769", AnyType: true, ID: 32769}},
		{"0", Selector{Text: "0", AnyType: true, ID: 0}},
		{"0x4a000001", Selector{Text: "0x4a000001", AnyType: true, ByKey: true, Key: 0x4a000001}},
		{"0XFFFFFFFF", Selector{Text: "0XFFFFFFFF", AnyType: true, ByKey: true, Key: -1}},
		{"shm:7", Selector{Text: "shm:7", Type: TypeShm, ID: 7}},
		{"sem:0x10", Selector{Text: "sem:0x10", Type: TypeSem, ByKey: true, Key: 0x10}},
		{"msg:3", Selector{Text: "msg:3", Type: TypeMsg, ID: 3}},
		{"pshm:PostgreSQL.42", Selector{Text: "pshm:PostgreSQL.42", Type: TypePshm, Name: "PostgreSQL.42"}},
		{"psem:sem.lock", Selector{Text: "psem:sem.lock", Type: TypePsem, Name: "sem.lock"}},
		{"pmsg:12", Selector{Text: "pmsg:12", Type: TypePmsg, Name: "12"}},
		{`pshm:"a b\n"`, Selector{Text: `pshm:"a b\n"`, Type: TypePshm, Name: "a b\n"}},
	}
	for _, c := range ok {
		got, err := ParseSelector(c.in)
		if err != nil || got != c.want {
			t.Errorf("ParseSelector(%q) = %+v, %v; want %+v", c.in, got, err, c.want)
		}
	}
	for _, bad := range []string{"", "-1", "x", "0x", "0x0", "shm:0x0", "0x100000000", "pipe:3", "shm:", "shm:-3", "3.5", "2147483648", ":3", "shm:sem:3", "pshm:", "pshm:a/b", "pmsg:..", "psem:."} {
		if s, err := ParseSelector(bad); !errors.Is(err, ErrUsage) {
			t.Errorf("ParseSelector(%q) = %+v, %v; want a usage error", bad, s, err)
		}
	}
}

func TestSelectorMatches(t *testing.T) {
	ids := []Ident{{Type: TypeShm, ID: 5, Key: 0x77}, {Type: TypeSem, ID: 5, Key: 0x77}, {Type: TypeMsg, ID: 6, Key: 0}}
	count := func(s string) (n int, amb bool) {
		sel, err := ParseSelector(s)
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range ids {
			if sel.Matches(id) {
				n++
			}
		}
		return n, sel.Ambiguous(ids)
	}
	for _, c := range []struct {
		sel string
		n   int
		amb bool
	}{{"5", 2, true}, {"shm:5", 1, false}, {"6", 1, false}, {"0x77", 2, false}, {"msg:0x77", 0, false}, {"sem:0x77", 1, false}, {"9", 0, false}} {
		if n, amb := count(c.sel); n != c.n || amb != c.amb {
			t.Errorf("%s: %d matches (ambiguous %v), want %d (%v)", c.sel, n, amb, c.n, c.amb)
		}
	}
}

// TestSelectorMatchesNames: a POSIX selector names by name within its
// type; a bare id never names a POSIX object (its id is an inode number).
func TestSelectorMatchesNames(t *testing.T) {
	ids := []Ident{{Type: TypePshm, ID: 7, Name: "a"}, {Type: TypePmsg, ID: 8, Name: "a"}, {Type: TypeShm, ID: 7}}
	for _, c := range []struct {
		sel  string
		want []int
	}{
		{"pshm:a", []int{0}},
		{"pmsg:a", []int{1}},
		{"psem:a", nil},
		{"7", []int{2}},
	} {
		sel, err := ParseSelector(c.sel)
		if err != nil {
			t.Fatal(err)
		}
		var got []int
		for i, id := range ids {
			if sel.Matches(id) {
				got = append(got, i)
			}
		}
		if len(got) != len(c.want) || (len(got) > 0 && got[0] != c.want[0]) {
			t.Errorf("%s matches %v, want %v", c.sel, got, c.want)
		}
	}
}
