package guard

import "testing"

// TestReasonClass: every outcome falls in one of the documented classes
// (a label must stay low in cardinality); the reasons are those the
// attribution gives (ipcdiff's attribute tests).
func TestReasonClass(t *testing.T) {
	clean := &Report{Cleanup: true}
	for _, c := range []struct {
		rep  *Report
		o    ReportObject
		want string
	}{
		{clean, ReportObject{Action: ActRemoved, Strength: "pid evidence"}, "pid_evidence"},
		{clean, ReportObject{Action: ActWouldRemove, Strength: "window evidence"}, "window_evidence"},
		{clean, ReportObject{Action: ActRemoved, Strength: "creation seen"}, "creation_seen"},
		{clean, ReportObject{Action: ActFailed, Error: "operation not permitted"}, "permission_denied"},
		{clean, ReportObject{Action: ActFailed, Error: "invalid argument"}, "error"},
		{&Report{Cleanup: false}, ReportObject{Action: ActKept, Reason: "command succeeded (--on failure)"}, "no_cleanup"},
		{clean, ReportObject{Action: ActKept, Error: "id 3 now names another object (key 0x00000000, creator uid 0): left alone"}, "changed"},
		{clean, ReportObject{Action: ActKept, Reason: "type not in --types"}, "type_excluded"},
		{clean, ReportObject{Action: ActKept, Reason: "key 0x00000042 is kept"}, "key_kept"},
		{clean, ReportObject{Action: ActKept, Reason: "attached by pid 812 (postgres)"}, "in_use"},
		{clean, ReportObject{Action: ActKept, Reason: "semaphore 0 has 1 process(es) waiting"}, "in_use"},
		{clean, ReportObject{Action: ActKept, Reason: "creator pid 812 (postgres), running outside the tree"}, "in_use"},
		{clean, ReportObject{Action: ActKept, Reason: "a tree member still running (pid 9) uses it"}, "in_use"},
		{clean, ReportObject{Action: ActKept, Reason: "already removed (marked for destruction)"}, "already_removed"},
		{clean, ReportObject{Action: ActKept, Reason: "no pid evidence and --strict"}, "strict"},
		{clean, ReportObject{Action: ActKept, Reason: "no pid evidence; contended window: msg 9 was used by pid 812"}, "contended"},
		{clean, ReportObject{Action: ActKept, Reason: "creator pid 77 is not known to be in the tree"}, "not_attributed"},
		{clean, ReportObject{Action: ActKept, Reason: "creator: pid 812 may have been reused (the kernel handed out pids 800 to 820 between 10:00:00.000 and 10:00:00.005)"}, "pid_reuse"},
		{clean, ReportObject{Action: ActKept, Reason: "creator: pid 812 is now another process's, which may have acted"}, "pid_reuse"},
		{clean, ReportObject{Action: ActKept, Reason: "no pid evidence in a contended window: shm 1 was used by pid 3, which may not have been the tree's"}, "pid_reuse"},
		{clean, ReportObject{Action: ActKept, Reason: "it was operated on by a process not visible from this pid namespace"}, "invisible_user"},
		{clean, ReportObject{Action: ActKept, Reason: "its evidence could not be read (semctl GETPID: permission denied)"}, "unreadable"},
		{clean, ReportObject{Action: ActKept, Reason: "keyed (0x00000042): the tree used it, but its creator is not proven (anyone may get a keyed object)"}, "keyed_unproven"},
		{clean, ReportObject{Action: ActKept, Reason: "same key 0x00000042 as sem 3, which is kept"}, "key_family"},
	} {
		if got := reasonClass(c.rep, c.o); got != c.want {
			t.Errorf("reasonClass(%+v) = %q, want %q", c.o, got, c.want)
		}
	}
}
