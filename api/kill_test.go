package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/procwatch/procwatch/sampler"
	"github.com/procwatch/procwatch/sampler/proctest"
	"github.com/procwatch/procwatch/signals"
	"github.com/rs/zerolog"
)

func newKillServer(t *testing.T, enabled bool, logs *bytes.Buffer) *Server {
	t.Helper()
	smp, err := sampler.New(sampler.Config{}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(smp.Close)
	caps, _ := sampler.ReadCaps("/proc")
	killer := signals.New(signals.Config{
		Inspect: Inspector("/proc"),
		CapKill: caps.Has(sampler.CapKill), UID: uint32(os.Getuid()), EUID: uint32(os.Geteuid()),
	}, zerolog.Nop())
	log := zerolog.Nop()
	if logs != nil {
		log = zerolog.New(logs)
	}
	return New(Config{Interval: time.Second, Killer: killer, KillEnabled: enabled}, smp, log)
}

func post(t *testing.T, h http.Handler, target, contentType, body string) (int, map[string]any) {
	t.Helper()
	req := httptest.NewRequest("POST", target, strings.NewReader(body))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	var v map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil {
		t.Fatalf("POST %s: invalid JSON %q", target, rec.Body.Bytes())
	}
	return rec.Code, v
}

func TestKillRequestRules(t *testing.T) {
	cmd := proctest.Start(t, exec.Command("sleep", "3600"))
	target := fmt.Sprintf("/api/processes/%d/kill", cmd.Process.Pid)
	s := newKillServer(t, true, nil)
	tests := []struct {
		name, contentType, body string
		code                    int
	}{
		{"no content type", "", `{}`, 415},
		{"text/plain", "text/plain", `{}`, 415},
		{"form", "application/x-www-form-urlencoded", `force=true`, 415},
		{"bad JSON", "application/json", `{"force":`, 400},
		{"unknown field", "application/json", `{"forse":true}`, 400},
		{"wrong type", "application/json", `{"force":"yes"}`, 400},
		{"grace too long", "application/json", `{"grace_seconds":61}`, 400},
		{"grace negative", "application/json", `{"grace_seconds":-1}`, 400},
		{"negative start ticks", "application/json", `{"start_ticks":-5}`, 400},
		{"trailing data", "application/json", `{} {}`, 400},
		{"array", "application/json", `[]`, 400},
		{"too large", "application/json", `{"force":false,"x":"` + strings.Repeat("a", 70<<10) + `"}`, 413},
		{"wrong start ticks", "application/json", `{"start_ticks":1}`, 409},
	}
	for _, tt := range tests {
		code, body := post(t, s.Handler(), target, tt.contentType, tt.body)
		if code != tt.code || body["success"] != false || body["error"] == "" {
			t.Errorf("%s: %d %v, want %d", tt.name, code, body, tt.code)
		}
	}
	if !alive(cmd.Process.Pid) {
		t.Fatal("a refused request killed the process")
	}
	for _, bad := range []string{"-1", "0", "+5", "05", "0x10", "1.5"} {
		if code, _ := post(t, s.Handler(), "/api/processes/"+bad+"/kill", "application/json", `{}`); code != 400 {
			t.Errorf("PID %s: %d", bad, code)
		}
	}
	if code, _ := post(t, s.Handler(), fmt.Sprintf("/api/processes/%d/kill", os.Getpid()), "application/json", `{}`); code != 403 {
		t.Errorf("the agent's own PID: %d", code)
	}
	if code, _ := post(t, s.Handler(), fmt.Sprintf("/api/processes/%d/kill", readPIDMax("/proc")+1), "application/json", `{}`); code != 400 {
		t.Errorf("PID above pid_max: %d", code)
	}
	if code, _ := post(t, s.Handler(), fmt.Sprintf("/api/processes/%d/kill", readPIDMax("/proc")-1), "application/json", `{}`); code != 404 {
		t.Errorf("unused PID: %d", code)
	}
	// The right start ticks, a charset parameter and the seed's body.
	id, _ := sampler.ReadIdentity("/proc", cmd.Process.Pid)
	code, body := post(t, s.Handler(), target, "application/json; charset=utf-8", fmt.Sprintf(`{"force": false, "start_ticks": %d}`, id.StartTicks))
	want := fmt.Sprintf("Process sleep (PID: %d) terminated successfully", cmd.Process.Pid)
	if code != 200 || body["success"] != true || body["message"] != want || body["signal"] != "SIGTERM" || body["forced"] != false || body["escalated"] != false || body["name"] != "sleep" {
		t.Errorf("kill: %d %v", code, body)
	}
}

func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	return err == nil && !strings.Contains(string(b), ") Z ")
}

func TestKillEmptyBodyAndForce(t *testing.T) {
	s := newKillServer(t, true, nil)
	a := proctest.Helper(t, "ignoreterm", 0)
	code, body := post(t, s.Handler(), fmt.Sprintf("/api/processes/%d/kill", a.Process.Pid), "application/json", `{"force":true}`)
	if code != 200 || body["signal"] != "SIGKILL" || body["forced"] != true || body["escalated"] != false {
		t.Errorf("force: %d %v", code, body)
	}
	b := proctest.Start(t, exec.Command("sleep", "3600"))
	if code, body := post(t, s.Handler(), fmt.Sprintf("/api/processes/%d/kill", b.Process.Pid), "application/json", ``); code != 200 {
		t.Errorf("empty body: %d %v", code, body)
	}
}

func TestKillZombieAndDisabled(t *testing.T) {
	z := proctest.Start(t, exec.Command("true"))
	for deadline := time.Now().Add(2 * time.Second); alive(z.Process.Pid); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no zombie")
		}
	}
	s := newKillServer(t, true, nil)
	code, body := post(t, s.Handler(), fmt.Sprintf("/api/processes/%d/kill", z.Process.Pid), "application/json", `{}`)
	if want := fmt.Sprintf("Process is a zombie; its parent PID %d must reap it", os.Getpid()); code != 409 || body["error"] != want {
		t.Errorf("zombie: %d %v", code, body)
	}
	cmd := proctest.Start(t, exec.Command("sleep", "3600"))
	off := newKillServer(t, false, nil)
	if code, body := post(t, off.Handler(), fmt.Sprintf("/api/processes/%d/kill", cmd.Process.Pid), "application/json", `{}`); code != 403 || !strings.Contains(body["error"].(string), "disabled") {
		t.Errorf("disabled: %d %v", code, body)
	}
	if !alive(cmd.Process.Pid) {
		t.Error("killed while disabled")
	}
}

// fakeKiller answers with a fixed result, for outcomes that cannot be
// produced on demand (a process stuck in disk sleep).
type fakeKiller struct {
	res signals.Result
	err error
}

func (f fakeKiller) Kill(signals.Request) (signals.Result, error) { return f.res, f.err }

func TestKillErrorMapping(t *testing.T) {
	for _, tt := range []struct {
		err  error
		code int
		text string
	}{
		{signals.ErrNotFound, 404, "Process not found"},
		{signals.ErrStartMismatch, 409, "start_ticks"},
		{signals.ErrZombie, 409, "parent PID 70 must reap it"},
		{signals.ErrProtected, 403, "protected"},
		{signals.ErrPermission, 403, "Permission denied - insufficient privileges (may need root)"},
		{signals.ErrNoDescriptors, 503, "descriptors"},
		{signals.ErrStillAlive, 504, "still alive after SIGKILL (state: disk-sleep)"},
		{syscall.EIO, 500, "Kill failed"},
	} {
		s := New(Config{Killer: fakeKiller{signals.Result{PPID: 70, State: 'D', Name: "x"}, tt.err}, KillEnabled: true}, nil, zerolog.Nop())
		code, body := post(t, s.Handler(), "/api/processes/1234/kill", "application/json", `{}`)
		if code != tt.code || !strings.Contains(body["error"].(string), tt.text) || body["pid"] != 1234.0 {
			t.Errorf("%v: %d %v", tt.err, code, body)
		}
		if tt.code == 504 && (body["signal"] != "SIGKILL" || body["state"] != "disk-sleep") {
			t.Errorf("504 body %v", body)
		}
	}
}

func TestKillAudit(t *testing.T) {
	var logs bytes.Buffer
	s := newKillServer(t, true, &logs)
	cmd := proctest.Start(t, exec.Command("sleep", "3600"))
	post(t, s.Handler(), fmt.Sprintf("/api/processes/%d/kill", cmd.Process.Pid), "text/plain", `{}`)
	post(t, s.Handler(), fmt.Sprintf("/api/processes/%d/kill", cmd.Process.Pid), "application/json", `{"force":true}`)
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d audit lines for 2 attempts: %s", len(lines), logs.String())
	}
	var refused, done map[string]any
	json.Unmarshal([]byte(lines[0]), &refused)
	json.Unmarshal([]byte(lines[1]), &done)
	if refused["outcome"] != "refused" || refused["status"] != 415.0 || refused["remote"] == "" {
		t.Errorf("refused attempt: %v", refused)
	}
	for k, want := range map[string]any{"outcome": "terminated", "name": "sleep", "force": true, "signal": "SIGKILL", "owner_uid": float64(os.Getuid()), "pid": float64(cmd.Process.Pid), "status": 200.0} {
		if done[k] != want {
			t.Errorf("audit %s = %v, want %v (%v)", k, done[k], want, done)
		}
	}
	if _, ok := done["elapsed_ms"]; !ok {
		t.Error("no elapsed_ms in the audit line")
	}
}
