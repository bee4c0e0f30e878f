package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

func TestParseConfig(t *testing.T) {
	env := func(m map[string]string) func(string) (string, bool) {
		return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
	}
	tests := []struct {
		name string
		args []string
		env  map[string]string
		ok   bool
		want func(config) bool
	}{
		{"defaults", nil, nil, true, func(c config) bool {
			return c.listenAddress == "127.0.0.1:8754" && c.interval == 3*time.Second && c.top == 10 && c.procRoot == "/proc" && c.logLevel == zerolog.InfoLevel && c.logFormat == "json"
		}},
		{"flags", []string{"--web.listen-address=:9000", "--telemetry-interval=5s", "--top", "20", "--log.format=console", "--log.level=debug"}, nil, true, func(c config) bool {
			return c.listenAddress == ":9000" && c.interval == 5*time.Second && c.top == 20 && c.logFormat == "console" && c.logLevel == zerolog.DebugLevel
		}},
		{"env", nil, map[string]string{"PROCWATCH_TELEMETRY_INTERVAL": "10s", "PROCWATCH_WEB_LISTEN_ADDRESS": "127.0.0.1:1", "PROCWATCH_PROC_ROOT": "/x"}, true, func(c config) bool {
			return c.interval == 10*time.Second && c.listenAddress == "127.0.0.1:1" && c.procRoot == "/x"
		}},
		{"flag beats env", []string{"--top=5"}, map[string]string{"PROCWATCH_TOP": "7"}, true, func(c config) bool { return c.top == 5 }},
		{"interval too short", []string{"--telemetry-interval=500ms"}, nil, false, nil},
		{"interval too long", []string{"--telemetry-interval=61s"}, nil, false, nil},
		{"interval not a duration", []string{"--telemetry-interval=3"}, nil, false, nil},
		{"top zero", []string{"--top=0"}, nil, false, nil},
		{"top too large", []string{"--top=101"}, nil, false, nil},
		{"bad env value", nil, map[string]string{"PROCWATCH_TOP": "many"}, false, nil},
		{"bad level", []string{"--log.level=loud"}, nil, false, nil},
		{"bad format", []string{"--log.format=xml"}, nil, false, nil},
		{"unknown flag", []string{"--nope"}, nil, false, nil},
		{"stray argument", []string{"serve"}, nil, false, nil},
		{"bad cors origin", []string{"--web.cors-origins=dash.example/app"}, nil, false, nil},
		{"cors origins", []string{"--web.cors-origins=https://dash.example,*"}, nil, true, func(c config) bool {
			return len(c.corsOrigins) == 2
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := parseConfig(tt.args, env(tt.env))
			if (err == nil) != tt.ok {
				t.Fatalf("err = %v, want ok %v", err, tt.ok)
			}
			if tt.ok && !tt.want(c) {
				t.Errorf("config %+v", c)
			}
			if err != nil && strings.Contains(err.Error(), "\n") {
				t.Errorf("error is not one line: %q", err)
			}
		})
	}
}

func TestEnvName(t *testing.T) {
	if got := envName("web.listen-address"); got != "PROCWATCH_WEB_LISTEN_ADDRESS" {
		t.Error(got)
	}
}

func TestREADMEDocumentsEveryFlag(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	var cfg config
	flags(fs, &cfg)
	fs.VisitAll(func(f *flag.Flag) {
		if f.Name == "version" {
			return
		}
		row := "| `--" + f.Name + "` | `" + envName(f.Name) + "` |"
		if !strings.Contains(string(readme), row) {
			t.Errorf("README has no flag row starting %s", row)
		}
	})
}

func TestHelpListsEveryFlag(t *testing.T) {
	u := usage()
	for _, name := range []string{"--web.listen-address", "--telemetry-interval", "--top", "--proc-root", "--log.level", "--log.format", "--version", "PROCWATCH_TOP"} {
		if !strings.Contains(u, name) {
			t.Errorf("usage lacks %s", name)
		}
	}
}

var (
	buildOnce sync.Once
	builtBin  string
	buildErr  error
)

// buildAgent builds the procwatch binary once per test run (TestMain removes it).
func buildAgent(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "procwatch-bin-")
		if err != nil {
			buildErr = err
			return
		}
		builtBin = filepath.Join(dir, "procwatch")
		out, err := exec.Command("go", "build", "-o", builtBin, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return builtBin
}

func TestMain(m *testing.M) {
	code := m.Run()
	if builtBin != "" {
		os.RemoveAll(filepath.Dir(builtBin))
	}
	os.Exit(code)
}

// startAgent runs the binary and returns its address once it logged that it
// is listening; the cleanup kills it by PID if it is still running.
func startAgent(t *testing.T, bin string, args ...string) (*exec.Cmd, string, *bufio.Scanner) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		var line map[string]any
		if json.Unmarshal(sc.Bytes(), &line) != nil {
			t.Fatalf("log line is not JSON: %q", sc.Text())
		}
		if line["message"] == "Process monitoring enabled" {
			if line["component"] != "ProcessMonitor" || line["interval"] != "1s" {
				t.Errorf("start line %v", line)
			}
			return cmd, line["address"].(string), sc
		}
	}
	t.Fatal("the agent never logged that it started")
	return nil, "", nil
}

// normalize drops what depends on the real clock (the fixture's CPU figures
// are over each process's life, measured on this machine's boot clock).
func normalize(t *testing.T, b []byte) any {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	delete(v, "timestamp")
	delete(v, "interval_seconds")
	for _, list := range []string{"top_cpu", "top_ram"} {
		for _, p := range v[list].([]any) {
			delete(p.(map[string]any), "cpu_percent")
		}
	}
	// top_cpu's order depends on the CPU figures too: compare it as a set.
	v["top_cpu"] = len(v["top_cpu"].([]any))
	return v
}

func TestAgentServesFixture(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := buildAgent(t)
	cmd, addr, logs := startAgent(t, bin, "--proc-root=../../testdata/proc", "--web.listen-address=127.0.0.1:0", "--telemetry-interval=1s")

	var body []byte
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/api/processes")
		if err != nil {
			t.Fatal(err)
		}
		body, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status %d: %s", resp.StatusCode, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if strings.Contains(string(body), "hunter2") || !strings.Contains(string(body), "--db-password=***") {
		t.Errorf("the agent does not redact command lines by default: %s", body)
	}
	want, err := os.ReadFile("../../testdata/golden/api_processes.json")
	if err != nil {
		t.Fatal(err)
	}
	// Usernames come from this machine's user database, not the test's: blank them too.
	blank := func(v any) any {
		m := v.(map[string]any)
		for _, p := range m["top_ram"].([]any) {
			delete(p.(map[string]any), "username")
		}
		return m
	}
	if got, exp := blank(normalize(t, body)), blank(normalize(t, want)); !reflect.DeepEqual(got, exp) {
		t.Errorf("served over --proc-root:\n%s\nwant (as the golden file):\n%s", body, want)
	}

	// The same fixtures on /metrics (golden in api/metrics_test.go; here the
	// lines that do not depend on this machine's user names or clock).
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	exposition, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		"\nprocwatch_processes 10\n", "\nprocwatch_threads 23\n", `procwatch_processes_by_state{state="zombie"} 1`,
		`procwatch_group_processes{name="kworker",username="root"} 1`, `procwatch_group_cpu_seconds_total{name="kworker",username="root"} 0.55`,
		"\nprocwatch_samples_total ", "\ngo_goroutines ", "\nprocess_resident_memory_bytes ",
	} {
		if !strings.Contains(string(exposition), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}

	stopAgent(t, cmd, logs) // SIGTERM: graceful shutdown and exit 0
}

func TestAgentBadFlagExits2(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := buildAgent(t)
	out, err := exec.Command(bin, "--telemetry-interval=0s").CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 {
		t.Fatalf("err %v, want exit 2", err)
	}
	if lines := strings.Count(strings.TrimSpace(string(out)), "\n"); lines != 0 {
		t.Errorf("want one line, got %q", out)
	}
	out, err = exec.Command(bin, "--version").Output()
	if err != nil || !strings.HasPrefix(string(out), "procwatch ") || !strings.Contains(string(out), "go1.") {
		t.Errorf("--version: %q %v", out, err)
	}
}

func fetch(t *testing.T, url string, v any) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode
}

func stopAgent(t *testing.T, cmd *exec.Cmd, logs *bufio.Scanner) {
	t.Helper()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	go func() {
		for logs.Scan() {
		}
	}()
	if err := cmd.Wait(); err != nil {
		t.Errorf("exit after SIGTERM: %v", err)
	}
}

func TestHistorySurvivesRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := buildAgent(t)
	dataDir := t.TempDir()
	sleeper := exec.Command("sleep", "3600")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sleeper.Process.Kill(); _ = sleeper.Wait() }()
	args := []string{"--web.listen-address=127.0.0.1:0", "--telemetry-interval=1s", "--data-dir=" + dataDir}
	url := func(addr string) string {
		return "http://" + addr + "/api/processes/" + strconv.Itoa(sleeper.Process.Pid) + "/history?hours=1"
	}

	cmd, addr, logs := startAgent(t, bin, args...)
	var h struct {
		DataPoints int  `json:"data_points"`
		Alive      bool `json:"alive"`
	}
	for deadline := time.Now().Add(10 * time.Second); h.DataPoints < 2; time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("history never reached 2 points: %+v", h)
		}
		fetch(t, url(addr), &h)
	}
	before := h.DataPoints
	stopAgent(t, cmd, logs)
	if _, err := os.Stat(filepath.Join(dataDir, "history.ckpt")); err != nil {
		t.Fatalf("no checkpoint after SIGTERM: %v", err)
	}

	cmd, addr, logs = startAgent(t, bin, args...)
	code := 0
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if code = fetch(t, url(addr), &h); code == 200 && h.DataPoints > before && h.Alive {
			break // the restored points and at least one new sample
		}
		if time.Now().After(deadline) {
			t.Fatalf("after restart: %d %+v, want more than the %d points before it", code, h, before)
		}
	}
	stopAgent(t, cmd, logs)

	// A corrupt checkpoint is set aside with a warning; the agent runs.
	if err := os.WriteFile(filepath.Join(dataDir, "history.ckpt"), []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd, addr, logs = startAgent(t, bin, args...)
	var health map[string]any
	for deadline := time.Now().Add(5 * time.Second); health["status"] != "ok"; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("not healthy after a corrupt checkpoint: %v", health)
		}
		fetch(t, "http://"+addr+"/healthz", &health)
	}
	stopAgent(t, cmd, logs)
	aside, _ := filepath.Glob(filepath.Join(dataDir, "history.ckpt.corrupt-*"))
	if len(aside) != 1 {
		t.Errorf("corrupt checkpoint not set aside: %v", aside)
	}
}
