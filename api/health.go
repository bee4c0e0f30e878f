package api

import (
	"net/http"

	"github.com/julienschmidt/httprouter"
)

type healthJSON struct {
	Status           string   `json:"status"`
	LastSample       *string  `json:"last_sample"`
	SampleAgeSeconds *float64 `json:"sample_age_seconds"`
	Visibility       string   `json:"visibility"`
}

// healthz answers 200 while samples are fresh and 503 once the last one is
// older than three intervals (or before the first).
func (s *Server) healthz(w http.ResponseWriter, _ *http.Request, _ httprouter.Params) {
	body := healthJSON{Status: "ok", Visibility: "full"}
	if s.cfg.Visibility.Degraded {
		body.Visibility = "degraded"
	}
	status := http.StatusOK
	p := s.latest.Load()
	if p == nil {
		body.Status, status = "starting", http.StatusServiceUnavailable
	} else {
		ts := timestamp(p.sampleTime)
		age := s.cfg.Now().Sub(p.at)
		ageSec := round1(age.Seconds())
		body.LastSample, body.SampleAgeSeconds = &ts, &ageSec
		if age > 3*s.cfg.Interval {
			body.Status, status = "stale", http.StatusServiceUnavailable
		}
	}
	writeJSON(w, status, body)
}
