package main_test

// End-to-end tests of the edges of the command line, the files ipcguard
// writes and its output (scenarios 23 to 26).

import (
	"testing"

	"github.com/ipcguard/ipcguard/internal/nstest"
)

func TestScenario23KeepKeyDecimal(t *testing.T) {
	inBothModes(t, func(t *testing.T, _ nstest.Mode) {
		e := newEnv(t, "scenario 23")
		made := e.path("made")
		// 017 is decimal 17; read as octal it would be 15 and keep the wrong one.
		r := e.guard("--keep-key", "017", "--quiet", "--", nstest.Binary(), "out="+made,
			"shm:key=17", "shm:key=15", "exit=1").withEnv(nstest.HelperEnv("ipc")).run()
		e.wantExit(r, 1)
		ids := e.readIDs(made)
		wantCount(e, "keys 17 and 15", ids, 2)
		e.wantKept("--keep-key 017 (decimal 17)", ids[0:1])
		e.wantGone("key 15, not kept", ids[1:2])

		for _, bad := range []string{"0b10001", "0o21", "1_7", "0x1_1"} {
			r := e.run("--keep-key", bad, "--", "true")
			e.wantExit(r, 125)
			e.checkOneErrorLine("--keep-key "+bad, r.Stderr)
		}
	})
}
