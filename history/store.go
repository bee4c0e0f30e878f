package history

import (
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
)

// Key identifies a process incarnation.
type Key struct {
	PID        int32
	StartTicks uint64
}

// RollupWidth is the span of one rollup.
const RollupWidth = 5 * time.Minute

// Config configures a Store.
type Config struct {
	Points    int           // raw samples kept per series; default 1000
	Retention time.Duration // nothing older is kept or served; default 48h
	MaxSeries int           // cap on series; default 50000
}

const (
	numShards    = 64 // a power of two
	firstRawCap  = 8
	firstRollCap = 4
	freePerShard = 32
	nameCap      = 64
)

// point is one raw sample: 12 bytes.
type point struct {
	offsetMS uint32 // milliseconds since the series' base time
	cpu      uint32 // cpu_percent × 100
	rss      uint32 // resident pages
}

// rollup summarises the samples of one RollupWidth bucket: 24 bytes.
type rollup struct {
	bucket   uint32 // Unix time / RollupWidth
	count    uint16
	rssSumHi uint16 // bits 32..47 of the RSS sum
	cpuSum   uint32 // Σ cpu_percent × 100
	cpuMax   uint32
	rssSumLo uint32 // bits 0..31 of the RSS sum
	rssMax   uint32
}

func (r *rollup) rssSum() uint64 { return uint64(r.rssSumHi)<<32 | uint64(r.rssSumLo) }

func (r *rollup) add(cpu, rss uint32) {
	sum := r.rssSum() + uint64(rss)
	r.rssSumHi, r.rssSumLo = uint16(sum>>32), uint32(sum)
	r.count++
	r.cpuSum += cpu
	r.cpuMax = max(r.cpuMax, cpu)
	r.rssMax = max(r.rssMax, rss)
}

// series is the history of one process incarnation.
type series struct {
	key      Key
	nameLen  uint8
	name     [nameCap]byte
	lastSeen int64 // Unix ms of the latest sample that listed it
	firstMS  int64 // Unix ms of its first sample
	baseMS   int64 // Unix ms that raw offsets count from
	raw      []point
	rawHead  int  // index of the oldest raw point once the ring is full
	wrapped  bool // the ring has dropped samples
	rolls    []rollup
	rollHead int
}

func (s *series) bytes() int64 {
	return int64(cap(s.raw))*12 + int64(cap(s.rolls))*24 + int64(seriesOverhead)
}

// seriesOverhead approximates the fixed cost of a series: the struct, its
// map slot and slice headers.
const seriesOverhead = 200

type shard struct {
	mu     sync.Mutex
	series map[int32][]*series // by PID, incarnations in the order they appeared
	free   []*series
	_      [64]byte // keeps neighbouring shards' mutexes off one cache line
}

// Store is the history of every process. Its methods are safe for concurrent use.
type Store struct {
	cfg        Config
	log        zerolog.Logger
	rawCap     int
	rollCap    int
	shards     [numShards]shard
	count      atomic.Int64
	bytes      atomic.Int64
	lastSample atomic.Int64 // Unix ms of the latest EndSample
	lastPrune  atomic.Int64
	liveWarned bool
}

// New returns an empty store.
func New(cfg Config, log zerolog.Logger) *Store {
	if cfg.Points <= 0 {
		cfg.Points = 1000
	}
	if cfg.Retention <= 0 {
		cfg.Retention = 48 * time.Hour
	}
	if cfg.MaxSeries <= 0 {
		cfg.MaxSeries = 50000
	}
	s := &Store{cfg: cfg, log: log, rawCap: cfg.Points, rollCap: int(cfg.Retention/RollupWidth) + 1}
	for i := range s.shards {
		s.shards[i].series = make(map[int32][]*series)
	}
	return s
}

func (s *Store) shard(pid int32) *shard { return &s.shards[uint32(pid)&(numShards-1)] }

// Append records one sample of process k at time t. name is copied when the
// series is created. Append allocates only when a series is created or its
// rings grow.
func (s *Store) Append(t time.Time, k Key, name []byte, cpuPercent float64, rssPages uint64) {
	ms := t.UnixMilli()
	sh := s.shard(k.PID)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	ser := sh.find(k)
	if ser == nil {
		ser = s.create(sh, k, name, ms)
	}
	ser.lastSeen = ms
	cpu := uint32(min(max(cpuPercent, 0)*100+0.5, float64(^uint32(0))))
	rss := uint32(min(rssPages, uint64(^uint32(0))))
	s.appendRaw(ser, ms, cpu, rss)
	s.appendRollup(ser, ms, cpu, rss)
}

func (sh *shard) find(k Key) *series {
	for _, ser := range sh.series[k.PID] {
		if ser.key.StartTicks == k.StartTicks {
			return ser
		}
	}
	return nil
}

func (s *Store) create(sh *shard, k Key, name []byte, ms int64) *series {
	var ser *series
	if n := len(sh.free); n > 0 {
		ser = sh.free[n-1]
		sh.free = sh.free[:n-1]
		raw, rolls := ser.raw[:0], ser.rolls[:0]
		*ser = series{raw: raw, rolls: rolls}
	} else {
		ser = &series{raw: make([]point, 0, firstRawCap), rolls: make([]rollup, 0, firstRollCap)}
	}
	ser.key = k
	ser.nameLen = uint8(copy(ser.name[:], name))
	ser.firstMS, ser.baseMS = ms, ms
	sh.series[k.PID] = append(sh.series[k.PID], ser)
	s.count.Add(1)
	s.bytes.Add(ser.bytes())
	return ser
}

func (s *Store) appendRaw(ser *series, ms int64, cpu, rss uint32) {
	if ms-ser.baseMS >= 1<<31 {
		s.rebase(ser, ms)
	}
	p := point{offsetMS: uint32(max(ms-ser.baseMS, 0)), cpu: cpu, rss: rss}
	if len(ser.raw) < cap(ser.raw) {
		ser.raw = append(ser.raw, p)
		return
	}
	if cap(ser.raw) < s.rawCap {
		// The process has outlived its ring.
		grown := growRing(ser.raw, ser.rawHead, s.rawCap)
		s.bytes.Add(int64(cap(grown)-cap(ser.raw)) * 12)
		ser.raw, ser.rawHead = append(grown, p), 0
		return
	}
	ser.raw[ser.rawHead] = p
	ser.rawHead = (ser.rawHead + 1) % len(ser.raw)
	ser.wrapped = true
}

// growRing returns a full ring's elements, oldest first, in a new slice of
// twice the capacity (at most limit), so a series costs memory in
// proportion to its age.
func growRing[T any](ring []T, head, limit int) []T {
	grown := make([]T, 0, min(2*cap(ring), limit))
	grown = append(grown, ring[head:]...)
	return append(grown, ring[:head]...)
}

// rebase moves the series' base time to its oldest raw point, so offsets stay
// within uint32 however long the process lives.
func (s *Store) rebase(ser *series, now int64) {
	oldest := now
	for _, p := range ser.raw {
		oldest = min(oldest, ser.baseMS+int64(p.offsetMS))
	}
	for i := range ser.raw {
		ser.raw[i].offsetMS = uint32(ser.baseMS + int64(ser.raw[i].offsetMS) - oldest)
	}
	ser.baseMS = oldest
}

func (s *Store) appendRollup(ser *series, ms int64, cpu, rss uint32) {
	bucket := uint32(ms / RollupWidth.Milliseconds())
	if n := len(ser.rolls); n > 0 {
		// rollHead is 0 until the ring wraps, so this is the newest either way.
		if last := &ser.rolls[(ser.rollHead+n-1)%n]; last.bucket == bucket {
			last.add(cpu, rss)
			return
		}
	}
	r := rollup{bucket: bucket}
	r.add(cpu, rss)
	if len(ser.rolls) < cap(ser.rolls) {
		ser.rolls = append(ser.rolls, r)
		return
	}
	if cap(ser.rolls) < s.rollCap {
		grown := growRing(ser.rolls, ser.rollHead, s.rollCap)
		s.bytes.Add(int64(cap(grown)-cap(ser.rolls)) * 24)
		ser.rolls, ser.rollHead = append(grown, r), 0
		return
	}
	ser.rolls[ser.rollHead] = r
	ser.rollHead = (ser.rollHead + 1) % len(ser.rolls)
}

// EndSample marks the sample taken at t complete: series it did not list are
// exited from now on. It also drops series whose last sample is older than
// retention and enforces MaxSeries.
func (s *Store) EndSample(t time.Time) {
	ms := t.UnixMilli()
	s.lastSample.Store(ms)
	cutoff := ms - s.cfg.Retention.Milliseconds()
	// A full pass runs when over the cap, or once a minute of sample time
	// to drop expired series.
	over := int(s.count.Load()) - s.cfg.MaxSeries
	if over > 0 || ms-s.lastPrune.Load() >= time.Minute.Milliseconds() {
		s.lastPrune.Store(ms)
		s.prune(ms, cutoff, max(over, 0))
	}
}

// prune drops expired series, then evicts until at most 95 % of MaxSeries remain:
// exited series first, longest gone first; live ones, newest first, only
// when no exited one is left.
func (s *Store) prune(nowMS, cutoff int64, over int) {
	type victim struct {
		ser  *series
		live bool
	}
	var victims []victim
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		for pid, list := range sh.series {
			kept := list[:0]
			for _, ser := range list {
				if ser.lastSeen < cutoff {
					s.release(sh, ser)
					continue
				}
				kept = append(kept, ser)
				if over > 0 {
					victims = append(victims, victim{ser, ser.lastSeen == nowMS})
				}
			}
			if len(kept) == 0 {
				delete(sh.series, pid)
			} else {
				clear(list[len(kept):])
				sh.series[pid] = kept
			}
		}
		sh.mu.Unlock()
	}
	// Evict down to 95 % of the cap, so that under a fork storm a full pass
	// runs once per MaxSeries/20 new series rather than every sample.
	over = int(s.count.Load()) - (s.cfg.MaxSeries - s.cfg.MaxSeries/20)
	if over <= 0 {
		return
	}
	slices.SortFunc(victims, func(a, b victim) int {
		if a.live != b.live {
			if a.live {
				return 1
			}
			return -1
		}
		if !a.live {
			return int(a.ser.lastSeen - b.ser.lastSeen) // exited longest ago first
		}
		return int(b.ser.firstMS - a.ser.firstMS) // live: newest first
	})
	for _, v := range victims[:min(over, len(victims))] {
		if v.live && !s.liveWarned {
			s.liveWarned = true
			s.log.Warn().Int("max_series", s.cfg.MaxSeries).Msg("more live processes than --history.max-series: the newest lose their history")
		}
		sh := s.shard(v.ser.key.PID)
		sh.mu.Lock()
		list := sh.series[v.ser.key.PID]
		if i := slices.Index(list, v.ser); i >= 0 {
			list = slices.Delete(list, i, i+1)
			if len(list) == 0 {
				delete(sh.series, v.ser.key.PID)
			} else {
				sh.series[v.ser.key.PID] = list
			}
			s.release(sh, v.ser)
		}
		sh.mu.Unlock()
	}
}

// release forgets a series (already unlinked from the map) and keeps its
// buffers for the next one, up to a bound.
func (s *Store) release(sh *shard, ser *series) {
	s.count.Add(-1)
	s.bytes.Add(-ser.bytes())
	if len(sh.free) < freePerShard {
		sh.free = append(sh.free, ser)
	}
}

// Series returns how many series the store holds.
func (s *Store) Series() int { return int(s.count.Load()) }

// Bytes returns the memory the store's series take, approximately.
func (s *Store) Bytes() int64 { return s.bytes.Load() }
