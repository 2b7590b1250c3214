package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/ipcguard/ipcguard/internal/guard"
	"github.com/ipcguard/ipcguard/ipcdiff"
	"github.com/urfave/cli/v2"
)

var rmCommand = &cli.Command{
	Name:  "rm",
	Usage: "remove IPC objects as ipcrm does, but refuse those in use",
	Description: `A careful ipcrm. Each OBJECT is one of
  ID          the object with this id (of whichever type has it; when
              several types do, say which)
  0xKEY       every object with this key, of every type
  shm:ID      the segment with this id; sem:ID and msg:ID alike
  shm:0xKEY   the segment with this key; sem:0xKEY and msg:0xKEY alike
  pshm:NAME   the POSIX shared memory object of this name, as ls shows it
              (quoted or not); psem:sem.NAME and pmsg:NAME alike
(ipcrm -m ID is shm:ID, -s ID is sem:ID, -q ID is msg:ID, -M KEY is
shm:KEY, -S KEY is sem:KEY, -Q KEY is msg:KEY, --posix-shmem NAME is
pshm:NAME.)

An object in use is refused, with the reason: attached (nattch, or a
mapping in /proc/PID/maps); a process waiting on a semaphore; a pid the
kernel recorded on it that runs and started before its last activity (so it
may be the process that acted); a process of another pid namespace that used
it (a pid field 0); evidence that could not be read; another object of the
same key in use; for a POSIX object, a process that holds it open or maps
it, or a queue's registered notifier. Right before IPC_RMID (or unlink) the object is read again: if its id
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
		opt := guard.RmOptions{DryRun: c.Bool("dry-run"), Force: c.Bool("force"), Orphans: c.Bool("orphans"), OlderThan: c.Duration("older-than")}
		switch {
		case opt.Orphans && c.Args().Present():
			return usagef("rm --orphans takes no OBJECT")
		case opt.Orphans && opt.Force:
			return usagef("rm --orphans removes orphans only: --force does not go with it")
		case !opt.Orphans && c.IsSet("older-than"):
			return usagef("--older-than goes with --orphans")
		case !opt.Orphans && !c.Args().Present():
			return usagef("rm: no OBJECT given (ID, 0xKEY, shm:ID, sem:ID, msg:ID, or --orphans)")
		case opt.OlderThan < 0:
			return usagef("--older-than %v: want a positive duration", opt.OlderThan)
		}
		for _, a := range c.Args().Slice() {
			sel, err := ipcdiff.ParseSelector(a)
			if err != nil {
				return usagef("rm: %s (to run a program called rm: ipcguard -- rm ...)", strings.TrimPrefix(err.Error(), ipcdiff.ErrUsage.Error()+": "))
			}
			opt.Selectors = append(opt.Selectors, sel)
		}
		res, ok, err := guard.Rm(opt)
		var ae *guard.AmbiguousError
		if errors.As(err, &ae) {
			return usagef("rm: %v", ae)
		}
		if err != nil {
			return err
		}
		w := c.App.Writer
		for _, r := range res {
			if r.Selector != "" {
				fmt.Fprintf(w, "%s: %s\n", r.Selector, r.Outcome)
				continue
			}
			if r.Ident.Name != "" {
				fmt.Fprintf(w, "%s %s: %s\n", r.Ident.Type, guard.PrintableName(r.Ident.Name), r.Outcome)
				continue
			}
			fmt.Fprintf(w, "%s %d key %s: %s\n", r.Ident.Type, r.Ident.ID, ipcdiff.KeyString(r.Ident.Key), r.Outcome)
		}
		if !ok {
			return &statusError{guard.Exited(guard.ExitIncomplete)}
		}
		return nil
	},
}
