package main

import (
	"flag"
	"strings"
	"time"

	"github.com/ipcguard/ipcguard/internal/cmdline"
	"github.com/ipcguard/ipcguard/ipcdiff"
	"github.com/ipcguard/ipcguard/supervisor"
	"github.com/urfave/cli/v2"
)

var runFlags = []cli.Flag{
	&cli.StringFlag{Name: "cmd", Aliases: []string{"c"}, EnvVars: []string{"IPCGUARD_CMD"},
		Usage: "the command as one string, split into words as sh does (quotes, backslashes; no expansion) (for init scripts and config files)"},
	&cli.StringFlag{Name: "on", Value: "failure", EnvVars: []string{"IPCGUARD_ON"},
		Usage: "when to clean up: failure (non-zero exit or death by signal), always, never"},
	&cli.BoolFlag{Name: "dry-run", Aliases: []string{"n"}, EnvVars: []string{"IPCGUARD_DRY_RUN"},
		Usage: "decide everything, remove nothing, report what would be removed"},
	&cli.StringFlag{Name: "types", Value: "shm,sem,msg,pshm,psem,pmsg", EnvVars: []string{"IPCGUARD_TYPES"},
		Usage: "object types that may be removed: System V shm, sem, msg; POSIX pshm (/dev/shm), psem (/dev/shm/sem.*), pmsg (message queues)"},
	&cli.StringSliceFlag{Name: "keep-key", EnvVars: []string{"IPCGUARD_KEEP_KEYS"},
		Usage: "never remove objects with this key (0x hex, otherwise decimal: 017 is 17; repeatable)"},
	&patternsFlag{cli.GenericFlag{Name: "keep-name", EnvVars: []string{"IPCGUARD_KEEP_NAMES"},
		Usage: "never remove POSIX objects whose name, as /dev/shm or the mqueue directory lists it, matches this shell `PATTERN` (\"PostgreSQL.*\", \"sem.foo\"; repeatable; a comma is part of the pattern; in the environment one pattern a line); a new object of the same name (/foo: foo and sem.foo) is kept with it"}},
	&cli.StringSliceFlag{Name: "own-keys", EnvVars: []string{"IPCGUARD_OWN_KEYS"},
		Usage: "declare these keys the command's (comma list, repeatable, or all): a semaphore set or message queue with such a key, new during the run and used by the command's processes, counts as theirs without proof of creation; a stranger's set the command used is then removed too (--keep-key still wins)"},
	&cli.BoolFlag{Name: "strict", EnvVars: []string{"IPCGUARD_STRICT"},
		Usage: "remove only objects with pid or creation evidence, never on window evidence alone"},
	&cli.DurationFlag{Name: "grace", Value: 5 * time.Second, EnvVars: []string{"IPCGUARD_GRACE"},
		Usage: "on failure, time between SIGTERM and SIGKILL for descendants still running"},
	&cli.DurationFlag{Name: "kill-after", EnvVars: []string{"IPCGUARD_KILL_AFTER"},
		Usage: "stop budget: once a SIGINT, SIGTERM, SIGHUP or SIGQUIT was forwarded, SIGKILL the command and its descendants this long after if it still runs, so cleanup ends before a CI runner's own SIGKILL (0: never)"},
	&cli.BoolFlag{Name: "leave-descendants", EnvVars: []string{"IPCGUARD_LEAVE_DESCENDANTS"},
		Usage: "do not terminate descendants still running when the command fails; objects they use are kept"},
	&cli.BoolFlag{Name: "wait-descendants", Aliases: []string{"wait-all"}, EnvVars: []string{"IPCGUARD_WAIT_DESCENDANTS"},
		Usage: "stay until every descendant is gone, forwarding signals to the processes the command left (daemons); a left process that fails counts as a failure"},
	&cli.StringFlag{Name: "report", EnvVars: []string{"IPCGUARD_REPORT"},
		Usage: "write a JSON report to `FILE` (- for stderr)"},
	&cli.StringFlag{Name: "metrics", EnvVars: []string{"IPCGUARD_METRICS"},
		Usage: "add the run to Prometheus metrics in `FILE` (for node_exporter's textfile collector)"},
	&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, EnvVars: []string{"IPCGUARD_QUIET"},
		Usage: "no summary line on stderr"},
	&cli.StringFlag{Name: "tracker", Value: "auto", EnvVars: []string{"IPCGUARD_TRACKER"},
		Usage: "how to follow the process tree: auto, perf, proc-connector, poll"},
	&cli.BoolFlag{Name: "track-creation", EnvVars: []string{"IPCGUARD_TRACK_CREATION"},
		Usage: "as root, also watch the tree's shmget/semget/msgget calls (exact creation evidence; costs 20-80 ms at start)"},
	&cli.BoolFlag{Name: "track-creation-seccomp", EnvVars: []string{"IPCGUARD_TRACK_CREATION_SECCOMP"},
		Usage: "without root, see the command's semget/msgget calls that may create through seccomp user notification: ipcguard makes each new set or queue itself (exact creation evidence); the command runs with no_new_privs (set-uid programs run without their privilege)"},
	&cli.StringFlag{Name: "state-dir", EnvVars: []string{"IPCGUARD_STATE_DIR"},
		Usage: "where run journals live (default $XDG_RUNTIME_DIR/ipcguard, /run/ipcguard for root)"},
	&cli.BoolFlag{Name: "sweep", EnvVars: []string{"IPCGUARD_SWEEP"},
		Usage: "first finish the cleanup of runs whose ipcguard died (see ipcguard sweep)"},
}

var runCommand = &cli.Command{
	Name:      "run",
	Usage:     "run COMMAND; clean up its IPC objects if it fails (the default)",
	UsageText: "ipcguard [run] [options] [--] COMMAND [ARGS...]",
	Flags:     runFlags,
	// No "help" subcommand under run: "ipcguard -- help" runs a program
	// called help (--help still shows this command's help).
	HideHelpCommand: true,
	Action: func(c *cli.Context) error {
		cfg, err := parseRunConfig(c.Args().Slice(), c.String("cmd"), c.String("on"), c.String("types"),
			c.StringSlice("keep-key"), c.String("tracker"))
		if err != nil {
			return err
		}
		cfg.DryRun, cfg.Quiet, cfg.Strict = c.Bool("dry-run"), c.Bool("quiet"), c.Bool("strict")
		cfg.LeaveDescendants, cfg.SweepFirst, cfg.TrackCreation = c.Bool("leave-descendants"), c.Bool("sweep"), c.Bool("track-creation")
		cfg.WaitDescendants = c.Bool("wait-descendants")
		cfg.CreationSeccomp = c.Bool("track-creation-seccomp")
		if cfg.OwnKeys, cfg.OwnAllKeys, err = cmdline.OwnKeys(c.StringSlice("own-keys")); err != nil {
			return usagef("%v", err)
		}
		if cfg.KeepNames, err = keepNames(c.Generic("keep-name").(*patterns).list); err != nil {
			return err
		}
		cfg.Grace, cfg.report, cfg.StateDir = c.Duration("grace"), c.String("report"), c.String("state-dir")
		cfg.metrics = c.String("metrics")
		cfg.KillAfter = c.Duration("kill-after")
		if cfg.KillAfter < 0 {
			return usagef("--kill-after must not be negative")
		}
		switch {
		case cfg.Grace < 0:
			return usagef("--grace must not be negative")
		case cfg.Grace == 0:
			cfg.Grace = time.Nanosecond // no grace: SIGKILL right after SIGTERM
		}
		return &statusError{runGuarded(cfg, c.App.ErrWriter)}
	},
}

// parseRunConfig checks and converts the values that need it.
func parseRunConfig(args []string, cmdLine, on, types string, keepKeys []string, tracker string) (config, error) {
	var cfg config
	switch {
	case cmdLine != "" && len(args) > 0:
		return cfg, usagef("give the command either with --cmd or after the options, not both")
	case cmdLine != "":
		argv, err := cmdline.Split(cmdLine)
		if err != nil {
			return cfg, usagef("%v", err)
		}
		cfg.Argv = argv
	case len(args) > 0:
		cfg.Argv = args
	default:
		return cfg, usagef("no command given")
	}
	switch on {
	case "failure", "always", "never":
		cfg.On = on
	default:
		return cfg, usagef("--on %q: want failure, always or never", on)
	}
	ts, err := ipcdiff.ParseTypeSet(types)
	if err != nil {
		return cfg, usagef("--types %q: want a list of %s", types, typeList())
	}
	cfg.Types = ts
	cfg.KeepKeys = map[int32]bool{}
	for _, k := range keepKeys {
		for _, f := range strings.Split(k, ",") {
			key, err := cmdline.Key("--keep-key", strings.TrimSpace(f))
			if err != nil {
				return cfg, usagef("%v", err)
			}
			cfg.KeepKeys[key] = true
		}
	}
	switch tk := supervisor.TrackerKind(tracker); tk {
	case supervisor.TrackAuto, supervisor.TrackPerf, supervisor.TrackProcCon, supervisor.TrackPoll:
		cfg.Tracker = tk
	default:
		return cfg, usagef("--tracker %q: want auto, perf, proc-connector or poll", tracker)
	}
	return cfg, nil
}

// typeList lists the names of the IPC types: "shm, sem, msg".
func typeList() string { return strings.ReplaceAll(ipcdiff.AllTypes.String(), ",", ", ") }

// keepNames checks the --keep-name patterns (ipcdiff.MatchName syntax).
func keepNames(pats []string) ([]string, error) {
	for _, p := range pats {
		if _, err := ipcdiff.MatchName(p, ""); err != nil || p == "" {
			return nil, usagef("--keep-name %q: not a shell pattern", p)
		}
	}
	return pats, nil
}

// patternsFlag is a repeatable flag whose values are taken whole: a
// StringSliceFlag splits each at commas, and a POSIX name may hold one
// (--keep-name 'a,b' must keep "a,b", not "a" and "b"). Its environment
// variable holds one value a line. Apply gives it a fresh value at each
// parse.
type patternsFlag struct{ cli.GenericFlag }

// Apply implements cli.Flag.
func (f *patternsFlag) Apply(set *flag.FlagSet) error {
	v := &patterns{lines: true} // the environment's value, if any, comes first
	f.Value = v
	err := f.GenericFlag.Apply(set)
	v.lines = false
	return err
}

// patterns is the value of a patternsFlag.
type patterns struct {
	list  []string
	lines bool // the next Set is the environment's: one value a line
}

func (p *patterns) Set(s string) error {
	if !p.lines {
		p.list = append(p.list, s)
		return nil
	}
	for _, l := range strings.Split(s, "\n") {
		if l != "" {
			p.list = append(p.list, l)
		}
	}
	return nil
}

func (p *patterns) String() string {
	if p == nil {
		return ""
	}
	return strings.Join(p.list, "\n")
}
