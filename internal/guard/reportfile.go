package guard

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// ReportFile is where --report goes. OpenReportFile checks the path before
// the command starts, so that a bad path is a usage error, not a lost
// report.
//
// The file is never written through: the report goes to a new file in the
// same directory (mode 0600 before the umask; a default ACL of the directory
// may widen it), which is then renamed over PATH, so a reader sees the old
// report or the whole new one, and a link planted at PATH is replaced, not
// followed. A symbolic link at PATH is followed only when it belongs to the
// effective uid or to the owner of its directory (the rule of the kernel's
// fs.protected_symlinks, applied in every directory). Anything at PATH but a
// regular file (a FIFO, a device, a directory) is refused without being
// opened. An existing report is removed when the run begins: a run that ends
// before it writes its report (ipcguard killed) leaves no report rather than
// the previous run's looking current.
type ReportFile struct {
	path   string // as the user gave it, for messages
	target string // PATH with its permitted links resolved; "" for stderr
}

// maxReportLinks bounds the links followed, as the kernel's MAXSYMLINKS.
const maxReportLinks = 40

// OpenReportFile checks path and removes a report already there: nil for
// "" (no report), stderr for "-". Errors read "PATH: why" (the errno of
// lstat(2), unlink(2) or open(2) of the new file, or a refusal).
func OpenReportFile(path string) (*ReportFile, error) {
	switch path {
	case "":
		return nil, nil
	case "-":
		return &ReportFile{path: "-"}, nil
	}
	target, err := resolveReport(path, os.Geteuid())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var st unix.Stat_t
	switch err := unix.Lstat(target, &st); {
	case err == unix.ENOENT:
	case err != nil:
		return nil, fmt.Errorf("%s: %w", path, err)
	case st.Mode&unix.S_IFMT != unix.S_IFREG:
		return nil, fmt.Errorf("%s: %s is %s, not a regular file: refusing to write the report there", path, target, fileKind(st.Mode))
	default:
		// Not a stale report that looks current if this run never
		// writes one; also proves that PATH may be replaced.
		if err := unix.Unlink(target); err != nil && err != unix.ENOENT {
			return nil, fmt.Errorf("%s: cannot replace %s: %w", path, target, err)
		}
	}
	s := &ReportFile{path: path, target: target}
	// Prove now that the directory takes the new file.
	f, err := s.temp()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, unwrapPathError(err))
	}
	f.Close()
	os.Remove(f.Name())
	return s, nil
}

// resolveReport follows the symbolic links at the end of path that belong to
// euid or to the owner of the directory holding them, and refuses any other.
func resolveReport(path string, euid int) (string, error) {
	for range maxReportLinks {
		var st unix.Stat_t
		if err := unix.Lstat(path, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFLNK {
			return path, nil // missing, or not a link: checked by the caller
		}
		var dir unix.Stat_t
		if err := unix.Stat(filepath.Dir(path), &dir); err != nil {
			return "", err
		}
		if int(st.Uid) != euid && st.Uid != dir.Uid {
			return "", fmt.Errorf("%s is a symbolic link of uid %d in a directory of uid %d: refusing to follow it (another user could point it at any file)", path, st.Uid, dir.Uid)
		}
		to, err := os.Readlink(path)
		if err != nil {
			return "", unwrapPathError(err)
		}
		if !filepath.IsAbs(to) {
			to = filepath.Join(filepath.Dir(path), to)
		}
		path = to
	}
	return "", unix.ELOOP
}

func fileKind(mode uint32) string {
	switch mode & unix.S_IFMT {
	case unix.S_IFDIR:
		return "a directory"
	case unix.S_IFIFO:
		return "a FIFO"
	case unix.S_IFSOCK:
		return "a socket"
	case unix.S_IFCHR:
		return "a character device"
	case unix.S_IFBLK:
		return "a block device"
	}
	return "not a regular file"
}

// temp creates the file the report is written to before the rename.
func (s *ReportFile) temp() (*os.File, error) {
	return os.CreateTemp(filepath.Dir(s.target), "."+filepath.Base(s.target)+".*.tmp")
}

func unwrapPathError(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	var le *os.LinkError
	if errors.As(err, &le) {
		return le.Err
	}
	return err
}

// Write writes v (a *Report, or the []SweepReport of a sweep) as indented
// JSON: to stderr for "-", else to a new file renamed over the path.
// Errors read "PATH: why".
func (s *ReportFile) Write(v any, stderr io.Writer) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	b = append(b, '\n')
	if s.target == "" {
		_, err = stderr.Write(b)
		return err
	}
	f, err := s.temp()
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), s.target)
	}
	if err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("%s: %w", s.path, unwrapPathError(err))
	}
	return nil
}
