// Command ipcguard runs a command and, when it fails, removes the System V
// IPC objects its process tree created, and nothing else.
package main

import (
	"os"

	"github.com/ipcguard/ipcguard/supervisor"
)

var version = "dev"

func main() { supervisor.Exit(run(os.Args)) }
