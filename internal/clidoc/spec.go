// Package clidoc writes a man page (roff, man(7) macros) and shell
// completion scripts (bash, zsh, fish) from a urfave/cli/v2 application
// definition, so that the documentation and the completions are generated
// from the same flags, commands and help texts as the program itself.
//
// It knows one thing urfave/cli does not model: a wrapper's command line.
// A command listed in Spec.Exec takes COMMAND [ARGS...] after its options
// (after "--", or at the first word that is not an option); from there on
// every word belongs to COMMAND and completes as COMMAND's own.
package clidoc

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
)

// Spec is the application plus what the generators need beyond it.
type Spec struct {
	App *cli.App
	// Default is the command run when the first argument names no command
	// ("run" for "ipcguard -- make"); its flags are also offered there.
	Default string
	// Exec names the commands whose arguments are COMMAND [ARGS...].
	Exec []string
	// Values lists the words a flag's value can be, by flag name.
	Values map[string][]string
	// Lists names flags whose value is a comma-separated list of Values.
	Lists []string
	// Dirs names flags whose value is a directory. A flag whose usage
	// has the placeholder `FILE`, or with TakesFile set, takes a file.
	Dirs []string
	// Version and Date go in the man page's title line (Date as
	// YYYY-MM-DD; empty leaves it out).
	Version, Date string
	// Sections are extra man page sections, placed after EXIT STATUS
	// (ENVIRONMENT, FILES, SEE ALSO...), as plain text like Description.
	Sections []Section
}

// Section is a man page section: a title in capitals and plain text.
type Section struct{ Title, Text string }

// flagInfo is one flag as the generators see it.
type flagInfo struct {
	long, short []string // names without dashes: long (2+ chars), short (1 char)
	value       bool     // takes a value
	placeholder string   // VALUE, FILE, DURATION...
	usage       string   // with the placeholder's backquotes removed
	def         string   // default value, "" if none worth showing
	env         []string
	values      []string // the words the value can be
	list        bool     // comma-separated list of values
	file, dir   bool
	repeat      bool
}

// names gives every spelling of the flag with its dashes: -c, --cmd.
func (f flagInfo) names() []string {
	var out []string
	for _, s := range f.short {
		out = append(out, "-"+s)
	}
	for _, l := range f.long {
		out = append(out, "--"+l)
	}
	return out
}

// command is a command of the application, or the application itself
// (name "").
type command struct {
	name, usage, usageText, description string
	aliases                             []string
	flags                               []flagInfo
	exec                                bool
}

// model is the application reduced to what the generators use.
type model struct {
	name     string
	top      command // flags valid before any command name (the default command's and --help, --version)
	commands []command
	def      *command // the default command, or nil
}

// Validate reports a Spec that names flags or commands the application
// does not have: the generated files would silently lose them.
func (s *Spec) Validate() error {
	_, err := s.model()
	return err
}

func (s *Spec) model() (*model, error) {
	if s.App == nil || s.App.Name == "" {
		return nil, fmt.Errorf("clidoc: no application, or it has no name")
	}
	known := map[string]bool{}
	m := &model{name: s.App.Name}
	exec := map[string]bool{}
	for _, e := range s.Exec {
		exec[e] = true
	}
	seenExec := map[string]bool{}
	for _, c := range s.App.Commands {
		if c.Hidden {
			continue
		}
		cmd := command{name: c.Name, aliases: c.Aliases, usage: c.Usage, usageText: c.UsageText,
			description: c.Description, exec: exec[c.Name]}
		seenExec[c.Name] = cmd.exec
		flags, err := s.flags(c.Flags, known)
		if err != nil {
			return nil, fmt.Errorf("clidoc: command %s: %w", c.Name, err)
		}
		if !c.HideHelp {
			flags = append(flags, helpFlag())
		}
		cmd.flags = flags
		m.commands = append(m.commands, cmd)
	}
	if !s.App.HideHelpCommand {
		m.commands = append(m.commands, command{name: "help", aliases: []string{"h"},
			usage: "show the list of commands or help for one command"})
	}
	for e := range exec {
		if !seenExec[e] {
			return nil, fmt.Errorf("clidoc: Exec names %q, which is not a command", e)
		}
	}
	top, err := s.flags(s.App.Flags, known)
	if err != nil {
		return nil, fmt.Errorf("clidoc: %w", err)
	}
	if s.Default != "" {
		for i := range m.commands {
			if m.commands[i].name == s.Default {
				m.def = &m.commands[i]
			}
		}
		if m.def == nil {
			return nil, fmt.Errorf("clidoc: Default names %q, which is not a command", s.Default)
		}
		for _, f := range m.def.flags {
			if f.long == nil || f.long[0] != "help" {
				top = append(top, f)
			}
		}
		m.top.exec = m.def.exec
	}
	if !s.App.HideHelp {
		top = append(top, helpFlag())
	}
	if !s.App.HideVersion && s.App.Version != "" {
		top = append(top, flagInfo{long: []string{"version"}, short: []string{"v"}, usage: "print the version"})
	}
	m.top.flags = top
	for name := range s.Values {
		if !known[name] {
			return nil, fmt.Errorf("clidoc: Values names --%s, which no command has", name)
		}
	}
	for _, l := range append(append([]string{}, s.Lists...), s.Dirs...) {
		if !known[l] {
			return nil, fmt.Errorf("clidoc: --%s is not a flag", l)
		}
	}
	return m, nil
}

func helpFlag() flagInfo {
	return flagInfo{long: []string{"help"}, short: []string{"h"}, usage: "show help"}
}

func (s *Spec) flags(fs []cli.Flag, known map[string]bool) ([]flagInfo, error) {
	var out []flagInfo
	for _, f := range fs {
		if v, ok := f.(cli.VisibleFlag); ok && !v.IsVisible() {
			continue
		}
		d, ok := f.(cli.DocGenerationFlag)
		if !ok {
			return nil, fmt.Errorf("flag %v cannot be documented", f.Names())
		}
		var fi flagInfo
		for _, n := range f.Names() {
			known[n] = true
			if len(n) == 1 {
				fi.short = append(fi.short, n)
			} else {
				fi.long = append(fi.long, n)
			}
		}
		fi.value = d.TakesValue()
		fi.placeholder, fi.usage = unquoteUsage(d.GetUsage())
		fi.env = d.GetEnvVars()
		if sl, ok := f.(cli.DocGenerationSliceFlag); ok {
			fi.repeat = sl.IsSliceFlag()
		}
		if fi.value {
			fi.def = d.GetDefaultText()
			if fi.def == "" {
				fi.def = d.GetValue()
			}
			fi.def = strings.Trim(fi.def, `"`)
		}
		name := f.Names()[0]
		fi.values = s.Values[name]
		fi.list = contains(s.Lists, name)
		fi.dir = contains(s.Dirs, name)
		fi.file = takesFile(f)
		switch fi.placeholder {
		case "FILE", "PATH":
			fi.file = true
		case "DIR", "DIRECTORY":
			fi.dir = true
		}
		if fi.placeholder == "" && fi.value {
			switch {
			case len(fi.values) > 0 && !fi.list:
				fi.placeholder = strings.Join(fi.values, "|")
			case fi.list:
				fi.placeholder = "LIST"
			case fi.dir:
				fi.placeholder = "DIR"
			default:
				fi.placeholder = placeholderOf(f)
			}
		}
		out = append(out, fi)
	}
	return out, nil
}

// takesFile reports the TakesFile field of the flag types that have one.
func takesFile(f cli.Flag) bool {
	switch f := f.(type) {
	case *cli.StringFlag:
		return f.TakesFile
	case *cli.PathFlag:
		return f.TakesFile
	case *cli.StringSliceFlag:
		return f.TakesFile
	case *cli.GenericFlag:
		return f.TakesFile
	}
	return false
}

// placeholderOf names a flag's value by its type.
func placeholderOf(f cli.Flag) string {
	switch f.(type) {
	case *cli.DurationFlag:
		return "DURATION"
	case *cli.IntFlag, *cli.Int64Flag, *cli.UintFlag, *cli.Uint64Flag:
		return "N"
	case *cli.TimestampFlag:
		return "TIME"
	}
	return "VALUE"
}

// unquoteUsage takes the first `quoted` word of a usage text as the
// placeholder, as urfave/cli's help does.
func unquoteUsage(usage string) (string, string) {
	i := strings.IndexByte(usage, '`')
	if i < 0 {
		return "", usage
	}
	j := strings.IndexByte(usage[i+1:], '`')
	if j < 0 {
		return "", usage
	}
	name := usage[i+1 : i+1+j]
	return name, usage[:i] + name + usage[i+2+j:]
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

// commandNames gives every name and alias of the commands, sorted.
func (m *model) commandNames() []string {
	var out []string
	for _, c := range m.commands {
		out = append(out, c.name)
		out = append(out, c.aliases...)
	}
	sort.Strings(out)
	return out
}

// ParseDate accepts a date for Spec.Date: YYYY-MM-DD, or a Unix time in
// seconds (as SOURCE_DATE_EPOCH gives it).
func ParseDate(s string) (string, error) {
	if s == "" {
		return "", nil
	}
	if t, err := time.Parse("2006-01-02", s); err == nil {
		return t.Format("2006-01-02"), nil
	}
	var sec int64
	if _, err := fmt.Sscanf(s, "%d", &sec); err == nil && fmt.Sprint(sec) == s {
		return time.Unix(sec, 0).UTC().Format("2006-01-02"), nil
	}
	return "", fmt.Errorf("date %q: want YYYY-MM-DD or seconds since 1970", s)
}
