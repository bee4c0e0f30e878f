package api

import (
	"bytes"
	"encoding/json"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/julienschmidt/httprouter"
	"github.com/procwatch/procwatch/sampler"
	"github.com/rs/zerolog"
)

var update = flag.Bool("update", false, "rewrite the golden files")

type fixedClock struct{}

var fixtureWall = time.Date(2025, 12, 11, 10, 30, 45, 123e6, time.UTC)

func (fixedClock) Now() (time.Time, time.Duration) { return fixtureWall, 10000 * time.Second }

var fixtureUsers = sampler.NewUserCache(func(uid uint32) (string, bool) {
	n, ok := map[uint32]string{0: "root", 1000: "alice", 65534: "nobody"}[uid]
	return n, ok
})

// newFixtureServer returns an API over testdata/proc with one sample
// published, and the sampler behind it.
func newFixtureServer(t *testing.T, cfg Config) (*Server, *sampler.Sampler) {
	t.Helper()
	smp, err := sampler.New(sampler.Config{ProcRoot: "../testdata/proc", Users: fixtureUsers, Clock: fixedClock{}}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(smp.Close)
	if cfg.Interval == 0 {
		cfg.Interval = 3 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = func() time.Time { return fixtureWall.Add(1200 * time.Millisecond) }
	}
	s := New(cfg, smp, zerolog.Nop())
	w, err := smp.Sample()
	if err != nil {
		t.Fatal(err)
	}
	s.cfg.Now = func() time.Time { return fixtureWall }
	s.Publish(w)
	if cfg.Now != nil {
		s.cfg.Now = cfg.Now
	}
	return s, smp
}

func get(t *testing.T, h http.Handler, method, target string) (int, http.Header, []byte) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, target, nil))
	body, _ := io.ReadAll(rec.Result().Body)
	if ct := rec.Header().Get("Content-Type"); ct != "application/json; charset=utf-8" {
		t.Errorf("%s %s: content type %q", method, target, ct)
	}
	if !json.Valid(body) {
		t.Errorf("%s %s: invalid JSON %q", method, target, body)
	}
	return rec.Code, rec.Header(), body
}

// golden compares got with testdata/golden/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	var pretty bytes.Buffer
	if err := json.Indent(&pretty, got, "", "  "); err != nil {
		t.Fatal(err)
	}
	path := "../testdata/golden/" + name
	if *update {
		if err := os.WriteFile(path, pretty.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./api -update to create it)", err)
	}
	if !bytes.Equal(pretty.Bytes(), want) {
		t.Errorf("%s differs from the golden file; got:\n%s", name, pretty.Bytes())
	}
}

func TestProcessesGolden(t *testing.T) {
	s, _ := newFixtureServer(t, Config{Top: 10})
	code, _, body := get(t, s.Handler(), "GET", "/api/processes")
	if code != http.StatusOK {
		t.Fatalf("status %d: %s", code, body)
	}
	golden(t, "api_processes.json", body)

	var resp processesJSON
	if err := json.Unmarshal(body, &resp); err != nil {
		t.Fatal(err)
	}
	if resp.TotalProcesses != 10 || resp.ZombieCount != 1 || len(resp.Zombies) != 1 || resp.Zombies[0].ParentPID != 200 {
		t.Errorf("totals %+v", resp)
	}
	// Ranked by the unrounded values (exact ties by PID, tested in the
	// sampler), so the served, rounded figures never increase.
	for i := 1; i < len(resp.TopCPU); i++ {
		if resp.TopCPU[i-1].CPUPercent < resp.TopCPU[i].CPUPercent {
			t.Errorf("top_cpu out of order at %d", i)
		}
	}
	for i := 1; i < len(resp.TopRAM); i++ {
		if resp.TopRAM[i-1].MemoryMB < resp.TopRAM[i].MemoryMB {
			t.Errorf("top_ram out of order at %d", i)
		}
	}
	// The comm 'q"uo\nte\xff\xfe' stays valid JSON; invalid bytes become U+FFFD.
	found := false
	for _, p := range resp.TopCPU {
		if p.PID == 101 {
			found = true
			if p.Name != "q\"uo\nte\uFFFD\uFFFD" {
				t.Errorf("name %q", p.Name)
			}
		}
	}
	if !found {
		t.Error("PID 101 not in top_cpu")
	}
}

func TestProcessesLimit(t *testing.T) {
	s, _ := newFixtureServer(t, Config{Top: 10})
	for _, bad := range []string{"0", "101", "-1", "05", "+5", "abc", "", "1.5", "%205", "99999999999"} {
		code, _, body := get(t, s.Handler(), "GET", "/api/processes?limit="+bad)
		if code != http.StatusBadRequest || !strings.Contains(string(body), `"success":false`) {
			t.Errorf("limit=%q: %d %s", bad, code, body)
		}
	}
	code, _, body := get(t, s.Handler(), "GET", "/api/processes?limit=3")
	var resp processesJSON
	if err := json.Unmarshal(body, &resp); code != 200 || err != nil {
		t.Fatalf("%d %v", code, err)
	}
	if len(resp.TopCPU) != 3 || len(resp.TopRAM) != 3 || resp.TopCPU[0].PID != 200 || resp.TopRAM[0].PID != 400 {
		t.Errorf("limit=3: %d and %d entries, first %d and %d", len(resp.TopCPU), len(resp.TopRAM), resp.TopCPU[0].PID, resp.TopRAM[0].PID)
	}
	if resp.TopCPU[0].Cmdline == "" || resp.TopCPU[0].Username == nil || *resp.TopCPU[0].Username != "alice" {
		t.Errorf("cold data missing at limit=3: %+v", resp.TopCPU[0])
	}
}

func TestBeforeFirstSample(t *testing.T) {
	smp, err := sampler.New(sampler.Config{ProcRoot: "../testdata/proc", Clock: fixedClock{}}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer smp.Close()
	s := New(Config{Interval: time.Second}, smp, zerolog.Nop())
	if code, _, _ := get(t, s.Handler(), "GET", "/api/processes"); code != http.StatusServiceUnavailable {
		t.Errorf("processes before the first sample: %d", code)
	}
	if code, _, _ := get(t, s.Handler(), "GET", "/healthz"); code != http.StatusServiceUnavailable {
		t.Errorf("healthz before the first sample: %d", code)
	}
}

func TestErrorsAreJSON(t *testing.T) {
	s, _ := newFixtureServer(t, Config{})
	s.Router().GET("/test/panic", func(http.ResponseWriter, *http.Request, httprouter.Params) { panic("boom") })
	tests := []struct {
		method, target string
		code           int
	}{
		{"GET", "/nope", 404},
		{"GET", "/api/processes/", 404},
		{"POST", "/api/processes", 405},
		{"DELETE", "/healthz", 405},
		{"GET", "/test/panic", 500},
	}
	for _, tt := range tests {
		code, h, body := get(t, s.Handler(), tt.method, tt.target)
		if code != tt.code || !strings.HasPrefix(string(body), `{"success":false,"error":"`) {
			t.Errorf("%s %s: %d %s", tt.method, tt.target, code, body)
		}
		if code == 405 && h.Get("Allow") != "GET" {
			t.Errorf("Allow %q", h.Get("Allow"))
		}
	}
}

func TestHealthz(t *testing.T) {
	now := fixtureWall.Add(1200 * time.Millisecond)
	s, _ := newFixtureServer(t, Config{Interval: 3 * time.Second, Now: func() time.Time { return now }})
	code, _, body := get(t, s.Handler(), "GET", "/healthz")
	if want := `{"status":"ok","last_sample":"2025-12-11T10:30:45.123Z","sample_age_seconds":1.2,"visibility":"full"}` + "\n"; code != 200 || string(body) != want {
		t.Errorf("healthz: %d %s", code, body)
	}
	now = fixtureWall.Add(9*time.Second + time.Millisecond)
	if code, _, body := get(t, s.Handler(), "GET", "/healthz"); code != 503 || !strings.Contains(string(body), `"status":"stale"`) {
		t.Errorf("stale healthz: %d %s", code, body)
	}
	s.cfg.Visibility.Degraded = true
	if _, _, body := get(t, s.Handler(), "GET", "/healthz"); !strings.Contains(string(body), `"visibility":"degraded"`) {
		t.Errorf("degraded healthz: %s", body)
	}
}

func TestServedFromRenderedBuffer(t *testing.T) {
	s, _ := newFixtureServer(t, Config{Top: 10})
	_, _, first := get(t, s.Handler(), "GET", "/api/processes")
	p := s.latest.Load()
	if !bytes.Equal(first, p.processes) {
		t.Fatal("the default response is not the rendered buffer")
	}
	// Serving the default list renders nothing: it allocates only what the
	// recorder and header map need, far below one encoding of the body.
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("GET", "/api/processes", nil)
	allocs := testing.AllocsPerRun(50, func() {
		rec.Body.Reset()
		s.Handler().ServeHTTP(rec, req)
	})
	if allocs > 12 {
		t.Errorf("%v allocations per request; the body should not be re-encoded", allocs)
	}
}
