package journal

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// Overlapped reports whether another ipcguard run that used the same state
// directory overlapped this one in time, with a reason for the report: when
// another live run existed at Begin, when another run began since (the
// sequence file changed), or when another live run exists now. A journal
// left by a dead supervisor counts only while its command still runs (that
// orphaned tree may still be creating objects). Errors reading the state
// directory count as overlap.
func (j *Journal) Overlapped() (bool, string) {
	var reasons []string
	peers := append([]peer(nil), j.atBegin...)
	peers = append(peers, liveOthers(j.dir, j.name)...)

	seq, lastPid, err := readSeq(j.dir)
	seqChanged := false
	if err != nil {
		reasons = append(reasons, fmt.Sprintf("cannot tell whether another ipcguard run overlapped: %v", err))
	} else if seq != j.seq {
		seqChanged = true
	}
	for _, e := range j.regErr {
		reasons = append(reasons, "cannot tell whether another ipcguard run of uid "+strconv.FormatUint(uint64(j.uid), 10)+" overlapped: "+e)
	}
	var regBegun uint64
	regLast := 0
	for _, r := range j.regs {
		p, n, last, err := r.overlapped()
		peers = append(peers, p...)
		if err != nil {
			reasons = append(reasons, fmt.Sprintf("cannot tell whether another ipcguard run overlapped: %v", err))
		}
		if n > regBegun {
			regBegun, regLast = n, last
		}
	}

	var runs, orphans []string
	seen := map[int]bool{}
	for _, p := range peers {
		if seen[p.pid] {
			continue
		}
		seen[p.pid] = true
		if p.cmdPid != 0 {
			orphans = append(orphans, fmt.Sprintf("command pid %d of dead run pid %d", p.cmdPid, p.pid))
		} else {
			runs = append(runs, strconv.Itoa(p.pid))
		}
	}
	if len(runs) > 0 {
		reasons = append(reasons, fmt.Sprintf("another ipcguard run of uid %d overlapped (%s %s)",
			j.uid, plural(len(runs), "pid", "pids"), strings.Join(runs, ", ")))
	}
	if len(orphans) > 0 {
		reasons = append(reasons, fmt.Sprintf("the command of a killed ipcguard run of uid %d still runs (%s)",
			j.uid, strings.Join(orphans, ", ")))
	}
	if seqChanged && !seen[lastPid] {
		n := seq - j.seq
		if seq < j.seq {
			n = 0 // the file was reset: at least one
		}
		what := "another ipcguard run"
		if n > 1 {
			what = strconv.FormatUint(n, 10) + " other ipcguard runs"
		}
		reasons = append(reasons, fmt.Sprintf("%s of uid %d began during this run (latest pid %d)", what, j.uid, lastPid))
	}
	if regBegun > 0 && !seqChanged && !seen[regLast] {
		reasons = append(reasons, fmt.Sprintf("another ipcguard run of uid %d, with another state directory, began during this run (latest pid %d)", j.uid, regLast))
	}
	if len(reasons) == 0 {
		return false, ""
	}
	return true, strings.Join(reasons, "; ")
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// peer is another run found in the state directory.
type peer struct {
	pid    int // its supervisor
	cmdPid int // set when the supervisor is dead and this command still runs
}

// liveOthers returns the runs in dir other than self whose supervisor is
// alive, or whose supervisor is dead but whose command still runs.
func liveOthers(dir, self string) []peer {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var out []peer
	for _, e := range ents {
		name := e.Name()
		if name == self {
			continue
		}
		if m, isMarker := strings.CutSuffix(name, markerSuffix); isMarker {
			// A run that journals elsewhere and announces itself here.
			if pid, start, ok := parseJournalName(m + journalSuffix); ok && m+journalSuffix != self && ProcessAlive(pid, start) {
				out = append(out, peer{pid: pid})
			}
			continue
		}
		pid, start, ok := parseJournalName(name)
		if !ok {
			continue
		}
		if ProcessAlive(pid, start) {
			out = append(out, peer{pid: pid})
			continue
		}
		if cpid, cstart, ok := peekCommand(filepath.Join(dir, name)); ok && ProcessAlive(cpid, cstart) {
			out = append(out, peer{pid: pid, cmdPid: cpid})
		}
	}
	return out
}

// peekCommand reads only the record part of a journal for its command.
func peekCommand(path string) (pid int, start uint64, ok bool) {
	f, err := openRegular(path, os.O_RDONLY, 0)
	if err != nil {
		return 0, 0, false
	}
	defer f.Close()
	var first [firstLineLen]byte
	if _, err := io.ReadFull(f, first[:]); err != nil {
		return 0, 0, false
	}
	_, off, err := parseFirstLine(first[:])
	if err != nil {
		return 0, 0, false
	}
	if _, err := f.Seek(int64(off), io.SeekStart); err != nil {
		return 0, 0, false
	}
	rest, err := io.ReadAll(io.LimitReader(f, 16<<20))
	if err != nil {
		return 0, 0, false
	}
	var r Record
	parseRecords(rest, &r)
	return r.CommandPid, r.CommandStart, r.CommandPid > 0
}

func flock(f *os.File, how int) error {
	for {
		err := syscall.Flock(int(f.Fd()), how)
		if err != syscall.EINTR {
			return err
		}
	}
}

func readSeq(dir string) (seq uint64, pid int, err error) {
	f, err := openRegular(filepath.Join(dir, seqName), os.O_RDONLY, 0)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	if err := flock(f, syscall.LOCK_SH); err != nil {
		return 0, 0, err
	}
	return readSeqFile(f)
}

func readSeqFile(f *os.File) (seq uint64, pid int, err error) {
	var buf [64]byte
	n, err := f.ReadAt(buf[:], 0)
	if err != nil && err != io.EOF {
		return 0, 0, err
	}
	line, _, ok := bytes.Cut(buf[:n], []byte{'\n'})
	s, p, ok2 := bytes.Cut(line, []byte{' '})
	if !ok || !ok2 {
		return 0, 0, fmt.Errorf("%s: malformed", f.Name())
	}
	seq, err = strconv.ParseUint(string(s), 10, 64)
	if err != nil {
		return 0, 0, fmt.Errorf("%s: malformed", f.Name())
	}
	pid, err = strconv.Atoi(string(p))
	if err != nil {
		return 0, 0, fmt.Errorf("%s: malformed", f.Name())
	}
	return seq, pid, nil
}

func writeSeqFile(f *os.File, seq uint64, pid int) error {
	b := strconv.AppendUint(make([]byte, 0, 48), seq, 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, int64(pid), 10)
	b = append(b, '\n')
	// No truncation (costly on tmpfs): readSeqFile reads the first line
	// only, so whatever an older, longer record leaves after it is inert.
	_, err := f.WriteAt(b, 0)
	return err
}
