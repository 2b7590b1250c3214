package main_test

// Scenario 9: PostgreSQL with System V shared memory under ipcguard.

import (
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ipcguard/ipcguard/internal/nstest"
)

const pgBin = "/usr/lib/postgresql/15/bin"

// pgCluster is a data directory owned by the postgres user.
type pgCluster struct {
	e                     *env
	cred                  *syscall.Credential
	base, data, sock, out string
	port                  string
}

// inInitUserNS reports whether this process is in the initial user
// namespace (real root can then become another user).
func inInitUserNS() bool {
	b, err := os.ReadFile("/proc/self/uid_map")
	return err == nil && len(strings.Fields(string(b))) == 3 && strings.Fields(string(b))[2] == "4294967295"
}

func newPgCluster(e *env) *pgCluster {
	e.t.Helper()
	if _, err := os.Stat(filepath.Join(pgBin, "postgres")); err != nil {
		nstest.Require(e.t, "%s: PostgreSQL 15 is not installed (%v)", e.sc, err)
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		nstest.Require(e.t, "%s: no postgres user: %v", e.sc, err)
	}
	if os.Geteuid() != 0 || !inInitUserNS() {
		nstest.Require(e.t, "%s: needs real root to run PostgreSQL as user postgres", e.sc)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	// A directory the postgres user can reach (t.TempDir is root's, 0700).
	base, err := os.MkdirTemp("", "ipcguard-e2e-pg-")
	if err != nil {
		e.fatalf("%v", err)
	}
	e.t.Cleanup(func() { os.RemoveAll(base) })
	if err := os.Chmod(base, 0o755); err != nil {
		e.fatalf("%v", err)
	}
	c := &pgCluster{e: e, cred: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}},
		base: base, data: filepath.Join(base, "data"), sock: filepath.Join(base, "sock"),
		out: filepath.Join(base, "out"), port: "54329"}
	e.state = filepath.Join(base, "state")
	for _, d := range []string{c.data, c.sock, c.out, e.state} {
		if err := os.Mkdir(d, 0o700); err != nil {
			e.fatalf("%v", err)
		}
		if err := os.Chown(d, uid, gid); err != nil {
			e.fatalf("%v", err)
		}
	}
	initdb := exec.Command(filepath.Join(pgBin, "initdb"), "-D", c.data, "-N", "-A", "trust", "-U", "postgres",
		"--no-locale", "-E", "UTF8")
	initdb.Dir = base
	initdb.Env = append(e.baseEnv(), "HOME="+base)
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred}
	initdb.WaitDelay = 5 * time.Second
	if out, err := initdb.CombinedOutput(); err != nil {
		e.fatalf("initdb: %v\n%s", err, out)
	}
	return c
}

// start starts postgres under ipcguard as the postgres user and waits until
// it accepts connections. A postmaster.pid left by a killed postmaster
// (pid stale) does not count.
func (c *pgCluster) start(report string, stale int) *guardProc {
	c.e.t.Helper()
	g := c.e.guard("--report", filepath.Join(c.out, report), "--", filepath.Join(pgBin, "postgres"),
		"-D", c.data, "-k", c.sock, "-p", c.port,
		"-c", "listen_addresses=", "-c", "shared_memory_type=sysv", "-c", "dynamic_shared_memory_type=sysv",
		"-c", "shared_buffers=128MB", "-c", "fsync=off")
	g.cmd.Dir = c.base
	g.cmd.Env = append(g.cmd.Env, "HOME="+c.base)
	g.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred}
	g.start()
	c.waitReady(g, stale)
	ready := exec.Command(filepath.Join(pgBin, "pg_isready"), "-h", c.sock, "-p", c.port)
	if out, err := ready.CombinedOutput(); err != nil {
		c.e.fatalf("pg_isready: %v: %s", err, out)
	}
	return g
}

// postmaster is the pid in postmaster.pid.
func (c *pgCluster) postmaster() int {
	c.e.t.Helper()
	ls := scanLines(filepath.Join(c.data, "postmaster.pid"))
	if len(ls) == 0 {
		c.e.fatalf("no postmaster.pid")
	}
	pid, err := strconv.Atoi(strings.TrimSpace(ls[0]))
	if err != nil {
		c.e.fatalf("postmaster.pid: %v", err)
	}
	return pid
}

// bigSegments lists the segments of 100 MB or more.
func bigSegments(objs []sysvObj) []sysvObj {
	var out []sysvObj
	for _, o := range objs {
		if o.Type == "shm" && o.Size >= 100<<20 {
			out = append(out, o)
		}
	}
	return out
}

func TestScenario09PostgresKilled(t *testing.T) {
	slow(t, "scenario 9")
	inModes(t, []nstest.Mode{nstest.Root}, func(t *testing.T, _ nstest.Mode) {
		e := newEnv(t, "scenario 9")
		c := newPgCluster(e)

		g := c.start("killed.json", 0)
		big := bigSegments(e.objects())
		if len(big) != 1 {
			e.fatalf("want one segment of 100+ MB while postgres runs, got %v", setOf(e.objects()).sorted())
		}
		pm := c.postmaster()
		backends := childrenOf(pm)
		if len(backends) == 0 {
			e.fatalf("postmaster %d has no children", pm)
		}
		if err := syscall.Kill(pm, syscall.SIGKILL); err != nil {
			e.fatalf("kill -KILL postmaster: %v", err)
		}
		r := g.wait()
		if r.Signal != syscall.SIGKILL {
			e.errorf("ipcguard: %v, want killed by SIGKILL like its command", r)
		}
		for _, p := range backends {
			if alive(p) {
				e.errorf("backend %d still runs after ipcguard exited", p)
				syscall.Kill(p, syscall.SIGKILL)
			}
		}
		if left := e.objects(); len(left) != 0 {
			e.errorf("objects left after postgres was killed (the %s among them: %v): %v",
				big[0].ref(), present(left, big[0]), setOf(left).sorted())
		}
		if rp := e.readReport(filepath.Join(c.out, "killed.json")); rp.Signal != "SIGKILL" || rp.Removed == 0 {
			e.errorf("report: signal %q, removed %d", rp.Signal, rp.Removed)
		}

		// postgres starts again on the same data directory, and a fast
		// shutdown (SIGINT, forwarded by ipcguard) ends it cleanly.
		g = c.start("restarted.json", pm)
		if big := bigSegments(e.objects()); len(big) != 1 {
			e.fatalf("restarted postgres: want one segment of 100+ MB, got %v", setOf(e.objects()).sorted())
		}
		pm = c.postmaster()
		backends = childrenOf(pm)
		if err := syscall.Kill(g.pid(), syscall.SIGINT); err != nil {
			e.fatalf("kill -INT ipcguard: %v", err)
		}
		r = g.wait()
		e.wantExit(r, 0)
		for _, p := range append(backends, pm) {
			if alive(p) {
				e.errorf("postgres process %d still runs after a fast shutdown", p)
				syscall.Kill(p, syscall.SIGKILL)
			}
		}
		if left := e.objects(); len(left) != 0 {
			e.errorf("objects left after a clean shutdown: %v", setOf(left).sorted())
		}
	})
}

// waitReady waits until the postmaster under g says it is ready in its
// postmaster.pid; one left by a killed postmaster (pid stale) does not
// count. It fails the test when g ends first.
func (c *pgCluster) waitReady(g *guardProc, stale int) {
	c.e.t.Helper()
	c.e.waitFor("postgres to be ready (postmaster.pid)", 60*time.Second, func() bool {
		ls := scanLines(filepath.Join(c.data, "postmaster.pid"))
		return len(ls) >= 8 && strings.TrimSpace(ls[0]) != strconv.Itoa(stale) &&
			strings.TrimSpace(ls[7]) == "ready" || g.exited()
	})
	if g.exited() {
		r := g.wait()
		c.e.fatalf("postgres under ipcguard ended before it was ready: %v", r)
	}
}
