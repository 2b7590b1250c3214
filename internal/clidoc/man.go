package clidoc

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"unicode"
)

// sectionOrder is the order of man-pages(7); sections it does not name
// come after DESCRIPTION and OPTIONS, in the order they were given.
var sectionOrder = []string{"NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "COMMANDS", "EXIT STATUS",
	"RETURN VALUE", "ENVIRONMENT", "FILES", "NOTES", "BUGS", "EXAMPLE", "EXAMPLES", "SEE ALSO"}

type manSection struct{ title, body string }

// Man writes the application's man page, section 1, in roff with the
// man(7) macros: NAME and SYNOPSIS from the application's Usage and
// UsageText; DESCRIPTION from its Description, where a paragraph made of
// a short line ending in ":" and indented lines ("Exit status:",
// "Example:") becomes a section of its own; OPTIONS from the flags valid
// before a command name; COMMANDS with each command's usage, description
// and flags; ENVIRONMENT from the flags' environment variables; then
// Spec.Sections.
func (s *Spec) Man(w io.Writer) error {
	m, err := s.model()
	if err != nil {
		return err
	}
	var b strings.Builder
	title := strings.ToUpper(m.name)
	fmt.Fprintf(&b, ".TH %s 1 %s %s \"User Commands\"\n", title, quoteArg(s.Date), quoteArg(strings.TrimSpace(m.name+" "+s.Version)))
	b.WriteString(".\\\" Generated from the command line definition; do not edit.\n.nh\n")

	var secs []manSection
	secs = append(secs, manSection{"NAME", esc(m.name) + " \\- " + esc(s.App.Usage) + "\n"})

	var syn strings.Builder
	syn.WriteString(".nf\n")
	usage := s.App.UsageText
	if usage == "" {
		usage = m.name + " [options] command [arguments...]"
	}
	for _, l := range strings.Split(strings.TrimSpace(usage), "\n") {
		syn.WriteString(synopsisLine(m.name, l))
	}
	syn.WriteString(".fi\n")
	secs = append(secs, manSection{"SYNOPSIS", syn.String()})

	desc, extra := splitSections(s.App.Description)
	secs = append(secs, manSection{"DESCRIPTION", desc})

	var opts strings.Builder
	if m.def != nil {
		fmt.Fprintf(&opts, "Options of the %s command, which also stand before it when no command is named:\n", bold(m.def.name))
	}
	manFlags(&opts, m.top.flags)
	secs = append(secs, manSection{"OPTIONS", opts.String()})

	var cmds strings.Builder
	for _, c := range m.commands {
		names := c.name
		if len(c.aliases) > 0 {
			names += ", " + strings.Join(c.aliases, ", ")
		}
		fmt.Fprintf(&cmds, ".SS %s\n", quoteArg(names))
		if c.usage != "" {
			cmds.WriteString(esc(sentence(c.usage)) + "\n")
		}
		if c.usageText != "" {
			cmds.WriteString(".PP\n.nf\n")
			for _, l := range strings.Split(strings.TrimSpace(c.usageText), "\n") {
				cmds.WriteString(synopsisLine(m.name, l))
			}
			cmds.WriteString(".fi\n")
		}
		if c.description != "" {
			d, more := splitSections(c.description)
			cmds.WriteString(".PP\n" + d)
			for _, x := range more {
				cmds.WriteString(".PP\n" + bold(x.title) + "\n" + x.body)
			}
		}
		switch {
		case m.def != nil && c.name == m.def.name:
			cmds.WriteString(".PP\nIts options are under OPTIONS.\n")
		case len(c.flags) > 0:
			cmds.WriteString(".PP\nOptions:\n")
			manFlags(&cmds, c.flags)
		}
	}
	secs = append(secs, manSection{"COMMANDS", cmds.String()})

	if env := manEnv(m); env != "" {
		secs = append(secs, manSection{"ENVIRONMENT", env})
	}
	secs = append(secs, extra...)
	for _, x := range s.Sections {
		body, more := splitSections(x.Text)
		secs = append(secs, manSection{strings.ToUpper(x.Title), body})
		secs = append(secs, more...)
	}
	sort.SliceStable(secs, func(i, j int) bool { return rank(secs[i].title) < rank(secs[j].title) })
	for _, x := range secs {
		fmt.Fprintf(&b, ".SH %s\n%s", quoteArg(x.title), x.body)
	}
	_, err = io.WriteString(w, b.String())
	return err
}

func rank(title string) int {
	for i, t := range sectionOrder {
		if t == title {
			return i
		}
	}
	return 4 // after OPTIONS, before COMMANDS
}

// synopsisLine sets the program name in bold and the rest as it is.
func synopsisLine(name, l string) string {
	l = strings.TrimSpace(l)
	if rest, ok := strings.CutPrefix(l, name); ok {
		return bold(name) + esc(rest) + "\n"
	}
	return esc(l) + "\n"
}

func manFlags(b *strings.Builder, fs []flagInfo) {
	for _, f := range fs {
		b.WriteString(".TP\n")
		var names []string
		for _, n := range f.names() {
			names = append(names, bold(n))
		}
		b.WriteString(strings.Join(names, ", "))
		if f.value {
			b.WriteString(" " + italic(f.placeholder))
		}
		b.WriteString("\n")
		b.WriteString(esc(sentence(f.usage)))
		if f.def != "" && f.def != "false" {
			b.WriteString(" Default: " + italic(f.def) + ".")
		}
		if len(f.values) > 0 && !strings.Contains(f.placeholder, "|") {
			var vs []string
			for _, v := range f.values {
				vs = append(vs, bold(v))
			}
			b.WriteString(" Values: " + strings.Join(vs, ", ") + ".")
		}
		b.WriteString("\n")
	}
}

// manEnv lists the environment variables the flags read, each with the
// flag it sets.
func manEnv(m *model) string {
	byVar := map[string][]string{}
	add := func(fs []flagInfo, where string) {
		for _, f := range fs {
			for _, e := range f.env {
				n := f.names()
				spell := n[len(n)-1]
				if where != "" {
					spell = where + " " + spell
				}
				if !contains(byVar[e], spell) {
					byVar[e] = append(byVar[e], spell)
				}
			}
		}
	}
	add(m.top.flags, "")
	for _, c := range m.commands {
		if m.def != nil && c.name == m.def.name {
			continue
		}
		add(c.flags, c.name)
	}
	if len(byVar) == 0 {
		return ""
	}
	vars := make([]string, 0, len(byVar))
	for v := range byVar {
		vars = append(vars, v)
	}
	sort.Strings(vars)
	var b strings.Builder
	b.WriteString("Each variable gives the value of an option when the option is not on the command line " +
		"(for a switch, a true value such as \\fB1\\fR or \\fBtrue\\fR turns it on).\n")
	for _, v := range vars {
		fmt.Fprintf(&b, ".TP\n%s\n", bold(v))
		var spells []string
		for _, s := range byVar[v] {
			spells = append(spells, bold(s))
		}
		fmt.Fprintf(&b, "As %s.\n", strings.Join(spells, ", "))
	}
	return b.String()
}

// splitSections turns plain help text into roff: paragraphs at blank
// lines, indented lines as literal blocks, and a paragraph that is a
// heading ("Exit status:") with indented lines under it into a section of
// its own, returned apart.
func splitSections(text string) (string, []manSection) {
	var body strings.Builder
	var secs []manSection
	first := true
	for _, para := range paragraphs(text) {
		if title, ok := heading(para); ok {
			secs = append(secs, manSection{strings.ToUpper(title), roffParagraph(para[1:])})
			continue
		}
		if !first {
			body.WriteString(".PP\n")
		}
		first = false
		body.WriteString(roffParagraph(para))
	}
	return body.String(), secs
}

func paragraphs(text string) [][]string {
	var out [][]string
	var cur []string
	for _, l := range strings.Split(strings.TrimRight(text, "\n"), "\n") {
		if strings.TrimSpace(l) == "" {
			if cur != nil {
				out = append(out, cur)
				cur = nil
			}
			continue
		}
		cur = append(cur, strings.TrimRight(l, " \t"))
	}
	if cur != nil {
		out = append(out, cur)
	}
	return out
}

func indented(l string) bool { return l != "" && (l[0] == ' ' || l[0] == '\t') }

// heading recognises "Title:" followed by indented lines only.
func heading(para []string) (string, bool) {
	if len(para) < 2 || indented(para[0]) || !strings.HasSuffix(para[0], ":") || len(strings.Fields(para[0])) > 4 {
		return "", false
	}
	for _, l := range para[1:] {
		if !indented(l) {
			return "", false
		}
	}
	return strings.TrimSuffix(para[0], ":"), true
}

// roffParagraph sets running lines as text and indented ones as literal
// lines, indented, kept as they are.
func roffParagraph(lines []string) string {
	var b strings.Builder
	for i := 0; i < len(lines); {
		if !indented(lines[i]) {
			b.WriteString(esc(lines[i]) + "\n")
			i++
			continue
		}
		b.WriteString(".RS 4\n.nf\n")
		for ; i < len(lines) && indented(lines[i]); i++ {
			b.WriteString(esc(strings.TrimSpace(lines[i])) + "\n")
		}
		b.WriteString(".fi\n.RE\n")
	}
	return b.String()
}

// sentence gives a usage text a capital and a full stop.
func sentence(s string) string {
	s = strings.TrimSpace(s)
	if s == "" {
		return s
	}
	r := []rune(s)
	r[0] = unicode.ToUpper(r[0])
	s = string(r)
	if !strings.HasSuffix(s, ".") {
		s += "."
	}
	return s
}

func bold(s string) string   { return `\fB` + esc(s) + `\fR` }
func italic(s string) string { return `\fI` + esc(s) + `\fR` }

// quoteArg quotes a macro argument.
func quoteArg(s string) string {
	return `"` + strings.ReplaceAll(esc(s), `"`, `\(dq`) + `"`
}

// esc escapes text for roff: backslashes, a control character at the
// start of a line, dashes that begin a word (options: \-\-on), and every
// character outside ASCII as \[uXXXX].
func esc(s string) string {
	var b strings.Builder
	atWord := true // at the start of a word, or inside its leading dashes
	for i, r := range s {
		switch {
		case r == '\\':
			b.WriteString(`\e`)
		case r == '-' && atWord:
			b.WriteString(`\-`)
			continue
		case (r == '.' || r == '\'') && i == 0:
			b.WriteString(`\&` + string(r))
		case r > unicode.MaxASCII:
			fmt.Fprintf(&b, `\[u%04X]`, r)
		default:
			b.WriteRune(r)
		}
		atWord = r == ' ' || r == '\t' || r == '(' || r == '[' || r == '|' || r == ',' || r == '='
	}
	return b.String()
}
