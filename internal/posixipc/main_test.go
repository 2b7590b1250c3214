package posixipc

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"unsafe"

	"github.com/ipcguard/ipcguard/internal/nstest"
)

// envTestdata carries the absolute path of testdata to isolated bodies
// (they run in another directory).
const envTestdata = "IPCGUARD_POSIXIPC_TESTDATA"

func TestMain(m *testing.M) {
	if os.Getenv(envTestdata) == "" {
		if abs, err := filepath.Abs("testdata"); err == nil {
			os.Setenv(envTestdata, abs)
		}
	}
	nstest.Main(m, map[string]func([]string) int{
		helperNobody: nobodyHelper,
	})
}

// marker is in the name of every object the tests make.
const marker = "pxt"

// env is the private world of an isolated body (nstest.IsolateMounts): a
// tmpfs on /dev/shm and the mqueue instance of its IPC namespace mounted at
// mq, seen by the body and every process it starts.
type env struct {
	shm    *Dir
	mq     string
	helper string // the compiled testdata/posixhelper.c
	tmp    string // a directory every user may enter
	// closers end processes started without a *testing.T.
	closers []func()
}

// isolate runs the calling test's body as root in private IPC, pid and
// mount namespaces (nstest.IsolateMounts; nstest.Main checks that the
// host's /dev/shm and mqueue instance are as they were). In the parent it
// returns false.
func isolate(t *testing.T) (*env, bool) {
	t.Helper()
	if !nstest.IsolateMounts(t, nstest.Root) {
		return nil, false
	}
	tmp, err := os.MkdirTemp("", "posixipc-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(tmp) })
	if err := os.Chmod(tmp, 0o755); err != nil {
		t.Fatal(err)
	}
	e := &env{mq: nstest.MqueueDir, tmp: tmp}
	t.Cleanup(func() {
		for _, c := range e.closers {
			c()
		}
	})
	if e.shm, err = OpenShm(nstest.ShmDir); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.shm.Close() })
	gcc, err := exec.LookPath("gcc")
	if err != nil {
		nstest.Require(t, "no gcc for testdata/posixhelper.c: %v", err)
	}
	src := filepath.Join(os.Getenv(envTestdata), "posixhelper.c")
	e.helper = filepath.Join(tmp, "posixhelper")
	if out, err := exec.Command(gcc, "-O", "-o", e.helper, src, "-lrt", "-pthread").CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s", err, out)
	}
	return e, true
}

// proc is a running posixhelper.
type proc struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Reader
}

// start runs the helper with ops (pairs "op arg") as the given credential
// (nil: root) and waits until it has done them.
func (e *env) start(t *testing.T, cred *syscall.Credential, ops ...string) *proc {
	t.Helper()
	cmd := exec.Command(e.helper, ops...)
	cmd.Stderr = os.Stderr
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	outp, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, in: in, out: bufio.NewReader(outp)}
	t.Cleanup(p.stop)
	if l, err := p.out.ReadString('\n'); l != "ready\n" {
		t.Fatalf("helper %v: %q, %v", ops, l, err)
	}
	return p
}

// poke makes the helper run: it echoes a line.
func (p *proc) poke(t *testing.T) {
	t.Helper()
	if _, err := io.WriteString(p.in, "x\n"); err != nil {
		t.Fatal(err)
	}
	if l, err := p.out.ReadString('\n'); l != "x\n" {
		t.Fatalf("helper echo: %q, %v", l, err)
	}
}

func (p *proc) stop() {
	if p.in != nil {
		p.in.Close()
		p.in = nil
		p.cmd.Wait()
	}
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

var nobody = &syscall.Credential{Uid: nstest.NobodyUID, Gid: nstest.NobodyUID, Groups: []uint32{}}

// helperNobody runs parts of the package as another user, in the mount
// namespace of the test that started it:
//
//	users DEV:INO...   print FindUsers as JSON
//	openmq             print OpenMqueue's NS and why
//	watch              start a watch on /dev/shm, print "watching", wait for EOF, print the record
//	provemq PATH NAME  open the mqueue mount PATH as unproven, Prove it, make
//	                   queue NAME, Prove it again, remove NAME; print both verdicts
const helperNobody = "posixipc"

func nobodyHelper(args []string) int {
	out := json.NewEncoder(os.Stdout)
	fail := func(err error) int { fmt.Fprintln(os.Stderr, err); return 1 }
	switch args[0] {
	case "users":
		var keys []FileKey
		for _, a := range args[1:] {
			d, i, _ := strings.Cut(a, ":")
			dev, _ := strconv.ParseUint(d, 10, 64)
			ino, _ := strconv.ParseUint(i, 10, 64)
			keys = append(keys, FileKey{dev, ino})
		}
		u, err := FindUsers("/proc", keys)
		if err != nil {
			return fail(err)
		}
		type unread struct {
			Pid  int
			What string
			Err  string
		}
		var us []unread
		for _, x := range u.Unreadable {
			us = append(us, unread{x.Pid, x.What, x.Err.Error()})
		}
		var uses []Use
		for _, l := range u.Uses {
			uses = append(uses, l...)
		}
		out.Encode(struct {
			Uses       []Use
			Unreadable []unread
		}{uses, us})
	case "openmq":
		d, err := OpenMqueue("/proc")
		if err != nil {
			return fail(err)
		}
		out.Encode([]string{d.NS.String(), d.NSWhy})
	case "provemq":
		fd, err := syscall.Open(args[1], syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_CLOEXEC, 0)
		if err != nil {
			return fail(err)
		}
		d, err := newDir(fd, args[1])
		if err != nil {
			return fail(err)
		}
		defer d.Close()
		d.NS = NSUnknown
		first, _ := d.Prove()
		qfd, err := mqCreate(args[2])
		if err != nil {
			return fail(err)
		}
		syscall.Close(qfd)
		defer mqUnlink(args[2])
		second, why := d.Prove()
		out.Encode([]string{first.String(), second.String(), d.NS.String(), why})
	case "watch":
		d, err := OpenShm("/dev/shm")
		if err != nil {
			return fail(err)
		}
		w, err := d.Watch()
		if err != nil {
			return fail(err)
		}
		fmt.Println("watching")
		io.Copy(io.Discard, os.Stdin)
		out.Encode(w.Stop())
		w.Close()
	default:
		return fail(fmt.Errorf("unknown %q", args[0]))
	}
	return 0
}

// nobodyRun runs the helper as nobody and decodes its JSON output into v.
func nobodyRun(t *testing.T, v any, args ...string) {
	t.Helper()
	cmd := nstest.HelperCmd(helperNobody, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: nobody}
	cmd.Stderr = os.Stderr
	b, err := cmd.Output()
	if err != nil {
		t.Fatalf("helper %v as nobody: %v", args, err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("helper %v: %v: %q", args, err, b)
	}
}

func ioReadFull(r io.Reader, b []byte) (int, error) { return io.ReadFull(r, b) }

func jsonDecode(r io.Reader, v any) error { return json.NewDecoder(r).Decode(v) }

// fdHolderCmd starts a process that holds f as its descriptor 3 and sleeps
// until the test ends.
func fdHolderCmd(e *env, f *os.File) *exec.Cmd {
	cmd := exec.Command(e.helper)
	cmd.ExtraFiles = []*os.File{f}
	in, _ := cmd.StdinPipe()
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		panic(err)
	}
	bufio.NewReader(out).ReadString('\n')
	e.closers = append(e.closers, func() { in.Close(); cmd.Wait() })
	return cmd
}

// startCmd starts cmd, ends it when the test ends (closing its stdin), and
// returns the first line it prints.
func startCmd(t *testing.T, cmd *exec.Cmd) string {
	t.Helper()
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { in.Close(); cmd.Wait() })
	l, _ := bufio.NewReader(out).ReadString('\n')
	return l
}

// mqCreate makes queue name (no leading '/') of the caller's namespace,
// mode 0600, and returns its descriptor.
func mqCreate(name string) (int, error) {
	p, err := syscall.BytePtrFromString(name)
	if err != nil {
		return -1, err
	}
	fd, _, errno := syscall.Syscall6(syscall.SYS_MQ_OPEN, uintptr(unsafe.Pointer(p)),
		uintptr(syscall.O_RDWR|syscall.O_CREAT|syscall.O_EXCL|syscall.O_CLOEXEC), 0o600, 0, 0, 0)
	if errno != 0 {
		return -1, errno
	}
	return int(fd), nil
}
