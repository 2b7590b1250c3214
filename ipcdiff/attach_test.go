package ipcdiff

import (
	"maps"
	"path/filepath"
	"slices"
	"testing"
)

// The fixture /proc has: 100 (real maps of a process with shmids 0 and 1
// attached), 200 (decoys: /tmp/SYSV..., /SYSVnot-a-segment, plus shmids 2
// and 1 read-only), 300 (exited: no maps), 400 (maps unreadable: a
// directory), 500 (the maps of 100, but in another IPC namespace), self
// (not a pid); thread-self/ns/ipc is our namespace.
func TestAttachersFixture(t *testing.T) {
	fs, err := NewFS(filepath.Join(fixtures, "proc"))
	if err != nil {
		t.Fatal(err)
	}
	got, unreadable, err := fs.Attachers(map[int]bool{0: true, 1: true, 2: true, 3: true})
	if err != nil {
		t.Fatal(err)
	}
	want := map[int][]int{0: {100}, 1: {100, 200}, 2: {200}}
	if !maps.EqualFunc(got, want, slices.Equal) {
		t.Errorf("Attachers = %v, want %v", got, want)
	}
	if !slices.Equal(unreadable, []int{400}) {
		t.Errorf("unreadable = %v, want [400]", unreadable)
	}
	got, _, _ = fs.Attachers(map[int]bool{2: true})
	if !maps.EqualFunc(got, map[int][]int{2: {200}}, slices.Equal) {
		t.Errorf("Attachers(2) = %v", got)
	}
	if got, unreadable, err := fs.Attachers(nil); len(got) != 0 || unreadable != nil || err != nil {
		t.Errorf("Attachers(nil) = %v, %v, %v", got, unreadable, err)
	}
}

func TestMapsSegments(t *testing.T) {
	want := map[int]bool{0: true, 7: true, 32768: true}
	for _, tc := range []struct {
		maps string
		want []int
	}{
		{"", nil},
		{"7f-7f rw-s 00000000 00:01 32768                      /SYSV00000000 (deleted)", []int{32768}},
		{"7f-7f rw-s 00000000 00:01 7 /SYSVdeadbeef (deleted)\n7f-7f rw-s 00000000 00:01 7 /SYSVdeadbeef (deleted)\n", []int{7}},
		{"7f-7f rw-s 00000000 00:01 7 /SYSVdeadbeef", []int{7}},
		{"7f-7f rw-s 00000000 00:01 8 /SYSVdeadbeef (deleted)\n", nil},            // not wanted
		{"7f-7f rw-s 00000000 00:01 7 /SYSVDEADBEEF (deleted)\n", nil},            // not %08x
		{"7f-7f rw-s 00000000 00:01 7 /SYSVdeadbee (deleted)\n", nil},             // 7 digits
		{"7f-7f rw-s 00000000 00:01 7 /SYSVdeadbeef0 (deleted)\n", nil},           // 9 digits
		{"7f-7f rw-s 00000000 00:01 0 /home/SYSV00000000 (deleted)\n", nil},       // not at path start
		{"7f-7f rw-s 00000000 00:01 0 /x /SYSV00000000\n", nil},                   // not the path
		{"7f-7f rw-s 00000000 00:01 x /SYSV00000000\n", nil},                      // bad inode
		{"/SYSV00000000\n7f-7f r--s 0 00:01 0 /SYSV00000000 (deleted)", []int{0}}, // short line first
	} {
		got := mapsSegments([]byte(tc.maps), want, nil)
		if !slices.Equal(got, tc.want) {
			t.Errorf("mapsSegments(%q) = %v, want %v", tc.maps, got, tc.want)
		}
	}
}
