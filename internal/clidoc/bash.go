package clidoc

import (
	"fmt"
	"io"
	"sort"
	"strings"
)

// Bash writes a bash completion script that defines _NAME and registers
// it with complete -F. It scans the words before the cursor the way the
// program parses them: an optional command name, then options (a value in
// the next word, or after "="); for an Exec command, "--" or the first
// word that is not an option starts COMMAND, and from there on the words
// complete as COMMAND's own (bash-completion's _command_offset when it is
// loaded; otherwise command names, then file names).
func (s *Spec) Bash(w io.Writer) error {
	m, err := s.model()
	if err != nil {
		return err
	}
	fn := "_" + ident(m.name)
	var b strings.Builder
	fmt.Fprintf(&b, "# bash completion for %s. Generated from the command line definition; do not edit.\n\n", m.name)

	// $1 = command ("" before any), $2 = an option: print how its value
	// completes ("v WORDS", "l WORDS" for a comma list, "f", "d", "s"), or
	// fail when it takes no value.
	fmt.Fprintf(&b, "%s_value() {\n\tcase $1 in\n", fn)
	groups := append([]command{m.top}, m.commands...)
	for _, c := range groups {
		var arms []string
		for _, f := range c.flags {
			if !f.value {
				continue
			}
			arms = append(arms, fmt.Sprintf("\t\t%s) echo %s ;;\n", strings.Join(goSpellings(f), "|"), shQuote(valueKind(f))))
		}
		if len(arms) == 0 {
			continue
		}
		fmt.Fprintf(&b, "\t%s)\n\t\tcase $2 in\n%s\t\t*) return 1 ;;\n\t\tesac ;;\n",
			casePattern(c, m), strings.Join(arms, ""))
	}
	b.WriteString("\t*) return 1 ;;\n\tesac\n}\n\n")

	// The options of each command, for -<TAB>.
	fmt.Fprintf(&b, "%s_options() {\n\tcase $1 in\n", fn)
	for _, c := range groups {
		var names []string
		for _, f := range c.flags {
			names = append(names, f.names()...)
		}
		if c.exec {
			names = append(names, "--")
		}
		fmt.Fprintf(&b, "\t%s) echo %s ;;\n", casePattern(c, m), shQuote(strings.Join(names, " ")))
	}
	b.WriteString("\tesac\n}\n\n")

	// Complete COMMAND starting at word $1.
	fmt.Fprintf(&b, `%[1]s_command() {
	if declare -F _command_offset >/dev/null; then
		_command_offset "$1"
	elif ((COMP_CWORD == $1)); then
		COMPREPLY=($(compgen -c -- "$cur"))
	else
		compopt -o filenames 2>/dev/null
		COMPREPLY=($(compgen -f -- "$cur"))
	fi
}

# $1 = how the value completes (see %[1]s_value), $cur = the value so far.
%[1]s_complete_value() {
	local kind=${1%%%% *} words=${1#?}
	case $kind in
	v) COMPREPLY=($(compgen -W "$words" -- "$cur")) ;;
	l)
		local head= last=$cur w left=
		[[ $cur == *,* ]] && head=${cur%%,*}, last=${cur##*,}
		for w in $words; do
			[[ ,$head == *,$w,* ]] || left+=" $w"
		done
		compopt -o nospace 2>/dev/null
		COMPREPLY=($(compgen -P "$head" -W "$left" -- "$last"))
		;;
	f | d)
		if declare -F _filedir >/dev/null; then
			if [[ $kind == d ]]; then _filedir -d; else _filedir; fi
		else
			compopt -o filenames 2>/dev/null
			if [[ $kind == d ]]; then COMPREPLY=($(compgen -d -- "$cur")); else COMPREPLY=($(compgen -f -- "$cur")); fi
		fi
		;;
	*) COMPREPLY=() ;;
	esac
}

`, fn)

	// The main function. Words come from COMP_WORDS as bash split them,
	// so "--on=x" is three words: --on, =, x.
	subs := m.commandNames()
	var execCmds []string
	for _, c := range m.commands {
		if c.exec {
			execCmds = append(execCmds, c.name)
			execCmds = append(execCmds, c.aliases...)
		}
	}
	if m.top.exec {
		execCmds = append(execCmds, "")
	}
	fmt.Fprintf(&b, `%[1]s() {
	local cur=${COMP_WORDS[COMP_CWORD]} cword=$COMP_CWORD i=1 sub= word kind
	COMPREPLY=()
	if ((cword > 1)); then
		case ${COMP_WORDS[1]} in
		%[2]s) sub=${COMP_WORDS[1]} i=2 ;;
		esac
	fi
	while ((i < cword)); do
		word=${COMP_WORDS[i]}
		if %[3]s; then
			if [[ $word == -- ]]; then
				%[1]s_command $((i + 1))
				return
			elif [[ $word != -* ]]; then
				%[1]s_command $i
				return
			fi
		fi
		if [[ ${COMP_WORDS[i + 1]-} == = ]]; then
			if ((i + 1 == cword)); then
				cur= kind=$(%[1]s_value "$sub" "$word") && %[1]s_complete_value "$kind"
				return
			elif ((i + 2 == cword)); then
				kind=$(%[1]s_value "$sub" "$word") && %[1]s_complete_value "$kind"
				return
			fi
			((i += 3))
		elif kind=$(%[1]s_value "$sub" "$word"); then
			if ((i + 1 == cword)); then
				%[1]s_complete_value "$kind"
				return
			fi
			((i += 2))
		else
			((i++))
		fi
	done
	if [[ $cur == -* ]]; then
		COMPREPLY=($(compgen -W "$(%[1]s_options "$sub")" -- "$cur"))
		return
	fi
	case $sub in
	%[4]s)
		%[1]s_command "$cword"
		((cword == 1)) && COMPREPLY+=($(compgen -W %[5]s -- "$cur"))
		;;
	help | h) COMPREPLY=($(compgen -W %[5]s -- "$cur")) ;;
	esac
}

complete -F %[1]s %[6]s
`, fn, strings.Join(subs, " | "), execTest(execCmds), execPattern(execCmds), shQuote(strings.Join(subs, " ")), m.name)
	_, err = io.WriteString(w, b.String())
	return err
}

// execTest is a bash test that is true when $sub names a command whose
// arguments are a command line.
func execTest(cmds []string) string {
	if len(cmds) == 0 {
		return "false"
	}
	var tests []string
	for _, c := range cmds {
		tests = append(tests, fmt.Sprintf("[[ $sub == %s ]]", shQuote(c)))
	}
	return strings.Join(tests, " || ")
}

func execPattern(cmds []string) string {
	if len(cmds) == 0 {
		return "'\\ never'"
	}
	var p []string
	for _, c := range cmds {
		p = append(p, shQuote(c))
	}
	return strings.Join(p, " | ")
}

// casePattern matches $1 of the helper functions: "" for the options
// before any command name, else the command's names.
func casePattern(c command, m *model) string {
	if c.name == "" {
		return "''"
	}
	return strings.Join(append([]string{c.name}, c.aliases...), " | ")
}

// goSpellings gives every way Go's flag package accepts the option:
// one or two dashes before any of its names.
func goSpellings(f flagInfo) []string {
	var out []string
	for _, n := range append(append([]string{}, f.short...), f.long...) {
		out = append(out, "-"+n, "--"+n)
	}
	sort.Strings(out)
	return out
}

func valueKind(f flagInfo) string {
	switch {
	case f.list && len(f.values) > 0:
		return "l " + strings.Join(f.values, " ")
	case len(f.values) > 0:
		return "v " + strings.Join(f.values, " ")
	case f.dir:
		return "d"
	case f.file:
		return "f"
	}
	return "s"
}

func ident(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' {
			return r
		}
		return '_'
	}, s)
}

// shQuote quotes a word for sh (and bash, zsh, fish): single quotes.
func shQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
