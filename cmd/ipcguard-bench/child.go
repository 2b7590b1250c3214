//go:build linux

package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// limits are the kernel's default IPC limits: 4096 segments (shmmni),
// 32000 semaphore sets (SEMMNI), 32000 queues (msgmni).
var limits = population{shm: 4096, sem: 32000, msg: 32000}

// p3Objects is how many objects the failing command of P3 creates.
const p3Objects = 10000

type scale struct {
	name     string
	num, den int
}

var scales = []scale{{"1/8", 1, 8}, {"1/4", 1, 4}, {"1/2", 1, 2}, {"full", 1, 1}}

func (s scale) of(n int) int { return n * s.num / s.den }

func (s scale) pop(p population) population {
	return population{s.of(p.shm), s.of(p.sem), s.of(p.msg)}
}

// sysctls sets the namespace's limits so that it holds limits exactly.
var sysctls = []struct{ file, val string }{
	{"/proc/sys/kernel/shmmni", strconv.Itoa(limits.shm)},
	{"/proc/sys/kernel/sem", fmt.Sprintf("32000 %d 500 %d", 32000*limits.sem, limits.sem)},
	{"/proc/sys/kernel/msgmni", strconv.Itoa(limits.msg)},
}

// childMain runs in the private IPC namespace: every benchmark, then the
// table.
func childMain(opt options) error {
	start := time.Now()
	if err := privateShm(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), budget)
	defer cancel()
	b, err := newBench(ctx, opt)
	if err != nil {
		return err
	}
	defer b.close()
	for _, s := range sysctls {
		if err := os.WriteFile(s.file, []byte(s.val), 0o644); err != nil {
			return fmt.Errorf("raising %s in the private namespace: %w", s.file, err)
		}
		got, _ := os.ReadFile(s.file)
		if strings.Join(strings.Fields(string(got)), " ") != s.val {
			return fmt.Errorf("%s = %q after writing %q", s.file, got, s.val)
		}
	}
	if n, err := b.objects(); err != nil || n != 0 {
		return fmt.Errorf("the new IPC namespace is not empty (%d objects, %v): refusing to run", n, err)
	}

	t := &table{}
	steps := []struct {
		name string
		f    func(*bench, *table) error
	}{{"P1 start-up", p1}, {"P3 removal", p3}, {"P5 many forks", p5}, {"P2 scale and P4 memory", p2}}
	for _, s := range steps {
		t0 := time.Now()
		if err := s.f(b, t); err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
		fmt.Fprintf(os.Stderr, "benchtab: %s measured in %.1fs\n", s.name, time.Since(t0).Seconds())
	}
	t.print(os.Stdout)
	fmt.Printf("benchmark wall time: %.0fs\n", time.Since(start).Seconds())
	return nil
}

// loop calls f for round 0, 1, ... at least lo times, then until hi
// rounds or the section's time budget is spent. In quick mode, twice.
func (b *bench) loop(lo, hi int, budget time.Duration, f func(round int) error) (int, error) {
	if b.quick {
		lo, hi = 2, 2
	}
	t0 := time.Now()
	r := 0
	for ; r < hi && (r < lo || time.Since(t0) < budget); r++ {
		if err := f(r); err != nil {
			return r, err
		}
	}
	return r, nil
}

// contender is one command timed in alternation with others.
type contender struct {
	name    string
	argv    []string
	want    int
	samples []time.Duration
}

// alternate runs each contender once per round, rotating who goes first,
// after warm rounds that are not recorded.
func (b *bench) alternate(cs []*contender, warm, lo, hi int, budget time.Duration) (int, error) {
	for range warm {
		for _, c := range cs {
			if _, err := b.run(c.want, c.argv...); err != nil {
				return 0, err
			}
		}
	}
	return b.loop(lo, hi, budget, func(r int) error {
		for k := range cs {
			c := cs[(k+r)%len(cs)]
			res, err := b.run(c.want, c.argv...)
			if err != nil {
				return err
			}
			c.samples = append(c.samples, res.wall)
		}
		return nil
	})
}

// p1 times start-up on /bin/true: ipcguard, ipcguard with the polling
// tracker, tini -s, and /bin/true alone, in an empty namespace.
func p1(b *bench, t *table) error {
	// Which tracker does auto pick here?
	rf := b.dir + "/p1.json"
	if _, err := b.run(0, b.guardArgs(rf, nil, "/bin/true")...); err != nil {
		return err
	}
	rep, err := readReport(rf)
	if err != nil {
		return err
	}
	guard := &contender{name: "ipcguard", argv: b.guardArgs("", nil, "/bin/true")}
	poll := &contender{name: "poll", argv: b.guardArgs("", []string{"--tracker", "poll"}, "/bin/true")}
	bare := &contender{name: "true", argv: []string{"/bin/true"}}
	cs := []*contender{guard, poll, bare}
	var tini, floor *contender
	if b.tini != "" {
		tini = &contender{name: "tini", argv: []string{b.tini, "-s", "--", "/bin/true"}}
		cs = append(cs, tini)
	}
	if b.floor != "" {
		floor = &contender{name: "gofloor", argv: []string{b.floor, "/bin/true"}}
		cs = append(cs, floor)
	}
	n, err := b.alternate(cs, 3, 40, 200, 20*time.Second)
	if err != nil {
		return err
	}
	g := median(guard.samples)
	if floor != nil {
		t.add(row{name: fmt.Sprintf("P1 start-up: ipcguard -- /bin/true vs the Go floor (fork/exec/wait, built alike; median of %d)", n),
			guard: fmtDur(g), ref: fmtDur(median(floor.samples)), ratio: ratio(g, median(floor.samples)), target: 1.15})
	} else {
		t.add(row{name: "P1 start-up: ipcguard -- /bin/true vs the Go floor", guard: fmtDur(g),
			ref: "n/a", verdict: "n/a", note: b.floorWhy})
	}
	if tini != nil {
		t.add(row{name: "  info: vs tini -s -- /bin/true (C: not reachable in Go)",
			guard: fmtDur(g), ref: fmtDur(median(tini.samples)), ratio: ratio(g, median(tini.samples))})
	} else {
		t.add(row{name: "  info: vs tini -s -- /bin/true", guard: fmtDur(g), ref: "n/a", note: b.tiniWhy})
	}
	t.add(row{name: fmt.Sprintf("  info: vs /bin/true alone (overhead %s)", fmtDur(g-median(bare.samples))),
		guard: fmtDur(g), ref: fmtDur(median(bare.samples)), ratio: ratio(g, median(bare.samples))})
	p := median(poll.samples)
	t.add(row{name: fmt.Sprintf("  info: tracker %s (default) vs --tracker poll (%s more)", rep.Tracker.Name, fmtDur(g-p)),
		guard: fmtDur(g), ref: fmtDur(p), ratio: ratio(g, p)})
	return nil
}

// p3 times the removal of what a failing command created: ipcguard's own
// removal phase against ipcrm -a on the same number of objects, made the
// same way, at each scale of p3Objects.
func p3(b *bench, t *table) error {
	if b.ipcrm == "" {
		t.add(row{name: "P3 removal of 10000 objects vs ipcrm -a", guard: "n/a", ref: "n/a", verdict: "n/a",
			note: "ipcrm (util-linux) not installed"})
		return nil
	}
	// ipcrm -a's fixed cost: the same command in an empty namespace.
	empty := &contender{name: "ipcrm", argv: []string{b.ipcrm, "-a"}}
	if _, err := b.alternate([]*contender{empty}, 1, 5, 5, 0); err != nil {
		return err
	}
	rf := b.dir + "/p3.json"
	for _, s := range scales {
		n := s.of(p3Objects)
		nstr := strconv.Itoa(n)
		var remove, cleanup, ref []time.Duration
		var partial int
		var why string
		reps, err := b.loop(5, 15, 9*time.Second, func(int) error {
			if _, err := b.run(1, b.guardArgs(rf, nil, b.self, helperMake, nstr)...); err != nil {
				return err
			}
			rep, err := readReport(rf)
			if err != nil {
				return err
			}
			if rep.Snapshot.New != n {
				return fmt.Errorf("ipcguard saw %d new objects, want %d", rep.Snapshot.New, n)
			}
			if rep.Removed != n {
				// Not comparable with ipcrm -a: leave the run out, say why.
				partial++
				why = fmt.Sprintf("removed %d of %d: %s", rep.Removed, n, rep.notRemoved())
				fmt.Fprintf(os.Stderr, "benchtab: P3 %d objects: ipcguard %s\n", n, why)
				if _, err := b.run(0, b.ipcrm, "-a"); err != nil {
					return err
				}
				return nil
			}
			if left, err := b.objects(); err != nil || left != 0 {
				return fmt.Errorf("%d objects left after ipcguard's cleanup (%v)", left, err)
			}
			tm := rep.Timings
			remove = append(remove, us(tm.Remove))
			cleanup = append(cleanup, us(tm.SnapshotAfter+tm.Attribute+tm.Remove))

			if _, err := b.run(1, b.self, helperMake, nstr); err != nil {
				return err
			}
			if got, err := b.objects(); err != nil || got != n {
				return fmt.Errorf("the make helper left %d objects, want %d (%v)", got, n, err)
			}
			res, err := b.run(0, b.ipcrm, "-a")
			if err != nil {
				return err
			}
			ref = append(ref, res.wall)
			if left, err := b.objects(); err != nil || left != 0 {
				return fmt.Errorf("%d objects left after ipcrm -a (%v)", left, err)
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("%d objects: %w", n, err)
		}
		if partial > 0 {
			t.partial = append(t.partial, fmt.Sprintf("P3 %d objects: in %d of %d runs ipcguard did not remove everything (runs left out); last: %s",
				n, partial, reps, why))
		}
		r, c, x := median(remove), median(cleanup), median(ref)
		t.growP3 = append(t.growP3, growth{scale: s.name, objects: n, guard: r, ref: x,
			refFixed: median(empty.samples), extra: c})
		if s.num == s.den {
			t.add(row{name: fmt.Sprintf("P3 removal of %d objects: timings_us.remove vs ipcrm -a (median of %d)", n, len(remove)),
				guard: fmtDur(r), ref: fmtDur(x), ratio: ratio(r, x), target: 1.5})
			t.add(row{name: "  info: whole cleanup (snapshot_after+attribute+remove) vs ipcrm -a",
				guard: fmtDur(c), ref: fmtDur(x), ratio: ratio(c, x)})
		}
	}
	return nil
}

// p2 fills the namespace to each scale of the kernel limits and times
// ipcguard's whole run, the delay before the command starts and a raw
// read; at full scale it also takes P4, ipcguard's peak RSS.
func p2(b *bench, t *table) error {
	have := population{}
	rf := b.dir + "/p2.json"
	mf := b.dir + "/mark"
	for i, s := range append([]scale{{"0", 0, 1}}, scales...) {
		want := s.pop(limits)
		if err := fill(population{want.shm - have.shm, want.sem - have.sem, want.msg - have.msg}); err != nil {
			return fmt.Errorf("filling the namespace to %s of the limits: %w", s.name, err)
		}
		have = want
		if n, err := b.objects(); err != nil || n != want.total() {
			return fmt.Errorf("namespace holds %d objects, want %d (%v)", n, want.total(), err)
		}
		var raw, okRun, failRun, viaGuard, direct []time.Duration
		var before, journal, after, attr []time.Duration
		var rss, rssOK int64
		lo, hi, bud := 9, 40, 4*time.Second
		if s.num == s.den {
			lo, hi, bud = 11, 40, 25*time.Second
		}
		reps, err := b.loop(lo, hi, bud, func(r int) error {
			steps := []func() error{
				func() error {
					for range 3 {
						d, _, err := b.rawRead()
						if err != nil {
							return err
						}
						raw = append(raw, d)
					}
					return nil
				},
				func() error {
					res, err := b.run(0, b.guardArgs("", nil, "/bin/true")...)
					okRun = append(okRun, res.wall)
					if err == nil && len(okRun) <= 8 {
						var k int64
						k, err = b.peakRSS(0, b.guardArgs("", nil, "/bin/true"))
						rssOK = max(rssOK, k)
					}
					return err
				},
				func() error {
					// Timed as a user runs it, without --report; the
					// phases come from a second run that writes one.
					res, err := b.run(1, b.guardArgs("", nil, "/bin/false")...)
					if err != nil {
						return err
					}
					failRun = append(failRun, res.wall)
					if _, err := b.run(1, b.guardArgs(rf, nil, "/bin/false")...); err != nil {
						return err
					}
					if len(failRun) <= 8 {
						k, err := b.peakRSS(1, b.guardArgs("", nil, "/bin/false"))
						rss = max(rss, k)
						if err != nil {
							return err
						}
					}
					rep, err := readReport(rf)
					if err != nil {
						return err
					}
					if rep.Snapshot.Before != want.total() {
						return fmt.Errorf("ipcguard's snapshot holds %d objects, want %d", rep.Snapshot.Before, want.total())
					}
					tm := rep.Timings
					before = append(before, us(tm.SnapshotBefore))
					journal = append(journal, us(tm.Journal))
					after = append(after, us(tm.SnapshotAfter))
					attr = append(attr, us(tm.Attribute))
					return nil
				},
				func() error {
					d, err := b.mark(mf, b.guardArgs("", nil, b.self, helperMark, mf)...)
					viaGuard = append(viaGuard, d)
					return err
				},
				func() error {
					d, err := b.mark(mf, b.self, helperMark, mf)
					direct = append(direct, d)
					return err
				},
			}
			for k := range steps {
				if err := steps[(k+r)%len(steps)](); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("%s of the limits: %w", s.name, err)
		}
		rd, ok, fl := median(raw), median(okRun), median(failRun)
		delay := median(viaGuard) - median(direct)
		t.growP2 = append(t.growP2, growth{scale: s.name, objects: want.total(), guard: fl, ref: rd, extra: delay})
		if i == 0 {
			t.fixedP2 = fl
		}
		if s.num != s.den || i == 0 {
			continue
		}
		name := fmt.Sprintf("P2 at the limits (%d objects, median of %d)", want.total(), reps)
		t.add(row{name: name + ": ipcguard -- /bin/true vs raw read", guard: fmtDur(ok), ref: fmtDur(rd),
			ratio: ratio(ok, rd), target: 2.5})
		t.add(row{name: "P2 pre-start delay (command start via ipcguard − direct) vs raw read", guard: fmtDur(delay),
			ref: fmtDur(rd), ratio: ratio(delay, rd), target: 1.2})
		t.add(row{name: "P2 failing run at the limits: ipcguard -- /bin/false (both snapshots, wall time) vs raw read", guard: fmtDur(fl), ref: fmtDur(rd),
			ratio: ratio(fl, rd), target: 2.5})
		for _, ph := range []struct {
			name string
			d    []time.Duration
		}{{"snapshot_before", before}, {"journal", journal}, {"snapshot_after", after}, {"attribute", attr}} {
			m := median(ph.d)
			t.add(row{name: "  info: phase " + ph.name + " (from --report) vs raw read", guard: fmtDur(m), ref: fmtDur(rd),
				ratio: ratio(m, rd)})
		}
		t.add(row{name: "P4 peak RSS of ipcguard -- /bin/false at the limits (wait4 maxrss)", guard: fmtKiB(rss),
			ref: "-", limitKiB: 20 << 10, valueKiB: rss})
		t.add(row{name: "  info: peak RSS of ipcguard -- /bin/true at the limits", guard: fmtKiB(rssOK), ref: "-"})
	}
	return nil
}

// p5Forks is how many processes the failing command of P5 forks.
const p5Forks = 100000

// p5 runs a failing command that forks p5Forks processes that exit at once
// (the forks helper), directly and under ipcguard, one run each: the
// journal's size at its largest (journal.DefaultCompactAt bounds it),
// ipcguard's peak RSS, whether the tracker lost any record, and the cost
// per fork.
func p5(b *bench, t *table) error {
	n := p5Forks
	if b.quick {
		n = 5000
	}
	nstr := strconv.Itoa(n)
	out, rf := b.dir+"/p5.out", b.dir+"/p5.json"
	dres, err := b.run(1, b.self, helperForks, nstr, b.stateDir, out)
	if err != nil {
		return err
	}
	direct, err := readForksOut(out)
	if err != nil {
		return err
	}
	os.Remove(out)
	if err := clear(); err != nil { // the segment the direct run left
		return err
	}
	rss, wall, err := b.peakRSSWall(1, b.guardArgs(rf, nil, b.self, helperForks, nstr, b.stateDir, out))
	if err != nil {
		return err
	}
	under, err := readForksOut(out)
	if err != nil {
		return err
	}
	rep, err := readReport(rf)
	if err != nil {
		return err
	}
	jr := row{name: fmt.Sprintf("P5 journal at its largest: a failing command forking %d processes (read every %d forks)", n, journalEvery),
		guard: fmtBytes(under.Journal), ref: "-", limitKiB: 1 << 10, valueKiB: (under.Journal + 1023) >> 10}
	if under.Samples == 0 {
		jr.verdict, jr.note = "n/a", "the command found no journal of ipcguard's"
	}
	t.add(jr)
	rr := row{name: "P5 peak RSS of ipcguard over those forks (wait4 maxrss)", guard: fmtKiB(rss), ref: "-",
		limitKiB: 32 << 10, valueKiB: rss}
	if under.HWMKiB >= rss {
		rr.note = fmt.Sprintf("the command's own peak, %s, may hide ipcguard's", fmtKiB(under.HWMKiB))
	}
	t.add(rr)
	tr := row{name: fmt.Sprintf("P5 tracker over those forks: no record lost (%d pid numbers in the tree)", rep.Tracker.Pids),
		guard: fmt.Sprintf("%s, exact %v", rep.Tracker.Name, rep.Tracker.Exact), ref: "-", verdict: okMiss(rep.Tracker.Exact && rep.Tracker.Note == "")}
	if rep.Tracker.Note != "" {
		tr.note = rep.Tracker.Note
	}
	t.add(tr)
	perFork := func(d time.Duration) string { return fmt.Sprintf("%.1f µs", float64(d)/float64(n)/1e3) }
	t.add(row{name: fmt.Sprintf("  info: cost per fork, (ipcguard − direct) / %d, wall time of each run", n),
		guard: perFork(wall - dres.wall), ref: perFork(dres.wall), ratio: ratio(wall, dres.wall)})
	t.add(row{name: "  info: the fork loop alone: forks per second under ipcguard vs direct",
		guard: fmt.Sprintf("%.0f/s", float64(n)/time.Duration(under.LoopNs).Seconds()),
		ref:   fmt.Sprintf("%.0f/s", float64(n)/time.Duration(direct.LoopNs).Seconds()), ratio: ratio(time.Duration(under.LoopNs), time.Duration(direct.LoopNs))})
	if rep.Removed != 1 {
		t.partial = append(t.partial, fmt.Sprintf("P5: ipcguard removed %d of the 1 segment the command made: %s", rep.Removed, rep.notRemoved()))
		if err := clear(); err != nil {
			return err
		}
	}
	return nil
}

func fmtBytes(n int64) string {
	if n < 1<<20 {
		return fmt.Sprintf("%.0f KiB", float64(n)/1024)
	}
	return fmt.Sprintf("%.2f MiB", float64(n)/(1<<20))
}
