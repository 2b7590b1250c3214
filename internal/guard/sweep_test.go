package guard

import (
	"slices"
	"testing"
	"time"

	"github.com/ipcguard/ipcguard/internal/journal"
	"github.com/ipcguard/ipcguard/ipcdiff"
)

// startedProcs are live processes with their start times.
type startedProcs map[int]time.Time

func (p startedProcs) Alive(pid int) bool { _, ok := p[pid]; return ok }
func (startedProcs) Comm(int) string      { return "" }
func (p startedProcs) Started(pid int) (time.Time, bool) {
	t, ok := p[pid]
	return t, ok
}

// TestRunningMember: a member the journal does not show leaving still runs
// when a live process has its pid and started within the membership slack
// of its joining; one that left, or a process that started long after,
// does not hold a sweep back.
func TestRunningMember(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	rec := &journal.Record{Members: []journal.Member{
		{Pid: 10, Joined: t0},
		{Pid: 11, Joined: t0, Left: t0.Add(time.Second)},
		{Pid: 12, Joined: t0.Add(time.Minute)},
	}}
	for _, c := range []struct {
		procs startedProcs
		pid   int
		ok    bool
	}{
		{startedProcs{}, 0, false},
		{startedProcs{10: t0.Add(time.Second)}, 10, true},
		{startedProcs{10: t0.Add(-time.Second)}, 10, true},
		{startedProcs{10: t0.Add(time.Minute)}, 0, false}, // the pid now another process's
		{startedProcs{11: t0.Add(time.Second)}, 0, false}, // left: not a member now
		{startedProcs{12: t0.Add(time.Second)}, 0, false}, // started before it joined
		{startedProcs{12: t0.Add(61 * time.Second)}, 12, true},
	} {
		pid, ok := runningMember(rec, c.procs)
		if pid != c.pid || ok != c.ok {
			t.Errorf("procs %v: runningMember = %d, %v; want %d, %v", c.procs, pid, ok, c.pid, c.ok)
		}
	}
}

// TestSweepPosixKeepNames: a sweep keeps the POSIX names the run was told
// to keep (--keep-name, recorded in the journal): without them a sweep
// after the supervisor died would remove, on the creation its watcher saw,
// an object the user declared never to be removed.
func TestSweepPosixKeepNames(t *testing.T) {
	rec := &journal.Record{KeepNames: []string{"PostgreSQL.*", "a,b"}}
	rec.Types = ipcdiff.PosixTypes
	var p ipcdiff.Policy
	sweepPosix(&p, rec)
	if !slices.Equal(p.KeepNamePatterns, rec.KeepNames) {
		t.Errorf("sweep policy keeps %q, want the journal's %q", p.KeepNamePatterns, rec.KeepNames)
	}
}

// TestSweepPosixCompactedFiles: the files of the creations a compacted
// journal holds are not used (compaction may have dropped the first
// creation of a file); an uncompacted journal's are.
func TestSweepPosixCompactedFiles(t *testing.T) {
	rec := &journal.Record{Created: []ipcdiff.Creation{{Type: ipcdiff.TypePshm, Dev: 1, Name: "a", Pid: 5, File: "1:00"}}}
	rec.Types = ipcdiff.PosixTypes
	var p ipcdiff.Policy
	sweepPosix(&p, rec)
	if len(p.Creations) != 1 || p.Creations[0].File != "1:00" {
		t.Errorf("whole journal: %+v", p.Creations)
	}
	rec.Compacted.Times = 1
	sweepPosix(&p, rec)
	if len(p.Creations) != 1 || p.Creations[0].File != "" || rec.Created[0].File != "1:00" {
		t.Errorf("compacted journal: %+v (the record's %+v)", p.Creations, rec.Created)
	}
}
