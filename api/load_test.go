package api

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/procwatch/procwatch/sampler/proctest"
)

// TestLoad: 64 concurrent clients hit every read endpoint while the agent
// samples: no error, no 5xx; p99 latency per endpoint is logged. The short
// version (make test, under -race) runs 2 s over this machine's processes;
// PROCWATCH_SOAK=1 runs 30 s with 5,000 extra processes.
func TestLoad(t *testing.T) {
	duration, extra := 2*time.Second, 0
	if os.Getenv("PROCWATCH_SOAK") != "" {
		duration, extra = 30*time.Second, 5000
	}
	proctest.Idle(t, extra)
	target := proctest.Start(t, exec.Command("sleep", "3600"))
	a := newAgent(t, "/proc")
	h, err := a.srv.Secure(Security{LoopbackOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	a.step(t)
	ts := httptest.NewServer(h)
	defer ts.Close()

	stop := make(chan struct{})
	samplerDone := make(chan struct{})
	go func() { // the agent's loop, sped up
		defer close(samplerDone)
		for {
			select {
			case <-stop:
				return
			case <-time.After(250 * time.Millisecond):
				a.step(t)
			}
		}
	}()
	pid := target.Process.Pid
	endpoints := []string{
		"/api/processes", "/api/processes?limit=50",
		fmt.Sprintf("/api/processes/%d", pid), fmt.Sprintf("/api/processes/%d/tree", pid),
		fmt.Sprintf("/api/processes/%d/history?hours=1", pid), "/api/processes/1/tree", "/healthz", "/metrics",
	}
	type result struct {
		lat    []time.Duration
		errors int
		bad    map[int]int
	}
	results := make([]result, len(endpoints))
	for i := range results {
		results[i].bad = map[int]int{}
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	deadline := time.Now().Add(duration)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}, Timeout: 10 * time.Second}
	for c := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := c; time.Now().Before(deadline); i++ {
				e := i % len(endpoints)
				t0 := time.Now()
				resp, err := client.Get(ts.URL + endpoints[e])
				d := time.Since(t0)
				mu.Lock()
				if err != nil {
					results[e].errors++
				} else {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					results[e].lat = append(results[e].lat, d)
					if resp.StatusCode >= 500 || resp.StatusCode == 429 {
						results[e].bad[resp.StatusCode]++
					}
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(stop)
	<-samplerDone
	for i, r := range results {
		slices.Sort(r.lat)
		p99 := time.Duration(0)
		if len(r.lat) > 0 {
			p99 = r.lat[len(r.lat)*99/100]
		}
		t.Logf("%-40s %6d requests, p99 %v", endpoints[i], len(r.lat), p99)
		if r.errors > 0 || len(r.bad) > 0 || len(r.lat) == 0 {
			t.Errorf("%s: %d errors, bad statuses %v, %d answered", endpoints[i], r.errors, r.bad, len(r.lat))
		}
	}
}
