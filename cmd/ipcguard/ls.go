package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ipcguard/ipcguard/internal/guard"
	"github.com/ipcguard/ipcguard/ipcdiff"
	"github.com/urfave/cli/v2"
)

var lsCommand = &cli.Command{
	Name:  "ls",
	Usage: "list the IPC objects of this namespace, with who made, uses and attaches them",
	Description: `Like ipcs, plus what ipcs lacks: whether the creator and last-operation pids
are alive and who they are, which live processes attach each segment, and
the age of each object (from its ctime). Pids of other users' processes may
not be visible without privileges.

With --orphans it lists only the objects that every piece of evidence says
are abandoned, each with why: every pid the kernel recorded on it (creator,
last attach, last semop, last msgsnd/msgrcv) is dead, or now another
process's that started after the object's last activity; nobody attaches it
or waits on it; no process of another pid namespace used it; nothing about
it was unreadable; it was left alone for at least 3 seconds (and for
--older-than, against its latest time stamp); a set or queue nobody ever
operated on, and a POSIX object nobody holds or maps, is judged by age
alone, so only with --older-than (reading a queue's status, as every ls
does, counts as activity on it); and no other object of the same key or
name is kept. With --json it prints every object, with
"orphan" true or false, the evidence for and the reasons against.
ipcguard rm --orphans removes exactly these.`,
	UsageText: "ipcguard ls [--json] [--types shm,sem,msg,pshm,psem,pmsg] [--orphans [--older-than DURATION] [--metrics FILE]]",
	Flags: []cli.Flag{
		&cli.BoolFlag{Name: "json", Usage: "print JSON"},
		&cli.StringFlag{Name: "types", Value: "shm,sem,msg,pshm,psem,pmsg", EnvVars: []string{"IPCGUARD_TYPES"}, Usage: "object types to list"},
		&cli.BoolFlag{Name: "orphans", Usage: "list only the objects every piece of evidence says are abandoned, with why"},
		&cli.DurationFlag{Name: "older-than", Usage: "with --orphans: only objects whose last activity is older than `DURATION` (1h, 30m)"},
		&cli.StringFlag{Name: "metrics", EnvVars: []string{"IPCGUARD_METRICS"}, Usage: "with --orphans: add the listing to Prometheus metrics in `FILE` (for node_exporter's textfile collector)"},
	},
	Action: func(c *cli.Context) error {
		if c.Args().Present() {
			return usagef("ls takes no arguments (to run a program called ls: ipcguard -- ls)")
		}
		ts, err := ipcdiff.ParseTypeSet(c.String("types"))
		if err != nil {
			return usagef("--types %q: want a list of %s", c.String("types"), typeList())
		}
		opt := guard.ListOptions{Types: ts, Orphans: c.Bool("orphans"), OlderThan: c.Duration("older-than"), Now: time.Now()}
		if !opt.Orphans && (c.IsSet("older-than") || c.IsSet("metrics")) {
			return usagef("--older-than and --metrics go with --orphans")
		}
		if opt.OlderThan < 0 {
			return usagef("--older-than %v: want a positive duration", opt.OlderThan)
		}
		var msink *metricsSink
		if opt.Orphans {
			if msink, err = openMetrics(c.String("metrics")); err != nil {
				return err
			}
		}
		start := time.Now()
		ds, err := list(c.App.Writer, opt, c.Bool("json"))
		if opt.Orphans {
			msink.write(guard.OrphanMetrics(ds, time.Since(start), err), c.App.ErrWriter)
		}
		return err
	},
}

// list prints the objects (guard.List); with opt.Orphans it returns the
// decisions on the objects of the types listed.
func list(w io.Writer, opt guard.ListOptions, asJSON bool) ([]ipcdiff.OrphanDecision, error) {
	objs, ds, err := guard.List(opt)
	if err != nil {
		return nil, err
	}
	if opt.Orphans {
		return ds, printOrphans(w, objs, asJSON, opt.Now)
	}
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return nil, enc.Encode(objs)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TYPE\tID\tKEY/NAME\tOWNER\tPERMS\tSIZE\tCREATOR\tLAST-OP\tUSED-BY\tAGE")
	for _, o := range objs {
		var size string
		switch {
		case o.Nsems > 0:
			size = fmt.Sprintf("%d sems", o.Nsems)
		case o.Queue:
			size = fmt.Sprintf("%d msgs", o.Messages)
		default:
			size = strconv.FormatUint(o.Size, 10)
		}
		if o.Flags != "" {
			size += " " + o.Flags
		}
		creator := "-"
		if o.Creator != nil {
			creator = pidText(*o.Creator)
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", o.Type, o.ID, keyOrName(o), o.Owner, o.Perms, size,
			creator, pidList(o.LastOp), pidList(o.Attached), (time.Duration(o.AgeSec) * time.Second).String())
	}
	return nil, tw.Flush()
}

// keyOrName is the key of a System V object, the name of a named one:
// as it is when it is printable ASCII without spaces, quotes or
// backslashes, else quoted as Go quotes it ("a b", "\n", "\xff"), so
// that a table row stays one line of whitespace-separated fields.
func keyOrName(o guard.Listed) string {
	if o.Name == "" {
		return o.Key
	}
	for i := 0; i < len(o.Name); i++ {
		if c := o.Name[i]; c <= ' ' || c >= 0x7f || c == '"' || c == '\\' {
			return strconv.Quote(o.Name)
		}
	}
	return o.Name
}

func pidText(p guard.ListedPid) string {
	switch {
	case p.Pid == 0:
		return "-"
	case !p.Alive:
		return fmt.Sprintf("%d(dead)", p.Pid)
	case p.Comm != "":
		return fmt.Sprintf("%d(%s)", p.Pid, p.Comm)
	}
	return strconv.Itoa(p.Pid)
}

func pidList(ps []guard.ListedPid) string {
	if len(ps) == 0 {
		return "-"
	}
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = pidText(p)
	}
	return strings.Join(s, ",")
}

// printOrphans prints ls --orphans: a table of the orphans with why, or
// JSON of every object with its verdict.
func printOrphans(w io.Writer, objs []guard.Listed, asJSON bool, now time.Time) error {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(objs)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TYPE\tID\tKEY/NAME\tOWNER\tIDLE\tWHY")
	for _, o := range objs {
		if !*o.Orphan {
			continue
		}
		idle := "-"
		if o.LastActivity > 0 {
			idle = now.Sub(time.Unix(o.LastActivity, 0)).Round(time.Second).String()
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\n", o.Type, o.ID, keyOrName(o), o.Owner, idle, strings.Join(o.Evidence, "; "))
	}
	return tw.Flush()
}
