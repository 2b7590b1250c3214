//go:build !linux

package procfs

// ipcguard supervises processes through Linux's proc filesystem and
// Linux-only system calls (pidfd_open, perf_event_open, the proc connector,
// PR_SET_CHILD_SUBREAPER, seccomp user notification): there is nothing to
// build for another GOOS. The declaration below fails on purpose, and its
// message is what `go build` prints.
var _ int = "ipcguard builds for GOOS=linux only"
