package proctest

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// PIDNS is a new PID namespace whose init is a helper that takes commands,
// with a procfs of its own mounted where the test can read it (ProcRoot).
// Everything in it dies with the helper, which the cleanup kills by PID.
type PIDNS struct {
	t        testing.TB
	cmd      *exec.Cmd
	in       io.Writer
	out      *bufio.Reader
	ProcRoot string // this namespace's procfs, as the test sees it
}

const procDirEnv = "PROCWATCH_TEST_PROCDIR"

// NewPIDNS starts the namespace, or skips the test where it cannot be made
// (not root, or namespaces not permitted).
func NewPIDNS(t testing.TB) *PIDNS {
	t.Helper()
	if os.Getuid() != 0 {
		t.Skip("needs root to create a PID namespace")
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"=pidns:0", procDirEnv+"="+dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWPID | syscall.CLONE_NEWNS}
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	outPipe, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Skipf("cannot create a PID namespace: %v", err)
	}
	t.Cleanup(func() { Reap(cmd) })
	n := &PIDNS{t: t, cmd: cmd, in: in, out: bufio.NewReader(outPipe)}
	if line := n.reply(); line != "ready" {
		t.Skipf("PID namespace helper: %q", line)
	}
	// The helper's mounts are private to its mount namespace; its root is
	// reachable through /proc/<pid>/root.
	n.ProcRoot = filepath.Join("/proc", strconv.Itoa(cmd.Process.Pid), "root", dir)
	return n
}

// InitPID is the host PID of the namespace's init (PID 1 inside it).
func (n *PIDNS) InitPID() int { return n.cmd.Process.Pid }

func (n *PIDNS) reply() string {
	line, err := n.out.ReadString('\n')
	if err != nil {
		n.t.Fatalf("PID namespace helper: %v", err)
	}
	return strings.TrimSuffix(line, "\n")
}

func (n *PIDNS) call(format string, args ...any) string {
	n.t.Helper()
	fmt.Fprintf(n.in, format+"\n", args...)
	r := n.reply()
	if strings.HasPrefix(r, "!error") {
		n.t.Fatalf("PID namespace helper: %s", r)
	}
	return r
}

func (n *PIDNS) callPID(format string, args ...any) int {
	n.t.Helper()
	pid, err := strconv.Atoi(n.call(format, args...))
	if err != nil {
		n.t.Fatal(err)
	}
	return pid
}

// Spawn starts `sleep 3600` in the namespace and returns its PID there.
func (n *PIDNS) Spawn() int { return n.callPID("spawn") }

// Zombie starts `true` and never reaps it; it returns its PID there.
func (n *PIDNS) Zombie() int { return n.callPID("zombie") }

// Kill kills, by PID, a process the namespace's init started, and reaps it.
func (n *PIDNS) Kill(pid int) { n.call("kill %d", pid) }

// SetLastPID writes the namespace's ns_last_pid, so the next process gets pid+1.
func (n *PIDNS) SetLastPID(pid int) { n.call("lastpid %d", pid) }

// Run runs the registered handler name with arg inside the namespace, in its
// init, and returns the line the handler returned. The handler sees the
// namespace's procfs at ProcDir().
func (n *PIDNS) Run(name, arg string) string { return n.call("run %s %s", name, arg) }

// ProcDir is, inside the namespace, where its procfs is mounted.
func ProcDir() string { return os.Getenv(procDirEnv) }

// runPIDNSInit is the helper side: PID 1 of the new namespace.
func runPIDNSInit() {
	dir := os.Getenv(procDirEnv)
	fail := func(err error) {
		fmt.Printf("!error %v\n", err)
		os.Exit(2)
	}
	// Keep our mounts from propagating to the host, then mount a procfs
	// that shows this namespace.
	if err := syscall.Mount("", "/", "", syscall.MS_REC|syscall.MS_PRIVATE, ""); err != nil {
		fail(err)
	}
	if err := syscall.Mount("proc", dir, "proc", syscall.MS_NOSUID|syscall.MS_NODEV|syscall.MS_NOEXEC, ""); err != nil {
		fail(err)
	}
	fmt.Println("ready")
	children := map[int]*exec.Cmd{}
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		arg := 0
		if len(f) > 1 {
			arg, _ = strconv.Atoi(f[1])
		}
		if f[0] == "run" && len(f) < 2 {
			fmt.Println("!error run needs a handler")
			continue
		}
		switch f[0] {
		case "spawn", "zombie":
			name, args := "sleep", []string{"3600"}
			if f[0] == "zombie" {
				name, args = "true", nil
			}
			c := exec.Command(name, args...)
			if err := c.Start(); err != nil {
				fmt.Printf("!error %v\n", err)
				continue
			}
			children[c.Process.Pid] = c
			fmt.Println(c.Process.Pid)
		case "kill":
			c, ok := children[arg]
			if !ok {
				fmt.Printf("!error %d is not a child\n", arg)
				continue
			}
			_ = c.Process.Kill()
			_ = c.Wait()
			delete(children, arg)
			fmt.Println("ok")
		case "run":
			fn, ok := handlers[f[1]]
			if !ok || len(f) < 3 {
				fmt.Printf("!error no handler %q\n", f[1])
				continue
			}
			fmt.Println(fn(f[2]))
		case "lastpid":
			// ns_last_pid acts on the writer's PID namespace: this one.
			if err := os.WriteFile("/proc/sys/kernel/ns_last_pid", []byte(strconv.Itoa(arg)), 0); err != nil {
				fmt.Printf("!error %v\n", err)
				continue
			}
			fmt.Println("ok")
		default:
			fmt.Printf("!error unknown command %q\n", f[0])
		}
	}
	os.Exit(0)
}
