package procfs

import "testing"

func TestParseLoadavg(t *testing.T) {
	for _, c := range []struct {
		in            string
		threads, last int
		ok            bool
	}{
		{"0.00 0.01 0.05 1/312 4711\n", 312, 4711, true},
		{"0.00 0.01 0.05 1/312\n", 0, 0, false},
		{"0.00 0.01 0.05 312 4711\n", 0, 0, false},
		{"0.00 0.01 0.05 1/x 4711\n", 0, 0, false},
		{"0.00 0.01 0.05 1/312 y\n", 0, 0, false},
	} {
		l, err := ParseLoadavg([]byte(c.in))
		if c.ok != (err == nil) || (c.ok && (l.Threads != c.threads || l.LastPid != c.last)) {
			t.Errorf("ParseLoadavg(%q) = %+v, %v", c.in, l, err)
		}
	}
}

func TestParseForks(t *testing.T) {
	for _, c := range []struct {
		in   string
		n    uint64
		fine bool
	}{
		{"cpu  1 2 3\nctxt 99\nbtime 1\nprocesses 123456\nprocs_running 2\n", 123456, true},
		{"cpu  1 2 3\nprocesses 7", 7, true},
		{"cpu  1 2 3\nprocs_running 2\n", 0, false},
		{"cpu  1 2 3\nprocesses -1\n", 0, false},
	} {
		n, err := ParseForks([]byte(c.in))
		if c.fine != (err == nil) || n != c.n {
			t.Errorf("ParseForks(%q) = %d, %v", c.in, n, err)
		}
	}
}

func TestParsePidMax(t *testing.T) {
	for in, want := range map[string]int{"4194304\n": 4194304, "32768": 32768, "0\n": 0, "-1\n": 0, "x\n": 0, "": 0} {
		n, err := ParsePidMax([]byte(in))
		if n != want || (want == 0) != (err != nil) {
			t.Errorf("ParsePidMax(%q) = %d, %v", in, n, err)
		}
	}
}
