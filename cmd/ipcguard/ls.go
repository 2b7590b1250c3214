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
not be visible without privileges.`,
	UsageText: "ipcguard ls [--json] [--types shm,sem,msg]",
	Flags: []cli.Flag{
		&cli.BoolFlag{Name: "json", Usage: "print JSON"},
		&cli.StringFlag{Name: "types", Value: "shm,sem,msg", EnvVars: []string{"IPCGUARD_TYPES"}, Usage: "object types to list"},
	},
	Action: func(c *cli.Context) error {
		if c.Args().Present() {
			return usagef("ls takes no arguments (to run a program called ls: ipcguard -- ls)")
		}
		ts, err := ipcdiff.ParseTypeSet(c.String("types"))
		if err != nil {
			return usagef("--types %q: want a list of shm, sem, msg", c.String("types"))
		}
		return list(c.App.Writer, ts, c.Bool("json"), time.Now())
	},
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
}

func list(w io.Writer, types ipcdiff.TypeSet, asJSON bool, now time.Time) error {
	fs, _ := ipcdiff.NewFS(procRoot)
	snap, err := fs.Snapshot(types)
	if err != nil {
		return err
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
	if len(shmids) > 0 {
		attachers, _, _ = fs.Attachers(shmids)
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
		if st, err := ipcdiff.SemStates(s.ID, s.NSems); err == nil {
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
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(objs)
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
	return tw.Flush()
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
