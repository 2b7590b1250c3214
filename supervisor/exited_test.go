package supervisor

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/ipcguard/ipcguard/internal/nstest"
	"golang.org/x/sys/unix"
)

func init() { helpers["exited"] = exitedHelper }

// exitedHelper runs `sh -c 'sleep 30 & echo $! > args[0]; exit 3'` under
// Run with WaitDescendants, and prints what Exited saw: the command's
// status, and whether the descendant it left was still alive then. Exited
// then kills it, so that Run can end.
func exitedHelper(args []string) int {
	calls := 0
	var seen string
	res, err := Run(Options{Path: "/bin/sh", Args: []string{"sh", "-c", `sleep 30 & echo $! > "$0"; exit 3`, args[0]},
		WaitDescendants: true, Tracker: TrackPoll,
		Exited: func(ws unix.WaitStatus) {
			calls++
			b, _ := os.ReadFile(args[0])
			pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
			alive := pid > 0 && unix.Kill(pid, 0) == nil
			seen = fmt.Sprintf("status %d, descendant alive %v", ws.ExitStatus(), alive)
			if pid > 0 {
				unix.Kill(pid, unix.SIGKILL)
			}
		}})
	if err != nil {
		return execFailure(err)
	}
	fmt.Printf("%s, calls %d, result %d\n", seen, calls, res.Status.ExitStatus())
	return 0
}

// TestExited: Options.Exited is called once, with the command's status,
// as soon as the command is reaped: before Run waits for the descendants
// it left (WaitDescendants).
func TestExited(t *testing.T) {
	t.Parallel()
	o := run(t, nstest.HelperCmd("exited", t.TempDir()+"/pid"))
	want := "status 3, descendant alive true, calls 1, result 3\n"
	if !o.ws.Exited() || o.ws.ExitStatus() != 0 || o.stdout != want {
		t.Fatalf("helper: %v, stdout %q, want %q", o, o.stdout, want)
	}
}
