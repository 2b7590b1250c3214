package supervisor

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// The syscall tracepoints of creation tracking (--track-creation): which
// ones, their fields in tracefs, and opening them per CPU.

// syscallEvents are the tracepoints creation tracking needs, by object
// type: the exit of each get gives the id it returned, the entry its key
// and flags (is it sure to have made a new object?).
var syscallEvents = [...]struct{ typ, event string }{
	{"shm", "sys_exit_shmget"},
	{"sem", "sys_exit_semget"},
	{"msg", "sys_exit_msgget"},
	{"shm", "sys_enter_shmget"},
	{"sem", "sys_enter_semget"},
	{"msg", "sys_enter_msgget"},
}

// tracepoint is one syscall tracepoint we opened: its object type and, for
// an entry, where the raw record holds the key and the flags.
type tracepoint struct {
	typ            string
	enter          bool
	keyOff, flgOff int
}

// tracepointFields finds the offsets of the key and the flags (the field
// whose name ends in "flg") in a tracepoint's format file
// (<tracefs>/events/syscalls/sys_enter_semget/format).
func tracepointFields(format []byte) (keyOff, flgOff int, err error) {
	keyOff, flgOff = -1, -1
	for _, line := range strings.Split(string(format), "\n") {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, "field:") {
			continue
		}
		parts := strings.Split(line, ";")
		if len(parts) < 3 {
			continue
		}
		decl := strings.Fields(strings.TrimPrefix(parts[0], "field:"))
		if len(decl) == 0 {
			continue
		}
		name := decl[len(decl)-1]
		off, err := strconv.Atoi(strings.TrimPrefix(strings.TrimSpace(parts[1]), "offset:"))
		if err != nil {
			continue
		}
		switch {
		case name == "key":
			keyOff = off
		case strings.HasSuffix(name, "flg"):
			flgOff = off
		}
	}
	if keyOff < 0 || flgOff < 0 {
		return 0, 0, errors.New("no key or flags field in the tracepoint format")
	}
	return keyOff, flgOff, nil
}

func (t *perfTracker) openSyscalls(cpus []int) error {
	dir, err := tracefsEvents()
	if err != nil {
		return err
	}
	ids := map[uint16]tracepoint{}
	for _, e := range syscallEvents {
		b, err := os.ReadFile(filepath.Join(dir, "syscalls", e.event, "id"))
		if err != nil {
			return err
		}
		id, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 16)
		if err != nil {
			return fmt.Errorf("%s id: %w", e.event, err)
		}
		tp := tracepoint{typ: e.typ, enter: strings.HasPrefix(e.event, "sys_enter_")}
		if tp.enter {
			f, err := os.ReadFile(filepath.Join(dir, "syscalls", e.event, "format"))
			if err != nil {
				return err
			}
			if tp.keyOff, tp.flgOff, err = tracepointFields(f); err != nil {
				return fmt.Errorf("%s: %w", e.event, err)
			}
		}
		ids[uint16(id)] = tp
	}
	var opened []int
	fail := func(err error) error {
		for _, fd := range opened {
			unix.Close(fd)
		}
		return err
	}
	for i := range cpus {
		for id := range ids {
			attr := tracepointAttr(t.clock, uint64(id))
			fd, err := unix.PerfEventOpen(&attr, 0, cpus[i], -1, unix.PERF_FLAG_FD_CLOEXEC)
			if err != nil {
				return fail(perfOpenError(err))
			}
			opened = append(opened, fd)
			if err := unix.IoctlSetInt(fd, unix.PERF_EVENT_IOC_SET_OUTPUT, t.bufs[i].fd); err != nil {
				return fail(fmt.Errorf("PERF_EVENT_IOC_SET_OUTPUT: %w", err))
			}
		}
	}
	t.fds = append(t.fds, opened...)
	t.tpType = ids
	t.tracks = true
	return nil
}

// tracefsEvents finds <tracefs>/events, mounting tracefs at its standard
// place when it is not mounted and we may (root).
func tracefsEvents() (string, error) {
	cands := []string{"/sys/kernel/tracing", "/sys/kernel/debug/tracing"}
	for _, d := range cands {
		_, err := os.Stat(filepath.Join(d, "events"))
		if err == nil {
			return filepath.Join(d, "events"), nil
		}
		if errors.Is(err, os.ErrPermission) {
			return "", fmt.Errorf("%w (creation tracking needs root)", err)
		}
	}
	if os.Geteuid() != 0 {
		return "", errors.New("tracefs not mounted (creation tracking needs root)")
	}
	if err := unix.Mount("nodev", cands[0], "tracefs", 0, ""); err != nil {
		return "", fmt.Errorf("mounting tracefs on %s: %w", cands[0], err)
	}
	return filepath.Join(cands[0], "events"), nil
}

// onlineCPUs parses /sys/devices/system/cpu/online ("0-3,5").
func onlineCPUs() ([]int, error) {
	b, err := os.ReadFile("/sys/devices/system/cpu/online")
	if err != nil {
		return nil, err
	}
	return parseCPUList(strings.TrimSpace(string(b)))
}

func parseCPUList(s string) ([]int, error) {
	var cpus []int
	for _, part := range strings.Split(s, ",") {
		if part == "" {
			continue
		}
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		if err != nil {
			return nil, fmt.Errorf("cpu list %q: %w", s, err)
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil {
				return nil, fmt.Errorf("cpu list %q: %w", s, err)
			}
		}
		for c := a; c <= b; c++ {
			cpus = append(cpus, c)
		}
	}
	if len(cpus) == 0 {
		return nil, fmt.Errorf("cpu list %q: empty", s)
	}
	return cpus, nil
}
