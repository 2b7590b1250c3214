package supervisor

import (
	"errors"
	"os"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// ErrNotFound is the Err of the ExecError for a command name that is in no
// directory of PATH.
var ErrNotFound = errors.New("command not found")

// defaultPath is the search path of execvp(3) (and so of env(1)) when PATH
// is not set.
const defaultPath = "/bin:/usr/bin"

// LookPath finds the executable that env(1) would run for name, searching
// the PATH of env (nil means this process's environment). A name holding a
// slash is taken as a path. An empty directory in PATH is the current
// directory, a PATH that is not set means /bin:/usr/bin, and a directory
// where name exists but cannot be executed is remembered while the search
// goes on, as execvp(3) does.
//
// Failures are *ExecError with env(1)'s status: 127 when nothing by that
// name exists ("name: command not found", or "./name: no such file or
// directory"), 126 when it exists but cannot be executed ("./name:
// permission denied", "name: is a directory").
func LookPath(name string, env []string) (string, error) {
	if name == "" {
		return "", &ExecError{Cmd: name, Code: 127, Err: ErrNotFound}
	}
	if strings.Contains(name, "/") {
		if err := executable(name); err != nil {
			return "", execError(name, err)
		}
		return name, nil
	}
	path, ok := lookupEnv(env, "PATH")
	if !ok {
		path = defaultPath
	}
	var denied error
	for _, dir := range strings.Split(path, ":") {
		if dir == "" {
			dir = "."
		}
		p := dir + "/" + name
		err := executable(p)
		if err == nil {
			return p, nil
		}
		if denied == nil && !errors.Is(err, syscall.ENOENT) && !errors.Is(err, syscall.ENOTDIR) {
			denied = err
		}
	}
	if denied != nil {
		return "", execError(name, denied)
	}
	return "", &ExecError{Cmd: name, Code: 127, Err: ErrNotFound}
}

// executable checks what execve(2) would: the path exists, is a regular
// file, and this process may execute it. The error is a bare errno.
func executable(path string) error {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return err
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		return syscall.EISDIR
	case unix.S_IFREG:
	default:
		return syscall.EACCES
	}
	return unix.Faccessat(unix.AT_FDCWD, path, unix.X_OK, unix.AT_EACCESS)
}

// execError maps a failure to execute cmd to env(1)'s status: 127 for
// ENOENT (no such file, or no such ELF interpreter), 125 when the fork
// itself lacked resources (EMFILE, ENFILE, EAGAIN, ENOMEM), 126 for every
// other reason.
func execError(cmd string, err error) *ExecError {
	var ee *ExecError
	if errors.As(err, &ee) {
		return ee
	}
	code := 126
	switch {
	case errors.Is(err, syscall.ENOENT):
		code = 127
	case errors.Is(err, syscall.EMFILE), errors.Is(err, syscall.ENFILE),
		errors.Is(err, syscall.EAGAIN), errors.Is(err, syscall.ENOMEM):
		// The fork or its pipe failed for want of resources: the
		// supervisor's failure, not the command's (timeout(1) says 125).
		code = 125
	}
	return &ExecError{Cmd: cmd, Code: code, Err: err}
}

func lookupEnv(env []string, key string) (string, bool) {
	if env == nil {
		return os.LookupEnv(key)
	}
	// The first definition wins, as with getenv(3) in the command.
	for _, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok && k == key {
			return v, true
		}
	}
	return "", false
}

// shell runs the executables that execve(2) does not know how to run.
const shell = "/bin/sh"

// forkExecDirect starts path with args. An executable file that execve(2)
// rejects with ENOEXEC (a script without "#!") is run by /bin/sh, as
// execvp(3) and so env(1) do: argv becomes "/bin/sh", path, args[1:].
func forkExecDirect(path string, args []string, attr *syscall.ProcAttr) (int, error) {
	pid, err := syscall.ForkExec(path, args, attr)
	if err != syscall.ENOEXEC {
		return pid, err
	}
	return syscall.ForkExec(shell, append([]string{shell, path}, args[1:]...), attr)
}
