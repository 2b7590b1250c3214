package supervisor

import (
	"fmt"
	"slices"
	"time"
)

// Crossing is one interval of the pid watch in which the kernel's pid
// allocation cursor moved: between From and To, any free pid in the cyclic
// range (Lo, Hi] may have been handed to a new process. All means the
// cursor may have gone round the whole range (or the watch lost track):
// any free pid may have been handed out.
//
// The kernel hands out pids in a namespace cyclically (kernel/pid.c,
// alloc_pid → idr_alloc_cyclic): the next free number above the last one
// handed out, wrapping at pid_max. So a number that the cursor did not pass
// was not handed to anyone.
type Crossing struct {
	From, To time.Time
	Lo, Hi   int
	All      bool
	// Unwatched marks a crossing read across a time nobody watched (a
	// sweep carrying a dead supervisor's watch on to now): a number may
	// have been handed out more than once in it (ns_last_pid written
	// back), so it is never taken for a member's own hand-out.
	Unwatched bool
}

// PidRecord is what the pid watch knows of one pid number that was a
// member's: whether a process held it when the watch began, and every
// interval in which the number may have been handed out (Alls included).
type PidRecord struct {
	Pre   bool
	Cross []Crossing // in time order
}

// Watch is what a pid watch saw of the whole run: the time it covered and
// the record of each member's pid number. A zero Watch (OK false) proves
// nothing: every pid number may have changed hands at any time.
type Watch struct {
	OK          bool
	Why         string // why OK is false
	From, Until time.Time
	Pids        map[int]*PidRecord
	// Drift is the most the wall clock moved against the monotonic clock
	// at any reading since From (a step or slew, back and forth): the
	// kernel's IPC stamps follow the wall clock, the watch's times do not.
	Drift time.Duration
}

// spanMargin shrinks each membership span before it is taken as proof that
// a member held the number: recorded fork and exit times come from clocks
// that may differ by a few milliseconds from the watch's.
const spanMargin = 20 * time.Millisecond

// interval is [from, to), and the hand-out that may have started it.
type interval struct {
	from, to time.Time
	cause    *Crossing // nil: the number was in use when the watch began, or after it
}

var forever = time.Unix(1<<62, 0)

// foreignTimes returns the times at which a process outside the tree may have
// held pid number pid, as sorted, disjoint intervals. It follows the
// holders of the number: each hand-out starts a new holder, who keeps it
// at most until the next hand-out. The hand-out just before a member's
// fork is that member's own (the member held the number from then on);
// every other hand-out, and a holder already there when the watch began,
// may be a stranger's, except one made while a member held the number
// (it handed the number to nobody). The member's own spans are then taken
// out: while a member held the number, nobody else could.
func (t *Tree) foreignTimes(pid int) []interval {
	spans := t.spans[pid]
	w := t.watch
	var out []interval
	rec := w.Pids[pid]
	if !w.OK || rec == nil {
		out = []interval{{time.Time{}, forever, nil}}
	} else {
		cross := rec.Cross
		own := make([]int, len(cross)) // 1 + index of the span this hand-out started, or 0
		for i, s := range spans {
			k := sortSearch(len(cross), func(k int) bool { return !cross[k].From.Before(s.Start.Add(spanMargin)) }) - 1
			if k >= 0 && !cross[k].All && !cross[k].Unwatched && own[k] == 0 {
				own[k] = i + 1
			}
		}
		var holder time.Time // when a possibly foreign holder took the number; zero: none
		var cause *Crossing
		if rec.Pre {
			holder = w.From
		}
		for k, c := range cross {
			if own[k] == 0 && inSpan(spans, c, t.finished) {
				// A member held the number all through the crossing: the
				// kernel handed it to nobody then (alloc_pid takes free
				// numbers only), whoever held it before still lost it to
				// that member, and after the member nobody has it until
				// a later hand-out.
				continue
			}
			end := c.To
			if own[k] != 0 {
				end = spans[own[k]-1].Start.Add(spanMargin)
			}
			if !holder.IsZero() {
				out = append(out, interval{holder, end, cause})
			}
			holder, cause = time.Time{}, nil
			if own[k] == 0 {
				holder, cause = c.From, &cross[k]
			}
		}
		if !holder.IsZero() {
			out = append(out, interval{holder, forever, cause})
		}
		out = append(out, interval{w.Until, forever, nil})
	}
	for _, s := range spans {
		end := s.End
		if end.IsZero() {
			end = t.finished
		}
		out = cut(out, s.Start.Add(spanMargin), end.Add(-spanMargin))
	}
	return merge(out)
}

// inSpan reports whether crossing c lies inside one of spans, each
// shrunk by spanMargin at both ends (a span not seen to end runs until
// finished).
func inSpan(spans []Span, c Crossing, finished time.Time) bool {
	for _, s := range spans {
		end := s.End
		if end.IsZero() {
			end = finished
		}
		if !c.From.Before(s.Start.Add(spanMargin)) && !c.To.After(end.Add(-spanMargin)) {
			return true
		}
	}
	return false
}

// cut removes [from, to] from the intervals.
func cut(in []interval, from, to time.Time) []interval {
	if !from.Before(to) {
		return in
	}
	var out []interval
	for _, iv := range in {
		if !iv.to.After(from) || !iv.from.Before(to) {
			out = append(out, iv)
			continue
		}
		if iv.from.Before(from) {
			out = append(out, interval{iv.from, from, iv.cause})
		}
		if iv.to.After(to) {
			out = append(out, interval{to, iv.to, iv.cause})
		}
	}
	return out
}

func merge(in []interval) []interval {
	slices.SortFunc(in, func(a, b interval) int { return a.from.Compare(b.from) })
	var out []interval
	for _, iv := range in {
		if !iv.from.Before(iv.to) {
			continue
		}
		if n := len(out); n > 0 && !iv.from.After(out[n-1].to) {
			if iv.to.After(out[n-1].to) {
				out[n-1].to = iv.to
			}
			continue
		}
		out = append(out, iv)
	}
	return out
}

func sortSearch(n int, f func(int) bool) int {
	lo, hi := 0, n
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if !f(m) {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

// held reports whether a member of the tree ran under pid at some moment
// of [from, to]: a process acts only while it runs, between its fork and
// its exit.
func (t *Tree) held(pid int, from, to time.Time) bool {
	for _, s := range t.spans[pid] {
		end := s.End
		if end.IsZero() {
			end = forever
		}
		if !s.Start.After(to) && !end.Before(from) {
			return true
		}
	}
	return false
}

// whyForeign describes the first interval of f that meets [from, to].
func (t *Tree) whyForeign(pid int, f []interval, from, to time.Time) string {
	for _, iv := range f {
		if !iv.to.After(from) || iv.from.After(to) {
			continue
		}
		switch {
		case !t.watch.OK:
			return fmt.Sprintf("pid %d may have been reused: %s", pid, t.watch.Why)
		case !iv.from.Before(t.watch.Until):
			return fmt.Sprintf("pid %d may have been reused after the pid watch stopped", pid)
		case iv.from.Equal(t.watch.From):
			return fmt.Sprintf("pid %d may have been another process's (the number was in use when the run began)", pid)
		}
		c := iv.cause
		switch {
		case c == nil:
		case c.All:
			return fmt.Sprintf("pid %d may have been reused (the pid allocator may have gone round, or been moved back, between %s and %s)",
				pid, c.From.Format("15:04:05.000"), c.To.Format("15:04:05.000"))
		default:
			return fmt.Sprintf("pid %d may have been reused (the kernel handed out pids %d to %d between %s and %s)",
				pid, c.Lo+1, c.Hi, c.From.Format("15:04:05.000"), c.To.Format("15:04:05.000"))
		}
		return fmt.Sprintf("pid %d may have been reused (the kernel may have handed the number to another process from %s)",
			pid, iv.from.Format("15:04:05.000"))
	}
	return ""
}
