package api

import (
	"errors"
	"net/http"

	"github.com/julienschmidt/httprouter"
	"github.com/procwatch/procwatch/sampler"
)

// detailsJSON is the body of GET /api/processes/{pid}: PROC and more.
type detailsJSON struct {
	Success bool `json:"success"`
	procJSON
	Cwd         *string `json:"cwd"`
	NumFDs      *int    `json:"num_fds"`
	Connections *int    `json:"connections"`
	OpenFiles   *int    `json:"open_files"`
	Nice        int32   `json:"nice"`
	UID         *uint32 `json:"uid"`
	Exe         *string `json:"exe"`
}

// pidParam parses the {pid} of the path, answering 400 itself when it is bad.
func (s *Server) pidParam(w http.ResponseWriter, ps httprouter.Params) (int, bool) {
	pid, ok := parsePID(ps.ByName("pid"), s.pidMax)
	if !ok {
		writeError(w, http.StatusBadRequest, "Invalid PID: it must be a whole number from 1 to pid_max, written without sign, spaces or leading zeros", 0)
	}
	return pid, ok
}

// writeProcError answers a failed read of process pid.
func writeProcError(w http.ResponseWriter, err error, pid int) {
	switch {
	case errors.Is(err, errNotFound), errors.Is(err, errIsThread):
		writeError(w, http.StatusNotFound, "Process not found", pid)
	case errors.Is(err, errNoAccess):
		writeError(w, http.StatusForbidden, "Permission denied reading this process (proc may be mounted with hidepid)", pid)
	default:
		writeError(w, http.StatusInternalServerError, "Cannot read this process: "+err.Error(), pid)
	}
}

func (s *Server) details(w http.ResponseWriter, _ *http.Request, ps httprouter.Params) {
	pid, ok := s.pidParam(w, ps)
	if !ok {
		return
	}
	p, err := readProcess(s.cfg.ProcRoot, pid, s.cfg.Redact)
	if err != nil {
		writeProcError(w, err, pid)
		return
	}
	body := detailsJSON{Success: true, Cwd: p.cwd, NumFDs: p.numFDs, Connections: p.conns,
		OpenFiles: p.openFiles, Nice: p.stat.Nice, UID: p.uid, Exe: p.exe}
	st := &p.stat
	cpu, memTotal, found := s.sampledCPU(st)
	if !found {
		// Newer than the latest sample: CPU over its life so far.
		_, sinceBoot := s.src.Now()
		cpu = sampler.LifetimeCPUPercent(st.UTime+st.STime, st.StartTicks, sinceBoot)
	}
	if memTotal == 0 { // no sample yet
		memTotal, _ = sampler.ReadMemTotal(s.cfg.ProcRoot)
	}
	body.procJSON = procJSON{
		PID:        int32(pid),
		Name:       p.name,
		CPUPercent: round1(cpu),
		MemoryMB:   round1(float64(p.rss) / MiB),
		Status:     StatusName(st.State),
		StartedAt:  timestamp(s.startedAt(st.StartTicks)),
		StartTicks: st.StartTicks,
		Cmdline:    p.cmdline,
		NumThreads: st.Threads,
		ParentPID:  st.PPID,
	}
	if memTotal > 0 {
		body.MemoryPercent = round1(float64(p.rss) * 100 / float64(memTotal))
	}
	if p.uid != nil {
		u := s.src.Users().Username(*p.uid)
		body.Username = &u
	}
	writeJSON(w, http.StatusOK, body)
}

// sampledCPU returns the process's CPU figure from the latest sample when
// that sample holds the same incarnation, and the sample's MemTotal.
func (s *Server) sampledCPU(st *sampler.Stat) (cpu float64, memTotal uint64, found bool) {
	s.src.Latest(func(w *sampler.Sample) {
		memTotal = w.MemTotal
		if i := w.Find(st.PID); i >= 0 && w.Procs[i].StartTicks == st.StartTicks {
			cpu, found = w.Procs[i].CPUPercent, true
		}
	})
	return cpu, memTotal, found
}
