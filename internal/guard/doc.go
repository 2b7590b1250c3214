// Package guard is ipcguard's guarded run as a library: plain values in
// (Config, SweepConfig, ListOptions, RmOptions), reports out. The command
// line (cmd/ipcguard) only parses options, prints and maps exit statuses.
//
// A run (Run) goes:
//
//  1. look the command up (supervisor.LookPath); a failure here, or of the
//     fork, is an *Error with env(1)'s status and the command never runs;
//  2. optionally sweep first (Sweep);
//  3. start the pid watch, then snapshot /proc/sysvipc
//     (ipcdiff.FS.Snapshot) and keep only the identities;
//  4. begin the run journal in the state directory (internal/journal):
//     header, namespaces, the watch's crossings, and, as supervisor.Run
//     reports them, the command, the tree's members and the gets seen;
//  5. run the command (supervisor.Run), which returns its status and the
//     tree (supervisor.Tree);
//  6. apply the --on policy (WantCleanup) and hand over to the stage after
//     the command (judge, judge.go), the one stage a sweep has too: read
//     the objects again, take the new ones (ipcdiff.DiffIdents), gather
//     their evidence (ipcdiff.Gather), let segments a process that just
//     exited still seemed to hold settle, stop the pid watch, decide
//     (ipcdiff.Attribute) and remove, or in a dry run say what would be
//     removed (ipcdiff.Remove), recording every new object in the Report;
//  7. delete the journal.
//
// A sweep (Sweep) loads each journal left by a dead supervisor, checks it
// belongs here and that none of its tree still runs, rebuilds the tree and
// the pid watch from it (journaltree.go), and runs the same stage with the
// run counted as failed and window evidence off.
//
// Report and SweepReport are the JSON of --report (README, "The report");
// ReportFile writes them safely; RunMetrics and its kind shape them for
// the metrics file (internal/metrics). List, Rm and OrphanDecisions are
// ipcguard ls and rm. docs/architecture.md shows how the packages fit.
package guard
