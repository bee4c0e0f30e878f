package api

import (
	"encoding/json"
	"math"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/julienschmidt/httprouter"
	"github.com/procwatch/procwatch/sampler"
	"github.com/rs/zerolog"
)

// Source gives access to the latest complete sample and the sampler's
// clock, boot time and user names (the sampler implements it).
type Source interface {
	Latest(fn func(*sampler.Sample)) bool
	BootTime() time.Time
	Now() (wall time.Time, sinceBoot time.Duration)
	Users() sampler.UserLookup
	HeldFiles() int
}

// Config configures the API.
type Config struct {
	Top        int           // default length of the top lists
	MaxLimit   int           // the most a request's limit may ask for
	Interval   time.Duration // sampling interval, for interval_seconds and staleness
	Visibility sampler.Visibility
	ProcRoot   string    // read on demand for details; default /proc
	Redact     *Redactor // hides secrets in command lines; nil: the default redactor
	History    History   // nil: the history endpoint answers 404
	Killer     Killer    // nil: kill answers 403
	// KillEnabled is --kill.enabled.
	KillEnabled bool
	// KillPolicy decides whether a request's client may kill (exposure rules);
	// nil allows every client that reaches the API.
	KillPolicy func(r *http.Request) (refusal string, ok bool)
	Metrics    MetricsConfig
	// Now tells the time; nil uses time.Now. Tests fix it.
	Now func() time.Time
}

// Server holds the handlers and the latest rendered responses.
type Server struct {
	cfg     Config
	src     Source
	log     zerolog.Logger
	router  *httprouter.Router
	latest  atomic.Pointer[published]
	pidMax  int
	metrics *Metrics
}

// published is what Publish renders once per sample.
type published struct {
	at         time.Time // local clock when published, for the sample's age
	sampleTime time.Time
	processes  []byte // GET /api/processes at the default limit
}

// New builds the API over src.
func New(cfg Config, src Source, log zerolog.Logger) *Server {
	if cfg.Top == 0 {
		cfg.Top = 10
	}
	if cfg.MaxLimit == 0 {
		cfg.MaxLimit = 100
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.ProcRoot == "" {
		cfg.ProcRoot = "/proc"
	}
	if cfg.Redact == nil {
		cfg.Redact, _ = NewRedactor(true, nil) // the default patterns compile
	}
	s := &Server{cfg: cfg, src: src, log: log, pidMax: readPIDMax(cfg.ProcRoot)}
	var users sampler.UserLookup
	if src != nil {
		users = src.Users()
	}
	s.metrics = newMetrics(cfg.Metrics, cfg.History, users, src)
	r := httprouter.New()
	r.RedirectTrailingSlash = false
	r.RedirectFixedPath = false
	r.HandleMethodNotAllowed = true
	r.HandleOPTIONS = false
	r.NotFound = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeError(w, http.StatusNotFound, "No such endpoint; see the README for the API", 0)
	})
	r.MethodNotAllowed = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		// httprouter lists OPTIONS as allowed everywhere; it is not served.
		allow := strings.ReplaceAll(w.Header().Get("Allow"), ", OPTIONS", "")
		w.Header().Set("Allow", allow)
		writeError(w, http.StatusMethodNotAllowed, "Method not allowed on this endpoint", 0)
	})
	r.PanicHandler = func(w http.ResponseWriter, req *http.Request, v any) {
		s.log.Error().Interface("panic", v).Str("path", req.URL.Path).Msg("handler panicked")
		writeError(w, http.StatusInternalServerError, "Internal error; the agent logged it", 0)
	}
	r.GET("/api/processes", s.processes)
	r.GET("/api/processes/:pid", s.details)
	r.GET("/api/processes/:pid/tree", s.tree)
	r.GET("/api/processes/:pid/history", s.history)
	r.POST("/api/processes/:pid/kill", s.kill)
	r.GET("/healthz", s.healthz)
	r.Handler(http.MethodGet, "/metrics", s.metrics.Handler())
	s.router = r
	return s
}

// Handler returns the HTTP handler of the API.
func (s *Server) Handler() http.Handler { return s.router }

// Router exposes the router so that other endpoints can be added beside the
// API's own.
func (s *Server) Router() *httprouter.Router { return s.router }

// Publish renders the responses that are served as bytes until the next
// sample. The sampling loop calls it with the sample it has just taken.
func (s *Server) Publish(w *sampler.Sample) {
	p := &published{
		at:         s.cfg.Now(),
		sampleTime: w.Time,
		processes:  s.renderProcesses(w, s.cfg.Top),
	}
	s.latest.Store(p)
	s.metrics.groups.observe(w)
}

// Metrics returns the agent's metrics, for the sampling loop to update.
func (s *Server) Metrics() *Metrics { return s.metrics }

// errorBody is the body of every error response (SPEC §4).
type errorBody struct {
	Success bool   `json:"success"`
	Error   string `json:"error"`
	PID     int    `json:"pid,omitempty"`
}

// writeError answers status with the JSON error body; pid 0 is left out.
func writeError(w http.ResponseWriter, status int, msg string, pid int) {
	writeJSON(w, status, errorBody{Error: msg, PID: pid})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		// Only a programming error gets here: every type served is plain data.
		status = http.StatusInternalServerError
		b = []byte(`{"success":false,"error":"Internal error encoding the response"}`)
	}
	writeBytes(w, status, append(b, '\n'))
}

func writeBytes(w http.ResponseWriter, status int, b []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// round1 rounds to one decimal place, as every percentage and megabyte
// figure is served.
func round1(v float64) float64 { return math.Round(v*10) / 10 }

// timestamp formats t as RFC 3339 in UTC with milliseconds.
func timestamp(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }
