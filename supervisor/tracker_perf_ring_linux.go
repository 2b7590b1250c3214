package supervisor

import (
	"encoding/binary"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// The perf ring buffers: reading records out of them and decoding them.

// read hands each complete record between tail and head to fn, then
// releases the space to the kernel.
func (b *perfBuf) read(fn func(rec []byte)) {
	head := atomic.LoadUint64(&b.meta.Data_head) // load-acquire
	tail := atomic.LoadUint64(&b.meta.Data_tail)
	size := uint64(len(b.data))
	// A buffer found (nearly) full may have dropped records: the kernel
	// writes PERF_RECORD_LOST only once space frees and another record
	// comes, which may never happen before the end.
	if head-tail > size-perfFullSlack {
		b.full = true
	}
	for tail < head {
		off := tail % size
		// Records are 8-byte aligned: a header never wraps.
		sz := uint64(binary.NativeEndian.Uint16(b.data[off+6:]))
		if sz < 8 || sz > head-tail {
			tail = head // corrupt: skip everything
			break
		}
		rec := b.data[off : off+min(sz, size-off)]
		if off+sz > size {
			b.scratch = append(append(b.scratch[:0], rec...), b.data[:off+sz-size]...)
			rec = b.scratch
		}
		fn(rec)
		tail += sz
	}
	atomic.StoreUint64(&b.meta.Data_tail, tail) // store-release
}

// pendingGet is a get a thread entered and has not returned from.
type pendingGet struct {
	typ        string
	key, flags int64
}

// perfRecord is one decoded ring-buffer record.
type perfRecord struct {
	kind           uint32 // unix.PERF_RECORD_*
	pid, ppid, tid int
	time           uint64 // record clock, ns
	lost           uint64 // PERF_RECORD_LOST(_SAMPLES): records dropped
	typ            string // PERF_RECORD_SAMPLE of a syscall tracepoint: object type
	ret            int64  // ... and, on exit, the syscall's return value
	enter          bool   // ... an entry: key and flags
	key, flags     int64
}

// decodePerfRecord decodes one record of our events (sample_type
// TID|TIME[|RAW], sample_id_all). ok is false for records we do not use or
// cannot read.
func decodePerfRecord(rec []byte, tpType map[uint16]tracepoint) (r perfRecord, ok bool) {
	ne := binary.NativeEndian
	if len(rec) < 8 {
		return r, false
	}
	r.kind = ne.Uint32(rec)
	body := rec[8:]
	switch r.kind {
	case unix.PERF_RECORD_FORK, unix.PERF_RECORD_EXIT:
		// u32 pid, ppid, tid, ptid; u64 time; sample_id
		if len(body) < 24 {
			return r, false
		}
		r.pid, r.ppid = int(ne.Uint32(body)), int(ne.Uint32(body[4:]))
		r.tid = int(ne.Uint32(body[8:]))
		r.time = ne.Uint64(body[16:])
		return r, true
	case unix.PERF_RECORD_LOST, unix.PERF_RECORD_LOST_SAMPLES:
		// LOST: u64 id, lost; LOST_SAMPLES: u64 lost; then sample_id
		// (pid/tid, time) at the end.
		n := 16
		if r.kind == unix.PERF_RECORD_LOST_SAMPLES {
			n = 8
		}
		if len(body) < n+16 {
			return r, false
		}
		r.lost = ne.Uint64(body[n-8:])
		r.time = ne.Uint64(body[n+8:])
		return r, true
	case unix.PERF_RECORD_THROTTLE:
		// u64 time, id, stream_id; sample_id
		if len(body) < 8 {
			return r, false
		}
		r.time = ne.Uint64(body)
		return r, true
	case unix.PERF_RECORD_SAMPLE:
		// u32 pid, tid; u64 time; u32 size; raw (common fields 8 bytes,
		// int __syscall_nr at 8, long ret at 16).
		if len(body) < 20 {
			return r, false
		}
		r.pid, r.tid = int(ne.Uint32(body)), int(ne.Uint32(body[4:]))
		r.time = ne.Uint64(body[8:])
		size := int(ne.Uint32(body[16:]))
		raw := body[20:]
		if size < 24 || len(raw) < size {
			return r, false
		}
		tp, known := tpType[ne.Uint16(raw)]
		if !known {
			return r, false
		}
		r.typ, r.enter = tp.typ, tp.enter
		if tp.enter {
			if len(raw) < tp.keyOff+8 || len(raw) < tp.flgOff+8 {
				return r, false
			}
			// key_t is an int; the tracepoint stores each argument as a
			// long: the low 32 bits, sign-extended, are the key.
			r.key = int64(int32(ne.Uint64(raw[tp.keyOff:])))
			r.flags = int64(int32(ne.Uint64(raw[tp.flgOff:])))
			return r, true
		}
		r.ret = int64(ne.Uint64(raw[16:]))
		return r, true
	}
	return r, false
}
