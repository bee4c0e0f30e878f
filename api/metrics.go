package api

import (
	"bytes"
	"net/http"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/procwatch/procwatch/sampler"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics is what GET /metrics serves: the agent's own metrics and
// per-(name, username) process groups of bounded cardinality. Never one
// series per PID: a fleet's Prometheus would drown.
type Metrics struct {
	reg *prometheus.Registry

	SampleDuration     prometheus.Histogram
	Samples            prometheus.Counter
	CheckpointWrites   prometheus.Counter
	CheckpointFailures prometheus.Counter
	killAttempts       *prometheus.CounterVec
	groups             *groupCollector
}

// MetricsConfig configures Metrics.
type MetricsConfig struct {
	MaxGroups int // groups beyond fold into name="other"; default 500
	Version   string
	Revision  string
	// Runtime adds the Go runtime and process collectors (off in tests,
	// whose output would differ from run to run).
	Runtime bool
}

func newMetrics(cfg MetricsConfig, hist History, users sampler.UserLookup, src Source) *Metrics {
	if cfg.MaxGroups <= 0 {
		cfg.MaxGroups = 500
	}
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		SampleDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "procwatch_sample_duration_seconds", Help: "Time taken to sample every process.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1},
		}),
		Samples:            prometheus.NewCounter(prometheus.CounterOpts{Name: "procwatch_samples_total", Help: "Samples taken."}),
		CheckpointWrites:   prometheus.NewCounter(prometheus.CounterOpts{Name: "procwatch_history_checkpoint_writes_total", Help: "History checkpoints written."}),
		CheckpointFailures: prometheus.NewCounter(prometheus.CounterOpts{Name: "procwatch_history_checkpoint_failures_total", Help: "History checkpoints that failed."}),
		killAttempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "procwatch_kill_attempts_total", Help: "Kill requests, by outcome.",
		}, []string{"outcome"}),
		groups: &groupCollector{max: cfg.MaxGroups, users: users, groups: map[groupKey]*group{}},
	}
	for _, o := range []string{"terminated", "bad_request", "forbidden", "not_found", "conflict", "unavailable", "still_alive", "error"} {
		m.killAttempts.WithLabelValues(o) // every outcome from zero, so rate() works from the first kill
	}
	m.reg.MustRegister(m.SampleDuration, m.Samples, m.CheckpointWrites, m.CheckpointFailures, m.killAttempts, m.groups)
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "procwatch_history_series", Help: "Processes whose history is kept.",
	}, func() float64 {
		if hist == nil {
			return 0
		}
		return float64(hist.Series())
	}))
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "procwatch_history_bytes", Help: "Memory the history takes.",
	}, func() float64 {
		if hist == nil {
			return 0
		}
		return float64(hist.Bytes())
	}))
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "procwatch_sampler_held_descriptors", Help: "Descriptors on /proc files the sampler keeps open between samples.",
	}, func() float64 {
		if src == nil {
			return 0
		}
		return float64(src.HeldFiles())
	}))
	goVersion := "unknown"
	if bi, ok := debug.ReadBuildInfo(); ok {
		goVersion = bi.GoVersion
	}
	build := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "procwatch_build_info", Help: "Build information; the value is 1.",
	}, []string{"version", "revision", "goversion"})
	build.WithLabelValues(cfg.Version, cfg.Revision, goVersion).Set(1)
	m.reg.MustRegister(build)
	if cfg.Runtime {
		m.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	return m
}

// killOutcome names a kill response's status for procwatch_kill_attempts_total.
func killOutcome(status int) string {
	switch status {
	case http.StatusOK:
		return "terminated"
	case http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnsupportedMediaType:
		return "bad_request"
	case http.StatusForbidden:
		return "forbidden"
	case http.StatusNotFound:
		return "not_found"
	case http.StatusConflict:
		return "conflict"
	case http.StatusServiceUnavailable:
		return "unavailable"
	case http.StatusGatewayTimeout:
		return "still_alive"
	}
	return "error"
}

// Handler serves the exposition.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// Registry is the registry behind /metrics.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

type groupKey struct {
	name string
	uid  uint32
}

// group is one (name, user) aggregate.
type group struct {
	cpuSeconds float64 // a counter: CPU each member used while sampled
	rss        float64
	count      int
	threads    int
	lastSeq    uint64 // the last sample that had a member
}

// groupCollector keeps the per-group aggregates, updated once per sample
// (observe) and read at scrape time (Collect), so a scrape never walks the
// processes.
type groupCollector struct {
	max   int
	users sampler.UserLookup

	mu      sync.Mutex
	groups  map[groupKey]*group
	states  map[string]int
	seq     uint64
	procs   int
	threads int
}

// groupIdle is how many samples a group with no member keeps its slot (and
// its counter) before the slot is freed for another.
const groupIdle = 200

var otherKey = groupKey{name: "other", uid: sampler.NoUID - 1}

func (c *groupCollector) observe(w *sampler.Sample) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq = w.Seq
	for _, g := range c.groups {
		g.rss, g.count, g.threads = 0, 0, 0
	}
	if c.states == nil {
		c.states = map[string]int{}
	}
	clear(c.states)
	for i := range w.Procs {
		p := &w.Procs[i]
		c.states[StatusName(p.State)]++
		g := c.group(p)
		g.cpuSeconds += float64(p.DeltaTicks) / sampler.ClockTicks
		g.rss += float64(p.RSS)
		g.count++
		g.threads += int(p.Threads)
		g.lastSeq = w.Seq
	}
	for k, g := range c.groups {
		if k != otherKey && w.Seq-g.lastSeq > groupIdle {
			delete(c.groups, k)
		}
	}
	c.procs, c.threads = len(w.Procs), w.Threads
}

// group returns p's group, creating it (or falling back to other) if new.
// A name that is valid UTF-8 — nearly every one — is looked up with the
// comm's bytes, which allocates nothing; a string is made only for a new
// group or a name that must be made valid.
func (c *groupCollector) group(p *sampler.Proc) *group {
	comm := groupComm(p)
	var k groupKey
	if utf8.Valid(comm) {
		if g, ok := c.groups[groupKey{name: string(comm), uid: p.UID}]; ok {
			return g
		}
		k = groupKey{name: string(comm), uid: p.UID}
	} else {
		k = groupKey{name: validUTF8(comm), uid: p.UID}
		if g, ok := c.groups[k]; ok {
			return g
		}
	}
	if len(c.groups) >= c.max {
		k = otherKey
		if g, ok := c.groups[k]; ok {
			return g
		}
	}
	g := &group{}
	c.groups[k] = g
	return g
}

// groupComm is the name a process is grouped by: its comm, except that
// kernel threads group by the part before "/" — their names carry a CPU
// number and, for workqueue workers, the queue they serve at the moment
// ("kworker/1:1H-kblockd"), which would churn series without telling an
// operator anything.
func groupComm(p *sampler.Proc) []byte {
	comm := p.Comm()
	if p.Kthread {
		if i := bytes.IndexByte(comm, '/'); i >= 0 {
			comm = comm[:i]
		}
	}
	return comm
}

// validUTF8 replaces each invalid byte with U+FFFD, as encoding/json does:
// label values must be valid UTF-8 and a comm may be any bytes, so without
// it one odd process name would fail the whole scrape.
func validUTF8(comm []byte) string {
	var b strings.Builder
	for len(comm) > 0 {
		r, size := utf8.DecodeRune(comm)
		if r == utf8.RuneError && size == 1 {
			b.WriteRune(utf8.RuneError)
		} else {
			b.Write(comm[:size])
		}
		comm = comm[size:]
	}
	return b.String()
}

var (
	descCPU     = prometheus.NewDesc("procwatch_group_cpu_seconds_total", "CPU time (user+system) used by the processes of a name and user while sampled.", []string{"name", "username"}, nil)
	descRSS     = prometheus.NewDesc("procwatch_group_resident_memory_bytes", "Resident memory of the processes of a name and user.", []string{"name", "username"}, nil)
	descCount   = prometheus.NewDesc("procwatch_group_processes", "Processes of a name and user.", []string{"name", "username"}, nil)
	descThreads = prometheus.NewDesc("procwatch_group_threads", "Threads of the processes of a name and user.", []string{"name", "username"}, nil)
	descStates  = prometheus.NewDesc("procwatch_processes_by_state", "Processes in each state.", []string{"state"}, nil)
	descProcs   = prometheus.NewDesc("procwatch_processes", "Processes seen by the latest sample.", nil, nil)
	descThreadT = prometheus.NewDesc("procwatch_threads", "Threads seen by the latest sample.", nil, nil)
)

func (c *groupCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descCPU, descRSS, descCount, descThreads, descStates, descProcs, descThreadT} {
		ch <- d
	}
}

func (c *groupCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	keys := make([]groupKey, 0, len(c.groups))
	for k := range c.groups {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].name != keys[j].name {
			return keys[i].name < keys[j].name
		}
		return keys[i].uid < keys[j].uid
	})
	for _, k := range keys {
		g := c.groups[k]
		name, user := k.name, c.username(k.uid)
		ch <- prometheus.MustNewConstMetric(descCPU, prometheus.CounterValue, g.cpuSeconds, name, user)
		ch <- prometheus.MustNewConstMetric(descRSS, prometheus.GaugeValue, g.rss, name, user)
		ch <- prometheus.MustNewConstMetric(descCount, prometheus.GaugeValue, float64(g.count), name, user)
		ch <- prometheus.MustNewConstMetric(descThreads, prometheus.GaugeValue, float64(g.threads), name, user)
	}
	for _, st := range []string{"running", "sleeping", "disk-sleep", "stopped", "tracing-stop", "zombie", "dead", "idle", "parked", "waking", "wake-kill", "unknown"} {
		ch <- prometheus.MustNewConstMetric(descStates, prometheus.GaugeValue, float64(c.states[st]), st)
	}
	ch <- prometheus.MustNewConstMetric(descProcs, prometheus.GaugeValue, float64(c.procs))
	ch <- prometheus.MustNewConstMetric(descThreadT, prometheus.GaugeValue, float64(c.threads))
}

func (c *groupCollector) username(uid uint32) string {
	switch uid {
	case otherKey.uid:
		return "other"
	case sampler.NoUID:
		return "unknown"
	}
	if c.users == nil {
		return strconv.FormatUint(uint64(uid), 10)
	}
	return c.users.Username(uid)
}
