package main_test

// The README's systemd units and init script, run as written against
// stand-ins for what systemd gives a service: a notification socket
// (nstest.ListenNotify), activated sockets with LISTEN_PID set between
// fork and exec (nstest.MainPidCmd), the stop of KillMode=mixed (SIGTERM
// to ipcguard alone) and the environment of ExecStopPost=. Each test reads
// its block from README.md, so the examples cannot drift from what is
// tested; only the service's own program is replaced by a helper.
// Scenarios 30 and 31, and --wait-descendants.

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ipcguard/ipcguard/internal/nstest"
)

// envReadme carries the README's absolute path to isolated children (they
// run in another directory).
const envReadme = "IPCGUARD_E2E_README"

func init() {
	if os.Getenv(envReadme) == "" {
		if p, err := filepath.Abs(filepath.Join("..", "..", "README.md")); err == nil {
			os.Setenv(envReadme, p)
		}
	}
}

// readmeBlock returns the lines of the code block that follows the marker
// "<!-- tested: NAME -->" in README.md, backslash-continued lines joined.
func readmeBlock(t *testing.T, name string) []string {
	t.Helper()
	f, err := os.Open(os.Getenv(envReadme))
	if err != nil {
		t.Fatalf("README: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	marker := "<!-- tested: " + name + " -->"
	state := 0 // 0 before the marker, 1 before the fence, 2 inside
	var out []string
	cont := ""
	for sc.Scan() {
		l := sc.Text()
		switch {
		case state == 0 && strings.TrimSpace(l) == marker:
			state = 1
		case state == 1 && strings.HasPrefix(l, "```"):
			state = 2
		case state == 2 && strings.HasPrefix(l, "```"):
			return out
		case state == 2:
			if strings.HasSuffix(l, `\`) {
				cont += strings.TrimSuffix(l, `\`)
				continue
			}
			out = append(out, cont+l)
			cont = ""
		}
	}
	t.Fatalf("README has no code block after %q", marker)
	return nil
}

// readmeUnit parses the README's unit block for test name: settings by key.
func readmeUnit(t *testing.T, name string) map[string]string {
	t.Helper()
	unit := map[string]string{}
	for _, l := range readmeBlock(t, name) {
		if k, v, ok := strings.Cut(l, "="); ok && !strings.HasPrefix(l, "[") {
			unit[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	return unit
}

const readmeGuard = "/usr/local/bin/ipcguard"

// guardArgs splits an ExecStart= line of the README and returns
// ipcguard's arguments with the service's program (after ipcguard's "--")
// replaced by stand-in.
func guardArgs(t *testing.T, line string, standIn ...string) []string {
	t.Helper()
	argv, err := splitWords(line)
	if err != nil || len(argv) == 0 || argv[0] != readmeGuard {
		t.Fatalf("README: %q does not run %s", line, readmeGuard)
	}
	return replaceCommand(t, argv[1:], standIn)
}

func replaceCommand(t *testing.T, args, standIn []string) []string {
	t.Helper()
	for i, a := range args {
		if a == "--" {
			return append(append([]string{}, args[:i+1]...), standIn...)
		}
	}
	if standIn == nil {
		return args
	}
	t.Fatalf("README: no -- before the command in %q", args)
	return nil
}

// standIn runs the nstest "ipc" step interpreter as the service.
func standIn(steps ...string) []string {
	return append([]string{"env", helperVar + "=ipc", nstest.Binary()}, steps...)
}

// asMainPid makes p start ipcguard through the main-pid helper, which sets
// vars to its own pid and executes ipcguard: the pid ipcguard then has.
func (p *guardProc) asMainPid(vars ...string) *guardProc {
	c := nstest.MainPidCmd(vars, p.cmd.Path)
	p.cmd.Path = c.Path
	p.cmd.Args = append(c.Args, p.cmd.Args[1:]...)
	p.cmd.Env = append(p.cmd.Env, nstest.HelperEnv("main-pid"))
	return p
}

// TestReadmeNotifyUnit: scenario 30 and KillMode=mixed. The command's
// READY/STATUS, FDSTORE with its descriptor and a barrier reach the
// manager's socket (abstract and path) sent by ipcguard's pid, MAINPID
// never does; the stop (SIGTERM to ipcguard alone) ends the command,
// whose segment is removed, and ExecStopPost's sweep finds nothing left.
func TestReadmeNotifyUnit(t *testing.T) {
	inBothModes(t, func(t *testing.T, _ nstest.Mode) {
		unit := readmeUnit(t, "TestReadmeNotifyUnit")
		if unit["Type"] != "notify" || unit["KillMode"] != "mixed" {
			t.Fatalf("README unit: Type=%q KillMode=%q, want notify and mixed", unit["Type"], unit["KillMode"])
		}
		for _, kind := range []string{"abstract", "path"} {
			e := newEnv(t, "scenario 30 ("+kind+" socket)")
			dir := ""
			if kind == "path" {
				dir = e.dir
			}
			sock := nstest.ListenNotify(t, dir)
			ids, ready := e.path(kind+"-ids"), e.path(kind+"-ready")
			args := guardArgs(t, unit["ExecStart"], standIn("out="+ids, "shm:attach",
				`notify=READY=1\nSTATUS=accepting connections\nMAINPID=1`,
				`notify-fd=tok:FDSTORE=1\nFDNAME=tok`, "notify-barrier", "notify=MAINPID=1",
				"ready="+ready, "wait")...)
			g := e.guard(args...).withEnv("NOTIFY_SOCKET=" + sock.Addr).start()
			guardPid := g.pid()

			recv := func(what string) nstest.Notification {
				t.Helper()
				n, ok := sock.Receive(t, 30*time.Second)
				if !ok {
					e.fatalf("no %s message within 30s", what)
				}
				if int(n.Pid) != guardPid {
					e.errorf("%s message %q sent by pid %d, want ipcguard's %d", what, n.Text, n.Pid, guardPid)
				}
				return n
			}
			if n := recv("READY"); n.Text != "READY=1\nSTATUS=accepting connections" || len(n.Files) != 0 {
				e.errorf("READY message %q with %d descriptors, want READY and STATUS without MAINPID", n.Text, len(n.Files))
			}
			if n := recv("FDSTORE"); n.Text != "FDSTORE=1\nFDNAME=tok" || len(n.Files) != 1 {
				e.errorf("FDSTORE message %q with %d descriptors, want it with 1", n.Text, len(n.Files))
			} else if b, err := readUpTo(n.Files[0], 16); err != nil || string(b) != "tok" {
				e.errorf("the stored descriptor holds %q (%v), want the command's pipe holding \"tok\"", b, err)
			}
			n := recv("BARRIER")
			if n.Text != "BARRIER=1" || len(n.Files) != 1 {
				e.fatalf("barrier message %q with %d descriptors", n.Text, len(n.Files))
			}
			// The manager has read everything before: let the command go on.
			n.Files[0].Close()
			cmdPid := e.waitPidFile(ready)
			e.killOnCleanup(cmdPid)
			if v := envOf(cmdPid, "NOTIFY_SOCKET"); v == sock.Addr || !strings.HasPrefix(v, "@") {
				e.errorf("the command's NOTIFY_SOCKET is %q, want ipcguard's own abstract socket", v)
			}
			made := e.readIDs(ids)
			wantCount(e, "segment", made, 1)

			// KillMode=mixed: SIGTERM to the main process only.
			syscall.Kill(guardPid, syscall.SIGTERM)
			r := g.wait()
			if r.Signal != syscall.SIGTERM {
				e.errorf("ipcguard: %v, want it killed by SIGTERM like its command", r)
			}
			e.wantGone("segment of the stopped service", made)
			if c := strings.Count(r.Stderr, "MAINPID=1 not passed on"); c != 1 {
				e.errorf("stderr says %d times that MAINPID was dropped, want once: %q", c, r.Stderr)
			}
			// The relay passed on everything before ipcguard ended: the
			// MAINPID-only message was dropped, not delayed.
			if n, ok := sock.Receive(t, 0); ok {
				e.errorf("unexpected message %q from pid %d", n.Text, n.Pid)
			}

			post := e.guard(guardArgs(t, unit["ExecStopPost"])...).
				withEnv("SERVICE_RESULT=signal", "EXIT_CODE=killed", "EXIT_STATUS=TERM").run()
			e.wantExit(post, 0)
			if post.Stderr != "" {
				e.errorf("ExecStopPost sweep: stderr %q, want nothing (--quiet, no journal left)", post.Stderr)
			}
		}
	})
}

func readUpTo(f *os.File, n int) ([]byte, error) {
	b := make([]byte, n)
	k, err := f.Read(b)
	return b[:k], err
}

// envOf reads one variable of pid's initial environment.
func envOf(pid int, name string) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	for _, kv := range strings.Split(string(b), "\x00") {
		if k, v, ok := strings.Cut(kv, "="); ok && k == name {
			return v
		}
	}
	return ""
}

// TestReadmeSocketActivated: scenario 31. Started with LISTEN_PID and
// WATCHDOG_PID = ipcguard's pid (set between fork and exec), the command
// sees its own pid in both, LISTEN_FDS and LISTEN_FDNAMES unchanged, and
// serves a connection on the listening socket it got as fd 3. With
// LISTEN_PID naming another process nothing is changed.
func TestReadmeSocketActivated(t *testing.T) {
	inBothModes(t, func(t *testing.T, _ nstest.Mode) {
		unit := readmeUnit(t, "TestReadmeSocketActivated")
		e := newEnv(t, "scenario 31")
		for _, c := range []struct {
			name string
			mine bool // LISTEN_PID is ipcguard's
		}{{"ipcguard's pid", true}, {"another pid", false}} {
			listener, port := nstest.ListenTCP(t)
			out := e.path(strings.ReplaceAll(c.name, " ", "-") + ".json")
			g := e.guard(guardArgs(t, unit["ExecStart"], standIn("activated="+out)...)...).
				withEnv("LISTEN_FDS=1", "LISTEN_FDNAMES=food.socket", "WATCHDOG_USEC=30000000")
			g.cmd.ExtraFiles = []*os.File{listener}
			if c.mine {
				// LISTEN_PIDFDID names ipcguard too; the value does not matter.
				g.asMainPid("LISTEN_PID", "WATCHDOG_PID").withEnv("LISTEN_PIDFDID=4242")
			} else {
				g.withEnv("LISTEN_PID=1", "WATCHDOG_PID=1", "LISTEN_PIDFDID=4242")
			}
			g.start()
			guardPid := g.pid()
			var a nstest.Activation
			if err := json.Unmarshal([]byte(e.waitFile(out)), &a); err != nil {
				e.fatalf("%s: activation record: %v", c.name, err)
			}
			if c.mine {
				conn, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), 30*time.Second)
				if err != nil {
					e.fatalf("%s: connecting to the activated socket: %v", c.name, err)
				}
				conn.SetDeadline(time.Now().Add(30 * time.Second))
				b := make([]byte, 32)
				k, _ := conn.Read(b)
				conn.Close()
				if string(b[:k]) != strconv.Itoa(a.Pid) {
					e.errorf("%s: the activated socket was served by %q, want the command (pid %d)", c.name, b[:k], a.Pid)
				}
			}
			r := g.wait()
			e.wantExit(r, 0)
			want := nstest.Activation{Pid: a.Pid, ListenPid: "1", WatchdogPid: "1", ListenFDs: "1",
				ListenNames: "food.socket", FD3Listening: true, PidfdID: "4242", OwnPidfdID: a.OwnPidfdID}
			if c.mine {
				want.ListenPid, want.WatchdogPid, want.Served = strconv.Itoa(a.Pid), strconv.Itoa(a.Pid), true
				// Its own pidfd id, or none where the kernel has no pidfs.
				want.PidfdID = a.OwnPidfdID
			}
			if a != want {
				e.errorf("%s: the command saw %+v, want %+v", c.name, a, want)
			}
			if a.Pid == guardPid {
				e.errorf("%s: the command has ipcguard's pid %d", c.name, guardPid)
			}
		}
	})
}

// TestReadmeStopPostSweep: ipcguard and its command are SIGKILLed as
// systemd does when TimeoutStopSec= expires under KillMode=mixed; the
// README's ExecStopPost= line, with the variables systemd sets then,
// removes the command's segment and the journal.
func TestReadmeStopPostSweep(t *testing.T) {
	inBothModes(t, func(t *testing.T, _ nstest.Mode) {
		unit := readmeUnit(t, "TestReadmeStopPostSweep")
		if unit["KillMode"] != "mixed" || unit["ExecStopPost"] == "" {
			t.Fatalf("README unit: KillMode=%q ExecStopPost=%q", unit["KillMode"], unit["ExecStopPost"])
		}
		e := newEnv(t, "ExecStopPost sweep")
		ids, ready := e.path("ids"), e.path("ready")
		g := e.guard(guardArgs(t, unit["ExecStart"], standIn("out="+ids, "shm:attach", "ready="+ready, "wait")...)...).start()
		cmdPid := e.waitPidFile(ready)
		e.killOnCleanup(cmdPid)
		made := e.readIDs(ids)
		wantCount(e, "segment", made, 1)
		// The final SIGKILL of the whole control group.
		syscall.Kill(g.pid(), syscall.SIGKILL)
		syscall.Kill(cmdPid, syscall.SIGKILL)
		if r := g.wait(); r.Signal != syscall.SIGKILL {
			e.fatalf("ipcguard: %v, want killed", r)
		}
		// Dead and reaped (by init: its parent is gone).
		e.waitFor("the command to be gone", 30*time.Second, func() bool { return syscall.Kill(cmdPid, 0) == syscall.ESRCH })
		e.wantKept("segment before the sweep", made)

		post := e.guard(guardArgs(t, unit["ExecStopPost"])...).
			withEnv("SERVICE_RESULT=timeout", "EXIT_CODE=killed", "EXIT_STATUS=KILL").run()
		e.wantExit(post, 0)
		e.wantGone("segment of the killed run", made)
		if left, _ := filepath.Glob(filepath.Join(e.state, "*", "*.journal")); len(left) != 0 {
			e.errorf("journals left after the sweep: %v", left)
		}
	})
}

// TestReadmeInitScript: --wait-descendants as the README's init script
// runs it. The start command daemonizes (its child calls setsid, it exits
// 0) and ipcguard stays until the daemon is gone; the stop (SIGTERM to the
// pid file's process, ipcguard) reaches the daemon; a daemon that dies of
// it or crashes on its own counts as a failure (segment removed, named on
// stderr), one that exits 0 does not; ipcguard exits with the start
// command's status.
func TestReadmeInitScript(t *testing.T) {
	inBothModes(t, func(t *testing.T, _ nstest.Mode) {
		var line string
		for _, l := range readmeBlock(t, "TestReadmeInitScript") {
			if strings.Contains(l, "--start") {
				line = l
			}
		}
		words, err := splitWords(line)
		if err != nil {
			t.Fatal(err)
		}
		var readme []string
		for i := 0; i+2 < len(words); i++ {
			if words[i] == "--exec" && words[i+1] == readmeGuard && words[i+2] == "--" {
				readme = words[i+3:]
			}
		}
		if readme == nil {
			t.Fatalf("README init script: no --exec %s -- in %q", readmeGuard, line)
		}
		for _, c := range []struct {
			name   string
			daemon string // how the daemon ends: "stop" (SIGTERM to ipcguard), "crash" (exit 3), "exit" (exit 0)
			clean  bool
		}{{"stopped", "stop", true}, {"crashed", "crash", true}, {"exited", "exit", false}} {
			e := newEnv(t, "init script, daemon "+c.name)
			ids, dready, sready, finish := e.path("ids"), e.path("daemon-ready"), e.path("start-ready"), e.path("finish")
			end := "wait"
			switch c.daemon {
			case "crash":
				end = "exit=3"
			case "exit":
				end = "exit=0"
			}
			args := replaceCommand(t, readme, standIn("spawn-setsid{", "out="+ids, "shm:attach", "ready="+dready,
				"await="+finish, end, "}", "ready="+sready, "exit=0"))
			g := e.guard(args...).start()
			daemon := e.waitPidFile(dready)
			e.killOnCleanup(daemon)
			start := e.waitPidFile(sready)
			e.waitFor("the start command to exit", 30*time.Second, func() bool { return !alive(start) })
			made := e.readIDs(ids)
			wantCount(e, c.name, made, 1)
			if g.exited() {
				e.fatalf("ipcguard ended with the start command while its daemon %d runs", daemon)
			}
			if c.daemon == "stop" {
				syscall.Kill(g.pid(), syscall.SIGTERM)
			} else {
				if err := os.WriteFile(finish, nil, 0o644); err != nil {
					e.fatalf("%v", err)
				}
			}
			r := g.wait()
			e.wantExit(r, 0)
			if alive(daemon) {
				e.errorf("the daemon %d still runs after ipcguard ended", daemon)
			}
			named := strings.Contains(r.Stderr, fmt.Sprintf("pid %d, left running by the command", daemon))
			if c.clean {
				e.wantGone(c.name+" daemon's segment", made)
				if !named {
					e.errorf("stderr %q does not name the failed daemon %d", r.Stderr, daemon)
				}
			} else {
				e.wantKept(c.name+" daemon's segment", made)
				if named || r.Stderr != "" {
					e.errorf("stderr %q after a clean run, want nothing", r.Stderr)
				}
			}
		}
	})
}

// splitWords splits a command line of the README as sh would without
// expanding anything: blanks separate words; single quotes keep
// everything; double quotes keep all but \ before " \ $ `; a backslash
// elsewhere keeps the next character.
func splitWords(line string) ([]string, error) {
	var words []string
	var w strings.Builder
	in, quote := false, byte(0)
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case quote == '\'':
			if c == '\'' {
				quote = 0
			} else {
				w.WriteByte(c)
			}
		case quote == '"':
			switch {
			case c == '"':
				quote = 0
			case c == '\\' && i+1 < len(line) && strings.IndexByte("\"\\$`", line[i+1]) >= 0:
				i++
				w.WriteByte(line[i])
			default:
				w.WriteByte(c)
			}
		case c == ' ' || c == '\t':
			if in {
				words, in = append(words, w.String()), false
				w.Reset()
			}
		case c == '\'' || c == '"':
			quote, in = c, true
		case c == '\\' && i+1 < len(line):
			i++
			w.WriteByte(line[i])
			in = true
		default:
			w.WriteByte(c)
			in = true
		}
	}
	if quote != 0 {
		return nil, fmt.Errorf("unbalanced quote in %q", line)
	}
	if in {
		words = append(words, w.String())
	}
	return words, nil
}
