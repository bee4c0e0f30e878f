package history

import (
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// BenchmarkAppend measures one sample of 1,000 processes appended to rings
// that are already full (48 h of rollups, 1,000 raw points: the steady
// state), per point.
func BenchmarkAppend(b *testing.B) {
	s := New(Config{}, zerolog.Nop())
	ts := t0
	const procs = 1000
	stepBy := func(d time.Duration) {
		for k := range procs {
			s.Append(ts, Key{int32(k + 1), 1}, []byte("bench"), 12.5, 4096)
		}
		s.EndSample(ts)
		ts = ts.Add(d)
	}
	for range int(48*time.Hour/RollupWidth) + 1 {
		stepBy(RollupWidth)
	}
	for range 1000 {
		stepBy(3 * time.Second)
	}
	step := func() { stepBy(3 * time.Second) }
	b.ReportAllocs()
	for b.Loop() {
		step()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*procs), "ns/point")
	b.ReportMetric(float64(s.Bytes())/float64(procs), "bytes/series")
}

// BenchmarkQuery24h answers a 24-hour window (from rollups) of a series with
// 48 h of history, and a 30-minute window served raw.
func BenchmarkQuery24h(b *testing.B) {
	s := New(Config{}, zerolog.Nop())
	k := Key{PID: 1, StartTicks: 1}
	ts := t0
	for ts.Before(t0.Add(48 * time.Hour)) {
		s.Append(ts, k, []byte("bench"), 50, 1000)
		ts = ts.Add(3 * time.Second)
	}
	s.EndSample(ts)
	for _, bc := range []struct {
		name string
		span time.Duration
	}{{"24h", 24 * time.Hour}, {"30m", 30 * time.Minute}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			var points int
			for b.Loop() {
				w, _ := s.Query(k, ts, bc.span)
				points = len(w.Points)
			}
			b.ReportMetric(float64(points), "points")
		})
	}
}
