package ipcdiff

import "time"

// Holder says who held a pid number while an action the kernel recorded
// with that number took place.
type Holder uint8

const (
	// HeldOutside: no member of the tree ran under the number then.
	HeldOutside Holder = iota
	// HeldByTree: a member ran under the number then, and no process
	// outside the tree can have held it at any moment of the action's
	// time window: the action was the tree's.
	HeldByTree
	// HeldAmbiguous: a member ran under the number then, but another
	// process may have held the same number within the window (pid reuse
	// that cannot be ruled out).
	HeldAmbiguous
)

// Tree is what attribution needs to know about the supervised process tree.
// supervisor.Tree implements it; tests use fakes.
type Tree interface {
	// Holder says who held pid number pid at the moments in [from, to]
	// when a process acted with it (a pid counts only together with a
	// time: docs/evidence.md). exact qualifies HeldOutside: true when the
	// tracker saw every fork of the tree, so the number was certainly not
	// a member's; false when a member may have gone unseen. why explains
	// HeldAmbiguous.
	Holder(pid int, from, to time.Time) (h Holder, exact bool, why string)
	// Created reports whether the tree was seen creating object typ ("shm",
	// "sem", "msg") with this id; tracked is false when no creation tracker
	// ran to completion (then created means nothing). proven is true when
	// the call that returned the id must have made a new object (key
	// IPC_PRIVATE, or IPC_CREAT|IPC_EXCL); a keyed get without IPC_EXCL
	// may have opened an object someone else had just made.
	// at is when that get returned: an object whose ctime (creation, or a
	// later change) is later than that is not proven to be the one the get
	// returned (the id may have been handed out again).
	Created(typ string, id int) (created, proven bool, at time.Time, tracked bool)
	// Alive lists the tree's members that are still running.
	Alive() []int
	// Until is the time up to which the record of the tree is complete:
	// actions after it were not watched (a supervisor that died, a
	// tracker that stopped) and are never the tree's.
	Until() time.Time
}
