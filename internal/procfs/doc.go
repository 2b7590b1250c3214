// Package procfs reads the Linux proc filesystem (proc(5)) for the rest of
// ipcguard: one FS per mount point (NewFS, Default), one file per /proc
// source, each reader separate from its parser:
//
//   - stat.go: /proc/PID/stat (state, parent, start time; the command name,
//     which may hold spaces and parentheses, is split at the last ')').
//   - start_linux.go: the one conversion of a start time in clock ticks
//     after boot into wall time (StartWall).
//   - alive_linux.go: liveness of a pid, and of a pid with its start time,
//     aware of the pid namespace the mount shows.
//   - children.go: /proc/PID/task/TID/children.
//   - comm.go, maps.go, status.go: /proc/PID/comm, /proc/PID/maps, the
//     Uid and Gid lines of /proc/PID/status.
//   - pids.go: the processes a mount shows.
//   - counters.go: /proc/loadavg, the "processes" line of /proc/stat and
//     /proc/sys/kernel/pid_max, which the pid watch reads.
//   - ns_linux.go: namespaces (/proc/self/ns/*), the boot id, the user
//     namespace's uid map and sysctls.
//
// The System V IPC tables (/proc/sysvipc/*) are ipcdiff's own concern.
//
// ipcguard is Linux-only: elsewhere this package does not build, with a
// message that says so (unsupported.go).
package procfs
