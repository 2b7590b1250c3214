//go:build linux

package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// floorSrc is the least a Go wrapper does: fork, exec, wait, exit with the
// child's status. Built as ipcguard is (static, trimmed, stripped), its
// start-up is the floor of any Go program in ipcguard's place: the Go
// runtime's own start and one fork/exec/wait.
const floorSrc = `package main

import (
	"os"
	"syscall"
)

func main() {
	attr := &syscall.ProcAttr{Env: os.Environ(), Files: []uintptr{0, 1, 2}}
	pid, err := syscall.ForkExec(os.Args[1], os.Args[1:], attr)
	if err != nil {
		os.Exit(127)
	}
	var ws syscall.WaitStatus
	for {
		_, err := syscall.Wait4(pid, &ws, 0, nil)
		if err != syscall.EINTR {
			break
		}
	}
	os.Exit(ws.ExitStatus())
}
`

// buildFloor builds the Go floor into dir with the flags the Makefile
// builds ipcguard with, and returns its path.
func buildFloor(dir string) (string, error) {
	src := filepath.Join(dir, "floor", "main.go")
	if err := os.MkdirAll(filepath.Dir(src), 0o755); err != nil {
		return "", err
	}
	if err := os.WriteFile(src, []byte(floorSrc), 0o644); err != nil {
		return "", err
	}
	out := filepath.Join(dir, "gofloor")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", out, src)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=", "GO111MODULE=off")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building the Go floor: %v: %s", err, b)
	}
	return out, nil
}
