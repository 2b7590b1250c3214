package clidoc

import (
	"fmt"
	"io"
	"strings"
)

// Fish writes a fish completion script. A function scans the tokens
// before the cursor as the program parses them and tells which command's
// options apply, or where COMMAND starts (for an Exec command: after "--"
// or at the first word that is not an option); from there on the
// completions are COMMAND's own (complete -C on the rest of the line).
func (s *Spec) Fish(w io.Writer) error {
	m, err := s.model()
	if err != nil {
		return err
	}
	fn := "__" + ident(m.name)
	var b strings.Builder
	fmt.Fprintf(&b, "# fish completion for %s. Generated from the command line definition; do not edit.\n\n", m.name)

	// __NAME_valued COMMAND OPTION: true when OPTION takes a value.
	fmt.Fprintf(&b, "function %s_valued\n\tswitch $argv[1]\n", fn)
	for _, c := range append([]command{m.top}, m.commands...) {
		var sp []string
		for _, f := range c.flags {
			if f.value {
				sp = append(sp, goSpellings(f)...)
			}
		}
		if len(sp) == 0 {
			continue
		}
		fmt.Fprintf(&b, "\t\tcase %s\n\t\t\tcontains -- $argv[2] %s\n\t\t\treturn\n", fishCase(c), strings.Join(sp, " "))
	}
	b.WriteString("\tend\n\treturn 1\nend\n\n")

	subs := m.commandNames()
	var execs []string
	for _, c := range m.commands {
		if c.exec {
			execs = append(execs, c.name)
			execs = append(execs, c.aliases...)
		}
	}
	execTest := "false"
	if len(execs) > 0 || m.top.exec {
		var q []string
		for _, e := range execs {
			q = append(q, shQuote(e))
		}
		if m.top.exec {
			q = append(q, "''")
		}
		execTest = "contains -- \"$sub\" " + strings.Join(q, " ")
	}
	// __NAME_state prints "command N" when the cursor is in COMMAND,
	// which starts at token N of the line (1 = the program itself), else
	// "options SUB" with the command whose options apply ('' for none).
	fmt.Fprintf(&b, `function %[1]s_state
	set -l tokens (commandline -opc)
	set -l n (count $tokens)
	set -l sub ''
	set -l i 2
	if test $n -ge 2; and contains -- $tokens[2] %[2]s
		set sub $tokens[2]
		set i 3
	end
	while test $i -le $n
		set -l word $tokens[$i]
		if %[3]s
			if test "$word" = --
				echo command (math $i + 1)
				return
			else if not string match -q -- '-*' $word
				echo command $i
				return
			end
		end
		if not string match -q -- '*=*' $word; and %[1]s_valued "$sub" $word
			set i (math $i + 2)
		else
			set i (math $i + 1)
		end
	end
	if test $i -eq (math $n + 1); and %[3]s; and not string match -q -- '-*' (commandline -ct)
		echo command $i
		return
	end
	echo options $sub
end

function %[1]s_using
	test (%[1]s_state) = "options $argv[1]"
end

function %[1]s_in_command
	string match -q 'command *' -- (%[1]s_state)
end

function %[1]s_first
	test (count (commandline -opc)) -eq 1
end

function %[1]s_complete_command
	set -l n (string split ' ' -- (%[1]s_state))[2]
	set -l tokens (commandline -opc)
	set -l line
	if test $n -le (count $tokens)
		set line (string escape -- $tokens[$n..-1])
	end
	set -l cl (string join ' ' -- $line (commandline -ct))
	complete --do-complete="$cl"
end

# The words not yet in the comma list being typed, each after it.
function %[1]s_list
	set -l head (commandline -ct | string replace -rf '(.*,)[^,]*' '$1' | string replace -r -- '^-[^=]*=' '')
	for w in $argv
		contains -- $w (string split , -- $head); or printf '%%s\n' "$head$w"
	end
end

complete -c %[4]s -f
complete -c %[4]s -n %[1]s_in_command -a '(%[1]s_complete_command)'
`, fn, strings.Join(fishQuoteAll(subs), " "), execTest, m.name)
	for _, c := range m.commands {
		for _, n := range append([]string{c.name}, c.aliases...) {
			fmt.Fprintf(&b, "complete -c %s -n %s_first -a %s -d %s\n", m.name, fn, shQuote(n), shQuote(c.usage))
		}
		if c.name == "help" && c.flags == nil {
			for _, o := range m.commands {
				fmt.Fprintf(&b, "complete -c %s -n '%s_using %s' -a %s -d %s\n", m.name, fn, c.name, shQuote(o.name), shQuote(o.usage))
			}
		}
	}
	b.WriteString("\n")
	for _, c := range append([]command{m.top}, m.commands...) {
		for _, f := range c.flags {
			var parts []string
			parts = append(parts, "complete -c "+m.name, "-n "+shQuote(fn+"_using "+c.name))
			for _, s := range f.short {
				parts = append(parts, "-s "+s)
			}
			for _, l := range f.long {
				parts = append(parts, "-l "+l)
			}
			if f.value {
				switch {
				case f.list && len(f.values) > 0:
					parts = append(parts, "-x", "-a "+shQuote(fmt.Sprintf("(%s_list %s)", fn, strings.Join(f.values, " "))))
				case len(f.values) > 0:
					parts = append(parts, "-x", "-a "+shQuote(strings.Join(f.values, " ")))
				case f.dir:
					parts = append(parts, "-x", "-a '(__fish_complete_directories)'")
				case f.file:
					parts = append(parts, "-r", "-F")
				default:
					parts = append(parts, "-x")
				}
			}
			parts = append(parts, "-d "+shQuote(f.usage))
			b.WriteString(strings.Join(parts, " ") + "\n")
		}
	}
	_, err = io.WriteString(w, b.String())
	return err
}

func fishCase(c command) string {
	if c.name == "" {
		return "''"
	}
	return strings.Join(fishQuoteAll(append([]string{c.name}, c.aliases...)), " ")
}

func fishQuoteAll(l []string) []string {
	out := make([]string, len(l))
	for i, s := range l {
		out[i] = shQuote(s)
	}
	return out
}
