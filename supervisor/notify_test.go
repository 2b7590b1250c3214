package supervisor

import (
	"os"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ipcguard/ipcguard/internal/nstest"
	"golang.org/x/sys/unix"
)

func TestFilterNotify(t *testing.T) {
	cases := []struct {
		in, out, dropped string
		pidfd            bool
	}{
		{in: "READY=1", out: "READY=1"},
		{in: "READY=1\nSTATUS=up\n", out: "READY=1\nSTATUS=up\n"},
		{in: "READY=1\nMAINPID=42\nSTATUS=up", out: "READY=1\nSTATUS=up", dropped: "MAINPID=42"},
		{in: "MAINPID=42", out: "", dropped: "MAINPID=42"},
		{in: "MAINPID=42\nMAINPIDFDID=7\n", out: "", dropped: "MAINPID=42"},
		{in: "MAINPIDFD=1\nREADY=1", out: "READY=1", dropped: "MAINPIDFD=1", pidfd: true},
		// Not an assignment of MAINPID, whatever it contains.
		{in: "STATUS=MAINPID=42 is what we'd say", out: "STATUS=MAINPID=42 is what we'd say"},
		{in: "X_MAINPID=1", out: "X_MAINPID=1"},
	}
	for _, c := range cases {
		out, dropped, pidfd := filterNotify([]byte(c.in))
		if string(out) != c.out || dropped != c.dropped || pidfd != c.pidfd {
			t.Errorf("filterNotify(%q) = %q, %q, %v; want %q, %q, %v", c.in, out, dropped, pidfd, c.out, c.dropped, c.pidfd)
		}
	}
}

func TestParseNotifySocket(t *testing.T) {
	for _, ok := range []string{"/run/systemd/notify", "@abstract", "@/org/x"} {
		if _, err := parseNotifySocket(ok); err != nil {
			t.Errorf("parseNotifySocket(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"", "relative", "vsock:2:1234", "/" + strings.Repeat("x", 200)} {
		if _, err := parseNotifySocket(bad); err == nil {
			t.Errorf("parseNotifySocket(%q) accepted it", bad)
		}
	}
}

// TestNotifyRelayDrains: messages queued on the relay when it stops are
// passed on, from this process, in order; afterwards the relay's socket
// refuses messages, and MAINPID never goes through.
func TestNotifyRelayDrains(t *testing.T) {
	for _, dir := range []string{"", t.TempDir()} {
		sock := nstest.ListenNotify(t, dir)
		var said []string
		r, err := startNotifyRelay(sock.Addr, func(f string, a ...any) { said = append(said, f) })
		if err != nil {
			t.Fatal(err)
		}
		// Fewer than a datagram socket queues by default
		// (net.unix.max_dgram_qlen, 10): the stand-in reads only after
		// the relay has stopped.
		const n = 8
		for i := 0; i < n; i++ {
			msg := "STATUS=" + strconv.Itoa(i)
			if i%4 == 0 {
				msg += "\nMAINPID=1"
			}
			if err := sendTo(r.addr, msg); err != nil {
				t.Fatalf("message %d: %v", i, err)
			}
		}
		r.stop()
		for i := 0; i < n; i++ {
			m, ok := sock.Receive(t, 0)
			if !ok {
				t.Fatalf("%q: only %d of %d messages passed on before the relay stopped", sock.Addr, i, n)
			}
			if want := "STATUS=" + strconv.Itoa(i); m.Text != want || int(m.Pid) != os.Getpid() {
				t.Errorf("%q: message %d is %q from pid %d, want %q from %d", sock.Addr, i, m.Text, m.Pid, want, os.Getpid())
			}
		}
		if m, ok := sock.Receive(t, 0); ok {
			t.Errorf("%q: unexpected message %q", sock.Addr, m.Text)
		}
		if err := sendTo(r.addr, "READY=1"); err == nil {
			t.Errorf("the relay's socket %s still takes messages after stop", r.addr)
		}
		if len(said) != 1 {
			t.Errorf("the relay said %q, want one note about MAINPID", said)
		}
	}
}

func sendTo(addr, msg string) error {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return unix.Sendmsg(fd, []byte(msg), nil, &unix.SockaddrUnix{Name: addr}, 0)
}

// TestNotifyRelayEnv: without NOTIFY_SOCKET nothing is started and the
// environment is the caller's; with it, only that variable changes.
func TestNotifyRelayEnv(t *testing.T) {
	env := []string{"A=1", "B=2"}
	got, r := withNotifyRelay(env, t.Logf)
	if r != nil || !reflect.DeepEqual(got, env) {
		t.Fatalf("without NOTIFY_SOCKET: relay %v, env %q", r, got)
	}
	sock := nstest.ListenNotify(t, "")
	env = []string{"A=1", "NOTIFY_SOCKET=" + sock.Addr, "B=2"}
	got, r = withNotifyRelay(env, t.Logf)
	if r == nil {
		t.Fatal("no relay")
	}
	defer r.stop()
	if len(got) != 3 || got[0] != "A=1" || got[2] != "B=2" || got[1] != "NOTIFY_SOCKET="+r.addr || env[1] != "NOTIFY_SOCKET="+sock.Addr {
		t.Errorf("env %q (caller's now %q), want only NOTIFY_SOCKET replaced by %s", got, env, r.addr)
	}
	if err := sendTo(r.addr, "READY=1"); err != nil {
		t.Fatal(err)
	}
	if m, ok := sock.Receive(t, 30*time.Second); !ok || m.Text != "READY=1" {
		t.Errorf("got %q (%v), want READY=1 passed on", m.Text, ok)
	}
	// A value the relay cannot use is left for the command.
	env = []string{"NOTIFY_SOCKET=vsock:2:999"}
	var said []string
	got, r = withNotifyRelay(env, func(f string, a ...any) { said = append(said, f) })
	if r != nil || !reflect.DeepEqual(got, env) || len(said) != 1 {
		t.Errorf("vsock: relay %v, env %q, said %q; want none, unchanged, one note", r, got, said)
	}
}
