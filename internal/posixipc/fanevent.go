package posixipc

import (
	"bytes"
	"encoding/binary"
	"fmt"
)

// Constants of include/uapi/linux/fanotify.h, here so that the parser
// builds on every OS.
const (
	fanAttrib       = 0x00000004
	fanEventOnChild = 0x08000000
	fanCreate       = 0x00000100
	fanMovedTo      = 0x00000080
	fanQOverflow    = 0x00004000
	fanInfoFID      = 1
	fanInfoDFIDName = 2
	fanMetaLen      = 24
	fanMetaVersion  = 3
)

// fanEvent is one event of a fanotify group with FAN_REPORT_DFID_NAME
// (and FAN_REPORT_FID|FAN_REPORT_TARGET_FID where the kernel has them).
type fanEvent struct {
	mask uint64
	pid  int32
	// name is the entry name of a FAN_EVENT_INFO_TYPE_DFID_NAME record
	// ("" when the event has none, as FAN_Q_OVERFLOW).
	name    string
	hasName bool
	// file is the handle of a FAN_EVENT_INFO_TYPE_FID record: with
	// FAN_REPORT_TARGET_FID, the child an entry event names (the file a
	// name was made for); "" when the event has none.
	file Handle
}

// parseFanEvents parses what read(2) returned from a fanotify group
// (fanotify(7)): events of struct fanotify_event_metadata (event_len u32,
// vers u8, reserved u8, metadata_len u16, mask u64, fd s32, pid s32), each
// followed by info records (info_type u8, pad u8, len u16); a DFID_NAME
// record holds fsid (8 bytes), struct file_handle (handle_bytes u32,
// handle_type s32, f_handle), then the name ending in NUL; a FID record
// holds the same without the name. Integers are in
// host order (little endian on every architecture Go's fanotify runs on
// here: the caller passes the order).
func parseFanEvents(b []byte, bo binary.ByteOrder) ([]fanEvent, error) {
	var evs []fanEvent
	for len(b) > 0 {
		if len(b) < fanMetaLen {
			return evs, fmt.Errorf("%w: fanotify: %d bytes left, shorter than an event", ErrParse, len(b))
		}
		evLen := int(bo.Uint32(b[0:4]))
		vers := b[4]
		metaLen := int(bo.Uint16(b[6:8]))
		if vers != fanMetaVersion {
			return evs, fmt.Errorf("%w: fanotify: metadata version %d, want %d", ErrParse, vers, fanMetaVersion)
		}
		if evLen < fanMetaLen || evLen > len(b) || metaLen < fanMetaLen || metaLen > evLen {
			return evs, fmt.Errorf("%w: fanotify: event length %d, metadata length %d, %d bytes", ErrParse, evLen, metaLen, len(b))
		}
		ev := fanEvent{mask: bo.Uint64(b[8:16]), pid: int32(bo.Uint32(b[20:24]))}
		info := b[metaLen:evLen]
		for len(info) > 0 {
			if len(info) < 4 {
				return evs, fmt.Errorf("%w: fanotify: info header of %d bytes", ErrParse, len(info))
			}
			typ, l := info[0], int(bo.Uint16(info[2:4]))
			if l < 4 || l > len(info) {
				return evs, fmt.Errorf("%w: fanotify: info length %d, %d bytes", ErrParse, l, len(info))
			}
			if typ == fanInfoDFIDName || typ == fanInfoFID {
				rec := info[4:l]
				if len(rec) < 8+8 {
					return evs, fmt.Errorf("%w: fanotify: FID record (type %d) of %d bytes", ErrParse, typ, len(rec))
				}
				hb := int(bo.Uint32(rec[8:12]))
				rest := rec[16:]
				if hb < 0 || hb > len(rest) {
					return evs, fmt.Errorf("%w: fanotify: file handle of %d bytes in %d", ErrParse, hb, len(rest))
				}
				if typ == fanInfoFID {
					// A handle of no bytes names nothing: no file.
					ev.file = NewHandle(int32(bo.Uint32(rec[12:16])), rest[:hb])
				} else {
					name := rest[hb:]
					end := bytes.IndexByte(name, 0)
					if end < 0 {
						return evs, fmt.Errorf("%w: fanotify: name without NUL", ErrParse)
					}
					ev.name, ev.hasName = string(name[:end]), true
				}
			}
			info = info[l:]
		}
		evs = append(evs, ev)
		b = b[evLen:]
	}
	return evs, nil
}
