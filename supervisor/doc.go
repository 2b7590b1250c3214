// Package supervisor runs one command the way a transparent wrapper must:
// same standard streams, environment and signal dispositions, every signal
// forwarded once, its exit status (or death by signal) reproduced, orphans
// reaped as a child subreaper, leftover descendants terminated on failure,
// and its whole process tree tracked so that the objects it made can be
// attributed to it.
package supervisor

import "errors"

var errNoTracker = errors.New("supervisor: no tree tracker available")
