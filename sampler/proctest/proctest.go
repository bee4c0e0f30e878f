// Package proctest starts real processes for procwatch's integration tests and
// benchmarks, and makes sure every one of them is killed (by PID, never by
// name) and reaped when the test ends.
//
// Tests that need a process doing something specific (spinning threads,
// holding memory) re-run their own test binary in a helper mode: the package's
// TestMain calls RunHelperIfAsked first.
package proctest

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

const (
	helperEnv = "PROCWATCH_TEST_HELPER"
	argEnv    = "PROCWATCH_TEST_ARG"
)

// handlers are functions a test registers (from TestMain, before
// RunHelperIfAsked) to run in a helper process: Call runs one in a new
// process, PIDNS.Run runs one inside the namespace.
var handlers = map[string]func(arg string) string{}

// Handle registers fn under name.
func Handle(name string, fn func(arg string) string) { handlers[name] = fn }

// Call runs the handler name with arg in a new process started from cmd
// and returns the line it printed. cmd runs this test binary; set its
// SysProcAttr to run it as another user (see CopyTestBinary).
func Call(t testing.TB, cmd *exec.Cmd, name, arg string) string {
	t.Helper()
	cmd.Env = append(os.Environ(), helperEnv+"="+name, argEnv+"="+arg)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helper %s: %v (%s)", name, err, out)
	}
	return strings.TrimSuffix(string(out), "\n")
}

// Start starts a command and registers a cleanup that kills it by PID with
// SIGKILL and reaps it.
func Start(t testing.TB, cmd *exec.Cmd) *exec.Cmd {
	t.Helper()
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", cmd.Path, err)
	}
	t.Cleanup(func() { Reap(cmd) })
	return cmd
}

// Reap kills cmd's process by PID (if it is still ours to kill) and waits for it.
func Reap(cmd *exec.Cmd) {
	if cmd.ProcessState != nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGKILL) // os.Process signals through its pidfd where it has one
	_ = cmd.Wait()
}

// Helper starts this test binary in the given helper mode and waits until it
// says it is ready.
func Helper(t testing.TB, mode string, arg int) *exec.Cmd {
	t.Helper()
	return HelperCmd(t, exec.Command(os.Args[0], "-test.run=^$"), mode, arg)
}

// HelperCmd is Helper for a command the caller prepared (a working
// directory, a wrapper such as nice); its last argument list must run this
// test binary.
func HelperCmd(t testing.TB, cmd *exec.Cmd, mode string, arg int) *exec.Cmd {
	t.Helper()
	cmd.Env = append(os.Environ(), helperEnv+"="+mode+":"+strconv.Itoa(arg))
	cmd.Stderr = nil // /dev/null: no descriptor the helper's figures would count
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	Start(t, cmd)
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || line != "ready\n" {
		t.Fatalf("helper %s: %q, %v", mode, line, err)
	}
	return cmd
}

// Idle starts n processes that sleep until killed and returns their PIDs.
// It returns once they have settled (a second after the last start), so a
// benchmark that runs next does not pay for their exec and start-up while
// one that runs later does not.
func Idle(t testing.TB, n int) []int {
	t.Helper()
	pids := make([]int, 0, n)
	for range n {
		cmd := Start(t, exec.Command("sleep", "3600"))
		pids = append(pids, cmd.Process.Pid)
	}
	if n > 0 {
		time.Sleep(time.Second)
	}
	return pids
}

// RunHelperIfAsked runs the helper mode named in the environment and exits,
// or returns at once in a normal test run. Modes:
//
//	spin:N     N threads spinning on a CPU each
//	ignoreterm SIGTERM ignored, then idle
//	hold:M     M MiB allocated and touched, then idle
//	details:N  N regular files open (created in the working directory), a
//	           TCP listener and a UDP socket on loopback, three parked threads
func RunHelperIfAsked() {
	v, ok := os.LookupEnv(helperEnv)
	if !ok {
		return
	}
	mode, argText, _ := strings.Cut(v, ":")
	arg, _ := strconv.Atoi(argText)
	if fn, ok := handlers[mode]; ok {
		fmt.Println(fn(os.Getenv(argEnv)))
		os.Exit(0)
	}
	switch mode {
	case "ignoreterm":
		signal.Ignore(syscall.SIGTERM)
	case "pidns":
		runPIDNSInit()
	case "spin":
		for range arg {
			go func() {
				runtime.LockOSThread()
				for x := 0; ; x++ {
					_ = x
				}
			}()
		}
	case "details":
		// arg regular files, one TCP listener, one UDP socket, and three
		// extra threads each locked and parked.
		for i := range arg {
			f, err := os.CreateTemp(".", "open-file-"+strconv.Itoa(i))
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(2)
			}
			defer f.Close()
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		defer ln.Close()
		udp, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		defer udp.Close()
		for range 3 {
			go func() {
				runtime.LockOSThread()
				select {}
			}()
		}
	case "hold":
		b := make([]byte, arg<<20)
		for i := 0; i < len(b); i += 4096 {
			b[i] = 1
		}
		runtime.KeepAlive(b)
		defer runtime.KeepAlive(b)
	default:
		fmt.Fprintf(os.Stderr, "unknown helper mode %q\n", v)
		os.Exit(2)
	}
	fmt.Println("ready")
	for {
		time.Sleep(time.Hour)
	}
}

// KillDescendants kills, by PID, every process descended from pid (found
// through the parent PIDs in /proc), deepest first. Tests call it before
// reaping a process that started children of its own.
func KillDescendants(pid int) {
	parents := map[int]int{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 || i+2 >= len(s) {
			continue
		}
		f := strings.Fields(s[i+2:])
		if len(f) > 1 {
			if pp, err := strconv.Atoi(f[1]); err == nil {
				parents[p] = pp
			}
		}
	}
	var walk func(int)
	walk = func(parent int) {
		for p, pp := range parents {
			if pp == parent {
				walk(p)
				_ = syscall.Kill(p, syscall.SIGKILL)
			}
		}
	}
	walk(pid)
}

// CopyTestBinary copies this test binary to a directory every user may
// enter, so that a helper can run as another user (the go tool builds it in
// a directory only its owner may read). The copy is removed at cleanup.
func CopyTestBinary(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "procwatch-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	b, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "helper.test")
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return bin
}
