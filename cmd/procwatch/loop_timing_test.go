package main

import (
	"testing"
	"time"

	"github.com/procwatch/procwatch/api"
	"github.com/procwatch/procwatch/history"
	"github.com/procwatch/procwatch/sampler"
	"github.com/procwatch/procwatch/sampler/proctest"
	"github.com/rs/zerolog"
)

// BenchmarkLoopTurn measures one turn of the agent's loop — sample, append
// to history, publish (render the top lists, update the metric groups) —
// with 1,000 extra idle processes: the agent's whole cost per interval.
func BenchmarkLoopTurn(b *testing.B) {
	proctest.Idle(b, 1000)
	smp, err := sampler.New(sampler.Config{TopN: maxLimit}, zerolog.Nop())
	if err != nil {
		b.Fatal(err)
	}
	defer smp.Close()
	hist := history.New(history.Config{}, zerolog.Nop())
	srv := api.New(api.Config{Interval: 3 * time.Second, History: hist}, smp, zerolog.Nop())
	l := &sampleLoop{interval: 3 * time.Second, smp: smp, srv: srv, hist: hist, log: zerolog.Nop(), pageSize: 4096}
	l.once()
	l.once()
	n := 0
	smp.Latest(func(w *sampler.Sample) { n = len(w.Procs) })
	b.ReportAllocs()
	for b.Loop() {
		l.once()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/proc")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/3e9*100, "%core@3s")
}
