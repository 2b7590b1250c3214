package posixipc

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// TestListKind: List with a Kind lists only that kind's entries of the shm
// directory (a name beginning "sem." is a semaphore), and without one
// every regular file.
func TestListKind(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"a", "sem.b", "sem.c", "d"} {
		if err := os.WriteFile(filepath.Join(dir, n), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	d, err := OpenShm(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	names := func(k Kind) (out []string) {
		objs, err := d.List(ListOptions{Kind: k})
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range objs {
			if k != 0 && o.Kind != k {
				t.Errorf("List(%v) gave %s of kind %v", k, o.Name, o.Kind)
			}
			out = append(out, o.Name)
		}
		return out
	}
	for _, c := range []struct {
		k    Kind
		want string
	}{{0, "[a d sem.b sem.c]"}, {Shm, "[a d]"}, {Sem, "[sem.b sem.c]"}} {
		if got := names(c.k); fmt.Sprint(got) != c.want {
			t.Errorf("List(%v) = %v, want %s", c.k, got, c.want)
		}
	}
}
