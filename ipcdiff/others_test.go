package ipcdiff

import (
	"maps"
	"strings"
	"testing"
)

// TestOthers: the families of the objects that are not candidates, each
// named by its first object; IPC_PRIVATE joins nothing; a segment whose
// creator reads 0 (candidate or not) is the sign of an invisible creator.
func TestOthers(t *testing.T) {
	s := &Snapshot{Types: AllTypes,
		Shm: []Shm{{ID: 1, Key: 10, CPID: 5}, {ID: 2, Key: 0, CPID: 5}, {ID: 3, Key: 30, CPID: 5}},
		Sem: []Sem{{ID: 1, Key: 10}, {ID: 4, Key: 40}},
		Msg: []Msg{{ID: 7, Key: 70}},
	}
	cands := NewIdents([]Ident{sysvID(TypeShm, 3, 30, 0), sysvID(TypeMsg, 7, 70, 0)})
	keys, names, invisible := Others(s, cands)
	if want := map[int32]string{10: "shm 1", 40: "sem 4"}; !maps.Equal(keys, want) {
		t.Errorf("keys = %v, want %v", keys, want)
	}
	if len(names) != 0 || invisible != "" {
		t.Errorf("names %v, invisible %q", names, invisible)
	}
	if keys, _, _ := Others(s, nil); len(keys) != 4 {
		t.Errorf("no candidates: keys = %v", keys)
	}
	s.Shm[2].CPID = 0 // a candidate
	if _, _, invisible := Others(s, cands); !strings.HasPrefix(invisible, "shm 3 was made by a process not visible") {
		t.Errorf("invisible = %q", invisible)
	}
	if _, _, invisible := Others(s.Only(1<<TypeSem|1<<TypeMsg), nil); invisible != "" {
		t.Errorf("sets and queues record no creator: invisible = %q", invisible)
	}

	keys, names = map[int32]string{}, map[string]string{}
	noteFamily(Family{Name: "/a"}, Ident{Type: TypeShm, ID: 9, Name: "/a"}, keys, names)
	noteFamily(Family{Name: "/a"}, Ident{Type: TypeSem, ID: 8, Name: "/a"}, keys, names)
	if len(keys) != 0 || names["/a"] != "shm /a" {
		t.Errorf("names: keys %v names %v", keys, names)
	}
}
