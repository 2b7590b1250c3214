package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ipcguard/ipcguard/internal/metrics"
	"github.com/ipcguard/ipcguard/ipcdiff"
	"github.com/urfave/cli/v2"
)

// orphanDecisions reads every object of the namespace with the evidence
// ipcdiff.Orphans needs, and decides. Evidence that could not be gathered
// only keeps objects (ipcdiff.GatherOrphans).
func orphanDecisions(fs ipcdiff.FS, olderThan time.Duration, now time.Time) (*ipcdiff.Snapshot, []ipcdiff.OrphanDecision, error) {
	snap, err := fs.Snapshot(ipcdiff.AllTypes)
	if err != nil {
		return nil, nil, err
	}
	objs := snap.Objects()
	_ = ipcdiff.GatherOrphans(fs, objs)
	return snap, ipcdiff.Orphans(objs, &ipcdiff.LiveProcs{Root: procRoot}, now, olderThan), nil
}

// printOrphans prints ls --orphans: a table of the orphans with why, or
// JSON of every object with its verdict.
func printOrphans(w io.Writer, objs []lsObj, decided map[ipcdiff.Ident]*ipcdiff.OrphanDecision, asJSON bool, now time.Time) error {
	byID := map[string]*ipcdiff.OrphanDecision{}
	for id, d := range decided {
		byID[fmt.Sprintf("%s %d", id.Type, id.ID)] = d
	}
	var rows []lsObj
	for _, o := range objs {
		d := byID[fmt.Sprintf("%s %d", o.Type, o.ID)]
		if d == nil {
			continue // appeared between the two readings
		}
		orphan, inUse := d.Orphan, d.InUse
		o.Orphan, o.InUse, o.Class = &orphan, &inUse, d.Class
		o.Evidence, o.Reasons = d.For, d.Against
		if !d.LastActivity.IsZero() {
			o.LastActivity = d.LastActivity.Unix()
		}
		if asJSON || orphan {
			rows = append(rows, o)
		}
	}
	if asJSON {
		if rows == nil {
			rows = []lsObj{}
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(rows)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TYPE\tID\tKEY\tOWNER\tIDLE\tWHY")
	for _, o := range rows {
		idle := "-"
		if o.LastActivity > 0 {
			idle = now.Sub(time.Unix(o.LastActivity, 0)).Round(time.Second).String()
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\n", o.Type, o.ID, o.Key, o.Owner, idle, strings.Join(o.Evidence, "; "))
	}
	return tw.Flush()
}

// writeOrphans adds an ls --orphans to the metrics file: each object
// listed, would_remove when an orphan, else kept with the class of what
// kept it (ipcdiff.Class*).
func (m *metricsSink) writeOrphans(ds []ipcdiff.OrphanDecision, took time.Duration, err error, stderr io.Writer) {
	if m == nil {
		return
	}
	r := metrics.Run{Mode: "orphans", End: time.Now(), Result: "succeeded",
		Phases: []metrics.Phase{{Name: "orphans", Seconds: took.Seconds()}}}
	if err != nil {
		r.Result, r.ExitStatus = "error", exitUsage
	}
	for _, d := range ds {
		o := metrics.Object{Type: d.Type.String(), Action: "kept", Reason: d.Class}
		if d.Orphan {
			o.Action = "would_remove"
		}
		r.Objects = append(r.Objects, o)
	}
	m.write(r, stderr)
}

// Exit statuses of rm.
const exitRmIncomplete = 1 // an object was refused, changed, not found, or not removed

var rmCommand = &cli.Command{
	Name:  "rm",
	Usage: "remove IPC objects as ipcrm does, but refuse those in use",
	Description: `A careful ipcrm. Each OBJECT is one of
  ID          the object with this id (of whichever type has it; when
              several types do, say which)
  0xKEY       every object with this key, of every type
  shm:ID      the segment with this id; sem:ID and msg:ID alike
  shm:0xKEY   the segment with this key; sem:0xKEY and msg:0xKEY alike
(ipcrm -m ID is shm:ID, -s ID is sem:ID, -q ID is msg:ID, -M KEY is
shm:KEY, -S KEY is sem:KEY, -Q KEY is msg:KEY.)

An object in use is refused, with the reason: attached (nattch, or a
mapping in /proc/PID/maps); a process waiting on a semaphore; a pid the
kernel recorded on it that runs and started before its last activity (so it
may be the process that acted); a process of another pid namespace that used
it (a pid field 0); evidence that could not be read; another object of the
same key in use. Right before IPC_RMID the object is read again: if its id
now names another object, or it was attached, operated on, sent to or read
from since the decision, it is kept. --force removes objects in use too, as
ipcrm does, still checking that the id names the same object.

With --orphans, removes the objects ipcguard ls --orphans lists, and only
those.

One line per object on stdout: removed, would remove (--dry-run), already
gone, refused (in use), kept (changed), not found, or failed (EPERM: only
the owner, the creator or root may remove an object).

Exit status: 0 when every object named was removed (or was already gone;
with --dry-run: would be removed); 1 when one was refused, kept, not found
or could not be removed; 125 for bad usage.

To run a program called rm under ipcguard: ipcguard -- rm ...`,
	UsageText: "ipcguard rm [--dry-run] [--force] OBJECT...\nipcguard rm --orphans [--older-than DURATION] [--dry-run]",
	Flags: []cli.Flag{
		&cli.BoolFlag{Name: "dry-run", Aliases: []string{"n"}, Usage: "decide and say, remove nothing"},
		&cli.BoolFlag{Name: "force", Aliases: []string{"f"}, Usage: "remove objects in use too (the identity is still checked)"},
		&cli.BoolFlag{Name: "orphans", Usage: "remove the objects ls --orphans lists"},
		&cli.DurationFlag{Name: "older-than", Usage: "with --orphans: only objects whose last activity is older than `DURATION`"},
	},
	Action: func(c *cli.Context) error {
		opt := rmOptions{dryRun: c.Bool("dry-run"), force: c.Bool("force"), orphans: c.Bool("orphans"), olderThan: c.Duration("older-than")}
		switch {
		case opt.orphans && c.Args().Present():
			return usagef("rm --orphans takes no OBJECT")
		case opt.orphans && opt.force:
			return usagef("rm --orphans removes orphans only: --force does not go with it")
		case !opt.orphans && c.IsSet("older-than"):
			return usagef("--older-than goes with --orphans")
		case !opt.orphans && !c.Args().Present():
			return usagef("rm: no OBJECT given (ID, 0xKEY, shm:ID, sem:ID, msg:ID, or --orphans)")
		case opt.olderThan < 0:
			return usagef("--older-than %v: want a positive duration", opt.olderThan)
		}
		for _, a := range c.Args().Slice() {
			sel, err := ipcdiff.ParseSelector(a)
			if err != nil {
				return usagef("rm: %s (to run a program called rm: ipcguard -- rm ...)", strings.TrimPrefix(err.Error(), ipcdiff.ErrUsage.Error()+": "))
			}
			opt.sels = append(opt.sels, sel)
		}
		ok, err := rm(c.App.Writer, opt)
		if err != nil {
			return err
		}
		if !ok {
			return &statusError{exited(exitRmIncomplete)}
		}
		return nil
	},
}

type rmOptions struct {
	dryRun, force, orphans bool
	olderThan              time.Duration
	sels                   []ipcdiff.Selector
}

// rm removes what opt names, one line per object on w; ok is false when
// something named was not removed.
func rm(w io.Writer, opt rmOptions) (ok bool, err error) {
	fs, _ := ipcdiff.NewFS(procRoot)
	_, ds, err := orphanDecisions(fs, opt.olderThan, time.Now())
	if err != nil {
		return false, err
	}
	ids := make([]ipcdiff.Ident, len(ds))
	for i := range ds {
		ids[i] = ds[i].Ident
	}
	var todo []*ipcdiff.OrphanDecision
	seen := map[ipcdiff.Ident]bool{}
	ok = true
	if opt.orphans {
		for i := range ds {
			if ds[i].Orphan {
				todo = append(todo, &ds[i])
			}
		}
	}
	for _, sel := range opt.sels {
		if sel.Ambiguous(ids) {
			var which []string
			for _, id := range ids {
				if sel.Matches(id) {
					which = append(which, fmt.Sprintf("%s:%d", id.Type, id.ID))
				}
			}
			return false, usagef("rm: %s names %s: say which", sel.Text, strings.Join(which, " and "))
		}
	}
	for _, sel := range opt.sels {
		n := 0
		for i := range ds {
			if sel.Matches(ds[i].Ident) {
				n++
				if !seen[ds[i].Ident] {
					seen[ds[i].Ident] = true
					todo = append(todo, &ds[i])
				}
			}
		}
		if n == 0 {
			fmt.Fprintf(w, "%s: not found\n", sel.Text)
			ok = false
		}
	}
	for _, d := range todo {
		line, done := rmOne(fs, d, opt)
		fmt.Fprintf(w, "%s %d key %s: %s\n", d.Type, d.ID, ipcdiff.KeyString(d.Key), line)
		ok = ok && done
	}
	return ok, nil
}

// rmOne removes one object (or says what it would do) and returns the
// line to print and whether it was removed (or would be).
func rmOne(fs ipcdiff.FS, d *ipcdiff.OrphanDecision, opt rmOptions) (string, bool) {
	forced := ""
	if d.InUse && opt.force {
		forced = " (in use: " + strings.Join(d.InUseWhy, "; ") + ")"
	}
	if opt.dryRun {
		if d.InUse && !opt.force {
			return "would refuse, in use: " + strings.Join(d.InUseWhy, "; "), false
		}
		return "would remove" + forced, true
	}
	out, err := ipcdiff.RemoveUnused(fs, *d, opt.force)
	switch out.Result {
	case ipcdiff.Removed, ipcdiff.RemovedDeferred:
		return out.Result.String() + forced, true
	case ipcdiff.AlreadyGone:
		return "already gone", true
	case ipcdiff.InUse:
		return "refused, in use: " + out.Why, false
	case ipcdiff.Changed:
		return fmt.Sprintf("kept: the id now names another object (key %s, creator uid %d)", ipcdiff.KeyString(out.Found.Key), out.Found.CUID), false
	case ipcdiff.Touched:
		return "kept: changed since the decision (" + out.Why + ")", false
	}
	var e error = err
	for u := errors.Unwrap(e); u != nil; u = errors.Unwrap(e) {
		e = u
	}
	if e == nil {
		e = out.Err
	}
	return "failed: " + fmt.Sprint(e), false
}
