package api

import (
	"fmt"
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/procwatch/procwatch/history"
	"github.com/procwatch/procwatch/sampler"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"
)

func scrape(t *testing.T, s *Server) string {
	t.Helper()
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != 200 || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/plain") {
		t.Fatalf("/metrics: %d %s", rec.Code, rec.Header().Get("Content-Type"))
	}
	b, _ := io.ReadAll(rec.Body)
	return string(b)
}

func TestMetricsGolden(t *testing.T) {
	hist := history.New(history.Config{}, zerolog.Nop())
	s, _ := newFixtureServer(t, Config{History: hist, Metrics: MetricsConfig{Version: "test", Revision: "abc"}})
	got := scrape(t, s)
	// The Go version in build_info is the toolchain's.
	got = strings.ReplaceAll(got, fmt.Sprintf("goversion=%q", goVersionForTest()), `goversion="GO"`)
	path := "../testdata/golden/metrics.txt"
	if *update {
		os.WriteFile(path, []byte(got), 0o644)
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("exposition differs from %s:\n%s", path, got)
	}
	problems, err := testutil.GatherAndLint(s.Metrics().Registry())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
}

func goVersionForTest() string { return runtimeVersion() }

// writeSynthetic adds n processes with distinct names under root.
func writeSynthetic(t *testing.T, root string, n int) {
	t.Helper()
	for i := range n {
		pid := 20000 + i
		dir := filepath.Join(root, strconv.Itoa(pid))
		os.MkdirAll(dir, 0o755)
		os.WriteFile(filepath.Join(dir, "stat"), fmt.Appendf(nil, "%d (name-%d) S 1 %d %d 0 -1 4194304 0 0 0 0 %d 0 0 0 20 0 1 0 100 1000 10 0 0 0\n", pid, i, pid, pid, i), 0o644)
		os.WriteFile(filepath.Join(dir, "statm"), []byte("30 10 0 1 0 10 0\n"), 0o644)
		os.WriteFile(filepath.Join(dir, "status"), fmt.Appendf(nil, "Name:\tx\nTgid:\t%d\nUid:\t1000\t1000\t1000\t1000\n", pid), 0o644)
	}
}

func TestMetricsCardinalityBounded(t *testing.T) {
	root := t.TempDir()
	for _, f := range []string{"stat", "meminfo"} {
		b, _ := os.ReadFile("../testdata/proc/" + f)
		os.WriteFile(filepath.Join(root, f), b, 0o644)
	}
	writeSynthetic(t, root, 2000)
	smp, err := sampler.New(sampler.Config{ProcRoot: root, Users: fixtureUsers}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer smp.Close()
	s := New(Config{Interval: time.Second, ProcRoot: root, Metrics: MetricsConfig{MaxGroups: 500}}, smp, zerolog.Nop())
	w, err := smp.Sample()
	if err != nil {
		t.Fatal(err)
	}
	s.Publish(w)
	first := scrape(t, s)
	series := strings.Count(first, "\nprocwatch_group_processes{")
	if series != 501 {
		t.Errorf("%d group series for 2000 names, want 500 and other", series)
	}
	if !strings.Contains(first, `procwatch_group_processes{name="other",username="other"} 1500`) {
		t.Error("the 1500 processes beyond the cap are not folded into other")
	}
	// Counters only go up: every process used 1 more tick before the second sample.
	for i := range 2000 {
		pid := 20000 + i
		os.WriteFile(filepath.Join(root, strconv.Itoa(pid), "stat"), fmt.Appendf(nil, "%d (name-%d) S 1 %d %d 0 -1 4194304 0 0 0 0 %d 0 0 0 20 0 1 0 100 1000 10 0 0 0\n", pid, i, pid, pid, i+1), 0o644)
	}
	w, _ = smp.Sample()
	s.Publish(w)
	second := scrape(t, s)
	before, after := counters(first), counters(second)
	for k, v := range before {
		if after[k] < v {
			t.Errorf("%s went down: %v → %v", k, v, after[k])
		}
	}
	if after[`procwatch_group_cpu_seconds_total{name="other",username="other"}`] <= before[`procwatch_group_cpu_seconds_total{name="other",username="other"}`] {
		t.Error("other's CPU counter did not grow")
	}
}

func counters(exposition string) map[string]float64 {
	out := map[string]float64{}
	for _, line := range strings.Split(exposition, "\n") {
		if !strings.Contains(line, "_total") || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err == nil {
			out[line[:i]] = v
		}
	}
	return out
}

func TestKillAttemptsCounted(t *testing.T) {
	s := New(Config{Killer: fakeKiller{err: nil}, KillEnabled: true}, nil, zerolog.Nop())
	post(t, s.Handler(), "/api/processes/1234/kill", "text/plain", `{}`)
	post(t, s.Handler(), "/api/processes/1234/kill", "application/json", `{}`)
	got := scrape(t, s)
	for _, want := range []string{`procwatch_kill_attempts_total{outcome="bad_request"} 1`, `procwatch_kill_attempts_total{outcome="terminated"} 1`} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %s", want)
		}
	}
}
