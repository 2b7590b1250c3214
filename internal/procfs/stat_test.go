package procfs

import (
	"errors"
	"os"
	"testing"
)

func TestParseStat(t *testing.T) {
	// Fields 3.. of a real line, after "pid (comm)".
	const tail = " S 1 1234 1234 0 -1 4194560 523 0 0 0 1 2 0 0 20 0 1 0 987654 10000000 200 18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0\n"
	const short = " S 1 1234 1234 0 -1 4194560 523 0 0 0 1 2 0 0 20 0 1 0 987654 10000000 200\n"
	cases := []struct {
		name    string
		in      string
		comm    string
		state   byte
		ppid    int
		start   uint64
		wantErr bool
	}{
		{name: "plain", in: "42 (sh)" + tail, comm: "sh", state: 'S', ppid: 1, start: 987654},
		{name: "through field 24", in: "42 (sh)" + short, comm: "sh", state: 'S', ppid: 1, start: 987654},
		{name: "ugly", in: "42 (((ugly )pr()cess()))" + tail, comm: "((ugly )pr()cess())", state: 'S', ppid: 1, start: 987654},
		{name: "spaces and digits", in: "7 (a 1 2 3 ) R 9)" + tail, comm: "a 1 2 3 ) R 9", state: 'S', ppid: 1, start: 987654},
		{name: "only parens", in: "7 ())))" + tail, comm: ")))", state: 'S', ppid: 1, start: 987654},
		{name: "empty comm", in: "7 ()" + tail, comm: "", state: 'S', ppid: 1, start: 987654},
		{name: "newline in comm", in: "7 (a\nb)" + tail, comm: "a\nb", state: 'S', ppid: 1, start: 987654},
		{name: "zombie", in: "8 (x) Z 3 0 0 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 55 0 0\n", comm: "x", state: 'Z', ppid: 3, start: 55},
		{name: "no parens", in: "42 sh S 1", wantErr: true},
		{name: "close before open", in: "42 )sh( S 1" + tail, wantErr: true},
		{name: "truncated", in: "42 (sh) S 1 2 3", wantErr: true},
		{name: "bad pid", in: "x (sh)" + tail, wantErr: true},
		{name: "bad start", in: "7 (sh) S 1 0 0 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 -5 0 0\n", wantErr: true},
		{name: "empty", in: "", wantErr: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, err := ParseStat([]byte(c.in))
			if c.wantErr {
				if !errors.Is(err, ErrStat) {
					t.Fatalf("ParseStat(%q) = %+v, %v; want ErrStat", c.in, s, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseStat(%q): %v", c.in, err)
			}
			if s.Comm != c.comm || s.State != c.state || s.Ppid != c.ppid || s.Start != c.start {
				t.Fatalf("ParseStat(%q) = %+v, want comm %q state %c ppid %d start %d", c.in, s, c.comm, c.state, c.ppid, c.start)
			}
		})
	}
}

func FuzzParseStat(f *testing.F) {
	f.Add([]byte("42 (((ugly )pr()cess()))  S 1 1234 1234 0 -1 4194560 523 0 0 0 1 2 0 0 20 0 1 0 987654 0 0"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseStat(b)
		if err == nil && len(s.Comm) > len(b) {
			t.Fatalf("comm longer than input")
		}
	})
}

func TestStatSelf(t *testing.T) {
	fs := Default()
	s, err := fs.Stat(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if s.Pid != os.Getpid() || s.Ppid != os.Getppid() || (s.State != 'R' && s.State != 'S') {
		t.Fatalf("own stat = %+v", s)
	}
	if self, err := fs.SelfStat(); err != nil || self.Pid != s.Pid || self.Start != s.Start {
		t.Fatalf("SelfStat = %+v, %v; want %+v", self, err, s)
	}
	if st, err := fs.StartTicks(os.Getpid()); err != nil || st != s.Start {
		t.Fatalf("StartTicks = %d, %v; want %d", st, err, s.Start)
	}
	if _, err := fs.Stat(1 << 30); !Gone(err) {
		t.Fatalf("Stat of a missing pid: %v, want one Gone accepts", err)
	}
}
