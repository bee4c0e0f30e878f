package api

import (
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/julienschmidt/httprouter"
	"github.com/procwatch/procwatch/sampler"
)

// procJSON is PROC of SPEC §3.
type procJSON struct {
	PID           int32   `json:"pid"`
	Name          string  `json:"name"`
	Username      *string `json:"username"`
	CPUPercent    float64 `json:"cpu_percent"`
	MemoryPercent float64 `json:"memory_percent"`
	MemoryMB      float64 `json:"memory_mb"`
	Status        string  `json:"status"`
	StartedAt     string  `json:"started_at"`
	StartTicks    uint64  `json:"start_ticks"`
	Cmdline       string  `json:"cmdline"`
	NumThreads    int32   `json:"num_threads"`
	ParentPID     int32   `json:"parent_pid"`
}

type zombieJSON struct {
	PID       int32  `json:"pid"`
	Name      string `json:"name"`
	ParentPID int32  `json:"parent_pid"`
	StartedAt string `json:"started_at"`
}

type processesJSON struct {
	Timestamp       string       `json:"timestamp"`
	TopCPU          []procJSON   `json:"top_cpu"`
	TopRAM          []procJSON   `json:"top_ram"`
	TotalProcesses  int          `json:"total_processes"`
	TotalThreads    int          `json:"total_threads"`
	ZombieCount     int          `json:"zombie_count"`
	Zombies         []zombieJSON `json:"zombies"`
	IntervalSeconds float64      `json:"interval_seconds"`
}

// statusNames maps the stat state letter to the names of SPEC §2.
var statusNames = [256]string{
	'R': "running", 'S': "sleeping", 'D': "disk-sleep", 'T': "stopped",
	't': "tracing-stop", 'Z': "zombie", 'X': "dead", 'I': "idle",
	'P': "parked", 'W': "waking", 'K': "wake-kill",
}

// StatusName returns the name of a stat state letter ("unknown" for others).
func StatusName(state byte) string {
	if n := statusNames[state]; n != "" {
		return n
	}
	return "unknown"
}

// MiB is the unit of memory_mb.
const MiB = 1 << 20

func newProcJSON(w *sampler.Sample, p *sampler.Proc) procJSON {
	return procJSON{
		PID:           p.PID,
		Name:          p.Name(),
		CPUPercent:    round1(p.CPUPercent),
		MemoryPercent: round1(w.MemoryPercent(p)),
		MemoryMB:      round1(float64(p.RSS) / MiB),
		Status:        StatusName(p.State),
		StartedAt:     timestamp(w.StartedAt(p)),
		StartTicks:    p.StartTicks,
		NumThreads:    p.Threads,
		ParentPID:     p.PPID,
	}
}

func rankedJSON(w *sampler.Sample, list []sampler.Ranked, limit int, redact *Redactor) []procJSON {
	out := make([]procJSON, 0, min(limit, len(list)))
	for _, r := range list[:min(limit, len(list))] {
		j := newProcJSON(w, &w.Procs[r.Index])
		if r.UID != sampler.NoUID {
			u := r.Username
			j.Username = &u
		}
		j.Cmdline = redact.Redact(r.Cmdline)
		out = append(out, j)
	}
	return out
}

// renderProcesses renders GET /api/processes for w at the given limit.
func (s *Server) renderProcesses(w *sampler.Sample, limit int) []byte {
	body := processesJSON{
		Timestamp:       timestamp(w.Time),
		TopCPU:          rankedJSON(w, w.TopCPU, limit, s.cfg.Redact),
		TopRAM:          rankedJSON(w, w.TopRAM, limit, s.cfg.Redact),
		TotalProcesses:  len(w.Procs),
		TotalThreads:    w.Threads,
		ZombieCount:     len(w.Zombies),
		Zombies:         make([]zombieJSON, 0, len(w.Zombies)),
		IntervalSeconds: s.cfg.Interval.Seconds(),
	}
	for _, i := range w.Zombies {
		p := &w.Procs[i]
		body.Zombies = append(body.Zombies, zombieJSON{PID: p.PID, Name: p.Name(), ParentPID: p.PPID, StartedAt: timestamp(w.StartedAt(p))})
	}
	b, err := json.Marshal(body)
	if err != nil {
		panic(err) // plain data only: cannot fail
	}
	return append(b, '\n')
}

func (s *Server) processes(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	limit := s.cfg.Top
	if q := r.URL.Query(); q.Has("limit") {
		n, ok := parseBoundedInt(q.Get("limit"), 1, s.cfg.MaxLimit)
		if !ok {
			writeError(w, http.StatusBadRequest, "limit must be a whole number from 1 to "+strconv.Itoa(s.cfg.MaxLimit), 0)
			return
		}
		limit = n
	}
	p := s.latest.Load()
	if p == nil {
		writeError(w, http.StatusServiceUnavailable, "No sample yet; the first one completes within one interval", 0)
		return
	}
	if limit == s.cfg.Top {
		writeBytes(w, http.StatusOK, p.processes)
		return
	}
	var body []byte
	s.src.Latest(func(smp *sampler.Sample) { body = s.renderProcesses(smp, limit) })
	writeBytes(w, http.StatusOK, body)
}

// parseBoundedInt accepts ^[1-9][0-9]*$ (or "0" where lo is 0) within
// [lo, hi] and nothing else: no sign, no leading zeros, no spaces.
func parseBoundedInt(s string, lo, hi int) (int, bool) {
	if s == "" || len(s) > 10 || (len(s) > 1 && s[0] == '0') {
		return 0, false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, n >= lo && n <= hi
}
