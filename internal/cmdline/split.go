// Package cmdline parses the option values of ipcguard that need more than
// strconv: the --cmd line, split into words as a POSIX shell splits a
// simple command, and IPC keys as ipcs prints them. Errors are one line
// that names the option, meant for the user as they are.
package cmdline

import (
	"fmt"
	"strings"
)

// Split splits the --cmd line into words exactly as a POSIX shell
// splits a simple command (XCU 2.2 Quoting, 2.3 Token Recognition), with
// no expansion:
//
//   - blanks (space, tab) separate words;
//   - 'single quotes' keep everything up to the next quote;
//   - "double quotes" keep everything but \ before $ ` " \ and newline,
//     which it quotes ("\a" stays \a, as in sh); \ and newline vanish;
//   - an unquoted \ quotes the next character, \ and newline vanish, a
//     trailing \ stays.
//
// What only a shell can do is refused with one line that suggests
// sh -c: parameter, command and arithmetic expansion ($, `), operators and
// redirections (| & ; < > ( ) and newline), patterns (* ? and [...]), ~ at
// the start of a word, comments, variable assignments and reserved words
// in command position. The words are then the argv sh would pass.
func Split(line string) ([]string, error) {
	var (
		words  []string
		cur    strings.Builder
		inWord bool // cur holds a word, possibly empty ("")
		// Unquoted [ seen in the current word: a later unquoted ] makes
		// a bracket expression (a pattern).
		bracket bool
	)
	refuse := func(what string) ([]string, error) {
		return nil, fmt.Errorf("--cmd %q: %s needs a shell: use --cmd \"sh -c '...'\"", line, what)
	}
	end := func() {
		if inWord {
			words = append(words, cur.String())
		}
		cur.Reset()
		inWord, bracket = false, false
	}
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case c == ' ' || c == '\t':
			end()
		case c == '\\':
			inWord = true
			switch {
			case i+1 == len(line):
				cur.WriteByte('\\')
			case line[i+1] == '\n':
				i++
			default:
				i++
				cur.WriteByte(line[i])
			}
		case c == '\'':
			j := strings.IndexByte(line[i+1:], '\'')
			if j < 0 {
				return nil, fmt.Errorf("--cmd %q: unterminated single quote", line)
			}
			inWord = true
			cur.WriteString(line[i+1 : i+1+j])
			i += 1 + j
		case c == '"':
			inWord = true
			closed := false
			for i++; i < len(line); i++ {
				d := line[i]
				if d == '"' {
					closed = true
					break
				}
				switch d {
				case '$':
					if expands(line, i, true) {
						return refuse("$ (expansion)")
					}
					cur.WriteByte(d)
				case '`':
					return refuse("` (command substitution)")
				case '\\':
					if i+1 < len(line) {
						switch line[i+1] {
						case '$', '`', '"', '\\':
							i++
							cur.WriteByte(line[i])
							continue
						case '\n':
							i++
							continue
						}
					}
					cur.WriteByte(d)
				default:
					cur.WriteByte(d)
				}
			}
			if !closed {
				return nil, fmt.Errorf("--cmd %q: unterminated double quote", line)
			}
		case c == '$':
			if expands(line, i, false) {
				return refuse("$ (expansion)")
			}
			inWord = true
			cur.WriteByte(c)
		case c == '`':
			return refuse("` (command substitution)")
		case strings.IndexByte("|&;<>()", c) >= 0:
			return refuse(fmt.Sprintf("%q (an operator or redirection)", c))
		case c == '\n':
			return refuse("a newline (a command separator)")
		case c == '*' || c == '?':
			return refuse(fmt.Sprintf("%q (a pattern)", c))
		case c == '[':
			inWord, bracket = true, true
			cur.WriteByte(c)
		case c == ']' && bracket:
			return refuse("[...] (a pattern)")
		case c == '~' && !inWord:
			return refuse("~ (tilde expansion)")
		case c == '#' && !inWord:
			return refuse("# (a comment)")
		default:
			inWord = true
			cur.WriteByte(c)
		}
	}
	end()
	if len(words) == 0 {
		return nil, fmt.Errorf("--cmd: empty command")
	}
	if err := commandPosition(line, words[0]); err != nil {
		return nil, err
	}
	return words, nil
}

// expands reports whether the $ at line[i] starts an expansion ($name,
// ${...}, $(...), $1, $@ and the like, and outside double quotes bash's
// $'...' and $"..."); a $ before a blank, the end, or another character is
// literal, as in sh.
func expands(line string, i int, quoted bool) bool {
	if i+1 == len(line) {
		return false
	}
	c := line[i+1]
	if c == '\'' || c == '"' {
		return !quoted
	}
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		strings.IndexByte("{(@*#?-$!", c) >= 0
}

// reserved are the words a shell treats as syntax in command position
// (XCU 2.4), with bash's and ksh's [[ ]], function, select, time.
var reserved = map[string]bool{
	"!": true, "{": true, "}": true, "case": true, "do": true, "done": true, "elif": true, "else": true,
	"esac": true, "fi": true, "for": true, "if": true, "in": true, "then": true, "until": true, "while": true,
	"[[": true, "]]": true, "function": true, "select": true, "time": true,
}

// commandPosition refuses a first word that a shell would not run as a
// command name: a reserved word or a variable assignment. Quoting makes
// either an ordinary word, as in sh; the check looks at how the line
// begins.
func commandPosition(line, first string) error {
	raw := strings.TrimLeft(line, " \t")
	if reserved[first] && strings.HasPrefix(raw, first) {
		return fmt.Errorf("--cmd %q: %q is shell syntax there: use --cmd \"sh -c '...'\"", line, first)
	}
	if name, _, ok := strings.Cut(first, "="); ok && isName(name) && strings.HasPrefix(raw, name+"=") {
		return fmt.Errorf("--cmd %q: %s=... sets a variable, which needs a shell: use env(1), as in --cmd 'env %s=... prog', or --cmd \"sh -c '...'\"", line, name, name)
	}
	return nil
}

func isName(s string) bool {
	if s == "" || s[0] >= '0' && s[0] <= '9' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}
