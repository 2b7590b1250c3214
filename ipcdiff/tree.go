package ipcdiff

import "time"

// Tree is what attribution needs to know about the supervised process tree.
// supervisor.Tree implements it; tests use fakes.
type Tree interface {
	// Member reports whether pid belonged to the tree at some moment in
	// [from, to] (a pid counts only for the time it was in the tree, so a
	// reused pid number does not). When member is false, exact says whether
	// the tracker is certain (it saw every fork) or merely did not see it.
	Member(pid int, from, to time.Time) (member, exact bool)
	// Created reports whether the tree was seen creating object typ ("shm",
	// "sem", "msg") with this id; tracked is false when no creation tracker
	// ran to completion (then created means nothing).
	Created(typ string, id int) (created, tracked bool)
	// Alive lists the tree's members that are still running.
	Alive() []int
}
