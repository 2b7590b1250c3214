package supervisor

import "time"

// tracker learns the command's process tree while it runs.
//
// The supervisor calls, in order: beforeStart on the OS thread that will fork
// the command (locked, so events opened on "this thread, inherited" cover the
// command and all its descendants); started with the command's pid right
// after the fork; finish once the command and every descendant have exited
// (or when the supervisor gives up waiting for them), which drains pending
// events and returns the tree.
type tracker interface {
	name() string
	beforeStart() error
	started(pid int, at time.Time)
	finish() *Tree
}

// TrackerKind names a tree-tracking mechanism.
type TrackerKind string

const (
	TrackAuto    TrackerKind = "auto"           // the most exact one that works here
	TrackPerf    TrackerKind = "perf"           // perf_event_open task events (+ syscall tracepoints as root)
	TrackProcCon TrackerKind = "proc-connector" // netlink proc connector (needs privileges)
	TrackPoll    TrackerKind = "poll"           // subreaper + polling /proc
)

// newTracker returns the tracker of the given kind; TrackAuto picks the most
// exact one that works here, falling back in order. creation asks for
// syscall-level creation tracking where privileges allow it.
func newTracker(kind TrackerKind, creation bool) (tracker, error) {
	return nil, errNoTracker
}
