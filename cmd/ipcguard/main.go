// Command ipcguard runs a command and, when it fails, removes the System V
// IPC objects its process tree created.
package main

import "os"

var version = "dev"

func main() { os.Exit(run(os.Args)) }
