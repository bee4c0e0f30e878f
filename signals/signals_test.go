package signals

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/procwatch/procwatch/sampler/proctest"
	"github.com/rs/zerolog"
)

// inspector reads a Target from procRoot the slow, obvious way (the agent
// uses the sampler's decoder; this package must not import it).
func inspector(procRoot string) func(pid int) (Target, error) {
	return func(pid int) (Target, error) {
		dir := filepath.Join(procRoot, strconv.Itoa(pid))
		stat, err := os.ReadFile(filepath.Join(dir, "stat"))
		if err != nil {
			return Target{}, err
		}
		status, err := os.ReadFile(filepath.Join(dir, "status"))
		if err != nil {
			return Target{}, err
		}
		s := string(stat)
		open, closing := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		f := strings.Fields(s[closing+2:])
		t := Target{Name: s[open+1 : closing], State: f[0][0]}
		t.PPID, _ = strconv.Atoi(f[1])
		flags, _ := strconv.ParseUint(f[6], 10, 64)
		t.Kthread = flags&0x00200000 != 0
		t.StartTicks, _ = strconv.ParseUint(f[19], 10, 64)
		for _, line := range strings.Split(string(status), "\n") {
			k, v, _ := strings.Cut(line, ":")
			v = strings.TrimSpace(v)
			switch k {
			case "Tgid":
				t.Tgid, _ = strconv.Atoi(v)
			case "Uid":
				u := strings.Fields(v)
				r, _ := strconv.ParseUint(u[0], 10, 32)
				sv, _ := strconv.ParseUint(u[2], 10, 32)
				t.RealUID, t.SavedUID = uint32(r), uint32(sv)
			}
		}
		return t, nil
	}
}

func capKill() bool {
	b, _ := os.ReadFile("/proc/self/status")
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "CapEff:"); ok {
			c, _ := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			return c&(1<<5) != 0
		}
	}
	return false
}

func newKiller(procRoot string) *Killer {
	return New(Config{
		ProcRoot: procRoot, Inspect: inspector(procRoot), Grace: time.Second,
		CapKill: capKill(), UID: uint32(os.Getuid()), EUID: uint32(os.Geteuid()),
	}, zerolog.Nop())
}

func TestMain(m *testing.M) {
	// Run by PIDNS.Run inside a new PID namespace: kill a PID of that
	// namespace with a Killer that sees it. arg: "pid" or "pid:startticks".
	proctest.Handle("kill", func(arg string) string {
		pidText, startText, hasStart := strings.Cut(arg, ":")
		pid, _ := strconv.Atoi(pidText)
		req := Request{PID: pid}
		if hasStart {
			st, _ := strconv.ParseUint(startText, 10, 64)
			req.StartTicks = &st
		}
		res, err := newKiller(proctest.ProcDir()).Kill(req)
		return outcome(res, err)
	})
	// Run by Call as another user.
	proctest.Handle("killas", func(arg string) string {
		pid, _ := strconv.Atoi(arg)
		res, err := newKiller("/proc").Kill(Request{PID: pid, Force: true})
		return outcome(res, err)
	})
	// Run by Call: use up every descriptor, then try to kill arg.
	proctest.Handle("lowfd-kill", func(arg string) string {
		pid, _ := strconv.Atoi(arg)
		k := newKiller("/proc") // probes pidfd support while descriptors remain
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: 64, Max: 64}); err != nil {
			return "setrlimit: " + err.Error()
		}
		for {
			if _, err := syscall.Dup(0); err != nil {
				break
			}
		}
		_, err := k.Kill(Request{PID: pid})
		return outcome(Result{}, err)
	})
	proctest.RunHelperIfAsked()
	os.Exit(m.Run())
}

func outcome(res Result, err error) string {
	if err != nil {
		for _, e := range []error{ErrNotFound, ErrStartMismatch, ErrZombie, ErrProtected, ErrPermission, ErrStillAlive, ErrNoDescriptors} {
			if errors.Is(err, e) {
				return "error: " + e.Error()
			}
		}
		return "error: other: " + err.Error()
	}
	return fmt.Sprintf("ok %s forced=%v escalated=%v", res.Signal, res.Forced, res.Escalated)
}

func alive(pid int) bool { return syscall.Kill(pid, 0) == nil }

func TestSIGTERM(t *testing.T) {
	cmd := proctest.Start(t, exec.Command("sleep", "3600"))
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }() // reap as soon as it exits
	res, err := newKiller("/proc").Kill(Request{PID: cmd.Process.Pid})
	if err != nil {
		t.Fatal(err)
	}
	if res.Signal != "SIGTERM" || res.Forced || res.Escalated || res.Name != "sleep" || res.Elapsed > time.Second {
		t.Errorf("result %+v", res)
	}
	if err := <-done; err == nil || !strings.Contains(err.Error(), "terminated") {
		t.Errorf("wait: %v, want killed by SIGTERM", err)
	}
}

func TestEscalatesWhenTERMIsIgnored(t *testing.T) {
	cmd := proctest.Helper(t, "ignoreterm", 0)
	grace := 300 * time.Millisecond
	res, err := newKiller("/proc").Kill(Request{PID: cmd.Process.Pid, Grace: &grace})
	if err != nil {
		t.Fatal(err)
	}
	if res.Signal != "SIGKILL" || !res.Forced || !res.Escalated || res.Elapsed < grace {
		t.Errorf("result %+v", res)
	}
}

func TestStoppedProcessGetsSIGCONT(t *testing.T) {
	cmd := proctest.Start(t, exec.Command("sleep", "3600"))
	if err := cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	res, err := newKiller("/proc").Kill(Request{PID: cmd.Process.Pid})
	if err != nil {
		t.Fatal(err)
	}
	if res.Escalated || res.Signal != "SIGTERM" || res.State != 'T' {
		t.Errorf("a stopped process should exit on SIGTERM: %+v", res)
	}
}

func TestForce(t *testing.T) {
	cmd := proctest.Helper(t, "ignoreterm", 0)
	res, err := newKiller("/proc").Kill(Request{PID: cmd.Process.Pid, Force: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.Signal != "SIGKILL" || !res.Forced || res.Escalated || res.Elapsed > time.Second {
		t.Errorf("result %+v", res)
	}
}

func TestZombie(t *testing.T) {
	cmd := proctest.Start(t, exec.Command("true"))
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", cmd.Process.Pid))
		if strings.Contains(string(b), ") Z ") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("never became a zombie")
		}
	}
	res, err := newKiller("/proc").Kill(Request{PID: cmd.Process.Pid})
	if !errors.Is(err, ErrZombie) || res.PPID != os.Getpid() {
		t.Errorf("err %v, parent %d", err, res.PPID)
	}
}

func TestGuards(t *testing.T) {
	cmd := proctest.Start(t, exec.Command("sleep", "3600"))
	pid := cmd.Process.Pid
	k := newKiller("/proc")
	wrong := uint64(1)
	if _, err := k.Kill(Request{PID: pid, StartTicks: &wrong}); !errors.Is(err, ErrStartMismatch) {
		t.Errorf("wrong start ticks: %v", err)
	}
	if _, err := k.Kill(Request{PID: os.Getpid()}); !errors.Is(err, ErrProtected) {
		t.Errorf("the agent itself: %v", err)
	}
	tooLong := 61 * time.Second
	if _, err := k.Kill(Request{PID: pid, Grace: &tooLong}); !errors.Is(err, ErrBadGracePeriod) {
		t.Errorf("grace 61s: %v", err)
	}
	for _, bad := range []int{0, -1} {
		if _, err := k.Kill(Request{PID: bad}); !errors.Is(err, ErrNotFound) {
			t.Errorf("PID %d: %v", bad, err)
		}
	}
	// Kernel threads and names in Protect, through an inspector that says so.
	for name, inspect := range map[string]func(int) (Target, error){
		"kernel thread":  func(p int) (Target, error) { t, err := inspector("/proc")(p); t.Kthread = true; return t, err },
		"protected name": func(p int) (Target, error) { t, err := inspector("/proc")(p); t.Name = "sshd"; return t, err },
		"another user": func(p int) (Target, error) {
			t, err := inspector("/proc")(p)
			t.RealUID, t.SavedUID = 4242, 4242
			return t, err
		},
		"thread": func(p int) (Target, error) { t, err := inspector("/proc")(p); t.Tgid = p - 1; return t, err },
	} {
		kk := New(Config{Inspect: inspect, Protect: []string{"sshd"}, UID: 1000, EUID: 1000}, zerolog.Nop())
		_, err := kk.Kill(Request{PID: pid})
		want := map[string]error{"kernel thread": ErrProtected, "protected name": ErrProtected, "another user": ErrPermission, "thread": ErrNotFound}[name]
		if !errors.Is(err, want) {
			t.Errorf("%s: %v, want %v", name, err, want)
		}
	}
	if !alive(pid) {
		t.Fatal("a guard let a signal through")
	}
	if _, err := k.Kill(Request{PID: 4194303}); !errors.Is(err, ErrNotFound) {
		t.Errorf("unused PID: %v", err)
	}
}

// A thread ID of a real process is refused.
func TestThreadID(t *testing.T) {
	cmd := proctest.Helper(t, "spin", 1)
	tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", cmd.Process.Pid))
	for _, e := range tasks {
		tid, _ := strconv.Atoi(e.Name())
		if tid == cmd.Process.Pid {
			continue
		}
		if _, err := newKiller("/proc").Kill(Request{PID: tid}); !errors.Is(err, ErrNotFound) {
			t.Errorf("thread %d: %v", tid, err)
		}
		break
	}
	if !alive(cmd.Process.Pid) {
		t.Error("the process was signalled through a thread ID")
	}
}

func TestConcurrentKillsShareOneEscalation(t *testing.T) {
	cmd := proctest.Helper(t, "ignoreterm", 0)
	k := newKiller("/proc")
	grace := 500 * time.Millisecond
	var wg sync.WaitGroup
	results := make([]Result, 3)
	errs := make([]error, 3)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = k.Kill(Request{PID: cmd.Process.Pid, Grace: &grace})
		}()
		time.Sleep(50 * time.Millisecond) // all join while the first waits out its grace
	}
	wg.Wait()
	for i := range results {
		if errs[i] != nil || results[i] != results[0] || !results[i].Escalated {
			t.Errorf("request %d: %+v %v (first: %+v)", i, results[i], errs[i], results[0])
		}
	}
}

func TestPIDNamespace(t *testing.T) {
	ns := proctest.NewPIDNS(t)
	// PID 1 of the namespace (its init, which also runs the killer) is protected.
	if got := ns.Run("kill", "1"); got != "error: "+ErrProtected.Error() {
		t.Errorf("PID 1: %s", got)
	}
	if !alive(ns.InitPID()) {
		t.Fatal("the namespace's init was killed")
	}
	// PID reuse: A exits, B gets its PID; a kill naming A's start ticks is
	// refused and B lives.
	a := ns.Spawn()
	idA, err := inspector(ns.ProcRoot)(a)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond) // B must start in a later clock tick
	ns.Kill(a)
	ns.SetLastPID(a - 1)
	b := ns.Spawn()
	if b != a {
		t.Fatalf("PID %d, want %d again", b, a)
	}
	if got := ns.Run("kill", fmt.Sprintf("%d:%d", b, idA.StartTicks)); got != "error: "+ErrStartMismatch.Error() {
		t.Errorf("kill with the old start ticks: %s", got)
	}
	if _, err := inspector(ns.ProcRoot)(b); err != nil {
		t.Fatalf("B is gone: %v", err)
	}
	// The right start ticks: B exits (reaped by the namespace's init).
	idB, _ := inspector(ns.ProcRoot)(b)
	if got := ns.Run("kill", fmt.Sprintf("%d:%d", b, idB.StartTicks)); !strings.HasPrefix(got, "ok SIGTERM") {
		t.Errorf("kill with the right start ticks: %s", got)
	}
	if _, err := inspector(ns.ProcRoot)(b); !errors.Is(err, fs.ErrNotExist) {
		// init reaps its children only when told; a zombie left is fine.
		if id, _ := inspector(ns.ProcRoot)(b); id.State != 'Z' {
			t.Errorf("B still running: %+v", id)
		}
	}
}

func TestOutOfDescriptors(t *testing.T) {
	target := proctest.Start(t, exec.Command("sleep", "3600"))
	got := proctest.Call(t, exec.Command(os.Args[0], "-test.run=^$"), "lowfd-kill", strconv.Itoa(target.Process.Pid))
	if got != "error: "+ErrNoDescriptors.Error() {
		t.Errorf("kill with no descriptor left: %s", got)
	}
	if !alive(target.Process.Pid) {
		t.Error("killed without a pidfd")
	}
}

func TestPermissionWithoutCapabilities(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to start the killer as another user")
	}
	target := proctest.Start(t, exec.Command("sleep", "3600"))
	helper := exec.Command(proctest.CopyTestBinary(t), "-test.run=^$")
	helper.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	if got := proctest.Call(t, helper, "killas", strconv.Itoa(target.Process.Pid)); got != "error: "+ErrPermission.Error() {
		t.Errorf("uid 65534 killing a root process: %s", got)
	}
	if !alive(target.Process.Pid) {
		t.Error("the root process was killed")
	}
}
