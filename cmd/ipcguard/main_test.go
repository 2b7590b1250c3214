package main_test

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"

	"github.com/ipcguard/ipcguard/internal/nstest"
)

// envGuardBin carries the path of the ipcguard binary under test (a
// world-executable copy) to every process of the test run: isolated children
// re-run TestMain and must find it there instead of building it again.
const envGuardBin = "IPCGUARD_E2E_BINARY"

// keepAlive holds the write end of the pipe whose closing (when this process
// ends, however it ends) tells the janitor to remove the binary's directory.
var keepAlive *os.File

// TestMain builds the binary under test once, in the top process, then hands
// over to nstest.Main (helper dispatch, isolation, host guard).
//
// The binary is $IPCGUARD_BIN when set (the Makefile sets it), otherwise built
// from this package with go build. Either way it is copied into a 0755
// temporary directory, so that the unprivileged test bodies (uid 65534) can
// execute it.
func TestMain(m *testing.M) {
	if os.Getenv(envGuardBin) == "" {
		// Copies of this test binary run as helpers and isolated bodies;
		// built with -race, each would sleep a second at exit by default.
		if g := os.Getenv("GORACE"); !strings.Contains(g, "atexit_sleep_ms") {
			os.Setenv("GORACE", strings.TrimSpace(g+" atexit_sleep_ms=0"))
		}
		path, err := prepareGuard()
		if err != nil {
			fmt.Fprintf(os.Stderr, "e2e: preparing the ipcguard binary: %v\n", err)
			os.Exit(2)
		}
		os.Setenv(envGuardBin, path)
	}
	nstest.Main(m, helpers)
}

func prepareGuard() (string, error) {
	dir, err := os.MkdirTemp("", "ipcguard-e2e-bin-")
	if err != nil {
		return "", err
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		os.RemoveAll(dir)
		return "", err
	}
	if err := startJanitor(dir); err != nil {
		os.RemoveAll(dir)
		return "", err
	}
	// The README too: isolated bodies that run as another user read its
	// examples, and the checkout may sit in a directory only its owner
	// may enter (a clone under /root, or a 0700 temporary directory).
	if b, err := os.ReadFile(os.Getenv(envReadme)); err == nil {
		readme := filepath.Join(dir, "README.md")
		if err := os.WriteFile(readme, b, 0o644); err == nil {
			os.Setenv(envReadme, readme)
		}
	}
	dst := filepath.Join(dir, "ipcguard")
	if src := os.Getenv("IPCGUARD_BIN"); src != "" {
		return dst, copyExecutable(src, dst)
	}
	args := []string{"build", "-tags", "urfave_cli_no_docs", "-o", dst}
	if runtime.GOARCH == "amd64" {
		// As the Makefile builds it: see internal/sigstart.
		args = append(args, "-ldflags=-E=github.com/ipcguard/ipcguard/internal/sigstart.entry")
	}
	cmd := exec.Command("go", append(args, ".")...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go build: %w", err)
	}
	return dst, os.Chmod(dst, 0o755)
}

// startJanitor starts a shell that removes dir once this process is gone
// (nstest.Main ends the process with os.Exit: no deferred cleanup runs).
func startJanitor(dir string) error {
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	cmd := exec.Command("/bin/sh", "-c", `cat >/dev/null; rm -rf -- "$0"`, dir)
	cmd.Stdin = r
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		r.Close()
		w.Close()
		return err
	}
	r.Close()
	go cmd.Wait() //nolint:errcheck // the janitor outlives us on purpose
	keepAlive = w
	return nil
}

func copyExecutable(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
