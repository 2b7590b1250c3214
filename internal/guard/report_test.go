package guard

import (
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestWantCleanup(t *testing.T) {
	sig := unix.WaitStatus(unix.SIGKILL)
	for _, c := range []struct {
		on   string
		ws   unix.WaitStatus
		want bool
	}{
		{"failure", Exited(0), false}, {"failure", Exited(3), true}, {"failure", sig, true},
		{"always", Exited(0), true}, {"never", Exited(3), false}, {"never", sig, false},
	} {
		if got, why := WantCleanup(c.on, c.ws); got != c.want || why == "" {
			t.Errorf("WantCleanup(%s, %v) = %v %q", c.on, c.ws, got, why)
		}
	}
}

func TestSummary(t *testing.T) {
	r := &Report{Objects: []ReportObject{
		{Type: "shm", ID: 1, Action: ActRemoved}, {Type: "sem", ID: 0, Action: ActRemoved},
		{Type: "shm", ID: 2, Action: ActKept, Reason: "attached by pid 812 (postgres)"},
	}}
	want := "ipcguard: removed 2 (shm 1, sem 0); kept 1 (shm 2: attached by pid 812 (postgres))"
	if got := r.Summary(""); got != want {
		t.Fatalf("summary = %q\nwant      %q", got, want)
	}
	if (&Report{}).Summary("") != "" {
		t.Fatalf("summary of nothing is not empty")
	}
}

// TestSummaryBounded: thousands of objects give a line of bounded length
// with counts per type, the first ids and where the full list is.
func TestSummaryBounded(t *testing.T) {
	long := strings.Repeat("attached by pid 812 (postgres) ", 20)
	r := &Report{}
	for i := range 5000 {
		typ := "shm"
		if i%5 == 4 {
			typ = "sem"
		}
		r.Objects = append(r.Objects, ReportObject{Type: typ, ID: i, Action: ActRemoved})
		r.Objects = append(r.Objects, ReportObject{Type: "msg", ID: i, Action: ActKept, Reason: long})
		r.Objects = append(r.Objects, ReportObject{Type: "sem", ID: i, Action: ActFailed, Error: long})
	}
	got := r.Summary("/tmp/ipc.json")
	if len(got) > 1500 {
		t.Errorf("summary of 15000 objects is %d bytes long", len(got))
	}
	for _, want := range []string{
		"ipcguard: removed 5000 (4000 shm, 1000 sem; shm 0, shm 1, shm 2, shm 3, sem 4, …)",
		"; kept 5000 (5000 msg; msg 0: attached by pid 812",
		"failed to remove 5000 (5000 sem; sem 0: ",
		"; the full list is in /tmp/ipc.json",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("summary lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "shm 5,") || strings.Contains(got, long) {
		t.Errorf("summary not bounded:\n%s", got)
	}
	if got := r.Summary(""); !strings.HasSuffix(got, "; the full list with --report") {
		t.Errorf("without a report: %q", got[len(got)-60:])
	}
}

// TestSummaryNames: a POSIX name with a newline, a quote or invalid UTF-8
// is quoted, and a reason quoting it cannot end the line either.
func TestSummaryNames(t *testing.T) {
	r := &Report{Objects: []ReportObject{
		{Type: "pshm", Name: "a\nipcguard: removed 0", Action: ActRemoved},
		{Type: "pshm", Name: "plain.1", Action: ActRemoved},
		{Type: "pmsg", Name: "q\xff", Action: ActKept, Reason: "name q\xff\n matches --keep-name q*"},
	}}
	want := `ipcguard: removed 2 (pshm "a\nipcguard: removed 0", pshm plain.1); kept 1 (pmsg "q\xff": name q\xff\n matches --keep-name q*)`
	if got := r.Summary(""); got != want {
		t.Fatalf("summary = %q\nwant      %q", got, want)
	}
}
