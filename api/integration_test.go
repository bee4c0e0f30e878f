package api

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/procwatch/procwatch/sampler"
	"github.com/procwatch/procwatch/sampler/proctest"
	"github.com/rs/zerolog"
)

func TestMain(m *testing.M) {
	proctest.RunHelperIfAsked()
	os.Exit(m.Run())
}

// newProcServer returns an API over the real /proc and its sampler.
func newProcServer(t *testing.T) (*Server, *sampler.Sampler) {
	t.Helper()
	smp, err := sampler.New(sampler.Config{}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(smp.Close)
	redact, _ := NewRedactor(true, nil)
	s := New(Config{Interval: time.Second, Redact: redact}, smp, zerolog.Nop())
	resample(t, s, smp)
	return s, smp
}

func resample(t *testing.T, s *Server, smp *sampler.Sampler) {
	t.Helper()
	w, err := smp.Sample()
	if err != nil {
		t.Fatal(err)
	}
	s.Publish(w)
}

func getJSON(t *testing.T, s *Server, target string, v any) int {
	t.Helper()
	code, _, body := get(t, s.Handler(), "GET", target)
	if err := json.Unmarshal(body, v); err != nil {
		t.Fatalf("%s: %v", target, err)
	}
	return code
}

func statusField(t *testing.T, pid int, key string) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, key+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	t.Fatalf("no %s in status", key)
	return ""
}

func TestDetailsOfRealProcess(t *testing.T) {
	// The Go runtime of the helper holds files of its own (the cgroup CPU
	// quota files since Go 1.25), so a helper that opens nothing sets the
	// baseline and the real one must read exactly 3 files and 2 sockets more.
	base := proctest.Helper(t, "hold", 0)
	dir := t.TempDir()
	cmd := exec.Command("nice", "-n", "5", os.Args[0], "-test.run=^$")
	cmd.Dir = dir
	cmd = proctest.HelperCmd(t, cmd, "details", 3)
	pid := cmd.Process.Pid
	s, _ := newProcServer(t)

	var b, d detailsJSON
	if code := getJSON(t, s, "/api/processes/"+strconv.Itoa(base.Process.Pid), &b); code != 200 || b.OpenFiles == nil || b.Connections == nil {
		t.Fatalf("baseline: status %d, %+v", code, b)
	}
	if code := getJSON(t, s, "/api/processes/"+strconv.Itoa(pid), &d); code != 200 {
		t.Fatalf("status %d", code)
	}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	threads, _ := strconv.Atoi(statusField(t, pid, "Threads"))
	check := func(name string, got, want any) {
		t.Helper()
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	deref := func(p *int) any {
		if p == nil {
			return nil
		}
		return *p
	}
	check("cwd", *d.Cwd, dir)
	check("nice", d.Nice, 5)
	check("open_files", deref(d.OpenFiles), *b.OpenFiles+3)
	check("connections", deref(d.Connections), *b.Connections+2)
	check("num_fds", deref(d.NumFDs), len(fds))
	check("num_threads", d.NumThreads, threads)
	if threads < 4 {
		t.Errorf("only %d threads; the helper parks three of its own", threads)
	}
	check("exe", *d.Exe, mustReadlink(t, fmt.Sprintf("/proc/%d/exe", pid)))
	check("parent_pid", d.ParentPID, os.Getpid())
	check("uid", *d.UID, os.Getuid())
	check("status", d.Status, "sleeping")
	if !d.Success || d.Name == "" || !strings.Contains(d.Cmdline, "-test.run=^$") {
		t.Errorf("details %+v", d)
	}
}

func mustReadlink(t *testing.T, p string) string {
	t.Helper()
	s, err := os.Readlink(p)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestThreadIDIsNotAProcess(t *testing.T) {
	s, _ := newProcServer(t)
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	tid := 0
	for _, e := range tasks {
		if n, _ := strconv.Atoi(e.Name()); n != os.Getpid() {
			tid = n
			break
		}
	}
	if tid == 0 {
		t.Skip("the test process has one thread")
	}
	for _, target := range []string{"/api/processes/%d", "/api/processes/%d/tree"} {
		if code, _, body := get(t, s.Handler(), "GET", fmt.Sprintf(target, tid)); code != 404 {
			t.Errorf(target+": %d %s", tid, code, body)
		}
	}
}

func TestFamilyTree(t *testing.T) {
	// A (sh) starts B (sh), which starts C (sleep), then A starts D (sleep).
	// "; :" keeps each shell from exec'ing its last command.
	cmd := exec.Command("sh", "-c", `sh -c "sleep 3600; :" & sleep 3600; :`)
	proctest.Start(t, cmd)
	a := cmd.Process.Pid
	t.Cleanup(func() { proctest.KillDescendants(a) }) // runs before Start's cleanup reaps A
	s, smp := newProcServer(t)

	var tr treeJSON
	deadline := time.Now().Add(5 * time.Second)
	for {
		resample(t, s, smp)
		if code := getJSON(t, s, fmt.Sprintf("/api/processes/%d/tree", a), &tr); code != 200 {
			t.Fatalf("status %d", code)
		}
		if tr.TotalChildren == 3 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	var shape []string
	for _, c := range tr.Children {
		shape = append(shape, fmt.Sprintf("%s@%d", c.Name, c.Depth))
	}
	if got := strings.Join(shape, " "); got != "sh@1 sleep@2 sleep@1" || tr.TotalChildren != 3 {
		t.Fatalf("children %s (total %d), want sh@1 sleep@2 sleep@1", got, tr.TotalChildren)
	}
	if tr.Children[1].ParentPID != tr.Children[0].PID || tr.Children[0].ParentPID != int32(a) || tr.Children[2].ParentPID != int32(a) {
		t.Errorf("parent PIDs wrong: %+v", tr.Children)
	}
	if tr.Parent == nil || tr.Parent.PID != int32(os.Getpid()) {
		t.Errorf("parent %+v, want the test", tr.Parent)
	}
	if last := tr.Ancestors[len(tr.Ancestors)-1]; last.PID != 1 {
		t.Errorf("ancestors end at %d, want 1", last.PID)
	}
	// The grandchild's tree has both shells as its nearest ancestors.
	getJSON(t, s, fmt.Sprintf("/api/processes/%d/tree", tr.Children[1].PID), &tr)
	if tr.Ancestors[0].Name != "sh" || tr.Ancestors[1].PID != int32(a) {
		t.Errorf("grandchild ancestors %+v", tr.Ancestors)
	}
}

func TestNewProcessTreeReadFresh(t *testing.T) {
	s, _ := newProcServer(t) // sampled before the process exists
	cmd := proctest.Start(t, exec.Command("sleep", "3600"))
	var tr treeJSON
	if code := getJSON(t, s, fmt.Sprintf("/api/processes/%d/tree", cmd.Process.Pid), &tr); code != 200 || tr.Name != "sleep" || tr.Parent.PID != int32(os.Getpid()) {
		t.Errorf("%d %+v", code, tr)
	}
}

func TestNobodyUsername(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to start a process as uid 65534")
	}
	cmd := exec.Command("sleep", "3600")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	proctest.Start(t, cmd)
	s, _ := newProcServer(t)
	var d detailsJSON
	getJSON(t, s, fmt.Sprintf("/api/processes/%d", cmd.Process.Pid), &d)
	if d.Username == nil || *d.Username != "nobody" || *d.UID != 65534 {
		t.Errorf("username %v uid %v", d.Username, d.UID)
	}
}

func TestRealSecretNeverServed(t *testing.T) {
	cmd := exec.Command("sh", "-c", "sleep 3600; :", "sh", "--password=hunter2", "--token", "s3cr3t", "API_KEY=k3y")
	proctest.Start(t, cmd)
	t.Cleanup(func() { proctest.KillDescendants(cmd.Process.Pid) })
	s, _ := newProcServer(t)
	_, _, body := get(t, s.Handler(), "GET", fmt.Sprintf("/api/processes/%d", cmd.Process.Pid))
	for _, secret := range []string{"hunter2", "s3cr3t", "k3y"} {
		if strings.Contains(string(body), secret) {
			t.Errorf("%q served: %s", secret, body)
		}
	}
	if !strings.Contains(string(body), "--password=*** --token *** API_KEY=***") {
		t.Errorf("cmdline not redacted as expected: %s", body)
	}
}
