package cmdline

import "testing"

func TestIsGuardedRun(t *testing.T) {
	for _, c := range []struct {
		args []string
		want bool
	}{
		{[]string{"ipcguard", "--", "/bin/true"}, true},
		{[]string{"ipcguard", "--types", "shm", "--report", "r.json", "--", "make", "test"}, true},
		{[]string{"ipcguard", "run", "--", "make"}, true},
		{[]string{"ipcguard", "--"}, false},
		{[]string{"ipcguard", "/bin/true"}, false},
		{[]string{"ipcguard", "--cmd", "make test"}, false},
		{[]string{"ipcguard", "ls"}, false},
		{[]string{"ipcguard", "rm", "--", "pshm:x"}, false},
		{[]string{"ipcguard", "sweep", "--", "x"}, false},
		{[]string{"ipcguard", "--sweep", "--", "make"}, false},
		{[]string{"ipcguard", "--sweep=true", "--", "make"}, false},
		{[]string{"ipcguard", "-sweep=1", "--", "make"}, false},
		{[]string{"ipcguard", "--help", "--", "make"}, false},
		{[]string{"ipcguard", "--version", "--", "make"}, false},
		{[]string{"ipcguard", "--state-dir", "ls", "--", "make"}, false},
		{[]string{"ipcguard", "--", "ipcguard", "ls"}, true},
		// "--" as an option's value: what follows is options again.
		{[]string{"ipcguard", "--report", "--", "--help"}, false},
		{[]string{"ipcguard", "--state-dir", "--", "--sweep", "--", "make"}, false},
		{[]string{"ipcguard", "-c", "--", "--version"}, false},
		{[]string{"ipcguard", "run", "--grace", "--", "-h"}, false},
		{[]string{"ipcguard", "--report=r.json", "--", "make"}, true},
		{[]string{"ipcguard", "--dry-run", "--", "make"}, true},
		{[]string{"ipcguard", "-q", "--strict", "--", "make"}, true},
	} {
		if got := IsGuardedRun(c.args); got != c.want {
			t.Errorf("IsGuardedRun(%q) = %v, want %v", c.args, got, c.want)
		}
	}
}
