package cmdline

import (
	"os/exec"
	"reflect"
	"strings"
	"testing"
)

// shWords returns the words sh passes for the simple command line (after
// a command name it prepends), as printf '%s\0' prints them.
func shWords(t *testing.T, sh, line string) []string {
	t.Helper()
	out, err := exec.Command(sh, "-c", `printf '%s\0' `+line).Output()
	if err != nil {
		t.Fatalf("%s -c %q: %v", sh, line, err)
	}
	words := strings.Split(string(out), "\x00")
	return words[:len(words)-1]
}

// TestSplitCommandLikeSh: each line gives the words sh (dash, and bash
// where installed) would pass: the expectation is sh itself.
func TestSplitCommandLikeSh(t *testing.T) {
	lines := []string{
		`a b  c`,
		"\ta\t b ",
		`"a\nb|%s" x`, // scenario 29
		`"\a" "\\" "\$" "\"" "\` + "`" + `" a\b 'x\y' \\`,
		`'single  quoted' a\ b "x\"y" ''`,
		`"" '' a""b a''b`,
		`a\`,
		"a\\\nb \"c\\\nd\" 'e\\\nf'",
		`"a b"'c d'e\ f`,
		`[ -f x ] a] x]`,
		`a$ $/x "$" "a$" '$HOME' "\$HOME" \$HOME`,
		`a=b x~ a#b '~' "~" \~ \# '#'`,
		`"*" '?' \[a] '|' "&" \; \< \> \( \) '$(x)' "\` + "`" + `x\` + "`" + `"`,
		`"{" if then \! '!'`,
		`é ünï "ç ö" 'ß'`,
		`--flag=value -x= =`,
		"'a\nb' \"c\nd\"",
	}
	shells := []string{"sh"}
	if _, err := exec.LookPath("bash"); err == nil {
		shells = append(shells, "bash")
	}
	for _, line := range lines {
		got, err := Split("printf " + line)
		if err != nil {
			t.Errorf("Split(%q): %v", line, err)
			continue
		}
		for _, sh := range shells {
			if want := shWords(t, sh, line); !reflect.DeepEqual(got[1:], want) {
				t.Errorf("Split(%q) = %q, %s passes %q", line, got[1:], sh, want)
			}
		}
	}
}

// TestSplitCommandRefuses: what only a shell can do is a usage error of
// one line that points to sh -c.
func TestSplitCommandRefuses(t *testing.T) {
	for _, line := range []string{
		`echo $HOME`, `echo ${x}`, `echo $(date)`, `echo "$x"`, "echo `date`", "echo \"`date`\"", `echo $1`,
		`echo $@`, `echo $?`, `echo $'x'`, `echo "${x}"`, `echo $((1+2))`,
		`a | b`, `a; b`, `a && b`, `a & `, `a > f`, `a < f`, `a 2>&1`, `(a)`, "a\nb",
		`ls *.c`, `ls ?`, `ls [ab]`, `ls x[0-9]y`,
		`ls ~`, `ls ~/x`, `a # comment`, `# only`,
		`X=1 prog`, `_y=2 prog`, `if true`, `! prog`, `{ prog`, `while x`, `[[ -f x ]]`,
	} {
		_, err := Split(line)
		if err == nil {
			t.Errorf("Split(%q) accepted", line)
			continue
		}
		if msg := err.Error(); strings.Contains(msg, "\n") || !strings.Contains(msg, "sh -c") {
			t.Errorf("Split(%q): %q, want one line suggesting sh -c", line, msg)
		}
	}
	for _, line := range []string{`prog "unbalanced`, `prog 'x`, ``, `   `, `"prog`} {
		if _, err := Split(line); err == nil {
			t.Errorf("Split(%q) accepted", line)
		}
	}
	// Quoted, the same characters are ordinary words.
	for line, want := range map[string][]string{
		`'X=1' prog`: {"X=1", "prog"},
		`\if x`:      {"if", "x"},
		`"!" x`:      {"!", "x"},
		`env X=1 p`:  {"env", "X=1", "p"},
		`[ -f x ]`:   {"[", "-f", "x", "]"},
	} {
		if got, err := Split(line); err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("Split(%q) = %q, %v, want %q", line, got, err, want)
		}
	}
}

func TestSplitCommand(t *testing.T) {
	got, err := Split(`prog -a "two words" 'x y' z\ w`)
	if err != nil || !reflect.DeepEqual(got, []string{"prog", "-a", "two words", "x y", "z w"}) {
		t.Fatalf("Split = %q, %v", got, err)
	}
	for _, bad := range []string{`prog "unbalanced`, `prog 'x`, ``, `   `} {
		if _, err := Split(bad); err == nil {
			t.Errorf("Split(%q) accepted", bad)
		}
	}
}
