package main

import (
	"strings"
	"testing"
	"time"
)

func TestMedian(t *testing.T) {
	for _, c := range []struct {
		in   []time.Duration
		want time.Duration
	}{
		{nil, 0},
		{[]time.Duration{5}, 5},
		{[]time.Duration{9, 1, 5}, 5},
		{[]time.Duration{4, 1, 3, 2}, 2}, // (2+3)/2, truncated
	} {
		in := append([]time.Duration(nil), c.in...)
		if got := median(c.in); got != c.want {
			t.Errorf("median(%v) = %v, want %v", c.in, got, c.want)
		}
		for i := range in {
			if in[i] != c.in[i] {
				t.Fatalf("median reordered its argument: %v", c.in)
			}
		}
	}
}

func TestSplit(t *testing.T) {
	for _, n := range []int{0, 1, 2, 1250, 10000} {
		p := split(n)
		if p.total() != n || p.sem != p.msg || p.shm < p.sem {
			t.Errorf("split(%d) = %+v", n, p)
		}
	}
	if p := split(10000); p != (population{3334, 3333, 3333}) {
		t.Errorf("split(10000) = %+v", p)
	}
}

func TestVerdicts(t *testing.T) {
	var tb table
	tb.add(row{name: "a", ratio: 1.2, target: 1.3})
	tb.add(row{name: "b", ratio: 1.4, target: 1.3})
	tb.add(row{name: "c", ratio: 0, target: 1.3}) // no measurement is no pass
	tb.add(row{name: "d", limitKiB: 20 << 10, valueKiB: 19 << 10})
	tb.add(row{name: "e", limitKiB: 20 << 10, valueKiB: 21 << 10})
	tb.add(row{name: "f", ratio: 3})
	tb.add(row{name: "g", verdict: "n/a", note: "tini not installed"})
	want := []string{"ok", "MISS", "MISS", "ok", "MISS", "info", "n/a"}
	for i, r := range tb.rows {
		if r.verdict != want[i] {
			t.Errorf("row %s: verdict %q, want %q", r.name, r.verdict, want[i])
		}
	}
	var out strings.Builder
	tb.print(&out)
	if !strings.Contains(out.String(), "n/a (tini not installed)") || !strings.Contains(out.String(), "targets missed: 3") {
		t.Errorf("table:\n%s", out.String())
	}
}

func TestFmtDur(t *testing.T) {
	for d, want := range map[time.Duration]string{
		850 * time.Microsecond:    "850 µs",
		2500 * time.Microsecond:   "2.50 ms",
		103456 * time.Microsecond: "103.5 ms",
		1500 * time.Millisecond:   "1.50 s",
		-3 * time.Millisecond:     "-3.00 ms",
	} {
		if got := fmtDur(d); got != want {
			t.Errorf("fmtDur(%v) = %q, want %q", d, got, want)
		}
	}
}

func TestDiffObjects(t *testing.T) {
	a := map[string]bool{"shm key=0x1 id=1 cuid=0": true}
	if d := diffObjects(a, a); d != "" {
		t.Errorf("same sets differ: %q", d)
	}
	b := map[string]bool{"sem key=0x2 id=0 cuid=0": true}
	d := diffObjects(a, b)
	if !strings.Contains(d, "new:  sem") || !strings.Contains(d, "gone: shm") {
		t.Errorf("diff = %q", d)
	}
}
