package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os/user"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

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
operated on is judged by age alone, so only with --older-than; and no other
object of the same key is kept. With --json it prints every object, with
"orphan" true or false, the evidence for and the reasons against.
ipcguard rm --orphans removes exactly these.`,
	UsageText: "ipcguard ls [--json] [--types shm,sem,msg] [--orphans [--older-than DURATION] [--metrics FILE]]",
	Flags: []cli.Flag{
		&cli.BoolFlag{Name: "json", Usage: "print JSON"},
		&cli.StringFlag{Name: "types", Value: "shm,sem,msg", EnvVars: []string{"IPCGUARD_TYPES"}, Usage: "object types to list"},
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
			return usagef("--types %q: want a list of shm, sem, msg", c.String("types"))
		}
		opt := lsOptions{types: ts, json: c.Bool("json"), orphans: c.Bool("orphans"), olderThan: c.Duration("older-than"), now: time.Now()}
		if !opt.orphans && (c.IsSet("older-than") || c.IsSet("metrics")) {
			return usagef("--older-than and --metrics go with --orphans")
		}
		if opt.olderThan < 0 {
			return usagef("--older-than %v: want a positive duration", opt.olderThan)
		}
		var msink *metricsSink
		if opt.orphans {
			if msink, err = openMetrics(c.String("metrics")); err != nil {
				return err
			}
		}
		start := time.Now()
		ds, err := list(c.App.Writer, opt)
		msink.writeOrphans(ds, time.Since(start), err, c.App.ErrWriter)
		return err
	},
}

// lsOptions are the options of ls.
type lsOptions struct {
	types     ipcdiff.TypeSet
	json      bool
	orphans   bool
	olderThan time.Duration
	now       time.Time
}

// lsPid is a pid the kernel recorded, with what we know of it now.
type lsPid struct {
	Pid   int    `json:"pid"`
	Alive bool   `json:"alive"`
	Comm  string `json:"comm,omitempty"`
}

type lsObj struct {
	Type     string  `json:"type"`
	ID       int     `json:"id"`
	Key      string  `json:"key"`
	Owner    string  `json:"owner"`
	UID      uint32  `json:"uid"`
	Perms    string  `json:"perms"`
	Size     uint64  `json:"size,omitempty"`   // shm bytes
	Nsems    int     `json:"nsems,omitempty"`  // sem
	Messages uint64  `json:"qnum,omitempty"`   // msg
	Nattch   uint64  `json:"nattch,omitempty"` // shm
	Creator  *lsPid  `json:"creator,omitempty"`
	LastOp   []lsPid `json:"last_op,omitempty"`
	Attached []lsPid `json:"attached_by,omitempty"`
	Ctime    int64   `json:"ctime"`
	AgeSec   int64   `json:"age_seconds"`
	Flags    string  `json:"flags,omitempty"`
	// With --orphans: the verdict (see ipcdiff.OrphanDecision).
	Orphan       *bool    `json:"orphan,omitempty"`
	InUse        *bool    `json:"in_use,omitempty"`
	Class        string   `json:"class,omitempty"`
	Evidence     []string `json:"evidence,omitempty"`
	Reasons      []string `json:"reasons,omitempty"`
	LastActivity int64    `json:"last_activity,omitempty"`
}

// list prints the objects; with opt.orphans it returns the decisions on
// the objects of the types listed.
func list(w io.Writer, opt lsOptions) ([]ipcdiff.OrphanDecision, error) {
	types, now, asJSON := opt.types, opt.now, opt.json
	fs, _ := ipcdiff.NewFS(procRoot)
	var decided map[ipcdiff.Ident]*ipcdiff.OrphanDecision
	var listed []ipcdiff.OrphanDecision
	var snap *ipcdiff.Snapshot
	var err error
	if opt.orphans {
		// Key families span types: decide on all of them.
		var ds []ipcdiff.OrphanDecision
		snap, ds, err = orphanDecisions(fs, opt.olderThan, now)
		if err != nil {
			return nil, err
		}
		decided = map[ipcdiff.Ident]*ipcdiff.OrphanDecision{}
		for i := range ds {
			if types.Has(ds[i].Type) {
				decided[ds[i].Ident] = &ds[i]
				listed = append(listed, ds[i])
			}
		}
		snap = snap.Only(types)
	} else if snap, err = fs.Snapshot(types); err != nil {
		return nil, err
	}
	procs := &ipcdiff.LiveProcs{Root: procRoot}
	pid := func(p int) lsPid {
		return lsPid{Pid: p, Alive: procs.Alive(p), Comm: procs.Comm(p)}
	}
	users := map[uint32]string{}
	owner := func(uid uint32) string {
		if n, ok := users[uid]; ok {
			return n
		}
		n := strconv.Itoa(int(uid))
		if u, err := user.LookupId(n); err == nil {
			n = u.Username
		}
		users[uid] = n
		return n
	}
	shmids := map[int]bool{}
	for _, s := range snap.Shm {
		if s.Nattch > 0 {
			shmids[s.ID] = true
		}
	}
	var attachers map[int][]int
	switch {
	case decided != nil:
		// What the decisions rested on, not a second reading.
		attachers = map[int][]int{}
		for id, d := range decided {
			if id.Type == ipcdiff.TypeShm {
				attachers[id.ID] = d.Attachers
			}
		}
	case len(shmids) > 0:
		attachers, _, _ = fs.Attachers(shmids)
	}
	semStates := func(s ipcdiff.Sem) ([]ipcdiff.SemState, error) {
		if d := decided[ipcdiff.Ident{Type: ipcdiff.TypeSem, ID: s.ID, Key: s.Key, CUID: s.CUID}]; d != nil {
			return d.Sems, nil
		}
		return ipcdiff.SemStates(s.ID, s.NSems)
	}
	objs := []lsObj{}
	age := func(ctime int64) int64 {
		if ctime <= 0 {
			return 0
		}
		return int64(now.Sub(time.Unix(ctime, 0)).Seconds())
	}
	for _, s := range snap.Shm {
		o := lsObj{Type: "shm", ID: s.ID, Key: ipcdiff.KeyString(s.Key), Owner: owner(s.UID), UID: s.UID,
			Perms: fmt.Sprintf("%o", s.Perms&0o777), Size: s.Size, Nattch: s.Nattch, Ctime: s.Ctime, AgeSec: age(s.Ctime)}
		c := pid(s.CPID)
		o.Creator = &c
		if s.LPID > 0 {
			o.LastOp = []lsPid{pid(s.LPID)}
		}
		for _, p := range attachers[s.ID] {
			o.Attached = append(o.Attached, pid(p))
		}
		if s.Perms&ipcdiff.ShmDest != 0 {
			o.Flags = "dest"
		}
		objs = append(objs, o)
	}
	for _, s := range snap.Sem {
		o := lsObj{Type: "sem", ID: s.ID, Key: ipcdiff.KeyString(s.Key), Owner: owner(s.UID), UID: s.UID,
			Perms: fmt.Sprintf("%o", s.Perms&0o777), Nsems: s.NSems, Ctime: s.Ctime, AgeSec: age(s.Ctime)}
		if st, err := semStates(s); err == nil {
			seen := map[int]bool{}
			for _, x := range st {
				if x.Pid > 0 && !seen[x.Pid] {
					seen[x.Pid] = true
					o.LastOp = append(o.LastOp, pid(x.Pid))
				}
			}
		}
		objs = append(objs, o)
	}
	for _, m := range snap.Msg {
		o := lsObj{Type: "msg", ID: m.ID, Key: ipcdiff.KeyString(m.Key), Owner: owner(m.UID), UID: m.UID,
			Perms: fmt.Sprintf("%o", m.Perms&0o777), Messages: m.QNum, Ctime: m.Ctime, AgeSec: age(m.Ctime)}
		for _, p := range []int{m.LSPID, m.LRPID} {
			if p > 0 {
				o.LastOp = append(o.LastOp, pid(p))
			}
		}
		objs = append(objs, o)
	}
	if decided != nil {
		return listed, printOrphans(w, objs, decided, asJSON, now)
	}
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return nil, enc.Encode(objs)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TYPE\tID\tKEY\tOWNER\tPERMS\tSIZE\tCREATOR\tLAST-OP\tATTACHED\tAGE")
	for _, o := range objs {
		size := ""
		switch o.Type {
		case "shm":
			size = strconv.FormatUint(o.Size, 10)
			if o.Flags != "" {
				size += " " + o.Flags
			}
		case "sem":
			size = fmt.Sprintf("%d sems", o.Nsems)
		case "msg":
			size = fmt.Sprintf("%d msgs", o.Messages)
		}
		creator := "-"
		if o.Creator != nil {
			creator = pidText(*o.Creator)
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", o.Type, o.ID, o.Key, o.Owner, o.Perms, size,
			creator, pidList(o.LastOp), pidList(o.Attached), (time.Duration(o.AgeSec) * time.Second).String())
	}
	return nil, tw.Flush()
}

func pidText(p lsPid) string {
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

func pidList(ps []lsPid) string {
	if len(ps) == 0 {
		return "-"
	}
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = pidText(p)
	}
	return strings.Join(s, ",")
}
