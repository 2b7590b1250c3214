package main

import (
	"testing"

	"github.com/ipcguard/ipcguard/internal/guard"
)

// TestKeyOrName: a key as it is; a name as it is when it is one plain
// field, quoted otherwise, so that a table row stays one line.
func TestKeyOrName(t *testing.T) {
	for _, c := range []struct {
		o    guard.Listed
		want string
	}{
		{guard.Listed{Key: "0x0000002a"}, "0x0000002a"},
		{guard.Listed{Name: "/PostgreSQL.1804289383"}, "/PostgreSQL.1804289383"},
		{guard.Listed{Name: "/a b"}, `"/a b"`},
		{guard.Listed{Name: "/a\nb"}, `"/a\nb"`},
		{guard.Listed{Name: "/\xff\"\\"}, `"/\xff\"\\"`},
		{guard.Listed{Name: "/é"}, `"/é"`},
	} {
		if got := keyOrName(c.o); got != c.want {
			t.Errorf("keyOrName(%+v) = %s, want %s", c.o, got, c.want)
		}
	}
}
