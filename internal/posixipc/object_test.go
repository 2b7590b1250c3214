package posixipc

import (
	"encoding/binary"
	"errors"
	"strings"
	"testing"
)

func TestParseQueueStatus(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want QueueStatus
		err  bool
	}{
		// As ipc/mqueue.c prints it (%-10lu %-5d %-5d %-6d).
		{in: "QSIZE:0          NOTIFY:0     SIGNO:0     NOTIFY_PID:0     \n", want: QueueStatus{}},
		{in: "QSIZE:5          NOTIFY:0     SIGNO:10    NOTIFY_PID:4242  \n", want: QueueStatus{QSize: 5, Signo: 10, NotifyPid: 4242}},
		{in: "QSIZE:18446744073709551615 NOTIFY:2 SIGNO:0 NOTIFY_PID:4194304\n", want: QueueStatus{QSize: 1<<64 - 1, Notify: 2, NotifyPid: 4194304}},
		// A later kernel may add fields.
		{in: "QSIZE:1 NOTIFY:1 SIGNO:0 NOTIFY_PID:7 EXTRA:x\n", want: QueueStatus{QSize: 1, Notify: 1, NotifyPid: 7}},
		{in: "QSIZE:1 NOTIFY:1 SIGNO:0\n", err: true},
		{in: "QSIZE:1 NOTIFY:1 SIGNO:0 NOTIFY_PID:7", err: true},
		{in: "QSIZE:1 NOTIFY:1 SIGNO:0 NOTIFY_PID:-7\n", err: true},
		{in: "QSIZE:1 QSIZE:1 NOTIFY:1 SIGNO:0 NOTIFY_PID:7\n", err: true},
		{in: "QSIZE:x NOTIFY:1 SIGNO:0 NOTIFY_PID:7\n", err: true},
		{in: "QSIZE:1 NOTIFY:1 SIGNO:0 NOTIFY_PID:7\nQSIZE:2\n", err: true},
		{in: "QSIZE NOTIFY:1 SIGNO:0 NOTIFY_PID:7\n", err: true},
		{in: "", err: true},
	} {
		got, err := parseQueueStatus([]byte(tc.in))
		if tc.err {
			if !errors.Is(err, ErrParse) {
				t.Errorf("%q: err %v, want ErrParse", tc.in, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%q: %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
}

func FuzzParseQueueStatus(f *testing.F) {
	f.Add([]byte("QSIZE:0          NOTIFY:0     SIGNO:0     NOTIFY_PID:0     \n"))
	f.Add([]byte("QSIZE:5 NOTIFY:0 SIGNO:10 NOTIFY_PID:4242\n"))
	f.Add([]byte("QSIZE:1:2 NOTIFY:: SIGNO:0 NOTIFY_PID:+7\n\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := parseQueueStatus(b)
		if err != nil {
			if !errors.Is(err, ErrParse) {
				t.Fatalf("error %v does not wrap ErrParse", err)
			}
			return
		}
		if s.NotifyPid < 0 {
			t.Fatalf("negative pid from %q", b)
		}
	})
}

func TestParseMountinfo(t *testing.T) {
	in := "22 1 0:21 / /proc rw,nosuid - proc proc rw\n" +
		"35 24 0:31 / /dev/mqueue rw,relatime shared:14 - mqueue mqueue rw\n" +
		"36 24 0:32 / /tmp/a\\040b\\012c rw master:1 shared:2 - mqueue none rw\n" +
		"37 24 259:1 /sub /mnt rw - ext4 /dev/x rw\n"
	ms, err := parseMountinfo([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 4 {
		t.Fatalf("%d mounts", len(ms))
	}
	if m := ms[1]; m.FSType != "mqueue" || m.Point != "/dev/mqueue" || m.Dev != mkdev(0, 31) || m.ID != 35 {
		t.Errorf("%+v", m)
	}
	if m := ms[2]; m.Point != "/tmp/a b\nc" || m.FSType != "mqueue" {
		t.Errorf("escaped point: %+v", m)
	}
	if m := ms[3]; m.Root != "/sub" || major(m.Dev) != 259 || minor(m.Dev) != 1 {
		t.Errorf("%+v", m)
	}
	for _, bad := range []string{"x 1 0:1 / / rw - a b c\n", "1 1 0:1 / / rw a b c\n", "1 1 01 / / rw - a b\n", "1 1 0:1 /\\04 / rw - a b\n"} {
		if _, err := parseMountinfo([]byte(bad)); !errors.Is(err, ErrParse) {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

func TestMapsKey(t *testing.T) {
	for _, tc := range []struct {
		line string
		key  FileKey
		ok   bool
		err  bool
	}{
		{line: "7f0000000000-7f0000001000 rw-s 00000000 00:1a 1234                       /dev/shm/x", key: FileKey{mkdev(0, 0x1a), 1234}, ok: true},
		{line: "7f0000000000-7f0000001000 rw-s 00000000 00:1a 1234                       /dev/shm/a b (deleted)", key: FileKey{mkdev(0, 0x1a), 1234}, ok: true},
		{line: "7f0000000000-7f0000001000 rw-s 00000000 103:02 99 /x", key: FileKey{mkdev(0x103, 2), 99}, ok: true},
		{line: "7f0000000000-7f0000001000 rw-p 00000000 00:00 0 ", ok: false},
		{line: "7ffd1000-7ffd2000 r-xp 00000000 00:00 0                  [vdso]", ok: false},
		{line: "garbage", err: true},
		{line: "a b c 0x:1 5 /x", err: true},
		{line: "a b c 00:01 five /x", err: true},
	} {
		k, ok, err := mapsKey([]byte(tc.line))
		if (err != nil) != tc.err || ok != tc.ok || k != tc.key {
			t.Errorf("%q: %v %v %v; want %v %v err=%v", tc.line, k, ok, err, tc.key, tc.ok, tc.err)
		}
	}
}

func TestParseFanEvents(t *testing.T) {
	bo := binary.LittleEndian
	record := func(typ byte, htype int32, handle []byte, name string, named bool) []byte {
		info := make([]byte, 4+8+8)
		info[0] = typ
		bo.PutUint32(info[12:], uint32(len(handle)))
		bo.PutUint32(info[16:], uint32(htype))
		info = append(info, handle...)
		if named {
			info = append(append(info, name...), 0)
		}
		for len(info)%4 != 0 {
			info = append(info, 0)
		}
		bo.PutUint16(info[2:], uint16(len(info)))
		return info
	}
	// event is a DFID_NAME event, with the child's FID record (type 1,
	// bytes child) after it when child is not empty.
	event := func(mask uint64, pid int32, name string, child ...byte) []byte {
		info := record(fanInfoDFIDName, 1, []byte{1, 2, 3, 4, 5, 6, 7, 8}, name, true)
		if len(child) > 0 {
			info = append(info, record(fanInfoFID, 1, child, "", false)...)
		}
		m := make([]byte, fanMetaLen)
		bo.PutUint32(m[0:], uint32(fanMetaLen+len(info)))
		m[4] = fanMetaVersion
		bo.PutUint16(m[6:], fanMetaLen)
		bo.PutUint64(m[8:], mask)
		bo.PutUint32(m[16:], uint32(0xffffffff)) // FAN_NOFD
		bo.PutUint32(m[20:], uint32(pid))
		return append(m, info...)
	}
	overflow := make([]byte, fanMetaLen)
	bo.PutUint32(overflow[0:], fanMetaLen)
	overflow[4] = fanMetaVersion
	bo.PutUint16(overflow[6:], fanMetaLen)
	bo.PutUint64(overflow[8:], fanQOverflow)
	var b []byte
	b = append(b, event(fanCreate, 42, "sem.x")...)
	b = append(b, event(fanMovedTo, 43, "a\nb", 0xfd, 0x90, 0, 0)...)
	b = append(b, overflow...)
	evs, err := parseFanEvents(b, bo)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 3 || evs[0].name != "sem.x" || evs[0].pid != 42 || evs[0].file != "" || evs[1].name != "a\nb" || evs[1].mask != fanMovedTo ||
		evs[1].file != "1:fd900000" || evs[2].hasName || evs[2].mask != fanQOverflow {
		t.Fatalf("%+v", evs)
	}
	for i := 1; i < len(b)-len(overflow); i += 7 {
		if _, err := parseFanEvents(b[:i], bo); err == nil && i != len(event(fanCreate, 42, "sem.x")) {
			t.Errorf("truncated at %d: no error", i)
		}
	}
	bad := event(fanCreate, 1, "x")
	bad[4] = 2
	if _, err := parseFanEvents(bad, bo); !errors.Is(err, ErrParse) || !strings.Contains(err.Error(), "version") {
		t.Errorf("version: %v", err)
	}
}

func TestHandle(t *testing.T) {
	h := NewHandle(0x81, []byte{0x59, 0xd7, 0x56, 0, 0xab})
	if h != "129:59d75600ab" {
		t.Errorf("NewHandle: %q", h)
	}
	if NewHandle(1, nil) != "" {
		t.Error("a handle of no bytes")
	}
	for s, ok := range map[string]bool{string(h): true, "-1:00": true, "1:": false, "1:abc": false, "1:AB": false, "x:00": false, "00": false, "": false,
		"1:" + strings.Repeat("00", 128): true, "1:" + strings.Repeat("00", 129): false} {
		if got, gok := ParseHandle(s); gok != ok || ok && string(got) != s {
			t.Errorf("ParseHandle(%q) = %q, %v", s, got, gok)
		}
	}
}

func TestValidName(t *testing.T) {
	for name, ok := range map[string]bool{"x": true, "sem.x": true, "a\nb": true, "": false, ".": false, "..": false, "a/b": false, "/x": false, "a\x00": false, "...": true} {
		if validName(name) != ok {
			t.Errorf("validName(%q) != %v", name, ok)
		}
	}
}
