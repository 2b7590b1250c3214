package main

import (
	"slices"
	"testing"

	"github.com/urfave/cli/v2"
)

// TestKeepNameFlag: --keep-name takes each value whole (a POSIX name may
// hold a comma: --keep-name 'a,b' keeps "a,b", where a StringSliceFlag
// would keep "a" and "b" and so remove "a,b"), the environment gives one
// pattern a line, and each parse starts empty.
func TestKeepNameFlag(t *testing.T) {
	var f cli.Flag
	for _, x := range runFlags {
		if slices.Contains(x.Names(), "keep-name") {
			f = x
		}
	}
	parse := func(args ...string) []string {
		t.Helper()
		var got []string
		app := &cli.App{Flags: []cli.Flag{f}, Action: func(c *cli.Context) error {
			got = c.Generic("keep-name").(*patterns).list
			return nil
		}}
		if err := app.Run(append([]string{"ipcguard"}, args...)); err != nil {
			t.Fatal(err)
		}
		return got
	}
	if got := parse("--keep-name", "a,b", "--keep-name", "[!x]*"); !slices.Equal(got, []string{"a,b", "[!x]*"}) {
		t.Errorf("--keep-name a,b --keep-name '[!x]*': %q", got)
	}
	if got := parse(); len(got) != 0 {
		t.Errorf("a second parse without the flag: %q, want nothing", got)
	}
	t.Setenv("IPCGUARD_KEEP_NAMES", "p,q\nPostgreSQL.*\n")
	if got := parse(); !slices.Equal(got, []string{"p,q", "PostgreSQL.*"}) {
		t.Errorf("IPCGUARD_KEEP_NAMES: %q", got)
	}
	if _, err := keepNames([]string{"[!"}); err == nil {
		t.Errorf("keepNames accepts the malformed pattern [!")
	}
}
