package spread

import (
	"sync/atomic"
	"testing"
)

// TestEach: every index once, spread or not.
func TestEach(t *testing.T) {
	for _, c := range []struct{ n, min int }{{0, 1}, {5, 10}, {1000, 10}, {1000, 1 << 30}} {
		seen := make([]atomic.Int32, c.n)
		Each(c.n, c.min, 4, func(i int) { seen[i].Add(1) })
		for i := range seen {
			if got := seen[i].Load(); got != 1 {
				t.Fatalf("n %d, min %d: index %d called %d times", c.n, c.min, i, got)
			}
		}
	}
}
