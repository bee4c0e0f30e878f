package history

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/rs/zerolog"
)

var t0 = time.Date(2025, 12, 11, 0, 0, 1, 0, time.UTC)

func TestSizes(t *testing.T) {
	if n := unsafe.Sizeof(point{}); n != 12 {
		t.Errorf("raw point is %d bytes, want 12", n)
	}
	if n := unsafe.Sizeof(rollup{}); n != 24 {
		t.Errorf("rollup is %d bytes, want 24", n)
	}
}

// sample is what the brute-force oracle keeps of every append.
type sample struct {
	ms  int64
	cpu uint32 // as stored: cpu_percent × 100, rounded
	rss uint32
}

type oracle []sample

func (o *oracle) add(t time.Time, cpu float64, rss uint64) {
	*o = append(*o, sample{t.UnixMilli(), uint32(cpu*100 + 0.5), uint32(rss)})
}

// expect computes, by brute force, the points and statistics a window must
// have: raw samples in [from, to], or every sample of the buckets that meet it.
func (o oracle) expect(from, to time.Time, rollups bool) (n int, avgCPU, maxCPU, avgRSS, maxRSS float64) {
	width := RollupWidth.Milliseconds()
	buckets := map[int64]bool{}
	var sumC, sumR float64
	count := 0
	for _, s := range o {
		in := s.ms >= from.UnixMilli() && s.ms <= to.UnixMilli()
		if rollups {
			b := s.ms / width
			in = b >= from.UnixMilli()/width && b <= to.UnixMilli()/width
			if in {
				buckets[b] = true
			}
		}
		if !in {
			continue
		}
		count++
		sumC += float64(s.cpu) / 100
		sumR += float64(s.rss)
		maxCPU = max(maxCPU, float64(s.cpu)/100)
		maxRSS = max(maxRSS, float64(s.rss))
	}
	n = count
	if rollups {
		n = len(buckets)
	}
	if count == 0 {
		return n, 0, 0, 0, 0
	}
	return n, sumC / float64(count), maxCPU, sumR / float64(count), maxRSS
}

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-9*max(1, math.Abs(b)) }

func checkWindow(t *testing.T, s *Store, o oracle, k Key, now time.Time, span time.Duration, wantRollups bool) {
	t.Helper()
	w, ok := s.Query(k, now, span)
	if !ok {
		t.Fatal("series missing")
	}
	if w.Rollups != wantRollups {
		t.Fatalf("span %v: rollups = %v, want %v", span, w.Rollups, wantRollups)
	}
	n, avgC, maxC, avgR, maxR := o.expect(now.Add(-min(span, s.cfg.Retention)), now, wantRollups)
	if len(w.Points) != n {
		t.Errorf("span %v: %d points, want %d", span, len(w.Points), n)
	}
	if n == 0 {
		if w.Stats != nil {
			t.Errorf("span %v: statistics %+v for an empty window", span, w.Stats)
		}
		return
	}
	st := w.Stats
	if st == nil || !near(st.AvgCPU, avgC) || !near(st.MaxCPU, maxC) || !near(st.AvgRSS, avgR) || !near(st.MaxRSS, maxR) {
		t.Errorf("span %v: stats %+v, brute force avg %v max %v rss avg %v max %v", span, st, avgC, maxC, avgR, maxR)
	}
	for i := 1; i < len(w.Points); i++ {
		if !w.Points[i].Time.After(w.Points[i-1].Time) {
			t.Fatalf("points out of order at %d", i)
		}
	}
}

// TestFortyEightHours runs 50 hours of 3-second samples through a fake clock
// and checks every window against brute force.
func TestFortyEightHours(t *testing.T) {
	s := New(Config{}, zerolog.Nop())
	k := Key{PID: 42, StartTicks: 7}
	var o oracle
	rng := rand.New(rand.NewPCG(1, 2))
	now := t0
	for now.Before(t0.Add(50 * time.Hour)) {
		cpu := rng.Float64() * 400
		rss := uint64(1000 + rng.IntN(100000))
		s.Append(now, k, []byte("python3"), cpu, rss)
		s.EndSample(now)
		o.add(now, cpu, rss)
		now = now.Add(3*time.Second + time.Duration(rng.IntN(20))*time.Millisecond)
	}
	now = now.Add(-time.Millisecond) // the last sample's time
	last := time.UnixMilli(o[len(o)-1].ms).UTC()
	for _, h := range []int{1, 6, 24, 48} {
		checkWindow(t, s, o, k, last, time.Duration(h)*time.Hour, true)
	}
	// A window past retention is cut at retention.
	w, _ := s.Query(k, last, 72*time.Hour)
	if len(w.Points) > int(48*time.Hour/RollupWidth)+1 {
		t.Errorf("%d rollups past retention", len(w.Points))
	}
	// Short windows the raw ring covers (1000 × 3 s = 50 min) are served raw.
	checkWindow(t, s, o, k, last, 30*time.Minute, false)
	checkWindow(t, s, o, k, last, 49*time.Minute, false)
	checkWindow(t, s, o, k, last, 51*time.Minute, true)
	if !w.Alive || w.Name != "python3" {
		t.Errorf("alive %v name %q", w.Alive, w.Name)
	}
	// Rollups sit on 5-minute boundaries.
	for _, p := range w.Points {
		if p.Time.UnixMilli()%RollupWidth.Milliseconds() != 0 {
			t.Fatalf("rollup at %v", p.Time)
		}
	}
	_ = now
}

func TestShortLivedProcessServedRaw(t *testing.T) {
	s := New(Config{}, zerolog.Nop())
	k := Key{PID: 9, StartTicks: 1}
	var o oracle
	for i := range 20 {
		ts := t0.Add(time.Duration(i) * 3 * time.Second)
		s.Append(ts, k, []byte("sh"), float64(i), uint64(i*10))
		s.EndSample(ts)
		o.add(ts, float64(i), uint64(i*10))
	}
	last := t0.Add(19 * 3 * time.Second)
	checkWindow(t, s, o, k, last, time.Hour, false)        // never wrapped: raw covers it all
	if got := s.Bytes(); got > 32*12+4*24+seriesOverhead { // the ring grew 8 → 16 → 32
		t.Errorf("a 20-sample series costs %d bytes", got)
	}
}

func TestExitedAndReused(t *testing.T) {
	s := New(Config{}, zerolog.Nop())
	a, b := Key{PID: 100, StartTicks: 1}, Key{PID: 100, StartTicks: 900}
	s.Append(t0, a, []byte("old"), 5, 5)
	s.EndSample(t0)
	t1 := t0.Add(3 * time.Second)
	s.EndSample(t1) // a exited
	k, ok := s.Lookup(100, 0)
	if !ok || k != a {
		t.Fatalf("lookup %v %v", k, ok)
	}
	if w, _ := s.Query(a, t1, time.Hour); w.Alive || len(w.Points) != 1 {
		t.Errorf("exited: alive %v, %d points", w.Alive, len(w.Points))
	}
	t2 := t1.Add(3 * time.Second)
	s.Append(t2, b, []byte("new"), 1, 1) // PID reused
	s.EndSample(t2)
	if k, _ := s.Lookup(100, 0); k != b {
		t.Errorf("latest incarnation %v, want %v", k, b)
	}
	if w, _ := s.Query(b, t2, time.Hour); !w.Alive || len(w.Points) != 1 || w.Name != "new" {
		t.Errorf("new incarnation %+v", w)
	}
	if k, ok := s.Lookup(100, 1); !ok || k != a {
		t.Errorf("old incarnation by start ticks: %v %v", k, ok)
	}
	if _, ok := s.Lookup(101, 0); ok {
		t.Error("unknown PID found")
	}
}

func TestRetentionDropsSeries(t *testing.T) {
	s := New(Config{Retention: time.Hour}, zerolog.Nop())
	s.Append(t0, Key{1, 1}, nil, 1, 1)
	s.EndSample(t0)
	later := t0.Add(time.Hour + 2*time.Minute)
	s.Append(later, Key{2, 2}, nil, 1, 1)
	s.EndSample(later)
	if s.Series() != 1 {
		t.Errorf("%d series, want the expired one dropped", s.Series())
	}
	if _, ok := s.Lookup(1, 0); ok {
		t.Error("expired series still served")
	}
}

func TestEvictionOrder(t *testing.T) {
	s := New(Config{MaxSeries: 3}, zerolog.Nop())
	ts := t0
	for pid := int32(1); pid <= 3; pid++ {
		s.Append(ts, Key{pid, 1}, nil, 1, 1)
		s.EndSample(ts)
		ts = ts.Add(3 * time.Second) // 1 exits first, then 2, 3 stays alive
	}
	s.Append(ts, Key{3, 1}, nil, 1, 1)
	s.Append(ts, Key{4, 1}, nil, 1, 1)
	s.EndSample(ts)
	if s.Series() > 3 {
		t.Fatalf("%d series over the cap of 3", s.Series())
	}
	if _, ok := s.Lookup(1, 0); ok {
		t.Error("the series exited longest ago survived")
	}
	for _, pid := range []int32{2, 3, 4} {
		if _, ok := s.Lookup(pid, 0); !ok {
			t.Errorf("series %d evicted", pid)
		}
	}
}

func TestForkStorm(t *testing.T) {
	s := New(Config{MaxSeries: 50000}, zerolog.Nop())
	ts := t0
	for i := range 100000 {
		s.Append(ts, Key{int32(1 + i%4000000), uint64(i)}, []byte("storm"), 1, 100)
		if i%200 == 199 { // 200 new processes per one-second sample, each seen once
			s.EndSample(ts)
			ts = ts.Add(time.Second)
			if n := s.Series(); n > 50000+200 {
				t.Fatalf("%d series over the cap of 50000", n)
			}
		}
	}
	s.EndSample(ts)
	perSeries := int64(8*12 + 4*24 + seriesOverhead)
	if got, bound := s.Bytes(), int64(50000)*perSeries; got > bound {
		t.Errorf("%d bytes held, bound %d", got, bound)
	}
	t.Logf("after 100,000 short-lived series: %d series, %d bytes", s.Series(), s.Bytes())
}

func TestAppendAllocs(t *testing.T) {
	// Steady state: both rings full (100 raw points, 1 h of rollups), so
	// appending only overwrites.
	s := New(Config{Points: 100, Retention: time.Hour}, zerolog.Nop())
	ts := t0
	const keys = 1000
	step := func() {
		for k := range keys {
			s.Append(ts, Key{int32(k + 1), 1}, []byte("x"), 3, 3)
		}
		s.EndSample(ts)
		ts = ts.Add(30 * time.Second)
	}
	for range 2 * 120 { // 2 h of 30-second samples
		step()
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range 100 { // 50 minutes: ten new rollup buckets and a prune pass each minute
		step()
	}
	runtime.ReadMemStats(&after)
	if n := after.Mallocs - before.Mallocs; n != 0 {
		t.Errorf("%d allocations over 100 steady-state samples of %d processes", n, keys)
	}
}

// TestMemoryAtFullDepth fills 1,000 series to 48 h of rollups and full raw
// rings and measures the heap they take.
func TestMemoryAtFullDepth(t *testing.T) {
	if testing.Short() {
		t.Skip("fills 1000 series")
	}
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	s := New(Config{}, zerolog.Nop())
	// Every 5 minutes for 48 h a sample fills a new rollup; then 1000 samples
	// fill the raw rings. (Fewer appends than a real 48 h, the same memory.)
	ts := t0
	for range int(48*time.Hour/RollupWidth) + 1 {
		for k := range 1000 {
			s.Append(ts, Key{int32(k + 1), 1}, []byte("long-lived"), 1, 1)
		}
		ts = ts.Add(RollupWidth)
	}
	for range 1000 {
		for k := range 1000 {
			s.Append(ts, Key{int32(k + 1), 1}, []byte("long-lived"), 1, 1)
		}
		ts = ts.Add(3 * time.Second)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	heap := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	runtime.KeepAlive(s)
	t.Logf("1000 series at full depth: %.1f MiB of heap, %.1f MiB by the store's count", float64(heap)/(1<<20), float64(s.Bytes())/(1<<20))
	if heap > 28<<20 {
		t.Errorf("%d bytes of heap for 1000 series at full depth, budget 28 MiB", heap)
	}
}

func TestConcurrentAppendAndQuery(t *testing.T) {
	s := New(Config{Points: 50}, zerolog.Nop())
	var wg sync.WaitGroup
	for r := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 500 {
				if k, ok := s.Lookup(int32(r+1), 0); ok {
					s.Query(k, t0.Add(time.Hour), time.Hour)
				}
				runtime.Gosched()
			}
		}()
	}
	ts := t0
	for range 2000 {
		for pid := int32(1); pid <= 8; pid++ {
			s.Append(ts, Key{pid, 1}, []byte("c"), 1, 1)
		}
		s.EndSample(ts)
		ts = ts.Add(time.Second)
	}
	wg.Wait()
}

func fill(s *Store) {
	ts := t0
	for i := range 400 {
		for pid := int32(1); pid <= 5; pid++ {
			s.Append(ts, Key{pid, uint64(pid) * 10}, []byte(fmt.Sprintf("p%d", pid)), float64(i%100), uint64(i))
		}
		s.EndSample(ts)
		ts = ts.Add(10 * time.Second)
	}
}

func TestCheckpointRoundTrip(t *testing.T) {
	dir := t.TempDir()
	a := New(Config{}, zerolog.Nop())
	fill(a)
	if err := a.Checkpoint(dir); err != nil {
		t.Fatal(err)
	}
	b := New(Config{}, zerolog.Nop())
	now := t0.Add(400 * 10 * time.Second)
	if err := b.Restore(dir, now); err != nil {
		t.Fatal(err)
	}
	if a.Series() != b.Series() || a.Bytes() < b.Bytes()/2 {
		t.Fatalf("series %d → %d", a.Series(), b.Series())
	}
	for pid := int32(1); pid <= 5; pid++ {
		k := Key{pid, uint64(pid) * 10}
		for _, span := range []time.Duration{time.Hour, 24 * time.Hour} {
			wa, _ := a.Query(k, now, span)
			wb, ok := b.Query(k, now, span)
			if !ok || wa.Name != wb.Name || len(wa.Points) != len(wb.Points) || *wa.Stats != *wb.Stats || wa.Rollups != wb.Rollups {
				t.Errorf("pid %d span %v: before %+v\nafter %+v", pid, span, wa.Stats, wb.Stats)
			}
		}
	}
	// A restored live process continues its series.
	b.Append(now, Key{1, 10}, []byte("p1"), 1, 1)
	if b.Series() != a.Series() {
		t.Error("a restored series did not continue")
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("temporary files left: %v", entries)
	}
}

func TestCorruptCheckpoints(t *testing.T) {
	dir := t.TempDir()
	a := New(Config{}, zerolog.Nop())
	fill(a)
	if err := a.Checkpoint(dir); err != nil {
		t.Fatal(err)
	}
	good, err := os.ReadFile(filepath.Join(dir, CheckpointName))
	if err != nil {
		t.Fatal(err)
	}
	flipped := append([]byte(nil), good...)
	flipped[len(flipped)/2] ^= 0x40
	wrongVersion := append([]byte(nil), good...)
	wrongVersion[8] = 9
	for name, content := range map[string][]byte{
		"truncated":     good[:len(good)/3],
		"flipped byte":  flipped,
		"wrong version": wrongVersion,
		"empty":         {},
		"garbage":       []byte("not a checkpoint at all, not at all"),
	} {
		t.Run(name, func(t *testing.T) {
			d := t.TempDir()
			if err := os.WriteFile(filepath.Join(d, CheckpointName), content, 0o600); err != nil {
				t.Fatal(err)
			}
			s := New(Config{}, zerolog.Nop())
			err := s.Restore(d, t0)
			if err == nil || !strings.Contains(err.Error(), "set aside") {
				t.Fatalf("err = %v", err)
			}
			if s.Series() != 0 {
				t.Error("a corrupt checkpoint was partly loaded")
			}
			entries, _ := os.ReadDir(d)
			if len(entries) != 1 || !strings.HasPrefix(entries[0].Name(), CheckpointName+".corrupt-") {
				t.Errorf("files after restore: %v", entries)
			}
		})
	}
	t.Run("missing", func(t *testing.T) {
		if err := New(Config{}, zerolog.Nop()).Restore(t.TempDir(), t0); err != nil {
			t.Errorf("missing checkpoint: %v", err)
		}
	})
	t.Run("unwritable directory", func(t *testing.T) {
		if err := a.Checkpoint(filepath.Join(t.TempDir(), "no", "such", "dir")); err == nil {
			t.Error("checkpoint into a missing directory succeeded")
		}
	})
}

func FuzzDecodeCheckpoint(f *testing.F) {
	dir := f.TempDir()
	s := New(Config{Points: 20}, zerolog.Nop())
	ts := t0
	for i := range 50 {
		s.Append(ts, Key{int32(i%3 + 1), 1}, []byte("fz"), 1, 1)
		ts = ts.Add(time.Minute)
	}
	if err := s.Checkpoint(dir); err != nil {
		f.Fatal(err)
	}
	good, _ := os.ReadFile(filepath.Join(dir, CheckpointName))
	f.Add(good)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		series, err := decodeCheckpoint(b)
		if err != nil {
			if series != nil {
				t.Fatal("an error with a result")
			}
			return
		}
		// A checkpoint that decodes re-encodes to the same bytes: nothing
		// was skipped or invented.
		var body []byte
		for _, ser := range series {
			body = appendSeries(body, ser)
		}
		if want := b[12 : len(b)-8]; string(body) != string(want) {
			t.Fatalf("re-encoded %d bytes differ from the %d decoded", len(body), len(want))
		}
	})
}

// TestWallClockJumpsBack: an NTP step backwards makes later samples look
// older; nothing panics, nothing is lost, and windows still answer.
func TestWallClockJumpsBack(t *testing.T) {
	s := New(Config{Points: 10}, zerolog.Nop())
	k := Key{PID: 7, StartTicks: 1}
	ts := t0
	for i := range 30 {
		if i == 15 {
			ts = ts.Add(-2 * time.Hour)
		}
		s.Append(ts, k, []byte("j"), 1, 1)
		s.EndSample(ts)
		ts = ts.Add(3 * time.Second)
	}
	w, ok := s.Query(k, ts, 48*time.Hour)
	if !ok || w.Stats == nil || !w.Alive {
		t.Fatalf("after a backwards jump: %+v", w)
	}
	if len(w.Points) == 0 {
		t.Error("no points served after a backwards jump")
	}
}
