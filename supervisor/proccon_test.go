package supervisor

import (
	"fmt"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/ipcguard/ipcguard/internal/nstest"
)

func init() {
	helpers["proccon-subscribe"] = procConSubscribeHelper
	helpers["proccon-open"] = procConOpenHelper
}

// procConSubscribeHelper asks the proc connector to listen, over and
// over, for args[0] milliseconds: the kernel answers each request to
// every listener of the group.
func procConSubscribeHelper(args []string) int {
	ms, _ := strconv.Atoi(args[0])
	for end := time.Now().Add(time.Duration(ms) * time.Millisecond); time.Now().Before(end); {
		t := newProcConTracker()
		t.open()
		t.closeAll()
	}
	return 0
}

// procConOpenHelper opens a proc connector tracker and says whether the
// kernel answered its listen request.
func procConOpenHelper([]string) int {
	t := newProcConTracker()
	err := t.open()
	t.closeAll()
	if err != nil {
		fmt.Println("refused")
		return 0
	}
	fmt.Println("listening")
	return 0
}

// TestProcConOwnAnswer: in a user namespace of its own the kernel ignores
// a listen request; the answers it multicasts to another process's
// requests, meanwhile, must not pass for an answer to ours.
func TestProcConOwnAnswer(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("needs root: the other listener must be in the initial user namespace")
	}
	if newProcConTracker().open() != nil {
		t.Skip("the proc connector does not work here")
	}
	other := nstest.HelperCmd("proccon-subscribe", "5000")
	if err := other.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		other.Process.Kill()
		other.Wait()
	}()
	for i := 0; i < 40; i++ {
		cmd := nstest.HelperCmd("proccon-open")
		cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWUSER,
			UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: 0, Size: 1}},
			GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: 0, Size: 1}}}
		out, err := cmd.Output()
		if err != nil {
			t.Skipf("no user namespace: %v", err)
		}
		if string(out) != "refused\n" {
			t.Fatalf("run %d in a user namespace of its own, another process listening meanwhile: %q, want refused", i, out)
		}
	}
}
