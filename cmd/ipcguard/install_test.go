package main_test

import (
	"archive/zip"
	"bytes"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// needTool skips when a program is missing, except under CI, where .ci/run
// installs it.
func needTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is not installed (.ci/run installs it)", name)
		}
		t.Skipf("%s is not installed", name)
	}
	return p
}

// TestMakeInstall runs make install into a scratch DESTDIR, as a packager
// would, and checks what it laid out: the binary with the Makefile's
// version, the man page rendering without a warning and documenting every
// option the binary's --help lists, the completions loading in bash, zsh
// and fish and offering those options, and the example units naming the
// installed binary.
func TestMakeInstall(t *testing.T) {
	if testing.Short() {
		t.Skip("builds with make (-short)")
	}
	mk := needTool(t, "make")
	man := needTool(t, "man")
	bash := needTool(t, "bash")
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	out, dest := t.TempDir(), t.TempDir()
	cmd := exec.Command(mk, "-C", root, "install", "DESTDIR="+dest, "PREFIX=/usr", "OUT="+out, "VERSION=v9.8.7-test")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make install: %v\n%s", err, b)
	}

	var files []string
	filepath.WalkDir(dest, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			info, _ := d.Info()
			rel, _ := filepath.Rel(dest, p)
			files = append(files, "/"+rel+" "+info.Mode().Perm().String())
		}
		return nil
	})
	sort.Strings(files)
	want := []string{
		"/usr/bin/ipcguard -rwxr-xr-x",
		"/usr/share/bash-completion/completions/ipcguard -rw-r--r--",
		"/usr/share/doc/ipcguard/examples/systemd/example-postgresql.service -rw-r--r--",
		"/usr/share/doc/ipcguard/examples/systemd/ipcguard-sweep.service -rw-r--r--",
		"/usr/share/doc/ipcguard/examples/systemd/ipcguard-sweep.timer -rw-r--r--",
		"/usr/share/fish/vendor_completions.d/ipcguard.fish -rw-r--r--",
		"/usr/share/man/man1/ipcguard.1 -rw-r--r--",
		"/usr/share/zsh/site-functions/_ipcguard -rw-r--r--",
	}
	if strings.Join(files, "\n") != strings.Join(want, "\n") {
		t.Errorf("installed:\n%s\nwant:\n%s", strings.Join(files, "\n"), strings.Join(want, "\n"))
	}
	bin := filepath.Join(dest, "usr/bin/ipcguard")
	if b, err := exec.Command(bin, "--version").CombinedOutput(); err != nil || strings.TrimSpace(string(b)) != "ipcguard version v9.8.7-test" {
		t.Errorf("ipcguard --version: %v: %q", err, b)
	}
	units, _ := filepath.Glob(filepath.Join(dest, "usr/share/doc/ipcguard/examples/systemd/*.service"))
	for _, u := range units {
		b, _ := os.ReadFile(u)
		if !strings.Contains(string(b), "=/usr/bin/ipcguard ") || strings.Contains(string(b), "/usr/local/") {
			t.Errorf("%s does not run /usr/bin/ipcguard:\n%s", u, b)
		}
	}

	// Every option the binary knows, from its own help.
	opts := map[string][]string{}
	for _, sub := range []string{"run", "ls", "rm", "sweep"} {
		b, err := exec.Command(bin, sub, "--help").CombinedOutput()
		if err != nil {
			t.Fatalf("%s --help: %v: %s", sub, err, b)
		}
		opts[sub] = regexp.MustCompile(`(?m)^\s+(--[a-z][a-z-]+)`).FindAllString(string(b), -1)
		for i := range opts[sub] {
			opts[sub][i] = strings.TrimSpace(opts[sub][i])
		}
		if len(opts[sub]) < 2 {
			t.Fatalf("%s --help lists no options:\n%s", sub, b)
		}
	}

	// The man page, as man shows it, with groff's warnings on.
	page := filepath.Join(dest, "usr/share/man/man1/ipcguard.1")
	mc := exec.Command(man, "--warnings=all", "-E", "UTF-8", "-l", page)
	mc.Env = append(os.Environ(), "MANWIDTH=100", "LC_ALL=C.UTF-8", "MANPAGER=cat", "PAGER=cat")
	var stderr bytes.Buffer
	mc.Stderr = &stderr
	text, err := mc.Output()
	if err != nil || stderr.Len() > 0 {
		t.Fatalf("man -l: %v: %s", err, stderr.Bytes())
	}
	plain := regexp.MustCompile(".\b").ReplaceAllString(string(text), "")
	for _, w := range []string{"IPCGUARD(1)", "SYNOPSIS", "EXIT STATUS", "ENVIRONMENT", "IPCGUARD_ON", "SEE ALSO", "v9.8.7-test"} {
		if !strings.Contains(plain, w) {
			t.Errorf("man page lacks %q", w)
		}
	}
	for sub, l := range opts {
		for _, o := range l {
			if !strings.Contains(plain, o) {
				t.Errorf("man page lacks %s's %s", sub, o)
			}
		}
	}

	// bash: the file loads and registers the function; -<TAB> offers
	// every option of each command.
	bc := filepath.Join(dest, "usr/share/bash-completion/completions/ipcguard")
	if b, err := exec.Command(bash, "--norc", "-c", "source "+bc+"; complete -p ipcguard").CombinedOutput(); err != nil ||
		strings.TrimSpace(string(b)) != "complete -F _ipcguard ipcguard" {
		t.Fatalf("bash: %v: %q", err, b)
	}
	complete := func(words ...string) []string {
		src := "source " + bc + `; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _ipcguard; printf '%s\n' "${COMPREPLY[@]}"`
		b, err := exec.Command(bash, append([]string{"--norc", "-c", src, "bash"}, words...)...).Output()
		if err != nil {
			t.Fatalf("completing %q: %v", words, err)
		}
		return strings.Fields(string(b))
	}
	for sub, l := range opts {
		got := strings.Join(complete("ipcguard", sub, "--"), " ") + " "
		for _, o := range l {
			if !strings.Contains(got, o+" ") {
				t.Errorf("bash: ipcguard %s --<TAB> lacks %s: %s", sub, o, got)
			}
		}
	}
	// The values offered for an option are the values the parser takes.
	state := t.TempDir()
	for _, c := range []struct{ flag, bad string }{{"--on", "sometimes"}, {"--tracker", "psychic"}, {"--types", "shm,pipe"}} {
		vals := complete("ipcguard", c.flag, "")
		if len(vals) < 2 {
			t.Errorf("bash: ipcguard %s <TAB> offers %q", c.flag, vals)
		}
		for _, v := range append(vals, c.bad) {
			cmd := exec.Command(bin, "--state-dir", state, "-q", c.flag, v, "--", "true")
			b, _ := cmd.CombinedOutput()
			rejected := strings.Contains(string(b), c.flag+" ") && strings.Contains(string(b), "want")
			if rejected != (v == c.bad) {
				t.Errorf("ipcguard %s %s: %s", c.flag, v, b)
			}
		}
	}

	if zsh, err := exec.LookPath("zsh"); err == nil {
		f := filepath.Join(dest, "usr/share/zsh/site-functions/_ipcguard")
		src := "fpath=(" + filepath.Dir(f) + " $fpath); autoload -Uz compinit && compinit -u -D && print -r -- $_comps[ipcguard]"
		if b, err := exec.Command(zsh, "-f", "-c", src).CombinedOutput(); err != nil || strings.TrimSpace(string(b)) != "_ipcguard" {
			t.Errorf("zsh: compinit does not find _ipcguard in site-functions: %v: %q", err, b)
		}
	} else if os.Getenv("CI") == "true" {
		t.Error("zsh is not installed (.ci/run installs it)")
	}
	if fish, err := exec.LookPath("fish"); err == nil {
		f := filepath.Join(dest, "usr/share/fish/vendor_completions.d/ipcguard.fish")
		b, err := exec.Command(fish, "--no-config", "-c", "source "+f+"; complete --do-complete='ipcguard --on '").CombinedOutput()
		if err != nil || !strings.Contains(string(b), "failure\t") {
			t.Errorf("fish: ipcguard --on <TAB>: %v: %q", err, b)
		}
	} else if os.Getenv("CI") == "true" {
		t.Error("fish is not installed (.ci/run installs it)")
	}
}

// TestGoInstallVersion runs what a user runs, go install
// github.com/ipcguard/ipcguard/cmd/ipcguard@VERSION, against a module proxy
// in a scratch directory that serves this source tree as v0.0.1 (the other
// modules come from the local module cache, nothing from the network):
// without the Makefile's -X main.version, --version must still say v0.0.1,
// from the build information.
func TestGoInstallVersion(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary (-short)")
	}
	goBin := needTool(t, "go")
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	const mod, ver = "github.com/ipcguard/ipcguard", "v0.0.1"
	tmp := t.TempDir()
	proxy := filepath.Join(tmp, "proxy", mod, "@v")
	if err := os.MkdirAll(proxy, 0o755); err != nil {
		t.Fatal(err)
	}
	gomod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	write := func(name, text string) {
		if err := os.WriteFile(filepath.Join(proxy, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("list", ver+"\n")
	write(ver+".info", `{"Version":"`+ver+`","Time":"2025-01-01T00:00:00Z"}`)
	write(ver+".mod", string(gomod))
	// The module zip: go.mod, go.sum and the non-test Go files, under
	// module@version/ (the layout of golang.org/x/mod/zip).
	var zb bytes.Buffer
	zw := zip.NewWriter(&zb)
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if d.IsDir() {
			if rel != "." && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata" || rel == "bin") {
				return filepath.SkipDir
			}
			return nil
		}
		source := (strings.HasSuffix(rel, ".go") && !strings.HasSuffix(rel, "_test.go")) || strings.HasSuffix(rel, ".s")
		if !d.Type().IsRegular() || !(rel == "go.mod" || rel == "go.sum" || source) {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		w, err := zw.Create(mod + "@" + ver + "/" + filepath.ToSlash(rel))
		if err != nil {
			return err
		}
		_, err = w.Write(b)
		return err
	})
	if err == nil {
		err = zw.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
	write(ver+".zip", zb.String())

	cache, err := exec.Command(goBin, "env", "GOMODCACHE").Output()
	if err != nil {
		t.Fatal(err)
	}
	gobin := filepath.Join(tmp, "gobin")
	cmd := exec.Command(goBin, "install", mod+"/cmd/ipcguard@"+ver)
	cmd.Dir = tmp
	cmd.Env = append(os.Environ(), "GOFLAGS=-modcacherw", "GOSUMDB=off", "GOBIN="+gobin,
		"GOMODCACHE="+filepath.Join(tmp, "modcache"),
		"GOPROXY=file://"+filepath.Join(tmp, "proxy")+",file://"+filepath.Join(strings.TrimSpace(string(cache)), "cache", "download"))
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go install: %v\n%s", err, b)
	}
	b, err := exec.Command(filepath.Join(gobin, "ipcguard"), "--version").CombinedOutput()
	if err != nil || string(b) != "ipcguard version "+ver+"\n" {
		t.Errorf("--version after go install @%s: %v: %q", ver, err, b)
	}
}
