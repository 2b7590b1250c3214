package clidoc

import (
	"fmt"
	"io"
	"strings"
)

// Zsh writes a zsh completion function (#compdef NAME, for a directory of
// $fpath, or to be sourced after compinit). Options are described with
// _arguments -S, so "--" ends them; for an Exec command the first word
// that is not an option is COMMAND and the rest complete with _normal,
// as zsh's own completions of nice and env do.
func (s *Spec) Zsh(w io.Writer) error {
	m, err := s.model()
	if err != nil {
		return err
	}
	fn := "_" + ident(m.name)
	var b strings.Builder
	fmt.Fprintf(&b, "#compdef %s\n# zsh completion for %s. Generated from the command line definition; do not edit.\n\n", m.name, m.name)

	var subs []string
	for _, c := range m.commands {
		for _, n := range append([]string{c.name}, c.aliases...) {
			subs = append(subs, zshQuote(strings.ReplaceAll(n, ":", `\:`)+":"+c.usage))
		}
	}
	fmt.Fprintf(&b, "%s_commands() {\n\tlocal -a cmds=(\n", fn)
	for _, s := range subs {
		fmt.Fprintf(&b, "\t\t%s\n", s)
	}
	fmt.Fprintf(&b, "\t)\n\t_describe -t commands '%s command' cmds\n}\n\n", m.name)

	if m.top.exec {
		fmt.Fprintf(&b, "%s_first() {\n\t_alternative 'commands:%s command:%s_commands' 'programs:command:_command_names -e'\n}\n\n", fn, m.name, fn)
	}

	fmt.Fprintf(&b, "%s() {\n\tlocal ret=1\n", fn)
	b.WriteString("\tif ((CURRENT > 2)); then\n\t\tcase ${words[2]} in\n")
	for _, c := range m.commands {
		fmt.Fprintf(&b, "\t\t%s)\n\t\t\tshift words\n\t\t\t((CURRENT--))\n", strings.Join(append([]string{c.name}, c.aliases...), " | "))
		switch {
		case c.name == "help" && c.flags == nil:
			fmt.Fprintf(&b, "\t\t\t_arguments '1: :%s_commands' && ret=0\n", fn)
		default:
			b.WriteString("\t\t\t_arguments -S")
			if c.exec {
				b.WriteString(" -A '-*'")
			}
			b.WriteString(" : \\\n")
			for _, f := range c.flags {
				for _, spec := range zshFlag(f) {
					fmt.Fprintf(&b, "\t\t\t\t%s \\\n", spec)
				}
			}
			if c.exec {
				b.WriteString("\t\t\t\t'(-)1:command:_command_names -e' \\\n\t\t\t\t'*::arguments:_normal' \\\n")
			}
			b.WriteString("\t\t\t\t&& ret=0\n")
		}
		b.WriteString("\t\t\treturn ret\n\t\t\t;;\n")
	}
	b.WriteString("\t\tesac\n\tfi\n")
	b.WriteString("\t_arguments -S")
	if m.top.exec {
		b.WriteString(" -A '-*'")
	}
	b.WriteString(" : \\\n")
	for _, f := range m.top.flags {
		for _, spec := range zshFlag(f) {
			fmt.Fprintf(&b, "\t\t%s \\\n", spec)
		}
	}
	if m.top.exec {
		fmt.Fprintf(&b, "\t\t'(-)1: :%s_first' \\\n\t\t'*::arguments:_normal' \\\n", fn)
	} else {
		fmt.Fprintf(&b, "\t\t'1: :%s_commands' \\\n", fn)
	}
	b.WriteString("\t\t&& ret=0\n\treturn ret\n}\n\n")
	fmt.Fprintf(&b, "if [[ $funcstack[1] == %s ]]; then\n\t%s \"$@\"\nelse\n\tcompdef %s %s\nfi\n", fn, fn, fn, m.name)
	_, err = io.WriteString(w, b.String())
	return err
}

// zshFlag gives the _arguments specs of one option, one per spelling,
// each excluding the others ("(-c --cmd)--cmd=[...]:LINE: ").
func zshFlag(f flagInfo) []string {
	names := f.names()
	excl := ""
	if !f.repeat {
		excl = "(" + strings.Join(names, " ") + ")"
	}
	if len(f.long) > 0 && f.long[0] == "help" || len(f.long) > 0 && f.long[0] == "version" {
		excl = "(- *)" // nothing else after --help
	}
	rep := ""
	if f.repeat {
		rep = "*"
	}
	desc := "[" + zshEsc(f.usage) + "]"
	arg := ""
	if f.value {
		action := " "
		switch {
		case f.list && len(f.values) > 0:
			action = "_sequence compadd - " + strings.Join(f.values, " ")
		case len(f.values) > 0:
			action = "(" + strings.Join(f.values, " ") + ")"
		case f.dir:
			action = "_files -/"
		case f.file:
			action = "_files"
		}
		arg = ":" + zshEsc(strings.ToLower(f.placeholder)) + ":" + action
	}
	var out []string
	for _, n := range names {
		eq := ""
		if f.value {
			eq = "="
		}
		out = append(out, zshQuote(excl+rep+n+eq+desc+arg))
	}
	return out
}

// zshEsc escapes what _arguments treats specially in a description.
func zshEsc(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `[`, `\[`, `]`, `\]`, `:`, `\:`)
	return r.Replace(s)
}

func zshQuote(s string) string { return shQuote(s) }
