package history

import "time"

// Point is one served point: a raw sample, or a rollup's averages.
type Point struct {
	Time       time.Time
	CPUPercent float64
	RSSPages   float64
}

// Stats summarises every sample in a window.
type Stats struct {
	AvgCPU, MaxCPU float64 // cpu_percent
	AvgRSS, MaxRSS float64 // resident pages
}

// Window is the answer to a query.
type Window struct {
	Key     Key
	Name    string
	Alive   bool
	Rollups bool // served from 5-minute rollups rather than raw samples
	Points  []Point
	Stats   *Stats // nil when the window holds no sample
}

// Lookup finds the series of pid: the one with start ticks start when start
// is not 0, else the incarnation seen most recently. ok is false when the
// store holds none.
func (s *Store) Lookup(pid int32, start uint64) (Key, bool) {
	sh := s.shard(pid)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	var best *series
	for _, ser := range sh.series[pid] {
		if start != 0 && ser.key.StartTicks == start {
			return ser.key, true
		}
		if start == 0 && (best == nil || ser.lastSeen > best.lastSeen || (ser.lastSeen == best.lastSeen && ser.key.StartTicks > best.key.StartTicks)) {
			best = ser
		}
	}
	if best == nil {
		return Key{}, false
	}
	return best.key, true
}

// Query returns the samples of k from (now - span) to now, and their
// statistics. A window the raw ring covers entirely is served raw; a longer
// one from rollups, whole buckets, so that statistics always cover exactly
// the samples behind the points served. Nothing older than retention is
// served. ok is false when the store has no series k.
func (s *Store) Query(k Key, now time.Time, span time.Duration) (Window, bool) {
	span = min(span, s.cfg.Retention)
	fromMS, toMS := now.Add(-span).UnixMilli(), now.UnixMilli()
	sh := s.shard(k.PID)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	ser := sh.find(k)
	if ser == nil {
		return Window{}, false
	}
	w := Window{
		Key:   k,
		Name:  string(ser.name[:ser.nameLen]),
		Alive: ser.lastSeen == s.lastSample.Load(),
	}
	// The raw ring covers the window when it has never dropped a sample, or
	// its oldest sample is older than the window's start.
	n := len(ser.raw)
	rawCovers := !ser.wrapped || (n > 0 && ser.baseMS+int64(ser.raw[ser.rawHead].offsetMS) <= fromMS)
	var st statsAcc
	if rawCovers {
		w.Points = make([]Point, 0, n)
		for i := range n {
			p := ser.raw[(ser.rawHead+i)%n]
			ms := ser.baseMS + int64(p.offsetMS)
			if ms < fromMS || ms > toMS {
				continue
			}
			w.Points = append(w.Points, Point{Time: time.UnixMilli(ms).UTC(), CPUPercent: float64(p.cpu) / 100, RSSPages: float64(p.rss)})
			st.add(1, uint64(p.cpu), p.cpu, uint64(p.rss), p.rss)
		}
	} else {
		w.Rollups = true
		width := RollupWidth.Milliseconds()
		fromBucket, toBucket := uint32(fromMS/width), uint32(toMS/width)
		m := len(ser.rolls)
		w.Points = make([]Point, 0, m)
		for i := range m {
			r := ser.rolls[(ser.rollHead+i)%m]
			if r.bucket < fromBucket || r.bucket > toBucket || r.count == 0 {
				continue
			}
			c := float64(r.count)
			w.Points = append(w.Points, Point{
				Time:       time.UnixMilli(int64(r.bucket) * width).UTC(),
				CPUPercent: float64(r.cpuSum) / 100 / c,
				RSSPages:   float64(r.rssSum()) / c,
			})
			st.add(uint64(r.count), uint64(r.cpuSum), r.cpuMax, r.rssSum(), r.rssMax)
		}
	}
	w.Stats = st.stats()
	return w, true
}

// statsAcc sums in integers, so statistics are exact whichever tier serves
// them: a rollup holds the exact sums of its samples.
type statsAcc struct {
	count          uint64
	cpuSum, rssSum uint64
	cpuMax, rssMax uint32
}

func (a *statsAcc) add(count, cpuSum uint64, cpuMax uint32, rssSum uint64, rssMax uint32) {
	a.count += count
	a.cpuSum += cpuSum
	a.rssSum += rssSum
	a.cpuMax = max(a.cpuMax, cpuMax)
	a.rssMax = max(a.rssMax, rssMax)
}

func (a *statsAcc) stats() *Stats {
	if a.count == 0 {
		return nil
	}
	c := float64(a.count)
	return &Stats{
		AvgCPU: float64(a.cpuSum) / 100 / c,
		MaxCPU: float64(a.cpuMax) / 100,
		AvgRSS: float64(a.rssSum) / c,
		MaxRSS: float64(a.rssMax),
	}
}
