package clidoc

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/urfave/cli/v2"
)

// testSpec is a small wrapper program shaped like ipcguard: a default
// command "exec" that takes a command line, and two others.
func testSpec() *Spec {
	execFlags := []cli.Flag{
		&cli.StringFlag{Name: "mode", Value: "soft", EnvVars: []string{"W_MODE"}, Usage: "how: soft, hard"},
		&cli.StringFlag{Name: "kinds", Value: "a,b", Usage: "kinds to touch"},
		&cli.StringFlag{Name: "log", Aliases: []string{"l"}, Usage: "write a log to `FILE`"},
		&cli.StringFlag{Name: "dir", Usage: "where state lives"},
		&cli.StringFlag{Name: "line", Aliases: []string{"c"}, Usage: "the command as one string"},
		&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, EnvVars: []string{"W_QUIET"}, Usage: "say nothing"},
		&cli.DurationFlag{Name: "wait", Value: 5 * time.Second, Usage: "time to wait"},
		&cli.StringSliceFlag{Name: "keep", Usage: "keep this (repeatable)"},
	}
	app := &cli.App{
		Name:      "wrap",
		Usage:     "run a command — carefully",
		UsageText: "wrap [options] [--] COMMAND [ARGS...]\nwrap list",
		Version:   "1.0",
		Description: `wrap runs COMMAND.
.A line that starts with a dot, a back\slash, and -- options.

Exit status:
  0    fine
  125  wrap failed

Example:
  wrap -- make test`,
		Commands: []*cli.Command{
			{Name: "exec", Usage: "run COMMAND (the default)", UsageText: "wrap [exec] [options] [--] COMMAND", Flags: execFlags},
			{Name: "list", Aliases: []string{"ls"}, Usage: "list things", Description: "Lists things.",
				Flags: []cli.Flag{&cli.BoolFlag{Name: "json", Usage: "print JSON"},
					&cli.StringFlag{Name: "kinds", Usage: "kinds to list"}}},
			{Name: "secret", Hidden: true},
		},
	}
	return &Spec{App: app, Default: "exec", Exec: []string{"exec"},
		Values: map[string][]string{"mode": {"soft", "hard"}, "kinds": {"a", "b", "c"}},
		Lists:  []string{"kinds"}, Dirs: []string{"dir"}, Version: "1.0", Date: "2025-02-03",
		Sections: []Section{{Title: "See also", Text: "ipcs(1)"}}}
}

// needTool skips when a program is missing, except under CI where the
// CI script installs it.
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

func generate(t *testing.T, s *Spec, f func(*Spec, io.Writer) error) string {
	t.Helper()
	var b bytes.Buffer
	if err := f(s, &b); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func writeTemp(t *testing.T, name, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestValidate(t *testing.T) {
	if err := testSpec().Validate(); err != nil {
		t.Fatal(err)
	}
	for name, spoil := range map[string]func(*Spec){
		"no app":          func(s *Spec) { s.App = nil },
		"unknown default": func(s *Spec) { s.Default = "run" },
		"unknown exec":    func(s *Spec) { s.Exec = []string{"run"} },
		"unknown value":   func(s *Spec) { s.Values["on"] = []string{"x"} },
		"unknown list":    func(s *Spec) { s.Lists = []string{"types"} },
		"unknown dir":     func(s *Spec) { s.Dirs = []string{"state"} },
	} {
		s := testSpec()
		spoil(s)
		if err := s.Validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
		if err := s.Bash(io.Discard); err == nil {
			t.Errorf("%s: Bash wrote a script", name)
		}
	}
}

func TestParseDate(t *testing.T) {
	for in, want := range map[string]string{"": "", "2024-05-06": "2024-05-06", "1700000000": "2023-11-14"} {
		if got, err := ParseDate(in); err != nil || got != want {
			t.Errorf("ParseDate(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"yesterday", "2024-13-01", "17e8"} {
		if _, err := ParseDate(bad); err == nil {
			t.Errorf("ParseDate(%q) accepted", bad)
		}
	}
}

func TestEsc(t *testing.T) {
	for in, want := range map[string]string{
		"--on failure":   `\-\-on failure`,
		"non-zero":       "non-zero",
		".starts":        `\&.starts`,
		"'quote":         `\&'quote`,
		`a\b`:            `a\eb`,
		"x — y":          `x \[u2014] y`,
		"(-c, --cmd)":    `(\-c, \-\-cmd)`,
		"key=-1":         `key=\-1`,
		"20-80 ms, -- x": `20-80 ms, \-\- x`,
	} {
		if got := esc(in); got != want {
			t.Errorf("esc(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestManRenders renders the page with man -l, as a user would read it,
// with groff's warnings on: the page must give none, and must hold every
// section, option, environment variable and command.
func TestManRenders(t *testing.T) {
	man := needTool(t, "man")
	page := generate(t, testSpec(), (*Spec).Man)
	path := writeTemp(t, "wrap.1", page)
	cmd := exec.Command(man, "--warnings=all", "-E", "UTF-8", "-l", path)
	cmd.Env = append(os.Environ(), "MANWIDTH=100", "MAN_KEEP_FORMATTING=", "LC_ALL=C.UTF-8", "MANPAGER=cat", "PAGER=cat")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil || stderr.Len() > 0 {
		t.Fatalf("man -l: %v\n%s\n%s", err, stderr.String(), page)
	}
	text := string(out)
	// Plain text: drop overstriking, if any.
	for strings.Contains(text, "\b") {
		i := strings.Index(text, "\b")
		text = text[:i-1] + text[i+1:]
	}
	for _, want := range []string{
		"WRAP(1)", "NAME", "wrap - run a command — carefully", "SYNOPSIS", "wrap [options] [--] COMMAND [ARGS...]",
		"DESCRIPTION", ".A line that starts with a dot, a back\\slash, and -- options.",
		"OPTIONS", "--mode soft|hard", "Default: soft.", "--kinds LIST", "Values: a, b, c.",
		"-l, --log FILE", "Write a log to FILE.", "--dir DIR", "-q, --quiet", "--wait DURATION", "Default: 5s.",
		"--keep VALUE", "-v, --version", "COMMANDS", "list, ls", "Lists things.", "--json",
		"EXIT STATUS", "125  wrap failed", "ENVIRONMENT", "W_MODE", "As --mode.", "W_QUIET",
		"EXAMPLE", "wrap -- make test", "SEE ALSO", "ipcs(1)", "1.0", "2025-02-03",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("man page lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "secret") {
		t.Errorf("man page shows the hidden command")
	}
	// The sections come in the order of man-pages(7).
	last := -1
	for _, s := range []string{"\nNAME", "\nSYNOPSIS", "\nDESCRIPTION", "\nOPTIONS", "\nCOMMANDS", "\nEXIT STATUS",
		"\nENVIRONMENT", "\nEXAMPLE", "\nSEE ALSO"} {
		i := strings.Index(text, s)
		if i < last {
			t.Errorf("section %q out of order", s[1:])
		}
		last = i
	}
}

// bashComplete runs the generated completion function the way bash does:
// COMP_WORDS as bash splits the line (with "=" a word of its own),
// COMP_CWORD on the last word. With bashCompletion, the bash-completion
// library is loaded first, as in an interactive shell.
func bashComplete(t *testing.T, bash, script string, bashCompletion bool, words ...string) []string {
	t.Helper()
	var src strings.Builder
	if bashCompletion {
		src.WriteString("source /usr/share/bash-completion/bash_completion\n")
	}
	src.WriteString("source " + script + "\n")
	src.WriteString("complete -W '--one --two alpha' fakecmd\n")
	src.WriteString(`COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}` + "\n")
	src.WriteString("_wrap\nprintf '%s\\n' \"${COMPREPLY[@]}\"\n")
	cmd := exec.Command(bash, append([]string{"--norc", "--noprofile", "-c", src.String(), "bash"}, words...)...)
	dir := t.TempDir()
	for _, f := range []string{"zz-file", "zz-dir/"} {
		if strings.HasSuffix(f, "/") {
			os.Mkdir(filepath.Join(dir, f), 0o755)
		} else {
			os.WriteFile(filepath.Join(dir, f), nil, 0o644)
		}
	}
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "PATH=/usr/bin:/bin")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("bash %q: %v", words, err)
	}
	var got []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if l != "" {
			got = append(got, l)
		}
	}
	return got
}

type compCase struct {
	words       []string // the line as words, the last one being completed
	want, never []string
	exact       bool // want is the whole answer
}

// completionCases hold for bash and fish alike (fish gets the line
// joined with spaces and "=" joined without).
var completionCases = []compCase{
	{words: []string{"wrap", "--mo"}, want: []string{"--mode"}, exact: true},
	{words: []string{"wrap", "--mode", ""}, want: []string{"hard", "soft"}, exact: true},
	{words: []string{"wrap", "--mode", "=", "h"}, want: []string{"hard"}, exact: true},
	{words: []string{"wrap", "--kinds", "a,"}, want: []string{"a,b", "a,c"}, exact: true},
	{words: []string{"wrap", "-"}, want: []string{"--mode", "--kinds", "-l", "--log", "-q", "--version", "--help"}, never: []string{"--json"}},
	{words: []string{"wrap", ""}, want: []string{"exec", "list", "ls", "help", "ls", "echo"}, never: []string{"secret"}},
	{words: []string{"wrap", "-q", "ech"}, want: []string{"echo"}, never: []string{"--mode"}},
	{words: []string{"wrap", "--mode", "hard", "ech"}, want: []string{"echo"}},
	{words: []string{"wrap", "--", "--mo"}, never: []string{"--mode"}},
	{words: []string{"wrap", "--log", "zz"}, want: []string{"zz-file"}},
	{words: []string{"wrap", "list", "-"}, want: []string{"--json", "--kinds"}, never: []string{"--mode", "--", "--version"}},
	{words: []string{"wrap", "list", ""}, never: []string{"echo", "zz-file"}},
	{words: []string{"wrap", "help", ""}, want: []string{"exec", "list"}, never: []string{"echo"}},
}

// With bash-completion loaded, COMMAND's words complete with COMMAND's
// own completion.
var commandCases = []compCase{
	{words: []string{"wrap", "--", "fakecmd", "--o"}, want: []string{"--one"}, exact: true},
	{words: []string{"wrap", "-q", "fakecmd", "al"}, want: []string{"alpha"}, exact: true},
	{words: []string{"wrap", "exec", "--mode", "=", "soft", "fakecmd", "--t"}, want: []string{"--two"}, exact: true},
	{words: []string{"wrap", "-c", "x", "fakecmd", "--mode", ""}, want: []string{"--one", "--two", "alpha"}, exact: true},
}

func checkCase(t *testing.T, shell string, c compCase, got []string) {
	t.Helper()
	have := map[string]bool{}
	for _, g := range got {
		have[g] = true
	}
	for _, w := range c.want {
		if !have[w] {
			t.Errorf("%s: %q: %q missing from %q", shell, c.words, w, got)
		}
	}
	for _, n := range c.never {
		if have[n] {
			t.Errorf("%s: %q: %q offered (%q)", shell, c.words, n, got)
		}
	}
	if c.exact && len(have) != len(uniq(c.want)) {
		t.Errorf("%s: %q: got %q, want exactly %q", shell, c.words, got, c.want)
	}
}

func uniq(l []string) map[string]bool {
	m := map[string]bool{}
	for _, s := range l {
		m[s] = true
	}
	return m
}

func TestBashCompletion(t *testing.T) {
	bash := needTool(t, "bash")
	script := writeTemp(t, "wrap.bash", generate(t, testSpec(), (*Spec).Bash))
	out, err := exec.Command(bash, "--norc", "-c", "source "+script+" && complete -p wrap").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "complete -F _wrap wrap" {
		t.Fatalf("loading: %v: %s", err, out)
	}
	withLib := true
	if _, err := os.Stat("/usr/share/bash-completion/bash_completion"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("bash-completion is not installed (.ci/run installs it)")
		}
		withLib = false
	}
	for _, lib := range []bool{false, true} {
		if lib && !withLib {
			t.Log("bash-completion not installed: completing COMMAND's words through it is not checked")
			continue
		}
		for _, c := range completionCases {
			checkCase(t, map[bool]string{false: "bash", true: "bash+bash-completion"}[lib], c,
				bashComplete(t, bash, script, lib, c.words...))
		}
	}
	if withLib {
		for _, c := range commandCases {
			checkCase(t, "bash+bash-completion", c, bashComplete(t, bash, script, true, c.words...))
		}
	}
}

func TestFishCompletion(t *testing.T) {
	fish := needTool(t, "fish")
	script := writeTemp(t, "wrap.fish", generate(t, testSpec(), (*Spec).Fish))
	if out, err := exec.Command(fish, "--no-execute", script).CombinedOutput(); err != nil {
		t.Fatalf("fish -n: %v: %s", err, out)
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "zz-file"), nil, 0o644)
	for _, c := range append(append([]compCase{}, completionCases...), commandCases...) {
		line := strings.ReplaceAll(strings.Join(c.words, " "), " = ", "=")
		src := "source " + script + "; complete -c fakecmd -f -a '--one --two alpha'; complete --do-complete=" + shQuote(line)
		cmd := exec.Command(fish, "--no-config", "-c", src)
		cmd.Dir = dir
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("fish %q: %v", line, err)
		}
		var got []string
		for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			if l == "" {
				continue
			}
			w, _, _ := strings.Cut(l, "\t")
			// fish gives "--mode=hard" for "--mode=h"; the value is what counts.
			last := line[strings.LastIndex(line, " ")+1:]
			if i := strings.Index(last, "="); i >= 0 {
				w = strings.TrimPrefix(w, last[:i+1])
			}
			got = append(got, w)
		}
		checkCase(t, "fish", c, got)
	}
}

// TestZshLoads checks the zsh function: syntax, and that compinit
// registers it for the program when it is sourced.
func TestZshLoads(t *testing.T) {
	zsh := needTool(t, "zsh")
	script := writeTemp(t, "_wrap", generate(t, testSpec(), (*Spec).Zsh))
	if out, err := exec.Command(zsh, "-n", script).CombinedOutput(); err != nil {
		t.Fatalf("zsh -n: %v: %s", err, out)
	}
	src := "autoload -Uz compinit && compinit -u -D && source " + script + " && print -r -- $_comps[wrap]"
	out, err := exec.Command(zsh, "-f", "-c", src).CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "_wrap" {
		t.Fatalf("zsh: %v: %q", err, out)
	}
}
