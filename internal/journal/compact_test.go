package journal

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ipcguard/ipcguard/ipcdiff"
)

// TestCompactionBounded: a run that forks 20 000 short-lived members keeps
// a journal of bounded size; compaction keeps the stays that are still
// open, those of the pids Retain names, and never a stay that was not
// written; the gets survive, once each.
func TestCompactionBounded(t *testing.T) {
	const at = 8 << 10
	j, err := Begin(t.TempDir(), Header{CompactAt: at}, testSnapshot(30))
	if err != nil {
		t.Fatal(err)
	}
	defer j.Done()
	j.Retain(func() []int { return []int{1007} })
	j.Namespaces(Namespaces{Boot: "b", IPC: "i", Pid: "p"})
	j.Pre([]int{1, 2, 3})
	t0 := time.Unix(1_700_000_000, 0)
	j.Command(1000, 5, t0)
	var evs []event
	peak := int64(0)
	for i := 0; i < 20000; i++ {
		pid := 1001 + i%5000
		ts := t0.Add(time.Duration(i) * time.Millisecond)
		j.Join(pid, ts)
		evs = append(evs, event{'J', pid, 0, ts})
		if i%997 != 0 { // a few never leave
			j.Leave(pid, ts.Add(time.Microsecond))
			evs = append(evs, event{'L', pid, 0, ts.Add(time.Microsecond)})
		}
		if i%100 == 0 {
			j.Watch(Crossing{From: ts, To: ts.Add(100 * time.Millisecond), Lo: 1000, Hi: 1100}, Cursor{Cursor: 1100, PidMax: 1 << 22})
			j.Got(ipcdiff.TypeShm, i%7, i%2 == 0, ts)
		}
		st, err := os.Stat(j.Path())
		if err != nil {
			t.Fatal(err)
		}
		peak = max(peak, st.Size()-j.head)
	}
	if err := j.Err(); err != nil {
		t.Fatal(err)
	}
	if peak > at+200 {
		t.Errorf("record part grew to %d bytes, compaction at %d", peak, at)
	}
	r, err := Load(j.Path())
	if err != nil {
		t.Fatal(err)
	}
	if r.Compacted.Times == 0 || r.Compacted.Stays == 0 || r.BadLines != 0 || r.CommandPid != 1000 || len(r.Pre) != 3 || r.Namespaces.Pid != "p" {
		t.Fatalf("compacted journal: %+v", r.Compacted)
	}
	if j.Compacted() != r.Compacted {
		t.Errorf("Compacted() %+v, file %+v", j.Compacted(), r.Compacted)
	}
	_, _, all := model(evs)
	written := map[Member]bool{}
	open, retained := 0, 0
	for _, m := range all {
		written[Member{m.Pid, m.Joined.Round(0), m.Left.Round(0)}] = true
		if m.Left.IsZero() {
			open++
		}
		if m.Pid == 1007 {
			retained++
		}
	}
	gotOpen, gotRetained := 0, 0
	for _, m := range r.Members {
		if !written[Member{m.Pid, m.Joined, m.Left}] {
			t.Fatalf("stay %+v was never written", m)
		}
		if m.Left.IsZero() {
			gotOpen++
		}
		if m.Pid == 1007 {
			gotRetained++
		}
	}
	if gotOpen != open || gotRetained != retained {
		t.Errorf("open stays %d of %d, stays of the retained pid %d of %d", gotOpen, open, gotRetained, retained)
	}
	if len(r.Gets) != 7 {
		t.Errorf("gets %+v, want each of 7 ids once", r.Gets)
	}
	if n := len(r.Watch); n == 0 || n > limitsFor(at).watch+1 {
		t.Errorf("%d watch records", n)
	}
	if last := r.Watch[len(r.Watch)-1]; last.Merged || r.LastCursor.Cursor != 1100 {
		t.Errorf("last watch record %+v, cursor %+v", last, r.LastCursor)
	}
}

// TestCompactionFailureReported: a compaction that cannot write its
// temporary file leaves the journal whole and says so in Err, and is not
// tried again at every record.
func TestCompactionFailureReported(t *testing.T) {
	dir := t.TempDir()
	j, err := Begin(dir, Header{CompactAt: 2048}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Done()
	block := filepath.Join(dir, "."+j.name+tempSuffix)
	if err := os.MkdirAll(filepath.Join(block, "x"), 0o700); err != nil {
		t.Fatal(err)
	}
	t0 := time.Unix(1_700_000_000, 0)
	for i := 0; i < 500; i++ {
		j.Join(2000+i, t0)
		j.Leave(2000+i, t0.Add(time.Second))
	}
	if err := j.Err(); err == nil || !strings.Contains(err.Error(), "compacting") {
		t.Fatalf("Err = %v, want a compaction error", err)
	}
	r, err := Load(j.Path())
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Members) != 500 || r.Compacted.Times != 0 {
		t.Errorf("after a failed compaction: %d members, %+v", len(r.Members), r.Compacted)
	}
	if j.next < 2*2048 {
		t.Errorf("next compaction at %d bytes: would be tried at every record", j.next)
	}
}

// BenchmarkForkRecords: the journal's cost per forked member (a join and
// an exit), with compaction at the default size and without;
// journal-bytes is its size at the end.
func BenchmarkForkRecords(b *testing.B) {
	for _, bc := range []struct {
		name string
		at   int64
	}{{"compacted", 0}, {"whole", -1}} {
		b.Run(bc.name, func(b *testing.B) {
			j, err := Begin(b.TempDir(), Header{CompactAt: bc.at}, nil)
			if err != nil {
				b.Fatal(err)
			}
			defer j.Done()
			t0 := time.Now()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				pid := 300 + i%4_000_000
				j.Join(pid, t0)
				j.Leave(pid, t0)
			}
			b.StopTimer()
			if err := j.Err(); err != nil {
				b.Fatal(err)
			}
			st, err := os.Stat(j.Path())
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(st.Size()), "journal-bytes")
		})
	}
}
