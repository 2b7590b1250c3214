package ipcdiff

import (
	"fmt"
	"time"
)

// Snapshot reads the objects of the requested types from /proc/sysvipc.
// Taken is the time before the first read, so an object created after Taken
// may or may not be in the snapshot, but one created before it is.
//
// All reading happens in the calling goroutine: /proc/sysvipc shows the IPC
// namespace of the reading thread, and callers (tests, benchmarks) may have
// locked their goroutine's thread into a private namespace.
func (fs FS) Snapshot(types TypeSet) (*Snapshot, error) {
	if types&^AllTypes != 0 || types == 0 {
		return nil, fmt.Errorf("%w: type set %#x", ErrUsage, uint8(types))
	}
	s := &Snapshot{Taken: time.Now(), Types: types}
	var err error
	if types.Has(TypeShm) {
		if s.Shm, err = fs.ShmList(); err != nil {
			return nil, err
		}
	}
	if types.Has(TypeSem) {
		if s.Sem, err = fs.SemList(); err != nil {
			return nil, err
		}
	}
	if types.Has(TypeMsg) {
		if s.Msg, err = fs.MsgList(); err != nil {
			return nil, err
		}
	}
	return s, nil
}
