//go:build linux

// Command ipcguard-bench measures what ipcguard costs and prints one table:
// start-up against tini, run time and pre-start delay at the kernel's IPC
// limits against one raw read of /proc/sysvipc, removal time against
// ipcrm -a, peak memory, and how the scale-dependent figures grow.
//
//	go run ./cmd/ipcguard-bench -bin bin/ipcguard
//
// Everything that creates IPC objects happens in a private IPC namespace
// with its own /dev/shm: ipcguard-bench re-executes itself into new IPC
// and mount namespaces (as root; otherwise with a user namespace too) and that child fills it, runs ipcguard and
// the references, and prints the table. The parent checks that the host's
// /proc/sysvipc is the same afterwards and fails the run when it is not.
//
// The same binary is also the tiny commands the benchmarks run: "mark"
// records the instant it started, "make" creates and uses objects and
// fails. They are selected by the first argument (see helperMain).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"
)

// envChild marks the namespace child; it carries the options.
const envChild = "BENCHTAB_CHILD"

// budget is the wall time the whole benchmark may take: under 3 minutes,
// so that `make bench` stays a thing one runs.
const budget = 170 * time.Second

type options struct {
	bin   string // ipcguard binary, absolute
	quick bool   // fewer repetitions (smoke test)
}

func main() {
	if helperMain(os.Args) {
		return
	}
	var opt options
	flag.StringVar(&opt.bin, "bin", "bin/ipcguard", "the ipcguard binary to measure")
	flag.BoolVar(&opt.quick, "quick", false, "few repetitions: check that everything runs, not a measurement")
	flag.Parse()
	if flag.NArg() != 0 {
		fmt.Fprintln(os.Stderr, "usage: benchtab [-bin PATH] [-quick]")
		os.Exit(2)
	}
	var err error
	if os.Getenv(envChild) != "" {
		err = childMain(opt)
	} else {
		err = parentMain(opt)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "benchtab: %v\n", err)
		os.Exit(1)
	}
}

// parentMain prints the machine, runs the namespace child (which prints
// the table) and checks the host's IPC objects did not change.
func parentMain(opt options) error {
	bin, err := filepath.Abs(opt.bin)
	if err != nil {
		return err
	}
	if fi, err := os.Stat(bin); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
		return fmt.Errorf("ipcguard binary %s is not an executable file (run make build first)", bin)
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	hostBefore, err := hostObjects()
	if err != nil {
		return fmt.Errorf("reading the host's /proc/sysvipc: %w", err)
	}
	fmt.Printf("ipcguard %s: %s\n", versionOf(bin), bin)
	fmt.Printf("machine: %s; %d CPUs; Linux %s; %s; load average %s\n", cpuModel(), runtime.NumCPU(),
		kernelRelease(), runtime.Version(), loadAvg())

	ctx, cancel := context.WithTimeout(context.Background(), budget+10*time.Second)
	defer cancel()
	args := []string{"-bin", bin}
	if opt.quick {
		args = append(args, "-quick")
	}
	cmd := exec.CommandContext(ctx, self, args...)
	cmd.Env = append(os.Environ(), envChild+"=1")
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	cmd.SysProcAttr = namespaceAttr()
	cmd.WaitDelay = 5 * time.Second
	runErr := cmd.Run()

	hostAfter, err := hostObjects()
	if err != nil {
		return fmt.Errorf("reading the host's /proc/sysvipc again: %w", err)
	}
	if diff := diffObjects(hostBefore, hostAfter); diff != "" {
		return fmt.Errorf("the host's IPC objects changed during the benchmark:\n%s", diff)
	}
	fmt.Printf("host /proc/sysvipc: unchanged (%d objects before and after)\n", len(hostAfter))
	if runErr != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return fmt.Errorf("the benchmark overran its %v budget and was killed", budget)
		}
		return fmt.Errorf("namespace child: %w", runErr)
	}
	return nil
}

// namespaceAttr makes the child's private IPC namespace, and a mount
// namespace for its own /dev/shm (privateShm): as root new IPC and mount
// namespaces; otherwise also a user namespace mapping us to its root. The
// child dies with us.
func namespaceAttr() *syscall.SysProcAttr {
	a := &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWIPC | syscall.CLONE_NEWNS, Pdeathsig: syscall.SIGKILL}
	if os.Geteuid() != 0 {
		a.Cloneflags |= syscall.CLONE_NEWUSER
		a.UidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Geteuid(), Size: 1}}
		a.GidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getegid(), Size: 1}}
		a.GidMappingsEnableSetgroups = false
	}
	return a
}

// hostObjects is the identity (type, key, id, creator uid) of every object
// in this process's IPC namespace, read from /proc/sysvipc.
func hostObjects() (map[string]bool, error) {
	set := map[string]bool{}
	for _, t := range []string{"shm", "sem", "msg"} {
		b, err := os.ReadFile("/proc/sysvipc/" + t)
		if err != nil {
			return nil, err
		}
		lines := strings.Split(string(b), "\n")
		if len(lines) == 0 {
			continue
		}
		// The key and id are the first two columns (the id's is named
		// shmid, semid, msqid); find cuid by its name.
		head := strings.Fields(lines[0])
		col := map[string]int{}
		for i, h := range head {
			col[h] = i
		}
		for _, l := range lines[1:] {
			f := strings.Fields(l)
			if len(f) < len(head) {
				continue
			}
			set[fmt.Sprintf("%s key=%s id=%s cuid=%s", t, f[0], f[1], f[col["cuid"]])] = true
		}
	}
	return set, nil
}

// diffObjects describes how after differs from before, "" if not at all.
func diffObjects(before, after map[string]bool) string {
	var out []string
	for k := range after {
		if !before[k] {
			out = append(out, "  new:  "+k)
		}
	}
	for k := range before {
		if !after[k] {
			out = append(out, "  gone: "+k)
		}
	}
	if len(out) > 20 {
		out = append(out[:20], fmt.Sprintf("  ... and %d more", len(out)-20))
	}
	return strings.Join(out, "\n")
}

func cpuModel() string {
	b, _ := os.ReadFile("/proc/cpuinfo")
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}

func kernelRelease() string {
	b, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(b))
}

// loadAvg is the 1-minute load average: other work on the machine skews
// every figure.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) > 0 {
		return f[0]
	}
	return "unknown"
}

func versionOf(bin string) string {
	out, err := exec.Command(bin, "--version").Output()
	if err != nil {
		return "(version unknown)"
	}
	f := strings.Fields(string(out))
	if len(f) == 0 {
		return "(version unknown)"
	}
	return f[len(f)-1]
}

// privateShm gives the child its own tmpfs on /dev/shm, in a mount
// namespace whose mounts do not propagate to the host's: ipcguard reads
// the POSIX objects there too, and the host's (another program's
// PostgreSQL.N) must neither count in the figures nor be touched.
func privateShm() error {
	if err := syscall.Mount("", "/", "", syscall.MS_REC|syscall.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("making the mount namespace private: %w", err)
	}
	if err := syscall.Mount("tmpfs", "/dev/shm", "tmpfs", syscall.MS_NOSUID|syscall.MS_NODEV, "mode=1777"); err != nil {
		return fmt.Errorf("a private tmpfs on /dev/shm: %w", err)
	}
	return nil
}
