package posixipc

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// BenchmarkListUsers: a snapshot of 2000 objects and the users of all of
// them among every process of the host plus 200 holders, each mapping 5
// objects and holding descriptors of 5 more. The objects are files of a
// temporary directory (List and FindUsers work on any directory), so the
// host's /dev/shm is not touched.
func BenchmarkListUsers(b *testing.B) {
	gcc, err := exec.LookPath("gcc")
	if err != nil {
		b.Skipf("no gcc for testdata/posixhelper.c: %v", err)
	}
	dir := b.TempDir()
	helper := filepath.Join(dir, "posixhelper")
	if out, err := exec.Command(gcc, "-O", "-o", helper, "testdata/posixhelper.c", "-lrt", "-pthread").CombinedOutput(); err != nil {
		b.Fatalf("gcc: %v\n%s", err, out)
	}
	objDir := filepath.Join(dir, "objs")
	if err := os.Mkdir(objDir, 0o755); err != nil {
		b.Fatal(err)
	}
	const nObj, nProc = 2000, 200
	for i := range nObj {
		if err := os.WriteFile(filepath.Join(objDir, fmt.Sprintf("obj%04d", i)), make([]byte, 4096), 0o600); err != nil {
			b.Fatal(err)
		}
	}
	for p := range nProc {
		var args []string
		var files []*os.File
		for j := range 5 {
			args = append(args, "map", filepath.Join(objDir, fmt.Sprintf("obj%04d", (p*10+j)%nObj)))
			f, err := os.Open(filepath.Join(objDir, fmt.Sprintf("obj%04d", (p*10+5+j)%nObj)))
			if err != nil {
				b.Fatal(err)
			}
			files = append(files, f)
		}
		cmd := exec.Command(helper, args...)
		cmd.ExtraFiles = files
		in, _ := cmd.StdinPipe()
		out, _ := cmd.StdoutPipe()
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		for _, f := range files {
			f.Close()
		}
		b.Cleanup(func() { in.Close(); cmd.Wait() })
		if l, _ := bufio.NewReader(out).ReadString('\n'); l != "ready\n" {
			b.Fatalf("holder %d: %q", p, l)
		}
	}
	d, err := OpenShm(objDir)
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	b.ResetTimer()
	for b.Loop() {
		objs, err := d.List(ListOptions{})
		if err != nil || len(objs) != nObj {
			b.Fatalf("%d objects, %v", len(objs), err)
		}
		keys := make([]FileKey, len(objs))
		for i, o := range objs {
			keys[i] = o.FileKey
		}
		u, err := FindUsers("/proc", keys)
		if err != nil {
			b.Fatal(err)
		}
		if len(u.Uses) != nProc*10 {
			b.Fatalf("%d objects used, want %d", len(u.Uses), nProc*10)
		}
	}
}
