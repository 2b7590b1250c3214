package journal

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// A registry is a directory chosen by the uid alone, whatever the
// environment, where every run of that uid in the IPC namespace announces
// itself (a sequence number and a marker file while it runs): two runs of
// one user whose state directories differ (XDG_RUNTIME_DIR set for one,
// unset for the other, as under cron; --state-dir) still see each other
// overlap (Overlapped), and window evidence stays off for both.
//
// DefaultRegistries gives /run/ipcguard for root; for another uid
// /run/user/<uid>/ipcguard when /run/user/<uid> is that uid's, and always
// /tmp/ipcguard-<uid> (not $TMPDIR, which the environment sets). A run
// announces itself in each, and reads each.

// DefaultRegistries returns the registries of uid euid (see above).
func DefaultRegistries(euid int) []string {
	if euid == 0 {
		return []string{"/run/ipcguard"}
	}
	var out []string
	run := fmt.Sprintf("/run/user/%d", euid)
	var st syscall.Stat_t
	if syscall.Lstat(run, &st) == nil && st.Mode&syscall.S_IFMT == syscall.S_IFDIR && int(st.Uid) == euid {
		out = append(out, filepath.Join(run, "ipcguard"))
	}
	return append(out, fmt.Sprintf("/tmp/ipcguard-%d", euid))
}

const markerSuffix = ".live"

// registered is this run's entry in one registry.
type registered struct {
	dir     string // the registry's directory of this IPC namespace
	seq     uint64 // the sequence value this run wrote there
	marker  string // the marker file, removed by Done
	atBegin []peer // other live runs there when this one began
}

// register announces the run named name (run-<pid>-<start>) in the
// registry base; it returns what Overlapped needs, or an error when the
// registry cannot be used safely (Overlapped then reports overlap: it
// cannot tell).
func register(base, name string, euid, pid int) (*registered, error) {
	// Walked and checked as a state directory is (see StateDir).
	dir, err := openStateDir(base, euid)
	if err != nil {
		return nil, err
	}
	seqf, err := openRegular(filepath.Join(dir, seqName), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	defer seqf.Close() // releases the lock
	if err := flock(seqf, syscall.LOCK_EX); err != nil {
		return nil, err
	}
	seq, _, _ := readSeqFile(seqf)
	r := &registered{dir: dir, seq: seq + 1}
	if err := writeSeqFile(seqf, r.seq, pid); err != nil {
		return nil, err
	}
	r.atBegin = liveOthers(dir, name+journalSuffix)
	removeDeadMarkers(dir)
	r.marker = filepath.Join(dir, name+markerSuffix)
	f, err := os.OpenFile(r.marker, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0o600)
	if err != nil {
		return nil, err
	}
	return r, f.Close()
}

// overlapped says how other runs overlapped this one as the registry shows
// it: runs that were live at its start or are now, and runs begun since.
func (r *registered) overlapped() (peers []peer, begun uint64, lastPid int, err error) {
	// liveOthers reads markers and journals (a run whose state directory
	// is this very registry announces itself with its journal).
	self := strings.TrimSuffix(filepath.Base(r.marker), markerSuffix)
	peers = append(append(peers, r.atBegin...), liveOthers(r.dir, self+journalSuffix)...)
	seq, lastPid, err := readSeq(r.dir)
	if err != nil {
		return peers, 0, 0, err
	}
	if seq != r.seq {
		begun = seq - r.seq
		if seq < r.seq {
			begun = 1 // the file was reset: at least one
		}
	}
	return peers, begun, lastPid, nil
}

// removeDeadMarkers removes the markers that runs killed before their Done
// left in dir.
func removeDeadMarkers(dir string) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range ents {
		m, ok := strings.CutSuffix(e.Name(), markerSuffix)
		if !ok || !e.Type().IsRegular() {
			continue
		}
		if pid, start, ok := parseJournalName(m + journalSuffix); ok && !ProcessAlive(pid, start) {
			os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}
