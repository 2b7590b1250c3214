package sigstart

// entry is the process entry point written in assembly (see
// entry_linux_amd64.s); it is never called from Go.
func entry()

// Referenced so that the linker keeps it and tools see it used; -E makes
// it the entry point.
var _ = entry
