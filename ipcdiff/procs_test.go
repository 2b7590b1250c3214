package ipcdiff

import (
	"os"
	"testing"
	"time"
)

func TestStatStartTicks(t *testing.T) {
	for _, c := range []struct {
		stat string
		want uint64
		ok   bool
	}{
		{"1 (init) S 0 1 1 0 -1 4194560 1 2 3 4 5 6 7 8 20 0 1 0 42 100 10", 42, true},
		{"7 ((ugly )pr()cess() R 1 7 7 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 12345 0 0", 12345, true},
		{"9 (a) b) c) S 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 77 0 0", 77, true},
		{"9 (short) S 1 2 3", 0, false},
		{"no paren at all", 0, false},
		{"9 (x) S 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 notanumber 0", 0, false},
	} {
		got, ok := StatStartTicks([]byte(c.stat))
		if got != c.want || ok != c.ok {
			t.Errorf("StatStartTicks(%q) = %d, %v; want %d, %v", c.stat, got, ok, c.want, c.ok)
		}
	}
}

func TestLiveProcs(t *testing.T) {
	p := &LiveProcs{Root: "/proc"}
	self := os.Getpid()
	if !p.Alive(self) || p.Comm(self) == "" {
		t.Fatalf("self not alive or without comm")
	}
	st, ok := p.Started(self)
	if !ok || st.After(time.Now().Add(time.Second)) || time.Since(st) > time.Hour {
		t.Fatalf("Started(self) = %v, %v: implausible", st, ok)
	}
	if p.Alive(0) || p.Alive(-1) {
		t.Fatalf("pid 0 or -1 alive")
	}
}
