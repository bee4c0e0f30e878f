package api

import (
	"net/http"
	"os"
	"time"

	"github.com/julienschmidt/httprouter"
	"github.com/procwatch/procwatch/history"
	"github.com/procwatch/procwatch/sampler"
)

// History is what the history endpoint needs of the store.
type History interface {
	Lookup(pid int32, start uint64) (history.Key, bool)
	Query(k history.Key, now time.Time, span time.Duration) (history.Window, bool)
	Series() int
	Bytes() int64
}

type historyPointJSON struct {
	Timestamp     string  `json:"timestamp"`
	CPUPercent    float64 `json:"cpu_percent"`
	MemoryPercent float64 `json:"memory_percent"`
	MemoryMB      float64 `json:"memory_mb"`
}

type historyStatsJSON struct {
	AvgCPU    float64 `json:"avg_cpu"`
	MaxCPU    float64 `json:"max_cpu"`
	AvgMemory float64 `json:"avg_memory"`
	MaxMemory float64 `json:"max_memory"`
}

type historyJSON struct {
	PID               int                `json:"pid"`
	Name              string             `json:"name"`
	StartedAt         string             `json:"started_at"`
	StartTicks        uint64             `json:"start_ticks"`
	Alive             bool               `json:"alive"`
	Hours             int                `json:"hours"`
	ResolutionSeconds float64            `json:"resolution_seconds"`
	History           []historyPointJSON `json:"history"`
	Statistics        *historyStatsJSON  `json:"statistics"`
	DataPoints        int                `json:"data_points"`
}

var pageSize = float64(os.Getpagesize())

func (s *Server) history(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
	pid, ok := s.pidParam(w, ps)
	if !ok {
		return
	}
	hours := 24
	if q := r.URL.Query(); q.Has("hours") {
		if hours, ok = parseBoundedInt(q.Get("hours"), 1, 48); !ok {
			writeError(w, http.StatusBadRequest, "hours must be a whole number from 1 to 48", pid)
			return
		}
	}
	if s.cfg.History == nil {
		writeError(w, http.StatusNotFound, "History is not kept by this agent", pid)
		return
	}
	// The process that holds the PID now, or else the latest one that did.
	var now time.Time
	var memTotal, liveStart uint64
	var liveName string
	if !s.src.Latest(func(smp *sampler.Sample) {
		now, memTotal = smp.Time, smp.MemTotal
		if i := smp.Find(int32(pid)); i >= 0 {
			liveStart, liveName = smp.Procs[i].StartTicks, smp.Procs[i].Name()
		}
	}) {
		writeError(w, http.StatusServiceUnavailable, "No sample yet; the first one completes within one interval", pid)
		return
	}
	body := historyJSON{PID: pid, Hours: hours, ResolutionSeconds: s.cfg.Interval.Seconds(), History: []historyPointJSON{}}
	if liveStart == 0 {
		// Not in the sample: a process may hold the PID since, with no
		// history yet, and it is the one the PID means now.
		if id, err := readIdentity(s.cfg.ProcRoot, pid); err == nil {
			liveStart, liveName = id.StartTicks, id.Name
		}
	}
	key, found := s.cfg.History.Lookup(int32(pid), liveStart)
	if !found {
		if liveStart == 0 {
			writeError(w, http.StatusNotFound, "Process not found, and none with this PID within the history's retention", pid)
			return
		}
		// Alive, and no history yet.
		body.Name, body.Alive, body.StartTicks = liveName, true, liveStart
		body.StartedAt = timestamp(s.startedAt(liveStart))
		writeJSON(w, http.StatusOK, body)
		return
	}
	win, _ := s.cfg.History.Query(key, now, time.Duration(hours)*time.Hour)
	body.Name, body.Alive, body.StartTicks = win.Name, win.Alive, key.StartTicks
	body.StartedAt = timestamp(s.startedAt(key.StartTicks))
	if win.Rollups {
		body.ResolutionSeconds = history.RollupWidth.Seconds()
	}
	memPct := func(pages float64) float64 {
		if memTotal == 0 {
			return 0
		}
		return pages * pageSize * 100 / float64(memTotal)
	}
	for _, p := range win.Points {
		body.History = append(body.History, historyPointJSON{
			Timestamp:     timestamp(p.Time),
			CPUPercent:    round1(p.CPUPercent),
			MemoryPercent: round1(memPct(p.RSSPages)),
			MemoryMB:      round1(p.RSSPages * pageSize / MiB),
		})
	}
	if st := win.Stats; st != nil {
		body.Statistics = &historyStatsJSON{
			AvgCPU:    round1(st.AvgCPU),
			MaxCPU:    round1(st.MaxCPU),
			AvgMemory: round1(memPct(st.AvgRSS)),
			MaxMemory: round1(memPct(st.MaxRSS)),
		}
	}
	body.DataPoints = len(body.History)
	writeJSON(w, http.StatusOK, body)
}

func (s *Server) startedAt(startTicks uint64) time.Time {
	return sampler.StartedAt(s.src.BootTime(), startTicks)
}
