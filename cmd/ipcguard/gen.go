//go:build ipcguard_gen

// Built with -tags ipcguard_gen, this package is not ipcguard but the
// program that writes its man page and shell completions from the same
// command line definition (newApp) ipcguard runs with, so they cannot
// drift from it. The ipcguard binary contains none of this.
//
//	go run -tags ipcguard_gen ./cmd/ipcguard [-date YYYY-MM-DD] \
//		[-man FILE] [-bash FILE] [-zsh FILE] [-fish FILE]
//
// Exit status 0, or 1 with one line on stderr.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/ipcguard/ipcguard/internal/clidoc"
)

// docSpec is what the generators need beyond the definition: which
// command is the default and takes a command line, and the values the
// options accept (each checked against the parser by the tests).
func docSpec(date string) *clidoc.Spec {
	return &clidoc.Spec{
		App:     newApp(io.Discard, io.Discard, nil),
		Default: "run",
		Exec:    []string{"run"},
		Values: map[string][]string{
			"on":      {"failure", "always", "never"},
			"tracker": {"auto", "perf", "proc-connector", "poll"},
			"types":   {"shm", "sem", "msg", "pshm", "psem", "pmsg"},
		},
		Lists:   []string{"types"},
		Dirs:    []string{"state-dir"},
		Version: appVersion(),
		Date:    date,
		Sections: []clidoc.Section{
			{Title: "Files", Text: `The state directory (--state-dir; $XDG_RUNTIME_DIR/ipcguard, or
/run/ipcguard for root) has one subdirectory per IPC namespace with a journal
for every run in progress; a journal left behind by an ipcguard that died is
what ipcguard sweep works from.

/proc/sysvipc/shm, /proc/sysvipc/sem and /proc/sysvipc/msg are the kernel's
tables of System V IPC objects, read before and after the command.`},
			{Title: "See also", Text: `ipcs(1), ipcrm(1), ipcmk(1), sysvipc(7), shmget(2), semget(2), msgget(2),
systemd.kill(5)`},
		},
	}
}

func main() {
	var date, man, bash, zsh, fish string
	flag.StringVar(&date, "date", os.Getenv("SOURCE_DATE_EPOCH"), "the man page's date: YYYY-MM-DD or seconds since 1970 (default $SOURCE_DATE_EPOCH)")
	flag.StringVar(&man, "man", "", "write the man page ipcguard(1) to `FILE`")
	flag.StringVar(&bash, "bash", "", "write the bash completion script to `FILE`")
	flag.StringVar(&zsh, "zsh", "", "write the zsh completion function to `FILE`")
	flag.StringVar(&fish, "fish", "", "write the fish completion script to `FILE`")
	flag.Parse()
	if err := generate(date, man, bash, zsh, fish); err != nil {
		fmt.Fprintf(os.Stderr, "ipcguard-gen: %v\n", err)
		os.Exit(1)
	}
}

func generate(date, man, bash, zsh, fish string) error {
	if flag.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", flag.Args())
	}
	d, err := clidoc.ParseDate(date)
	if err != nil {
		return err
	}
	spec := docSpec(d)
	if err := spec.Validate(); err != nil {
		return err
	}
	for _, o := range []struct {
		path string
		gen  func(io.Writer) error
	}{{man, spec.Man}, {bash, spec.Bash}, {zsh, spec.Zsh}, {fish, spec.Fish}} {
		if o.path == "" {
			continue
		}
		var b bytes.Buffer
		if err := o.gen(&b); err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Dir(o.path), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(o.path, b.Bytes(), 0o644); err != nil {
			return err
		}
	}
	return nil
}
