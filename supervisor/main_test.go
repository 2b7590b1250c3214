package supervisor

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ipcguard/ipcguard/internal/nstest"
	"golang.org/x/sys/unix"
)

// helpers are the helper commands of this test binary (see nstest.Main).
// Other test files of the package add theirs from an init function:
//
//	func init() { helpers["name"] = nameHelper }
var helpers = map[string]func(args []string) int{
	"supervise":   superviseHelper,
	"ignore-term": ignoreTermHelper,
}

func TestMain(m *testing.M) {
	// A helper started without its environment variable would run the
	// whole test suite again, and again: refuse.
	helperVar, _, _ := strings.Cut(nstest.HelperEnv(""), "=")
	if len(os.Args) > 1 && os.Args[1] == "--" && os.Getenv(helperVar) == "" {
		fmt.Fprintln(os.Stderr, "supervisor.test: started with a helper's arguments but no helper to run")
		os.Exit(2)
	}
	nstest.Main(m, helpers)
}

// harnessReport is what the supervise helper writes to its -status file.
type harnessReport struct {
	Pid        int
	Exited     bool
	Code       int
	Signal     int
	Terminated []int
	Killed     []int
	Remaining  []int
	Tracker    string
	Note       string
	// Children and Zombies are the supervisor's children (zombie ones in
	// Zombies) right after Run returned.
	Children []int
	Zombies  []int
	// Outlived is Result.Outlived: pid and status code (StatusCode).
	Outlived [][2]int
}

// superviseHelper is a miniature ipcguard:
//
//	supervise [-grace D] [-keep] [-wait-all] [-status FILE] -- CMD ARGS...
//
// It runs CMD under Run (descendants are terminated when CMD fails, unless
// -keep), writes a harnessReport to FILE if asked, prints nothing else but
// exec errors, and ends like CMD did (Exit).
func superviseHelper(args []string) int {
	fs := flag.NewFlagSet("supervise", flag.ContinueOnError)
	grace := fs.Duration("grace", 5*time.Second, "grace period before SIGKILL")
	keep := fs.Bool("keep", false, "leave descendants running")
	status := fs.String("status", "", "write a JSON report of the run to this file")
	waitAll := fs.Bool("wait-all", false, "stay until every descendant is gone (WaitDescendants)")
	early := fs.Int("early", 0, "call Prepare and, once the signals are caught, send this signal to itself before Run")
	if err := fs.Parse(args); err != nil {
		return 125
	}
	cmd := fs.Args()
	if len(cmd) == 0 {
		fmt.Fprintln(os.Stderr, "supervise: no command")
		return 125
	}
	path, err := LookPath(cmd[0], nil)
	if err != nil {
		return execFailure(err)
	}
	if *early != 0 {
		Prepare()
		pending.mu.Lock()
		ready := pending.ready
		pending.mu.Unlock()
		<-ready
		pending.mu.Lock()
		sigs := pending.sigs
		pending.mu.Unlock()
		unix.Kill(os.Getpid(), syscall.Signal(*early))
		// Run starts only once the runtime has delivered it to the
		// prepared channel.
		for len(sigs.c) == 0 {
			time.Sleep(time.Millisecond)
		}
	}
	opts := Options{Path: path, Args: cmd, Grace: *grace, WaitDescendants: *waitAll}
	opts.Terminate = func(ws unix.WaitStatus) bool { return !*keep && !(ws.Exited() && ws.ExitStatus() == 0) }
	res, err := Run(opts)
	if err != nil {
		return execFailure(err)
	}
	if *status != "" {
		if err := writeReport(*status, res); err != nil {
			fmt.Fprintf(os.Stderr, "supervise: %v\n", err)
			return 125
		}
	}
	Exit(res.Status)
	return 125 // not reached
}

func execFailure(err error) int {
	fmt.Fprintf(os.Stderr, "supervise: %v\n", err)
	var ee *ExecError
	if errors.As(err, &ee) {
		return ee.Code
	}
	return 125
}

func writeReport(file string, res *Result) error {
	r := harnessReport{
		Pid: res.Pid, Exited: res.Status.Exited(), Code: res.Status.ExitStatus(),
		Terminated: res.Terminated, Killed: res.Killed, Remaining: res.Remaining,
		Tracker: res.Tree.Tracker, Note: res.Tree.Note,
	}
	if res.Status.Signaled() {
		r.Signal = int(res.Status.Signal())
	}
	for _, o := range res.Outlived {
		r.Outlived = append(r.Outlived, [2]int{o.Pid, StatusCode(o.Status)})
	}
	kids, err := proc.Children(os.Getpid(), nil)
	if err != nil {
		return err
	}
	r.Children = kids
	for _, k := range kids {
		if st, err := proc.Stat(k); err == nil && st.State == 'Z' {
			r.Zombies = append(r.Zombies, k)
		}
	}
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	tmp := file + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, file)
}

// ignoreTermHelper ignores SIGTERM, writes its pid to args[0] (atomically)
// and waits to be killed.
func ignoreTermHelper(args []string) int {
	signal.Ignore(syscall.SIGTERM)
	if len(args) > 0 {
		tmp := args[0] + ".tmp"
		if err := os.WriteFile(tmp, []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 99
		}
		if err := os.Rename(tmp, args[0]); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 99
		}
	}
	for {
		unix.Pause()
	}
}
