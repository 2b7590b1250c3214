package procfs

import (
	"errors"
	"testing"
)

func TestParseStatus(t *testing.T) {
	st, err := ParseStatus([]byte("Name:\tx\nTgid:\t42\nPid:\t43\nUid:\t1000\t0\t1000\t65534\nGid:\t1 1 1 1\n"))
	if err != nil || st.Tgid != 42 || st.Uids != [4]uint32{1000, 0, 1000, 65534} {
		t.Fatalf("%+v %v", st, err)
	}
	for _, bad := range []string{"Name:\tx\n", "Tgid:\t42\n", "Uid:\t1 2 3 4\n", "Tgid:\tx\nUid:\t1 2 3 4\n", "Tgid:\t4\nUid:\t1 2 3\n", "Tgid:\t4\nUid:\t1 2 3 y\n"} {
		if _, err := ParseStatus([]byte(bad)); !errors.Is(err, ErrStatus) {
			t.Errorf("ParseStatus(%q): %v, want ErrStatus", bad, err)
		}
	}
}
