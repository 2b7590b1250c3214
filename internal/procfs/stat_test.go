package procfs

import (
	"errors"
	"os"
	"strconv"
	"testing"
)

func TestParseStat(t *testing.T) {
	const tail = " S 1 1234 1234 0 -1 4194560 523 0 0 0 1 2 0 0 20 0 1 0 987654 10000000 200\n"
	for _, c := range []struct {
		in   string
		comm string
		ok   bool
	}{
		{"42 (sh)" + tail, "sh", true},
		{"42 (((ugly )pr()cess()))" + tail, "((ugly )pr()cess())", true},
		{"7 (a 1 2 3 ) R 9)" + tail, "a 1 2 3 ) R 9", true},
		{"42 sh S 1", "", false},
		{"42 (sh) S 1 2 3", "", false},
		{"7 (sh) S 1 0 0 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 -5 0 0\n", "", false},
		{"", "", false},
	} {
		s, err := ParseStat([]byte(c.in))
		if !c.ok {
			if !errors.Is(err, ErrStat) {
				t.Errorf("ParseStat(%q) = %+v, %v; want ErrStat", c.in, s, err)
			}
			continue
		}
		if err != nil || s.Comm != c.comm || s.State != 'S' || s.Ppid != 1 || s.Start != 987654 {
			t.Errorf("ParseStat(%q) = %+v, %v", c.in, s, err)
		}
	}
	b, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		t.Skip("no /proc")
	}
	if s, err := ParseStat(b); err != nil || s.Pid != os.Getpid() || s.Ppid != os.Getppid() {
		t.Fatalf("ParseStat(/proc/self/stat) = %+v, %v; want pid %s", s, err, strconv.Itoa(os.Getpid()))
	}
}
