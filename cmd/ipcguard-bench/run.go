//go:build linux

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ipcguard/ipcguard/internal/guard"
)

// bench holds what the namespace child needs to run contenders.
type bench struct {
	ctx      context.Context
	guard    string // ipcguard binary
	self     string // this binary (helper commands)
	tini     string // "" when not installed
	tiniWhy  string // why tini is missing
	floor    string // the Go floor (buildFloor); "" when it could not be built
	floorWhy string
	ipcrm    string // "" when not installed
	dir      string // scratch: state dir, reports, marks
	stateDir string // ipcguard's --state-dir, private to this run
	devnull  *os.File
	errlog   *os.File // stderr of the contenders, kept for diagnostics
	quick    bool
	buf      []byte // raw read buffer
}

func newBench(ctx context.Context, opt options) (*bench, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	// A scratch directory on the file system of the default state dir
	// (/run for root), so journals cost what they cost in real use.
	parent := os.TempDir()
	if os.Geteuid() == 0 {
		if fi, err := os.Stat("/run"); err == nil && fi.IsDir() {
			parent = "/run"
		}
	}
	dir, err := os.MkdirTemp(parent, "ipcguard-bench-")
	if err != nil {
		return nil, err
	}
	b := &bench{ctx: ctx, guard: opt.bin, self: self, dir: dir, stateDir: filepath.Join(dir, "state"),
		quick: opt.quick, buf: make([]byte, 0, 16<<20)}
	if err := os.Mkdir(b.stateDir, 0o700); err != nil {
		return nil, err
	}
	if b.devnull, err = os.OpenFile(os.DevNull, os.O_RDWR, 0); err != nil {
		return nil, err
	}
	if b.errlog, err = os.Create(filepath.Join(dir, "stderr.log")); err != nil {
		return nil, err
	}
	if p, err := exec.LookPath("tini"); err == nil {
		b.tini = p
	} else {
		b.tiniWhy = "tini not installed (apt-get install -y tini)"
	}
	if p, err := buildFloor(dir); err == nil {
		b.floor = p
	} else {
		b.floorWhy = err.Error()
	}
	if p, err := exec.LookPath("ipcrm"); err == nil {
		b.ipcrm = p
	}
	return b, nil
}

func (b *bench) close() {
	b.devnull.Close()
	b.errlog.Close()
	os.RemoveAll(b.dir)
}

// result is one finished process.
type result struct {
	wall   time.Duration // from just before fork to reaped
	status syscall.WaitStatus
	maxRSS int64 // KiB, from wait4's rusage
}

// run starts argv with stdin and stdout on /dev/null and stderr to the
// error log, waits for it and times it. It fails when the exit status is
// not want.
func (b *bench) run(want int, argv ...string) (result, error) {
	if err := b.errlog.Truncate(0); err != nil {
		return result{}, err
	}
	if _, err := b.errlog.Seek(0, io.SeekStart); err != nil {
		return result{}, err
	}
	cmd := exec.CommandContext(b.ctx, argv[0], argv[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = b.devnull, b.devnull, b.errlog
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		return result{}, err
	}
	err := cmd.Wait()
	wall := time.Since(t0)
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		return result{}, err
	}
	r := result{wall: wall, status: cmd.ProcessState.Sys().(syscall.WaitStatus)}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		r.maxRSS = ru.Maxrss
	}
	if r.status.ExitStatus() != want {
		msg, _ := os.ReadFile(b.errlog.Name())
		return r, fmt.Errorf("%s: %s, want exit status %d; stderr:\n%s", strings.Join(argv, " "),
			cmd.ProcessState, want, tail(string(msg), 2000))
	}
	return r, nil
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// guardArgs is ipcguard's command line for argv, with a private state dir.
func (b *bench) guardArgs(report string, extra []string, argv ...string) []string {
	a := []string{b.guard, "--quiet", "--state-dir", b.stateDir}
	if report != "" {
		a = append(a, "--report", report)
	}
	a = append(a, extra...)
	return append(append(a, "--"), argv...)
}

// report is ipcguard's JSON report (guard.Report), as read back from
// --report.
type report struct{ guard.Report }

func readReport(path string) (*report, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r report
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("report %s: %w", path, err)
	}
	return &r, nil
}

// notRemoved summarises why objects were not removed: "N type action:
// reason", most frequent first.
func (r *report) notRemoved() string {
	count := map[string]int{}
	for _, o := range r.Objects {
		if o.Action != "removed" {
			count[fmt.Sprintf("%s %s: %s%s", o.Type, o.Action, o.Reason, o.Error)]++
		}
	}
	keys := make([]string, 0, len(count))
	for k := range count {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return count[keys[i]] > count[keys[j]] })
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%d %s", count[k], k)
	}
	s := strings.Join(parts, "; ")
	if r.Tracker.Note != "" {
		s += " [tracker " + r.Tracker.Name + ": " + r.Tracker.Note + "]"
	}
	return s
}

func us(n int64) time.Duration { return time.Duration(n) * time.Microsecond }

// mark runs argv (which must end in the mark helper writing to markFile)
// and returns how long after the launch instant the mark program started.
func (b *bench) mark(markFile string, argv ...string) (time.Duration, error) {
	os.Remove(markFile)
	t0 := monoNow()
	if _, err := b.run(0, argv...); err != nil {
		return 0, err
	}
	s, err := os.ReadFile(markFile)
	if err != nil {
		return 0, err
	}
	t, err := strconv.ParseInt(string(s), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("mark file: %w", err)
	}
	return time.Duration(t - t0), nil
}

// rawRead reads /proc/sysvipc/{shm,sem,msg} to EOF, unparsed, and returns
// the time it took and the number of objects (lines but headers).
func (b *bench) rawRead() (time.Duration, int, error) {
	var d time.Duration
	n := 0
	for _, t := range []string{"shm", "sem", "msg"} {
		t0 := time.Now()
		f, err := os.Open("/proc/sysvipc/" + t)
		if err != nil {
			return 0, 0, err
		}
		buf := b.buf[:0]
		for {
			if len(buf) == cap(buf) {
				buf = append(buf, 0)[:len(buf)]
			}
			k, err := f.Read(buf[len(buf):cap(buf)])
			buf = buf[:len(buf)+k]
			if err == io.EOF {
				break
			}
			if err != nil {
				f.Close()
				return 0, 0, err
			}
		}
		f.Close()
		d += time.Since(t0)
		b.buf = buf
		n += countLines(buf) - 1
	}
	return d, n, nil
}

func countLines(b []byte) int {
	n := 0
	for _, c := range b {
		if c == '\n' {
			n++
		}
	}
	return n
}

// objects counts the objects in the namespace.
func (b *bench) objects() (int, error) {
	_, n, err := b.rawRead()
	return n, err
}

// peakRSS runs argv through the helperRSS helper and returns its peak RSS
// in KiB (see helperRSS for why not straight from this process).
func (b *bench) peakRSS(want int, argv []string) (int64, error) {
	k, _, err := b.peakRSSWall(want, argv)
	return k, err
}

// peakRSSWall is peakRSS that also returns the wall time of the run.
func (b *bench) peakRSSWall(want int, argv []string) (int64, time.Duration, error) {
	out := filepath.Join(b.stateDir, "..", "rss")
	res, err := b.run(want, append([]string{b.self, helperRSS, out}, argv...)...)
	if err != nil {
		return 0, 0, err
	}
	v, err := os.ReadFile(out)
	if err != nil {
		return 0, 0, err
	}
	k, err := strconv.ParseInt(string(v), 10, 64)
	return k, res.wall, err
}
