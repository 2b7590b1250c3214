package ipcdiff

import (
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/ipcguard/ipcguard/internal/procfs"
)

func TestLiveProcs(t *testing.T) {
	p := &LiveProcs{Root: "/proc"}
	self := os.Getpid()
	if !p.Alive(self) || p.Comm(self) == "" {
		t.Fatalf("self not alive or without comm")
	}
	st, ok := p.Started(self)
	if !ok || st.After(time.Now().Add(time.Second)) || time.Since(st) > time.Hour {
		t.Fatalf("Started(self) = %v, %v: implausible", st, ok)
	}
	if p.Alive(0) || p.Alive(-1) {
		t.Fatalf("pid 0 or -1 alive")
	}
	// A zombie holds its pid but can use nothing: not alive.
	cmd := exec.Command("true")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	pid := cmd.Process.Pid
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(time.Millisecond) {
		b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if st, err := procfs.ParseStat(b); err == nil && st.State == 'Z' {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the child never became a zombie")
		}
	}
	if p.Alive(pid) {
		t.Errorf("zombie %d counted as alive", pid)
	}
}
