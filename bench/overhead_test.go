package bench

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/procwatch/procwatch/sampler/proctest"
)

// BenchmarkAgentOverhead runs the real agent at a 3 s interval beside 1,000
// and 5,000 extra idle processes: after a warm-up it measures, over a
// minute, the agent's CPU as % of one core (from its own stat ticks) and its
// resident memory. One iteration is a minute: run with -benchtime 1x.
func BenchmarkAgentOverhead(b *testing.B) {
	bin := filepath.Join(b.TempDir(), "procwatch")
	build := exec.Command("go", "build", "-o", bin, "./cmd/procwatch")
	build.Dir = ".." // the agent's own module, with its own go.sum
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("build: %v\n%s", err, out)
	}
	window := time.Minute
	if v := os.Getenv("PROCWATCH_OVERHEAD_WINDOW"); v != "" {
		window, _ = time.ParseDuration(v)
	}
	spawned := 0
	for _, extra := range []int{1000, 5000} {
		proctest.Idle(b, extra-spawned)
		spawned = extra
		b.Run("extra="+strconv.Itoa(extra), func(b *testing.B) {
			for b.Loop() {
				cpu, rss, procs := measureAgent(b, bin, window)
				b.ReportMetric(cpu, "%core")
				b.ReportMetric(rss/(1<<20), "rss-MiB")
				b.ReportMetric(float64(procs), "procs")
			}
		})
	}
}

func measureAgent(b *testing.B, bin string, window time.Duration) (cpuPercent, rss float64, procs int) {
	cmd := exec.Command(bin, "--web.listen-address=127.0.0.1:0", "--telemetry-interval=3s")
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		var line map[string]any
		if json.Unmarshal(sc.Bytes(), &line) == nil && line["message"] == "Process monitoring enabled" {
			break
		}
	}
	go func() {
		for sc.Scan() {
		}
	}()
	pid := cmd.Process.Pid
	time.Sleep(10 * time.Second) // warm-up: the first samples open every descriptor
	t0, start := ticks(b, pid), time.Now()
	time.Sleep(window)
	used := float64(ticks(b, pid)-t0) / 100
	cpuPercent = used / time.Since(start).Seconds() * 100
	status, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	for _, line := range strings.Split(string(status), "\n") {
		if f := strings.Fields(line); len(f) == 3 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			rss = kb * 1024
		}
	}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err == nil {
			procs++
		}
	}
	return cpuPercent, rss, procs
}

// ticks returns a process's user+system CPU ticks.
func ticks(b *testing.B, pid int) uint64 {
	s, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		b.Fatal(err)
	}
	f := strings.Fields(string(s)[strings.LastIndexByte(string(s), ')')+2:])
	u, _ := strconv.ParseUint(f[11], 10, 64)
	st, _ := strconv.ParseUint(f[12], 10, 64)
	return u + st
}
