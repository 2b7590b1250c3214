//go:build !linux

package main

// ipcguard-bench measures ipcguard, which runs on Linux only, in private
// IPC and user namespaces (CLONE_NEWIPC, CLONE_NEWUSER): there is nothing
// to build for another GOOS. The declaration below fails on purpose, and
// its message is what `go build` prints.
var _ int = "ipcguard-bench builds for GOOS=linux only"

func main() {}
