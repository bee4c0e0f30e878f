package main

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/procwatch/procwatch/history"
	"github.com/rs/zerolog"
)

// soak reports whether the long versions run (make soak).
func soak() bool { return os.Getenv("PROCWATCH_SOAK") != "" }

func pick(short, long time.Duration) time.Duration {
	if soak() {
		return long
	}
	return short
}

// worldBinary copies the agent where any user may run it.
func worldBinary(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "procwatch-agent-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	b, err := os.ReadFile(buildAgent(t))
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "procwatch")
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return bin
}

func countFDs(t *testing.T, pid int) int {
	t.Helper()
	entries, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(entries)
}

func vmRSSMiB(t *testing.T, pid int) float64 {
	t.Helper()
	b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) == 3 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	return 0
}

// metric reads one unlabelled value from /metrics.
func metric(t *testing.T, addr, name string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	t.Fatalf("no %s on /metrics", name)
	return 0
}

func waitHealthy(t *testing.T, addr string) {
	t.Helper()
	var h map[string]any
	for deadline := time.Now().Add(10 * time.Second); h["status"] != "ok"; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("never healthy: %v", h)
		}
		fetch(t, "http://"+addr+"/healthz", &h)
	}
}

// TestForkStorm: 200 short-lived processes a second while the agent samples
// every second. It keeps serving and stays healthy; history stays under its
// cap; memory, descriptors and goroutines come back.
func TestForkStorm(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	storm := pick(5*time.Second, 60*time.Second)
	// The short version shares two cores with the rest of make test, so it
	// asks for less: a smaller cap that the processes it manages to start
	// still overflow, and a lower floor on the spawn rate.
	maxSeries, minRate := 30, 50.0
	if soak() {
		maxSeries, minRate = 200, 150
	}
	cmd, addr, logs := startAgent(t, buildAgent(t), "--web.listen-address=127.0.0.1:0", "--telemetry-interval=1s", "--history.max-series="+strconv.Itoa(maxSeries))
	defer stopAgent(t, cmd, logs)
	waitHealthy(t, addr)
	pid := cmd.Process.Pid
	// The agent holds descriptors on /proc for the processes it sees
	// (procwatch_sampler_held_descriptors) and one per idle keep-alive
	// connection, so descriptors are compared net of both.
	netFDs := func() int {
		http.DefaultClient.CloseIdleConnections()
		time.Sleep(100 * time.Millisecond)
		held := int(metric(t, addr, "procwatch_sampler_held_descriptors"))
		return countFDs(t, pid) - held
	}
	fdsBefore, rssBefore, goBefore := netFDs(), vmRSSMiB(t, pid), metric(t, addr, "go_goroutines")

	var spawned atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	// 50 spawners, each starting a process that lives 250 ms, four times a
	// second: 200 a second, each alive long enough for samples to see many.
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if exec.Command("sleep", "0.25").Run() == nil { // started, waited for and reaped by Run
					spawned.Add(1)
				}
			}
		}()
	}
	deadline := time.Now().Add(storm)
	unhealthy := 0
	for time.Now().Before(deadline) {
		var h map[string]any
		if code := fetch(t, "http://"+addr+"/healthz", &h); code != 200 {
			unhealthy++
		}
		var p map[string]any
		if code := fetch(t, "http://"+addr+"/api/processes", &p); code != 200 {
			t.Errorf("/api/processes during the storm: %d", code)
		}
		time.Sleep(500 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	rate := float64(spawned.Load()) / storm.Seconds()
	time.Sleep(2500 * time.Millisecond) // two samples: the vanished processes' descriptors are closed
	series := metric(t, addr, "procwatch_history_series")
	fdsAfter, rssAfter, goAfter := netFDs(), vmRSSMiB(t, pid), metric(t, addr, "go_goroutines")
	t.Logf("fork storm of %v at %.0f processes/s: RSS %.1f → %.1f MiB, descriptors besides those held on /proc %d → %d, goroutines %.0f → %.0f, history series %.0f (cap %d)",
		storm, rate, rssBefore, rssAfter, fdsBefore, fdsAfter, goBefore, goAfter, series, maxSeries)
	if unhealthy > 0 {
		t.Errorf("/healthz failed %d times during the storm", unhealthy)
	}
	if rate < minRate {
		t.Errorf("only %.0f processes a second were spawned; the storm is too weak to prove anything", rate)
	}
	if series > float64(maxSeries) {
		t.Errorf("%.0f history series over the cap of %d", series, maxSeries)
	}
	if series < float64(maxSeries*9/10) {
		t.Errorf("the cap was not exercised: %.0f series (cap %d) for %d processes", series, maxSeries, spawned.Load())
	}
	if fdsAfter > fdsBefore+2 {
		t.Errorf("descriptors leaked: %d → %d", fdsBefore, fdsAfter)
	}
	if goAfter > goBefore+3 {
		t.Errorf("goroutines leaked: %.0f → %.0f", goBefore, goAfter)
	}
	if rssAfter > 64 {
		t.Errorf("RSS %.1f MiB after the storm, bound 64 MiB", rssAfter)
	}
}

// TestHidepid runs the agent unprivileged over a procfs mounted with
// hidepid=2 in a private mount namespace: it reports degraded visibility,
// serves what it sees, and does not crash.
func TestHidepid(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	if os.Getuid() != 0 {
		t.Skip("needs root to mount a procfs")
	}
	for _, tool := range []string{"unshare", "setpriv", "mount"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
	bin := worldBinary(t)
	dir := filepath.Join(filepath.Dir(bin), "proc")
	os.Mkdir(dir, 0o755)
	script := "mount -t proc -o hidepid=2 proc " + dir + " && exec setpriv --reuid=65534 --regid=65534 --clear-groups " + bin +
		" --proc-root=" + dir + " --web.listen-address=127.0.0.1:0 --telemetry-interval=1s"
	cmd, addr, logs := startAgent(t, "unshare", "--mount", "--propagation", "private", "sh", "-c", script)
	defer stopAgent(t, cmd, logs)
	waitHealthy(t, addr)
	var h map[string]any
	fetch(t, "http://"+addr+"/healthz", &h)
	if h["visibility"] != "degraded" {
		t.Errorf("visibility %v under hidepid=2", h["visibility"])
	}
	var p struct {
		Total int `json:"total_processes"`
	}
	fetch(t, "http://"+addr+"/api/processes", &p)
	all, _ := os.ReadDir("/proc")
	if p.Total < 1 || p.Total >= len(all)/2 {
		t.Errorf("an unprivileged agent under hidepid=2 sees %d processes", p.Total)
	}
}

// TestSIGTERMUnderLoad: clients hammer the API, SIGTERM arrives; the agent
// exits 0 and leaves a checkpoint that restores.
func TestSIGTERMUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	dataDir := t.TempDir()
	cmd, addr, logs := startAgent(t, buildAgent(t), "--web.listen-address=127.0.0.1:0", "--telemetry-interval=1s", "--data-dir="+dataDir)
	waitHealthy(t, addr)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var served atomic.Int64
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				for _, path := range []string{"/api/processes", "/api/processes/1", "/api/processes/1/tree", "/api/processes/1/history", "/metrics"} {
					if resp, err := http.Get("http://" + addr + path); err == nil {
						io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
						served.Add(1)
					}
				}
			}
		}()
	}
	time.Sleep(pick(1500*time.Millisecond, 20*time.Second))
	stopAgent(t, cmd, logs) // SIGTERM, and exit 0 checked there
	close(stop)
	wg.Wait()
	s := history.New(history.Config{}, zerolog.Nop())
	if err := s.Restore(dataDir, time.Now()); err != nil || s.Series() == 0 {
		t.Errorf("checkpoint after SIGTERM under load (%d requests served): %v, %d series", served.Load(), err, s.Series())
	}
}

// TestSlowAndVanishingClients: slowloris connections are dropped at the
// header timeout and abrupt disconnects leave nothing behind; the API keeps
// answering meanwhile.
func TestSlowAndVanishingClients(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	cmd, addr, logs := startAgent(t, buildAgent(t), "--web.listen-address=127.0.0.1:0", "--telemetry-interval=1s")
	defer stopAgent(t, cmd, logs)
	waitHealthy(t, addr)
	before := metric(t, addr, "go_goroutines")
	var slow []net.Conn
	for range 100 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		c.Write([]byte("GET /api/processes HTTP/1.1\r\nHost: 127.0.0.1\r\n")) // never finishes its headers
		slow = append(slow, c)
	}
	for range 100 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		c.Write([]byte("GET /api/processes HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"))
		c.Close() // gone before the answer
	}
	var h map[string]any
	if code := fetch(t, "http://"+addr+"/healthz", &h); code != 200 {
		t.Errorf("/healthz with 100 slow clients connected: %d", code)
	}
	time.Sleep(6 * time.Second) // ReadHeaderTimeout is 5 s
	closed := 0
	for _, c := range slow {
		c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		if _, err := c.Read(make([]byte, 1)); err == io.EOF {
			closed++
		}
		c.Close()
	}
	time.Sleep(200 * time.Millisecond)
	after := metric(t, addr, "go_goroutines")
	t.Logf("goroutines %.0f → %.0f; %d of 100 slow connections closed by the agent", before, after, closed)
	if closed < 100 {
		t.Errorf("only %d of 100 slowloris connections were closed", closed)
	}
	if after > before+3 {
		t.Errorf("goroutines pinned: %.0f → %.0f", before, after)
	}
}

// TestFewDescriptors runs the agent with RLIMIT_NOFILE 48: it holds no stat
// descriptors, reads every process with open/read/close, and answers.
func TestFewDescriptors(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	if _, err := exec.LookPath("prlimit"); err != nil {
		t.Skip("prlimit not installed")
	}
	cmd, addr, logs := startAgent(t, "prlimit", "--nofile=48:48", buildAgent(t), "--web.listen-address=127.0.0.1:0", "--telemetry-interval=1s")
	defer stopAgent(t, cmd, logs)
	waitHealthy(t, addr)
	var p struct {
		Total int `json:"total_processes"`
	}
	fetch(t, "http://"+addr+"/api/processes", &p)
	all, _ := os.ReadDir("/proc")
	n := 0
	for _, e := range all {
		if _, err := strconv.Atoi(e.Name()); err == nil {
			n++
		}
	}
	if p.Total < n*9/10 {
		t.Errorf("saw %d of about %d processes with 48 descriptors", p.Total, n)
	}
	if fds := countFDs(t, cmd.Process.Pid); fds > 48 {
		t.Errorf("%d descriptors open", fds)
	}
}
