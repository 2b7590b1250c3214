package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/ipcguard/ipcguard/internal/guard"
	"github.com/ipcguard/ipcguard/supervisor"
	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"
)

// usageError is a mistake in the command line or environment settings.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return &usageError{fmt.Sprintf(format, args...)} }

// statusError carries the status ipcguard must end with.
type statusError struct{ ws unix.WaitStatus }

func (e *statusError) Error() string { return fmt.Sprintf("status %v", e.ws) }

const appHelp = `ipcguard runs COMMAND and, if it fails, removes the IPC objects that
COMMAND's process tree created — and nothing else: System V shared memory
segments, semaphore sets and message queues, and POSIX shared memory
(/dev/shm), named semaphores (/dev/shm/sem.*) and message queues (--types).

The kernel keeps these objects after the process that made them dies, so a
crashing program leaks them until shmget/semget fail with ENOSPC or /dev/shm
fills up. ipcguard snapshots them before COMMAND starts, tracks every process
of its tree, and when COMMAND exits non-zero or dies from a signal it removes
the new objects that the evidence ties to the tree (the kernel's pid records,
creations seen, an uncontended window), unless someone else still uses them.
Whatever the evidence does not settle is kept and reported.

Otherwise ipcguard is transparent: same stdin, stdout, stderr, environment and
signal dispositions; signals are forwarded to COMMAND; COMMAND's exit status is
ipcguard's, and if COMMAND died from a signal ipcguard dies from the same one.

Default policy: clean up only when COMMAND fails (--on failure); remove only
what the evidence gives to its tree; never touch objects that existed before.
Every option (also settable as IPCGUARD_* environment variables) is listed by
  ipcguard run --help

Exit status:
  COMMAND's own status (or its signal)
  125  ipcguard itself failed (bad usage, cannot start)
  126  COMMAND was found but could not be executed
  127  COMMAND was not found

Example:
  ipcguard -- ./run-tests.sh --suite ipc
  ipcguard --report /tmp/ipc.json -- sh -c 'ipcmk -M 4096; exit 3'`

// newApp builds the command line interface.
// args is the command line, for the wording of usage errors.
func newApp(stdout, stderr io.Writer, args []string) *cli.App {
	onUsage := func(_ *cli.Context, err error, _ bool) error { return usageErr(err, args) }
	app := &cli.App{
		Name:        "ipcguard",
		Usage:       "run a command; if it fails, remove the IPC objects it created (System V and POSIX)",
		UsageText:   "ipcguard [options] [--] COMMAND [ARGS...]\nipcguard --cmd 'COMMAND LINE'\nipcguard run|ls|rm|sweep [options]",
		Description: appHelp,
		Version:     appVersion(),
		Writer:      stdout,
		ErrWriter:   stderr,
		Commands:    []*cli.Command{runCommand, lsCommand, rmCommand, sweepCommand},
		// Never let urfave/cli call os.Exit: deferred cleanup must run.
		ExitErrHandler:         func(*cli.Context, error) {},
		OnUsageError:           onUsage,
		HideHelpCommand:        false,
		UseShortOptionHandling: false,
	}
	for _, c := range app.Commands {
		c.OnUsageError = onUsage
	}
	return app
}

// usageErr turns the flag package's wording into ipcguard's: the option
// as the user spelt it in args (--bogus, not -bogus) and what is wrong.
func usageErr(err error, args []string) error {
	msg := err.Error()
	for _, f := range []struct{ prefix, format string }{
		{"flag provided but not defined: -", "unknown option %s"},
		{"flag needs an argument: -", "option %s needs a value"},
	} {
		if name, ok := strings.CutPrefix(msg, f.prefix); ok {
			return usagef(f.format, spelling(args, name))
		}
	}
	// invalid value "x" for flag -grace: parse error
	if i := strings.Index(msg, " for flag -"); strings.HasPrefix(msg, "invalid value ") && i > 0 {
		name, why, _ := strings.Cut(msg[i+len(" for flag -"):], ":")
		return usagef("option %s: invalid value %s:%s", spelling(args, name), msg[len("invalid value "):i], why)
	}
	return &usageError{msg}
}

// spelling returns the option name as it appears on the command line
// (--name or -name), or --name.
func spelling(args []string, name string) string {
	for _, a := range args {
		if a == "--" {
			break
		}
		if opt, _, _ := strings.Cut(a, "="); opt == "-"+name || opt == "--"+name {
			return opt
		}
	}
	if len(name) == 1 {
		return "-" + name
	}
	return "--" + name
}

// subcommandArg reports whether the first argument selects something other
// than running a command: a subcommand, help or version. Anything else —
// options, "--", a command name — means "run".
func subcommandArg(arg string) bool {
	switch arg {
	case "run", "ls", "rm", "sweep", "help", "-h", "--help", "-v", "--version":
		return true
	}
	return false
}

// run is the whole program; it returns the status ipcguard must end with.
func run(args []string) unix.WaitStatus {
	return runWith(args, os.Stdout, os.Stderr)
}

func runWith(args []string, stdout, stderr io.Writer) unix.WaitStatus {
	if len(args) < 2 && os.Getenv("IPCGUARD_CMD") == "" {
		fmt.Fprintln(stderr, "ipcguard: no command given (see ipcguard --help)")
		return guard.Exited(guard.ExitUsage)
	}
	argv := append([]string{args[0]}, args[1:]...)
	if len(args) < 2 || !subcommandArg(args[1]) {
		argv = append([]string{args[0], "run"}, args[1:]...)
	}
	err := newApp(stdout, stderr, args[1:]).Run(argv)
	// The signals package prestart caught for a run that did not happen
	// (a usage error, --help) are handled as if it never had.
	supervisor.Unprepare()
	var st *statusError
	var ue *usageError
	switch {
	case err == nil:
		return guard.Exited(0)
	case errors.As(err, &st):
		return st.ws
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "ipcguard: %s (see ipcguard --help)\n", ue.msg)
		return guard.Exited(guard.ExitUsage)
	default:
		fmt.Fprintf(stderr, "ipcguard: %v\n", guard.OneLine(err))
		return guard.Exited(guard.ExitUsage)
	}
}
