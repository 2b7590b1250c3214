// Package nstest isolates tests that touch IPC: each such test body runs in
// a child process of the test binary that lives in a private IPC namespace
// (Isolate), and for POSIX IPC also in private pid and mount namespaces with
// its own /dev/shm and /dev/mqueue (IsolateMounts), so tests never see or
// change the host's objects and can run in parallel. It also guards the
// host: Main fails the whole run when the host's /proc/sysvipc, /dev/shm or
// mqueue instance differs after the tests from what it was before.
package nstest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Mode says with which privileges an isolated test body runs.
type Mode int

const (
	// Root runs the body as root of its IPC namespace: real root when the
	// test runs as root, otherwise root of a new user namespace.
	Root Mode = iota
	// Unprivileged runs the body as an ordinary user: as nobody (65534)
	// when the test runs as root, otherwise as the invoking user inside a
	// user namespace that maps only that user.
	Unprivileged
)

func (m Mode) String() string {
	if m == Unprivileged {
		return "unprivileged"
	}
	return "root"
}

// Env variables that carry state from a test to its isolated child.
const (
	envTarget = "IPCGUARD_NSTEST_TARGET" // name of the test the child runs
	envMode   = "IPCGUARD_NSTEST_MODE"   // mode the child runs in
	envHelper = "IPCGUARD_TEST_HELPER"   // helper command to dispatch to
	envSelf   = "IPCGUARD_NSTEST_BIN"    // world-executable copy of the test binary
)

// NobodyUID is the uid (and gid) unprivileged bodies run as when the tests run as root.
const NobodyUID = 65534

// InChild reports whether this process is an isolated child.
func InChild() bool { return os.Getenv(envTarget) != "" }

// CurrentMode is the mode of this isolated child (Root outside a child).
func CurrentMode() Mode {
	if os.Getenv(envMode) == Unprivileged.String() {
		return Unprivileged
	}
	return Root
}

// UnderCI reports whether the tests run under CI (CI=true, as GitHub
// Actions, GitLab CI and most runners set it).
func UnderCI() bool { return os.Getenv("CI") == "true" }

// Require skips the test with the reason when what it needs is missing
// here (no private namespace, no PostgreSQL, no tmux, a tracker that does
// not work, no real root), and fails it under CI: there a green run must
// mean that every such test ran.
func Require(t testing.TB, format string, args ...any) {
	t.Helper()
	if UnderCI() {
		t.Fatalf("CI=true, and this test cannot run here: "+format, args...)
	}
	t.Skipf(format, args...)
}

// Isolate runs the body of the calling test in a private IPC namespace.
//
//	func TestX(t *testing.T) {
//		if !nstest.Isolate(t, nstest.Root) {
//			return
//		}
//		// body: runs in a child process, in its own IPC namespace
//	}
//
// In the parent it starts the child, relays its verdict (pass, fail with
// output, or skip with reason) and returns false. In the child it returns
// true for the targeted test. Where no private IPC namespace can be made the
// test is skipped with the reason; it never runs against the host.
func Isolate(t *testing.T, mode Mode) bool {
	t.Helper()
	return isolate(t, mode, false)
}

func isolate(t *testing.T, mode Mode, mounts bool) bool {
	t.Helper()
	if target := os.Getenv(envTarget); target != "" {
		if target == t.Name() {
			if mountErr != nil {
				if isNamespaceRefusal(mountErr) {
					Require(t, "nstest: cannot make the private mounts (%s mode): %v", mode, mountErr)
				}
				t.Fatalf("nstest: private mounts (%s mode): %v", mode, mountErr)
			}
			return true
		}
		t.Skipf("nstest: child for %s, not %s", target, t.Name())
	}
	bin := Binary()
	if bin == "" {
		t.Fatalf("nstest: Main was not called from TestMain")
	}
	args := []string{"-test.run=" + runPattern(t.Name()), "-test.v", "-test.count=1"}
	if testing.Short() {
		args = append(args, "-test.short")
	}
	if d, ok := t.Deadline(); ok {
		args = append(args, "-test.timeout="+time.Until(d).Round(time.Second).String())
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), envTarget+"="+t.Name(), envMode+"="+mode.String())
	if mounts {
		cmd.Env = append(cmd.Env, envMounts+"=1")
	}
	cmd.Dir = os.TempDir()
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	cmd.WaitDelay = 10 * time.Second
	cmd.SysProcAttr = sysProcAttr(mode)
	what := "IPC namespace"
	if mounts {
		mountsSysProcAttr(cmd.SysProcAttr, mode)
		what = "IPC, pid and mount namespace"
	}
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		if isNamespaceRefusal(err) {
			Require(t, "nstest: cannot create a private %s (%s mode): %v", what, mode, err)
		}
		t.Fatalf("nstest: starting isolated child: %v", err)
	}
	text := out.String()
	if err != nil {
		t.Fatalf("isolated %s body failed (%v):\n%s", mode, err, text)
	}
	if m := skipLine(t.Name(), text); m != "" {
		t.Skipf("isolated %s body skipped:\n%s", mode, text)
	}
	if !ranAndPassed(t.Name(), text) {
		t.Fatalf("isolated %s body did not report a pass of %s (it ran no test?):\n%s", mode, t.Name(), text)
	}
	if testing.Verbose() {
		t.Logf("isolated %s body:\n%s", mode, text)
	}
	return false
}

func skipLine(name, text string) string {
	for _, l := range strings.Split(text, "\n") {
		l = strings.TrimSpace(l)
		if strings.HasPrefix(l, "--- SKIP: "+name+" ") {
			return l
		}
	}
	return ""
}

// ranAndPassed reports whether the output of an isolated child shows that
// the test name itself (not only its parent) ran and passed.
func ranAndPassed(name, text string) bool {
	ran, passed := false, false
	for _, l := range strings.Split(text, "\n") {
		l = strings.TrimSpace(l)
		if l == "=== RUN   "+name {
			ran = true
		}
		if strings.HasPrefix(l, "--- PASS: "+name+" (") {
			passed = true
		}
	}
	return ran && passed
}

// runPattern builds a -test.run pattern matching exactly one (sub)test.
func runPattern(name string) string {
	parts := strings.Split(name, "/")
	for i, p := range parts {
		parts[i] = "^" + regexp.QuoteMeta(p) + "$"
	}
	return strings.Join(parts, "/")
}

func sysProcAttr(mode Mode) *syscall.SysProcAttr {
	uid, gid := os.Getuid(), os.Getgid()
	a := &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWIPC, Pdeathsig: syscall.SIGKILL}
	switch {
	case uid == 0 && mode == Root:
	case uid == 0 && mode == Unprivileged:
		a.Credential = &syscall.Credential{Uid: NobodyUID, Gid: NobodyUID, Groups: []uint32{}}
	case mode == Root:
		a.Cloneflags |= syscall.CLONE_NEWUSER
		a.UidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: uid, Size: 1}}
		a.GidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: gid, Size: 1}}
		a.GidMappingsEnableSetgroups = false
	default:
		a.Cloneflags |= syscall.CLONE_NEWUSER
		a.UidMappings = []syscall.SysProcIDMap{{ContainerID: uid, HostID: uid, Size: 1}}
		a.GidMappings = []syscall.SysProcIDMap{{ContainerID: gid, HostID: gid, Size: 1}}
		a.GidMappingsEnableSetgroups = false
	}
	return a
}

func isNamespaceRefusal(err error) bool {
	return errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EINVAL) ||
		errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EUSERS) || errors.Is(err, syscall.EACCES)
}

var (
	selfOnce sync.Once
	selfBin  string
	selfDir  string
)

// Binary is a copy of the running test binary that any user may execute
// (the go tool builds into a directory only its owner can enter).
func Binary() string {
	if p := os.Getenv(envSelf); p != "" {
		return p
	}
	return selfBin
}

// HelperCmd returns a command that runs the named helper command of this
// test binary (see Main) with args.
func HelperCmd(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(Binary(), args...)
	cmd.Env = append(os.Environ(), envHelper+"="+name)
	return cmd
}

// HelperEnv is the environment entry that makes the test binary run helper name.
func HelperEnv(name string) string { return envHelper + "=" + name }

// Main is the body of TestMain for packages whose tests touch IPC. It
// dispatches helper commands, prepares the executable copy of the test
// binary, and fails the run when the host's IPC objects changed.
func Main(m *testing.M, helpers map[string]func(args []string) int) {
	if name := os.Getenv(envHelper); name != "" {
		os.Unsetenv(envHelper)
		h, ok := helpers[name]
		if !ok {
			h, ok = builtinHelpers[name]
		}
		if !ok {
			fmt.Fprintf(os.Stderr, "nstest: unknown helper %q\n", name)
			os.Exit(2)
		}
		os.Exit(h(os.Args[1:]))
	}
	if InChild() {
		if os.Getenv(envMounts) != "" && os.Getenv(envMounted) == "" {
			mountErr = enterMounts()
		}
		os.Exit(m.Run())
	}
	if err := prepareBinary(); err != nil {
		fmt.Fprintf(os.Stderr, "nstest: %v\n", err)
		os.Exit(2)
	}
	before, err := hostState()
	if err != nil {
		fmt.Fprintf(os.Stderr, "nstest: reading host IPC objects: %v\n", err)
		os.Exit(2)
	}
	code := m.Run()
	after, err := hostState()
	if err != nil {
		fmt.Fprintf(os.Stderr, "nstest: reading host IPC objects: %v\n", err)
		code = 2
	} else if d := diffLines(before, after); d != "" {
		fmt.Fprintf(os.Stderr, "FAIL: the tests changed the host's IPC objects (System V, %s, %s):\n%s", ShmDir, MqueueDir, d)
		code = 1
	}
	if selfDir != "" {
		os.RemoveAll(selfDir)
	}
	os.Exit(code)
}

func prepareBinary() error {
	var err error
	selfOnce.Do(func() {
		var src string
		src, err = os.Executable()
		if err != nil {
			return
		}
		selfDir, err = os.MkdirTemp("", "ipcguard-test-")
		if err != nil {
			return
		}
		if err = os.Chmod(selfDir, 0o755); err != nil {
			return
		}
		selfBin = filepath.Join(selfDir, filepath.Base(src))
		err = copyFile(src, selfBin, 0o755)
		if err == nil {
			os.Setenv(envSelf, selfBin)
		}
	})
	return err
}

func copyFile(src, dst string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// HostObjects lists the identity (type, key, id, owner) of every object in
// the IPC namespace of the calling thread, sorted.
func HostObjects() ([]string, error) {
	var lines []string
	for _, typ := range []string{"shm", "sem", "msg"} {
		b, err := os.ReadFile("/proc/sysvipc/" + typ)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			return nil, err
		}
		rows := strings.Split(string(b), "\n")
		if len(rows) == 0 {
			continue
		}
		for _, r := range rows[1:] {
			f := strings.Fields(r)
			if len(f) < 3 {
				continue
			}
			lines = append(lines, typ+" key="+f[0]+" id="+f[1])
		}
	}
	sort.Strings(lines)
	return lines, nil
}

func diffLines(before, after []string) string {
	in := func(s []string, x string) bool {
		i := sort.SearchStrings(s, x)
		return i < len(s) && s[i] == x
	}
	var b strings.Builder
	for _, l := range before {
		if !in(after, l) {
			fmt.Fprintf(&b, "  gone: %s\n", l)
		}
	}
	for _, l := range after {
		if !in(before, l) {
			fmt.Fprintf(&b, "  new:  %s\n", l)
		}
	}
	return b.String()
}
