package api

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/procwatch/procwatch/history"
	"github.com/procwatch/procwatch/sampler"
	"github.com/procwatch/procwatch/sampler/proctest"
	"github.com/rs/zerolog"
)

// agent is a sampler, a history store and the API over one proc root, driven
// by hand: step is one turn of the agent's loop.
type agent struct {
	smp  *sampler.Sampler
	hist *history.Store
	srv  *Server
}

func newAgent(t *testing.T, procRoot string) *agent {
	t.Helper()
	smp, err := sampler.New(sampler.Config{ProcRoot: procRoot}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(smp.Close)
	hist := history.New(history.Config{}, zerolog.Nop())
	srv := New(Config{Interval: time.Second, ProcRoot: procRoot, History: hist}, smp, zerolog.Nop())
	return &agent{smp, hist, srv}
}

func (a *agent) step(t *testing.T) {
	t.Helper()
	w, err := a.smp.Sample()
	if err != nil {
		t.Fatal(err)
	}
	page := uint64(os.Getpagesize())
	for i := range w.Procs {
		p := &w.Procs[i]
		a.hist.Append(w.Time, history.Key{PID: p.PID, StartTicks: p.StartTicks}, p.Comm(), p.CPUPercent, p.RSS/page)
	}
	a.hist.EndSample(w.Time)
	a.srv.Publish(w)
	time.Sleep(5 * time.Millisecond) // distinct sample times
}

func TestHistoryOfRealProcess(t *testing.T) {
	cmd := proctest.Start(t, exec.Command("sleep", "3600"))
	pid := cmd.Process.Pid
	a := newAgent(t, "/proc")
	target := fmt.Sprintf("/api/processes/%d/history?hours=1", pid)
	for n := 1; n <= 3; n++ {
		a.step(t)
		var h historyJSON
		if code := getJSON(t, a.srv, target, &h); code != 200 {
			t.Fatalf("status %d", code)
		}
		if h.DataPoints != n || len(h.History) != n || !h.Alive || h.Name != "sleep" || h.Statistics == nil || h.ResolutionSeconds != 1 || h.Hours != 1 {
			t.Fatalf("after %d samples: %+v", n, h)
		}
	}
	proctest.Reap(cmd)
	a.step(t)
	var h historyJSON
	if code := getJSON(t, a.srv, target, &h); code != 200 || h.Alive || h.DataPoints != 3 || h.Name != "sleep" {
		t.Errorf("after exit: %d %+v", code, h)
	}
}

func TestHistoryPIDReuse(t *testing.T) {
	ns := proctest.NewPIDNS(t)
	a := newAgent(t, ns.ProcRoot)
	first := ns.Spawn()
	a.step(t)
	a.step(t)
	var before historyJSON
	getJSON(t, a.srv, fmt.Sprintf("/api/processes/%d/history", first), &before)
	if before.DataPoints != 2 {
		t.Fatalf("first incarnation: %+v", before)
	}
	ns.Kill(first)
	a.step(t)
	ns.SetLastPID(first - 1)
	second := ns.Spawn()
	if second != first {
		t.Fatalf("ns_last_pid gave PID %d, want %d again", second, first)
	}
	// Before any sample has seen it, the PID already means the new process:
	// alive, with no history, never the old one's points.
	var h historyJSON
	getJSON(t, a.srv, fmt.Sprintf("/api/processes/%d/history", second), &h)
	if h.StartTicks == before.StartTicks || !h.Alive || h.DataPoints != 0 || h.Statistics != nil {
		t.Errorf("unsampled new process on a reused PID: %+v (the old one started at %d)", h, before.StartTicks)
	}
	a.step(t)
	getJSON(t, a.srv, fmt.Sprintf("/api/processes/%d/history", second), &h)
	if h.StartTicks == before.StartTicks || h.DataPoints != 1 || !h.Alive {
		t.Errorf("the new process on a reused PID: %+v (the old one started at %d)", h, before.StartTicks)
	}
	if k, ok := a.hist.Lookup(int32(first), before.StartTicks); !ok || k.StartTicks != before.StartTicks {
		t.Error("the old incarnation's series was lost")
	}
}

func TestHistoryParameters(t *testing.T) {
	a := newAgent(t, "../testdata/proc")
	for _, bad := range []string{"0", "49", "-1", "1.5", "x", "", "024"} {
		code, _, body := get(t, a.srv.Handler(), "GET", "/api/processes/200/history?hours="+bad)
		if code != 503 && (code != http.StatusBadRequest || !strings.Contains(string(body), "hours")) {
			t.Errorf("hours=%q: %d %s", bad, code, body)
		}
	}
	if code, _, _ := get(t, a.srv.Handler(), "GET", "/api/processes/200/history"); code != 503 {
		t.Errorf("before the first sample: %d", code)
	}
	a.step(t)
	for _, bad := range []string{"0", "49", "-1", "1.5", "x", "", "024"} {
		if code, _, _ := get(t, a.srv.Handler(), "GET", "/api/processes/200/history?hours="+bad); code != http.StatusBadRequest {
			t.Errorf("hours=%q: %d", bad, code)
		}
	}
	if code, _, body := get(t, a.srv.Handler(), "GET", "/api/processes/4242/history"); code != 404 || !strings.Contains(string(body), `"pid":4242`) {
		t.Errorf("unknown PID: %d %s", code, body)
	}
	var h historyJSON
	if code := getJSON(t, a.srv, "/api/processes/200/history", &h); code != 200 || h.Hours != 24 || h.DataPoints != 1 || h.Statistics == nil {
		t.Errorf("default window: %d %+v", code, h)
	}
	// Fixture python3: 512.5 MiB of 7812.5 MiB (8000000 kB).
	if h.History[0].MemoryMB != 512.5 || h.Statistics.MaxMemory != 6.6 {
		t.Errorf("memory figures %+v %+v", h.History[0], h.Statistics)
	}
	if code, _, _ := get(t, a.srv.Handler(), "GET", "/api/processes/05/history"); code != 400 {
		t.Errorf("bad PID: %d", code)
	}
}
