package cmdline

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseKey(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int32
		bad  bool
	}{
		{"0x1234", 0x1234, false},
		{"4660", 0x1234, false},
		{"0xffffffff", -1, false},
		{"-2147483648", -1 << 31, false},
		{"0x80000000", -1 << 31, false},
		{"0X1F", 0x1f, false},
		{"017", 17, false}, // decimal, not octal 15
		{"0", 0, false},
		{"-1", -1, false},
		{"4294967295", -1, false},
		{"0x100000000", 0, true},
		{"4294967296", 0, true},
		{"0xffffffffffffffffff", 0, true},
		{"0b101", 0, true},
		{"0o17", 0, true},
		{"1_000", 0, true},
		{"0x1_0", 0, true},
		{"0x", 0, true},
		{"-0x10", 0, true},
		{"0x-10", 0, true},
		{"zz", 0, true},
		{"", 0, true},
	} {
		got, err := Key("--keep-key", c.in)
		if (err != nil) != c.bad || (!c.bad && got != c.want) {
			t.Errorf("parseKey(%q) = %d, %v", c.in, got, err)
		}
	}
}

func TestParseOwnKeys(t *testing.T) {
	for _, c := range []struct {
		in   []string
		want map[int32]bool
		all  bool
		bad  string // substring of the usage error
	}{
		{in: nil, want: map[int32]bool{}},
		{in: []string{"0x162e, 5679", "0x162e"}, want: map[int32]bool{0x162e: true, 5679: true}},
		{in: []string{"all"}, want: map[int32]bool{}, all: true},
		{in: []string{"ALL,0x10"}, want: map[int32]bool{0x10: true}, all: true},
		{in: []string{"0"}, bad: "IPC_PRIVATE"},
		{in: []string{"0x0"}, bad: "IPC_PRIVATE"},
		{in: []string{"0x10,"}, bad: "--own-keys: empty key"},
		{in: []string{"everything"}, bad: `--own-keys "everything"`},
	} {
		keys, all, err := OwnKeys(c.in)
		if c.bad != "" {
			if err == nil || !strings.Contains(err.Error(), c.bad) {
				t.Errorf("OwnKeys(%q) = %v, %v, %v; want an error with %q", c.in, keys, all, err, c.bad)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(keys, c.want) || all != c.all {
			t.Errorf("OwnKeys(%q) = %v, %v, %v; want %v, %v", c.in, keys, all, err, c.want, c.all)
		}
	}
}
