package main_test

// Helpers of the end-to-end suite: running the built ipcguard binary, reading
// /proc/sysvipc of the current IPC namespace (a small parser of our own: the
// ipcdiff package is the thing under test), waiting on conditions with a
// deadline, and decoding the JSON report.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ipcguard/ipcguard/internal/guard"
	"github.com/ipcguard/ipcguard/internal/nstest"
	"golang.org/x/sys/unix"
)

// helpers are the helper commands of this test binary (see nstest.Main).
var helpers = map[string]func(args []string) int{
	// argv prints its whole argv, argv[0] included, as a JSON array.
	"argv": func([]string) int {
		b, _ := json.Marshal(os.Args)
		fmt.Println(string(b))
		return 0
	},
	// waitfile PATH: exit 0 once PATH exists, 1 after a minute.
	"waitfile": func(args []string) int {
		if len(args) != 1 {
			fmt.Fprintln(os.Stderr, "usage: waitfile PATH")
			return 2
		}
		deadline := time.Now().Add(time.Minute)
		for d := time.Millisecond; time.Now().Before(deadline); d = min(2*d, 20*time.Millisecond) {
			if _, err := os.Stat(args[0]); err == nil {
				return 0
			}
			time.Sleep(d)
		}
		fmt.Fprintf(os.Stderr, "waitfile: %s did not appear within a minute\n", args[0])
		return 1
	},
}

// helperVar is the name of the variable that selects a helper command.
var helperVar, _, _ = strings.Cut(nstest.HelperEnv("x"), "=")

// shPrelude defines shell functions for scripts run under ipcguard: ipc runs
// nstest's "ipc" step interpreter, waitfile waits for a file.
func shPrelude() string {
	return fmt.Sprintf(`ipc() { %[1]s=ipc "$E2E_H" "$@"; }; waitfile() { %[1]s=waitfile "$E2E_H" "$@"; }; `, helperVar)
}

// guardBin is the path of the ipcguard binary under test.
func guardBin() string { return os.Getenv(envGuardBin) }

// ---- running ipcguard ------------------------------------------------------

// env is the per-test context of an isolated test body.
type env struct {
	t     *testing.T
	sc    string // "scenario 5", prefixes every failure message
	dir   string // scratch directory of this body (owned by its uid)
	state string // ipcguard's state directory, private to this test
}

func newEnv(t *testing.T, scenario string) *env {
	t.Helper()
	dir := t.TempDir()
	return &env{t: t, sc: scenario, dir: dir, state: filepath.Join(dir, "state")}
}

func (e *env) fatalf(format string, args ...any) {
	e.t.Helper()
	e.t.Fatalf(e.sc+": "+format, args...)
}

func (e *env) errorf(format string, args ...any) {
	e.t.Helper()
	e.t.Errorf(e.sc+": "+format, args...)
}

func (e *env) path(name string) string { return filepath.Join(e.dir, name) }

// baseEnv is the environment of ipcguard: ours without any IPCGUARD_ option,
// plus a private state directory and the variables our scripts use.
func (e *env) baseEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, "IPCGUARD_") && !strings.HasPrefix(name, "IPCGUARD_NSTEST_") &&
			name != envGuardBin && name != helperVar {
			continue
		}
		out = append(out, kv)
	}
	return append(out, "IPCGUARD_STATE_DIR="+e.state, "E2E_H="+nstest.Binary())
}

// guardProc is one ipcguard process. Its stdout and stderr go to files, not
// pipes: descendants left running must not make Wait hang.
type guardProc struct {
	e      *env
	cmd    *exec.Cmd
	cancel context.CancelFunc
	ctx    context.Context
	out    *os.File
	errf   *os.File
	done   bool
	res    guardResult
}

type guardResult struct {
	Code   int            // exit status, -1 when killed by a signal
	Signal syscall.Signal // the signal that killed ipcguard, 0 if none
	Stdout string
	Stderr string
	Pid    int
}

// guard prepares ipcguard with args; callers may adjust cmd (Env, Stdin,
// Dir, SysProcAttr) before Start.
func (e *env) guard(args ...string) *guardProc {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	cmd := exec.CommandContext(ctx, guardBin(), args...)
	cmd.Env = e.baseEnv()
	cmd.WaitDelay = 5 * time.Second
	p := &guardProc{e: e, cmd: cmd, ctx: ctx, cancel: cancel}
	var err error
	if p.out, err = os.CreateTemp(e.dir, "stdout-"); err != nil {
		e.fatalf("%v", err)
	}
	if p.errf, err = os.CreateTemp(e.dir, "stderr-"); err != nil {
		e.fatalf("%v", err)
	}
	cmd.Stdout, cmd.Stderr = p.out, p.errf
	for i, a := range args {
		if a == "--" {
			break
		}
		if a == "--report" && i+1 < len(args) && args[i+1] != "-" {
			rep := args[i+1]
			// Registered after t.TempDir's removal: runs before it.
			e.t.Cleanup(func() {
				if fi, err := os.Stat(rep); err != nil || !fi.Mode().IsRegular() || !e.t.Failed() {
					return // not a FIFO: reading it would block
				}
				if b, err := os.ReadFile(rep); err == nil {
					e.t.Logf("%s: report of ipcguard %q:\n%s", e.sc, args, b)
				}
			})
		}
	}
	e.t.Cleanup(func() {
		if !p.done && cmd.Process != nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
		cancel()
		p.out.Close()
		p.errf.Close()
	})
	return p
}

// withEnv adds variables to the environment of ipcguard.
func (p *guardProc) withEnv(kv ...string) *guardProc {
	p.cmd.Env = append(p.cmd.Env, kv...)
	return p
}

func (p *guardProc) start() *guardProc {
	p.e.t.Helper()
	if err := p.cmd.Start(); err != nil {
		p.e.fatalf("starting ipcguard %q: %v", p.cmd.Args[1:], err)
	}
	return p
}

func (p *guardProc) pid() int { return p.cmd.Process.Pid }

// exited reports whether ipcguard has ended (a zombie until wait reaps it).
func (p *guardProc) exited() bool { return p.done || !alive(p.pid()) }

// wait waits for ipcguard to end (at most 90 s from its creation).
func (p *guardProc) wait() guardResult {
	p.e.t.Helper()
	err := p.cmd.Wait()
	p.done = true
	if p.ctx.Err() != nil {
		p.e.fatalf("ipcguard %q did not end in time (killed): %v\nstderr: %s", p.cmd.Args[1:], err, readAll(p.errf))
	}
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		p.e.fatalf("ipcguard %q: %v", p.cmd.Args[1:], err)
	}
	ws := p.cmd.ProcessState.Sys().(syscall.WaitStatus)
	p.res = guardResult{Code: ws.ExitStatus(), Stdout: readAll(p.out), Stderr: readAll(p.errf), Pid: p.cmd.Process.Pid}
	if ws.Signaled() {
		p.res.Code, p.res.Signal = -1, ws.Signal()
	}
	return p.res
}

func (p *guardProc) run() guardResult {
	p.e.t.Helper()
	return p.start().wait()
}

// run runs ipcguard with args to its end.
func (e *env) run(args ...string) guardResult {
	e.t.Helper()
	return e.guard(args...).run()
}

func readAll(f *os.File) string {
	b, _ := os.ReadFile(f.Name())
	return string(b)
}

func (r guardResult) String() string {
	how := fmt.Sprintf("exit %d", r.Code)
	if r.Signal != 0 {
		how = "killed by " + unix.SignalName(r.Signal)
	}
	return fmt.Sprintf("%s; stdout %q; stderr %q", how, r.Stdout, r.Stderr)
}

// wantExit fails unless ipcguard exited with code.
func (e *env) wantExit(r guardResult, code int) {
	e.t.Helper()
	if r.Signal != 0 || r.Code != code {
		e.fatalf("ipcguard: %v, want exit %d", r, code)
	}
}

// lines are the non-empty lines of s.
func lines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.TrimSpace(l) != "" {
			out = append(out, l)
		}
	}
	return out
}

// ---- /proc/sysvipc ---------------------------------------------------------

// sysvObj is one line of /proc/sysvipc/{shm,sem,msg}.
type sysvObj struct {
	Type   string
	Key    int32
	ID     int
	Perms  int // with the flag bits (SHM_DEST 01000)
	Size   uint64
	CPID   int // shm
	LPID   int // shm
	Nattch int // shm
	LSPID  int // msg
	LRPID  int // msg
	QNum   int // msg
	UID    int
	CUID   int
}

// ref names an object for messages and sets: "shm 32769 key 0x00001234".
func (o sysvObj) ref() string { return fmt.Sprintf("%s %d key %s", o.Type, o.ID, keyString(o.Key)) }

func (o sysvObj) tid() string { return fmt.Sprintf("%s %d", o.Type, o.ID) }

func keyString(k int32) string { return fmt.Sprintf("0x%08x", uint32(k)) }

// readSysv lists the objects of the current IPC namespace.
func readSysv() ([]sysvObj, error) {
	var all []sysvObj
	for _, typ := range []string{"shm", "sem", "msg"} {
		b, err := os.ReadFile("/proc/sysvipc/" + typ)
		if err != nil {
			return nil, err
		}
		objs, err := parseSysv(typ, string(b))
		if err != nil {
			return nil, fmt.Errorf("/proc/sysvipc/%s: %w", typ, err)
		}
		all = append(all, objs...)
	}
	return all, nil
}

func parseSysv(typ, text string) ([]sysvObj, error) {
	rows := strings.Split(strings.TrimRight(text, "\n"), "\n")
	if len(rows) == 0 {
		return nil, errors.New("empty")
	}
	col := map[string]int{}
	for i, h := range strings.Fields(rows[0]) {
		col[h] = i
	}
	idName := map[string]string{"shm": "shmid", "sem": "semid", "msg": "msqid"}[typ]
	var out []sysvObj
	for _, r := range rows[1:] {
		f := strings.Fields(r)
		if len(f) == 0 {
			continue
		}
		get := func(name string, base int) (int64, error) {
			i, ok := col[name]
			if !ok {
				return 0, nil
			}
			if i >= len(f) {
				return 0, fmt.Errorf("short line %q", r)
			}
			return strconv.ParseInt(f[i], base, 64)
		}
		var o sysvObj
		var err error
		num := func(name string, base int) int64 {
			v, e := get(name, base)
			if e != nil && err == nil {
				err = e
			}
			return v
		}
		o.Type = typ
		o.Key = int32(num("key", 10))
		o.ID = int(num(idName, 10))
		o.Perms = int(num("perms", 8))
		o.Size = uint64(num("size", 10))
		o.CPID = int(num("cpid", 10))
		o.LPID = int(num("lpid", 10))
		o.Nattch = int(num("nattch", 10))
		o.LSPID = int(num("lspid", 10))
		o.LRPID = int(num("lrpid", 10))
		o.QNum = int(num("qnum", 10))
		o.UID = int(num("uid", 10))
		o.CUID = int(num("cuid", 10))
		if err != nil {
			return nil, err
		}
		out = append(out, o)
	}
	return out, nil
}

func (e *env) objects() []sysvObj {
	e.t.Helper()
	objs, err := readSysv()
	if err != nil {
		e.fatalf("reading /proc/sysvipc: %v", err)
	}
	return objs
}

// objSet is a set of object references (type + id).
type objSet map[string]sysvObj

func setOf(objs []sysvObj) objSet {
	s := objSet{}
	for _, o := range objs {
		s[o.tid()] = o
	}
	return s
}

func (s objSet) sorted() []string {
	var out []string
	for _, o := range s {
		out = append(out, o.ref())
	}
	sort.Strings(out)
	return out
}

// newSince returns the objects present now and absent from before.
func newSince(before, now []sysvObj) []sysvObj {
	b := setOf(before)
	var out []sysvObj
	for _, o := range now {
		if _, ok := b[o.tid()]; !ok {
			out = append(out, o)
		}
	}
	return out
}

// present reports whether the object (type + id) still exists and is not
// marked for destruction.
func present(objs []sysvObj, o sysvObj) bool {
	for _, x := range objs {
		if x.Type == o.Type && x.ID == o.ID {
			return x.Perms&0o1000 == 0
		}
	}
	return false
}

// readIDs reads the "TYPE ID" lines the ipc helper and our perl scripts write.
func (e *env) readIDs(path string) []string {
	e.t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		e.fatalf("reading the ids the command recorded: %v", err)
	}
	return lines(string(b))
}

// removeObjects removes objects with IPC_RMID (test set-up between runs).
func (e *env) removeObjects(objs []sysvObj) {
	e.t.Helper()
	for _, o := range objs {
		var err error
		switch o.Type {
		case "shm":
			_, err = unix.SysvShmCtl(o.ID, unix.IPC_RMID, nil)
		case "sem":
			_, _, errno := unix.Syscall6(unix.SYS_SEMCTL, uintptr(o.ID), 0, unix.IPC_RMID, 0, 0, 0)
			if errno != 0 {
				err = errno
			}
		case "msg":
			_, _, errno := unix.Syscall(unix.SYS_MSGCTL, uintptr(o.ID), unix.IPC_RMID, 0)
			if errno != 0 {
				err = errno
			}
		}
		if err != nil {
			e.fatalf("removing %s: %v", o.ref(), err)
		}
	}
}

// ---- waiting ---------------------------------------------------------------

// waitFor polls cond until it holds or the deadline passes; then it fails
// the test with what it was waiting for.
func (e *env) waitFor(what string, timeout time.Duration, cond func() bool) {
	e.t.Helper()
	if !poll(timeout, cond) {
		e.fatalf("timed out after %v waiting for %s", timeout, what)
	}
}

// poll reports whether cond held before the deadline.
func poll(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for d := time.Millisecond; ; d = min(2*d, 25*time.Millisecond) {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(d)
	}
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// waitFile waits for path to exist and returns its content.
func (e *env) waitFile(path string) string {
	e.t.Helper()
	e.waitFor(path+" to exist", 30*time.Second, func() bool { return exists(path) })
	b, _ := os.ReadFile(path)
	return string(b)
}

// waitPidFile waits for a file holding a pid (the ipc helper's ready=PATH).
func (e *env) waitPidFile(path string) int {
	e.t.Helper()
	var pid int
	e.waitFor("a pid in "+path, 30*time.Second, func() bool {
		b, err := os.ReadFile(path)
		if err != nil {
			return false
		}
		pid, err = strconv.Atoi(strings.TrimSpace(string(b)))
		return err == nil && pid > 0
	})
	return pid
}

// killOnCleanup makes sure pid is gone when the test ends.
func (e *env) killOnCleanup(pid int) {
	e.t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) })
}

// procState is the state letter of pid ('Z' zombie, 'T' stopped), 0 if gone.
func procState(pid int) byte {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 || i+2 >= len(b) {
		return 0
	}
	return b[i+2]
}

// alive reports whether pid exists and is not a zombie.
func alive(pid int) bool {
	s := procState(pid)
	return s != 0 && s != 'Z' && s != 'X'
}

// childrenOf lists the pids whose parent is ppid (from /proc/*/stat).
func childrenOf(ppid int) []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, ent := range ents {
		pid, err := strconv.Atoi(ent.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + ent.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) > 1 {
			if p, _ := strconv.Atoi(f[1]); p == ppid {
				out = append(out, pid)
			}
		}
	}
	return out
}

// ---- the report ------------------------------------------------------------

// report is ipcguard's JSON report (guard.Report) as a test reads it back.
type report struct{ guard.Report }

type reportObj = guard.ReportObject

// tid is "type id" of a report object.
func tid(o reportObj) string { return fmt.Sprintf("%s %d", o.Type, o.ID) }

// readReport decodes the JSON report ipcguard wrote to path.
func (e *env) readReport(path string) *report {
	e.t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		e.fatalf("reading the report: %v", err)
	}
	return e.parseReport(b)
}

func (e *env) parseReport(b []byte) *report {
	e.t.Helper()
	var r report
	if err := json.Unmarshal(b, &r); err != nil {
		e.fatalf("the report is not the JSON expected: %v\n%s", err, b)
	}
	return &r
}

// object finds the report entry of type + id.
func (r *report) object(typ string, id int) (reportObj, bool) {
	for _, o := range r.Objects {
		if o.Type == typ && o.ID == id {
			return o, true
		}
	}
	return reportObj{}, false
}

// actions maps "type id" to the action the report gives it.
func (r *report) actions() map[string]string {
	m := map[string]string{}
	for _, o := range r.Objects {
		m[tid(o)] = o.Action
	}
	return m
}

var keyFormat = regexp.MustCompile(`^0x[0-9a-f]{8}$`)

// checkOneErrorLine checks the stderr of an ipcguard failure of its own:
// exactly one line, starting "ipcguard: ", no Go panic or stack trace.
func (e *env) checkOneErrorLine(what, stderr string) {
	e.t.Helper()
	ls := lines(stderr)
	if len(ls) != 1 || !strings.HasPrefix(ls[0], "ipcguard: ") {
		e.errorf("%s: stderr %q, want exactly one line starting \"ipcguard: \"", what, stderr)
	}
	for _, bad := range []string{"goroutine ", "panic", ".go:"} {
		if strings.Contains(stderr, bad) {
			e.errorf("%s: stderr looks like a Go crash (%q): %q", what, bad, stderr)
		}
	}
}

// ---- modes -----------------------------------------------------------------

// inBothModes runs body isolated, as root and as an unprivileged user, in
// parallel subtests "root" and "unprivileged".
func inBothModes(t *testing.T, body func(t *testing.T, mode nstest.Mode)) {
	t.Helper()
	inModes(t, []nstest.Mode{nstest.Root, nstest.Unprivileged}, body)
}

func inModes(t *testing.T, modes []nstest.Mode, body func(t *testing.T, mode nstest.Mode)) {
	t.Helper()
	for _, mode := range modes {
		t.Run(mode.String(), func(t *testing.T) {
			t.Parallel()
			if !nstest.Isolate(t, mode) {
				return
			}
			body(t, mode)
		})
	}
}

// slow skips a slow test under -short.
func slow(t *testing.T, what string) {
	t.Helper()
	if testing.Short() {
		t.Skipf("%s: slow, skipped with -short", what)
	}
}

// ---- misc ------------------------------------------------------------------

// scanLines reads path and returns its lines (missing file: none).
func scanLines(path string) []string {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	return out
}
