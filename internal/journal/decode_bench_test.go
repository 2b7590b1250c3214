package journal

import (
	"strconv"
	"testing"
	"time"
)

// BenchmarkParseRecords: parsing the record part, per record (a join or an
// exit, as most are), as Load and compaction do.
func BenchmarkParseRecords(b *testing.B) {
	var part []byte
	t0 := time.Unix(1_700_000_000, 123456789)
	const n = 4096
	for i := range n {
		tag := byte('J')
		if i%2 == 1 {
			tag = 'L'
		}
		line := append([]byte{tag, ' '}, strconv.Itoa(300000+i/2)...)
		line = append(line, ' ')
		line = strconv.AppendInt(line, t0.Add(time.Duration(i)*time.Millisecond).UnixNano(), 10)
		part = append(part, seal(line)...)
	}
	var r Record
	b.ReportAllocs()
	b.SetBytes(int64(len(part)) / n)
	for b.Loop() {
		r = Record{Members: r.Members[:0]}
		parseRecords(part, &r)
	}
	if r.BadLines != 0 || len(r.Members) != n/2 {
		b.Fatalf("%d bad lines, %d members", r.BadLines, len(r.Members))
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/n, "ns/record")
}
