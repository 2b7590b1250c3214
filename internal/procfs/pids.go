package procfs

import (
	"os"
	"slices"
	"strconv"
)

// Tgids lists the thread-group ids (processes) <root> shows, sorted: the
// numeric entries of the proc root directory.
func Tgids(root string) ([]int, error) { return mount(root).Tgids() }

// Tgids is the package's Tgids for the FS's mount.
func (fs FS) Tgids() ([]int, error) {
	f, err := os.Open(fs.root)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, err
	}
	pids := make([]int, 0, len(names))
	for _, n := range names {
		if p, ok := PidName(n); ok {
			pids = append(pids, p)
		}
	}
	slices.Sort(pids)
	return pids, nil
}

// PidName parses an entry of the proc root that names a process: a
// positive decimal without leading zeros.
func PidName(s string) (int, bool) {
	if s == "" || s[0] < '1' || s[0] > '9' {
		return 0, false
	}
	n, err := strconv.Atoi(s)
	return n, err == nil && n > 0
}
