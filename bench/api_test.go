package bench

import (
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/procwatch/procwatch/api"
	"github.com/procwatch/procwatch/sampler"
	"github.com/rs/zerolog"
)

// BenchmarkAPI serves GET /api/processes over loopback TCP beside a handler
// that writes the same number of constant bytes, with the same clients, and
// reports requests/s and latency percentiles for each.
func BenchmarkAPI(b *testing.B) {
	smp, err := sampler.New(sampler.Config{}, zerolog.Nop())
	if err != nil {
		b.Fatal(err)
	}
	defer smp.Close()
	srv := api.New(api.Config{Interval: 3 * time.Second}, smp, zerolog.Nop())
	w, err := smp.Sample()
	if err != nil {
		b.Fatal(err)
	}
	srv.Publish(w)
	probe := httptest.NewRecorder()
	srv.Handler().ServeHTTP(probe, httptest.NewRequest("GET", "/api/processes", nil))
	body := probe.Body.Bytes()
	constant := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		_, _ = w.Write(body)
	})
	for _, c := range []struct {
		name string
		h    http.Handler
	}{{"processes", srv.Handler()}, {"constant", constant}} {
		b.Run(c.name, func(b *testing.B) {
			ts := httptest.NewServer(c.h)
			defer ts.Close()
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
			var mu sync.Mutex
			var lat []time.Duration
			b.SetParallelism(8)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				local := make([]time.Duration, 0, 1024)
				for pb.Next() {
					t0 := time.Now()
					resp, err := client.Get(ts.URL + "/api/processes")
					if err != nil {
						b.Error(err)
						return
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					local = append(local, time.Since(t0))
				}
				mu.Lock()
				lat = append(lat, local...)
				mu.Unlock()
			})
			b.StopTimer()
			slices.Sort(lat)
			if len(lat) > 0 {
				b.ReportMetric(float64(len(lat))/b.Elapsed().Seconds(), "req/s")
				b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
				b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
			}
			b.ReportMetric(float64(len(body)), "body-bytes")
		})
	}
}
