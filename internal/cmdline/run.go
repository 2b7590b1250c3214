package cmdline

import "strings"

// notRun are the words that make ipcguard do something other than a
// guarded run, and the options that print and exit or sweep first.
var notRun = map[string]bool{
	"ls": true, "rm": true, "sweep": true, "help": true, "h": true,
	"-h": true, "--help": true, "-help": true, "-v": true, "--version": true, "-version": true,
	"--sweep": true, "-sweep": true,
}

// IsGuardedRun reports whether args (os.Args) surely ask for a guarded run
// of a command given after "--": no subcommand, help, version or --sweep
// before it, whatever the options there are. It errs towards false: a
// command line it cannot judge this simply (no "--", an option value that
// looks like a subcommand) is judged by the full parser later; true is
// only ever a hint that work for the run may begin early.
func IsGuardedRun(args []string) bool {
	if len(args) < 3 {
		return false
	}
	for i, a := range args[1:] {
		if a == "--" {
			return i+2 < len(args)
		}
		if notRun[a] || strings.HasPrefix(a, "--sweep=") || strings.HasPrefix(a, "-sweep=") {
			return false
		}
	}
	return false
}
