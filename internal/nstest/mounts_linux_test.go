package nstest

import (
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestIsolateMounts proves the world of an IsolateMounts body: pid 1 of a
// pid namespace with its own /proc, a private root mount, an empty tmpfs
// of mode 1777 on /dev/shm and the IPC namespace's own mqueue on
// /dev/mqueue, a working /dev, the mode's credentials without any
// capability left for Unprivileged; and POSIX objects the ipc helper makes
// there stay there (Main checks the host's after the run).
func TestIsolateMounts(t *testing.T) {
	for _, mode := range []Mode{Root, Unprivileged} {
		t.Run(mode.String(), func(t *testing.T) {
			t.Parallel()
			if !IsolateMounts(t, mode) {
				return
			}
			if !InPrivateMounts() || CurrentMode() != mode {
				t.Fatalf("InPrivateMounts %v, mode %v", InPrivateMounts(), CurrentMode())
			}
			if self, err := os.Readlink("/proc/self"); os.Getpid() != 1 || self != "1" {
				t.Fatalf("pid %d, /proc/self %q (%v): want pid 1 of a private pid namespace and its /proc", os.Getpid(), self, err)
			}
			mi, err := os.ReadFile("/proc/self/mountinfo")
			if err != nil {
				t.Fatal(err)
			}
			mounts := map[string][]string{}
			for _, l := range strings.Split(string(mi), "\n") {
				pre, post, ok := strings.Cut(l, " - ")
				f := strings.Fields(pre)
				if !ok || len(f) < 6 {
					continue
				}
				mounts[f[4]] = append(f[6:], strings.Fields(post)[0]) // optional fields, fstype
			}
			for point, m := range mounts {
				for _, opt := range m[:len(m)-1] {
					if strings.HasPrefix(opt, "shared:") {
						t.Errorf("mount %s propagates (%s)", point, opt)
					}
				}
			}
			if m := mounts[ShmDir]; len(m) == 0 || m[len(m)-1] != "tmpfs" {
				t.Errorf("%s: %v, want a tmpfs", ShmDir, m)
			}
			if m := mounts[MqueueDir]; len(m) == 0 || m[len(m)-1] != "mqueue" {
				t.Errorf("%s: %v, want mqueue", MqueueDir, m)
			}
			var st unix.Stat_t
			if err := unix.Stat(ShmDir, &st); err != nil || st.Mode&0o7777 != 0o1777 {
				t.Errorf("%s: mode %o (%v), want 1777", ShmDir, st.Mode&0o7777, err)
			}
			if err := os.WriteFile("/dev/null", []byte("x"), 0); err != nil {
				t.Errorf("/dev/null: %v", err)
			}
			if posix, err := HostPosix(); err != nil || len(posix) != 0 {
				t.Fatalf("fresh POSIX directories hold %v (%v)", posix, err)
			}
			status, _ := os.ReadFile("/proc/self/status")
			for _, l := range strings.Split(string(status), "\n") {
				name, val, _ := strings.Cut(l, ":")
				val = strings.TrimSpace(val)
				if mode == Unprivileged && strings.HasPrefix(name, "Cap") && name != "CapBnd" && strings.Trim(val, "0") != "" {
					t.Errorf("unprivileged body has %s %s", name, val)
				}
			}
			if mode == Unprivileged && os.Geteuid() == 0 {
				t.Fatal("unprivileged body runs as root")
			}

			out := filepath.Join(t.TempDir(), "made")
			cmd := IPCCmd("out="+out, "pshm:name=px-shm:size=8192:map", "psem:name=px-sem", "pmsg:name=px-q:send:notify", "exit=3")
			cmd.Stderr = os.Stderr
			if err := cmd.Run(); cmd.ProcessState.ExitCode() != 3 {
				t.Fatalf("helper: %v, want exit 3", err)
			}
			b, _ := os.ReadFile(out)
			if got := string(b); got != "pshm px-shm\npsem sem.px-sem\npmsg px-q\n" {
				t.Errorf("recorded %q", got)
			}
			posix, err := HostPosix()
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, l := range posix {
				f := strings.Fields(l)
				names = append(names, f[0]+" "+f[1]+" "+f[2])
			}
			sort.Strings(names)
			want := []string{MqueueDir + ` "px-q" file`, ShmDir + ` "px-shm" file`, ShmDir + ` "sem.px-sem" file`}
			if strings.Join(names, "\n") != strings.Join(want, "\n") {
				t.Errorf("entries %q, want %q", names, want)
			}
			if fi, err := os.Stat(ShmDir + "/px-shm"); err != nil || fi.Size() != 8192 || fi.Mode().Perm() != 0o600 {
				t.Errorf("px-shm: %v %v", fi, err)
			}
			if fi, err := os.Stat(ShmDir + "/sem.px-sem"); err != nil || fi.Size() != 32 {
				t.Errorf("sem.px-sem: %v %v", fi, err)
			}
			q, _ := os.ReadFile(MqueueDir + "/px-q")
			if !strings.HasPrefix(string(q), "QSIZE:5 ") {
				t.Errorf("px-q: %q", q)
			}

			// Opening, holding and unlinking.
			for _, steps := range [][]string{
				{"pshm:name=px-shm:open:map:hold", "psem:name=px-sem:open", "pmsg:name=px-q:open"},
				{"pshm:name=px-shm:unlink", "psem:name=px-sem:unlink", "pmsg:name=px-q:unlink"},
			} {
				if b, err := IPCCmd(steps...).CombinedOutput(); err != nil {
					t.Fatalf("%v: %v: %s", steps, err, b)
				}
			}
			if posix, _ := HostPosix(); len(posix) != 0 {
				t.Errorf("left after unlinking: %v", posix)
			}
			if b, err := IPCCmd("pshm:name=px-shm:open").CombinedOutput(); err == nil {
				t.Errorf("opening a missing object succeeded: %s", b)
			}
			// Something for Main to find if it leaked out.
			if err := os.WriteFile(ShmDir+"/px-left-"+strconv.Itoa(int(mode)), nil, 0o600); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestHostPosix: entries with their name quoted, type and inode.
func TestHostPosix(t *testing.T) {
	if !IsolateMounts(t, Root) {
		return
	}
	if err := os.WriteFile(ShmDir+"/a\nb", nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc/passwd", ShmDir+"/link"); err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	unix.Lstat(ShmDir+"/link", &st)
	got, err := HostPosix()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || !strings.HasPrefix(got[0], ShmDir+` "a\nb" file ino=`) ||
		got[1] != ShmDir+` "link" symlink ino=`+strconv.FormatUint(st.Ino, 10) {
		t.Fatalf("%q", got)
	}
}
