package main

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// row is one figure: ipcguard's number, the reference's, their ratio and
// the target. A row with neither target nor limit is informational.
type row struct {
	name       string
	guard, ref string
	ratio      float64 // 0: none
	target     float64 // highest acceptable ratio; 0: none
	limitKiB   int64   // highest acceptable value in KiB (P4); 0: none
	valueKiB   int64
	verdict    string // set by add unless given
	note       string
}

// growth is one scale of a growth table.
type growth struct {
	scale    string
	objects  int
	guard    time.Duration // ipcguard's figure
	ref      time.Duration // the reference's
	refFixed time.Duration // the reference's cost at 0 objects
	extra    time.Duration // P2: pre-start delay; P3: whole cleanup
}

type table struct {
	rows    []row
	growP2  []growth // includes scale "0"
	growP3  []growth
	fixedP2 time.Duration // ipcguard -- /bin/false with no objects
	partial []string      // runs where ipcguard did not remove everything
}

func (t *table) add(r row) {
	if r.verdict == "" {
		switch {
		case r.limitKiB > 0:
			r.verdict = okMiss(r.valueKiB <= r.limitKiB)
		case r.target > 0:
			r.verdict = okMiss(r.ratio > 0 && r.ratio <= r.target)
		default:
			r.verdict = "info"
		}
	}
	t.rows = append(t.rows, r)
}

func okMiss(ok bool) string {
	if ok {
		return "ok"
	}
	return "MISS"
}

func (r row) targetText() string {
	switch {
	case r.limitKiB > 0:
		return fmt.Sprintf("<= %d MiB", r.limitKiB>>10)
	case r.target > 0:
		return fmt.Sprintf("<= %gx", r.target)
	}
	return ""
}

func (t *table) print(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 1, ' ', 0)
	fmt.Fprintln(tw, "figure\t| ipcguard\t| reference\t| ratio\t| target\t| verdict")
	for _, r := range t.rows {
		v := r.verdict
		if r.note != "" {
			v += " (" + r.note + ")"
		}
		fmt.Fprintf(tw, "%s\t| %s\t| %s\t| %s\t| %s\t| %s\n", r.name, r.guard, r.ref, fmtRatio(r.ratio), r.targetText(), v)
	}
	tw.Flush()

	if len(t.growP2) > 0 {
		fmt.Fprintln(w, "\nGrowth of P2: namespace filled to a fraction of the limits; ipcguard -- /bin/false (both snapshots)")
		fmt.Fprintln(w, "vs one raw read; ns/object of ipcguard is over its cost in an empty namespace.")
		tw = tabwriter.NewWriter(w, 0, 0, 1, ' ', 0)
		fmt.Fprintln(tw, "scale\t| objects\t| ipcguard\t| raw read\t| ratio\t| ipcguard ns/object\t| raw ns/object\t| pre-start delay")
		for _, g := range t.growP2 {
			fmt.Fprintf(tw, "%s\t| %d\t| %s\t| %s\t| %s\t| %s\t| %s\t| %s\n", g.scale, g.objects, fmtDur(g.guard), fmtDur(g.ref),
				fmtRatio(ratio(g.guard, g.ref)), perObject(g.guard-t.fixedP2, g.objects), perObject(g.ref, g.objects), fmtDur(g.extra))
		}
		tw.Flush()
	}
	if len(t.growP3) > 0 {
		fmt.Fprintln(w, "\nGrowth of P3: a failing command created N objects; ipcguard's remove phase vs ipcrm -a on N")
		fmt.Fprintln(w, "objects made the same way; ns/object of ipcrm -a is over its cost in an empty namespace.")
		tw = tabwriter.NewWriter(w, 0, 0, 1, ' ', 0)
		fmt.Fprintln(tw, "scale\t| objects\t| remove\t| ipcrm -a\t| ratio\t| remove ns/object\t| ipcrm ns/object\t| whole cleanup\t| cleanup ns/object")
		for _, g := range t.growP3 {
			fmt.Fprintf(tw, "%s\t| %d\t| %s\t| %s\t| %s\t| %s\t| %s\t| %s\t| %s\n", g.scale, g.objects, fmtDur(g.guard), fmtDur(g.ref),
				fmtRatio(ratio(g.guard, g.ref)), perObject(g.guard, g.objects), perObject(g.ref-g.refFixed, g.objects),
				fmtDur(g.extra), perObject(g.extra, g.objects))
		}
		tw.Flush()
	}
	for _, p := range t.partial {
		fmt.Fprintln(w, "\nNOTE: "+p)
	}
	var miss []string
	for _, r := range t.rows {
		if r.verdict == "MISS" {
			miss = append(miss, strings.TrimSpace(r.name))
		}
	}
	if len(miss) == 0 {
		fmt.Fprintln(w, "\nall targets met")
	} else {
		fmt.Fprintf(w, "\ntargets missed: %d\n", len(miss))
	}
}

// median of ds (0 when empty); ds is not modified.
func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func ratio(a, b time.Duration) float64 {
	if b <= 0 {
		return 0
	}
	return float64(a) / float64(b)
}

func fmtRatio(r float64) string {
	if r == 0 || math.IsInf(r, 0) || math.IsNaN(r) {
		return "-"
	}
	return fmt.Sprintf("%.2fx", r)
}

// fmtDur prints d with three significant digits or so.
func fmtDur(d time.Duration) string {
	neg := ""
	if d < 0 {
		neg, d = "-", -d
	}
	switch {
	case d >= time.Second:
		return fmt.Sprintf("%s%.2f s", neg, d.Seconds())
	case d >= 10*time.Millisecond:
		return fmt.Sprintf("%s%.1f ms", neg, float64(d)/1e6)
	case d >= time.Millisecond:
		return fmt.Sprintf("%s%.2f ms", neg, float64(d)/1e6)
	}
	return fmt.Sprintf("%s%d µs", neg, d.Microseconds())
}

func fmtKiB(k int64) string { return fmt.Sprintf("%.1f MiB", float64(k)/1024) }

func perObject(d time.Duration, n int) string {
	if n == 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f", float64(d)/float64(n))
}
