package cmdline

import (
	"slices"
	"strings"
)

// notRun are the words that make ipcguard do something other than a
// guarded run, and the options that print and exit or sweep first.
var notRun = map[string]bool{
	"ls": true, "rm": true, "sweep": true, "help": true, "h": true,
	"-h": true, "--help": true, "-help": true, "-v": true, "--version": true, "-version": true,
	"--sweep": true, "-sweep": true,
}

// RunValueOptions are the options of a run that take a value (names and
// aliases, without dashes). Given without "=", the next argument is the
// value, even "--", and what follows it is options again.
var RunValueOptions = []string{"cmd", "c", "on", "types", "keep-key", "keep-name", "own-keys",
	"grace", "kill-after", "report", "metrics", "tracker", "state-dir"}

// takesValue reports whether a is one of RunValueOptions given without
// "=" (-name or --name).
func takesValue(a string) bool {
	name, ok := strings.CutPrefix(a, "-")
	if !ok || strings.Contains(name, "=") {
		return false
	}
	return slices.Contains(RunValueOptions, strings.TrimPrefix(name, "-"))
}

// IsGuardedRun reports whether args (os.Args) surely ask for a guarded run
// of a command given after "--": no subcommand, help, version or --sweep
// before it, whatever the options there are. It errs towards false: a
// command line it cannot judge this simply (no "--", an option value that
// looks like a subcommand, a "--" that may be an option's value) is judged
// by the full parser later; true is only ever a hint that work for the run
// may begin early.
func IsGuardedRun(args []string) bool {
	if len(args) < 3 {
		return false
	}
	for i, a := range args[1:] {
		if a == "--" {
			// After an option that takes a value, "--" is that value.
			return i+2 < len(args) && (i == 0 || !takesValue(args[i]))
		}
		if notRun[a] || strings.HasPrefix(a, "--sweep=") || strings.HasPrefix(a, "-sweep=") {
			return false
		}
	}
	return false
}
