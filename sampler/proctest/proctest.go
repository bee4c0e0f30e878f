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
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"syscall"
	"testing"
	"time"
)

const helperEnv = "PROCWATCH_TEST_HELPER"

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
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+mode+":"+strconv.Itoa(arg))
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
func Idle(t testing.TB, n int) []int {
	t.Helper()
	pids := make([]int, 0, n)
	for range n {
		cmd := Start(t, exec.Command("sleep", "3600"))
		pids = append(pids, cmd.Process.Pid)
	}
	return pids
}

// RunHelperIfAsked runs the helper mode named in the environment and exits,
// or returns at once in a normal test run. Modes:
//
//	spin:N  N threads spinning on a CPU each
//	hold:M  M MiB allocated and touched, then idle
func RunHelperIfAsked() {
	v, ok := os.LookupEnv(helperEnv)
	if !ok {
		return
	}
	var mode string
	var arg int
	for i := range v {
		if v[i] == ':' {
			mode = v[:i]
			arg, _ = strconv.Atoi(v[i+1:])
		}
	}
	switch mode {
	case "spin":
		for range arg {
			go func() {
				runtime.LockOSThread()
				for x := 0; ; x++ {
					_ = x
				}
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
