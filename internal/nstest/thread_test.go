package nstest

import (
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// onOtherThread runs f on a goroutine of its own, locked to another thread
// than the caller's (a locked thread runs only its own goroutine).
func onOtherThread[T any](f func() T) T {
	ch := make(chan T)
	go func() { ch <- f() }()
	return <-ch
}

func readString(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "error: " + err.Error()
	}
	return string(b)
}

// TestLockedNamespace proves that objects made and sysctls written on the
// locked thread stay in its namespace: other threads (the host's namespace)
// do not see them. Main then checks the host is unchanged.
func TestLockedNamespace(t *testing.T) {
	const msgmni = "/proc/sys/kernel/msgmni"
	hostMNI := onOtherThread(func() string { return readString(msgmni) })
	LockedNamespace(t)
	if InChild() {
		t.Skip("runs outside isolated bodies only")
	}
	id, _, errno := unix.Syscall(unix.SYS_MSGGET, 0x4c4b4c4b, unix.IPC_CREAT|0o600, 0)
	if errno != 0 {
		t.Fatalf("msgget: %v", errno)
	}
	if here := readString("/proc/sysvipc/msg"); !hasKey(here, "1280003147") {
		t.Fatalf("the locked thread does not see its queue %d:\n%s", id, here)
	}
	if host := onOtherThread(func() string { return readString("/proc/sysvipc/msg") }); hasKey(host, "1280003147") {
		t.Fatalf("another thread sees the private queue:\n%s", host)
	}
	if err := os.WriteFile(msgmni, []byte("1234\n"), 0o644); err != nil {
		t.Fatalf("writing %s in the private namespace: %v", msgmni, err)
	}
	if got := readString(msgmni); got != "1234\n" {
		t.Fatalf("%s on the locked thread = %q after writing 1234", msgmni, got)
	}
	if got := onOtherThread(func() string { return readString(msgmni) }); got != hostMNI {
		os.WriteFile(msgmni, []byte(hostMNI), 0o644) // undo on the host
		t.Fatalf("host %s changed from %q to %q", msgmni, hostMNI, got)
	}
}

func hasKey(table, key string) bool {
	for _, l := range strings.Split(table, "\n") {
		if f := strings.Fields(l); len(f) > 0 && f[0] == key {
			return true
		}
	}
	return false
}
