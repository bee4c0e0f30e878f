package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"time"

	"github.com/julienschmidt/httprouter"
	"github.com/procwatch/procwatch/sampler"
	"github.com/procwatch/procwatch/signals"
)

// Killer is what the kill endpoint needs of the signals package.
type Killer interface {
	Kill(req signals.Request) (signals.Result, error)
}

// Inspector returns the Inspect function signals.Config needs, reading
// processes with the sampler's /proc parsers (signals itself must not
// import the sampler).
func Inspector(procRoot string) func(pid int) (signals.Target, error) {
	return func(pid int) (signals.Target, error) {
		id, err := sampler.ReadIdentity(procRoot, pid)
		return signals.Target{Tgid: id.Tgid, PPID: id.PPID, Name: id.Name, State: id.State,
			StartTicks: id.StartTicks, Kthread: id.Kthread, RealUID: id.UIDs[0], SavedUID: id.UIDs[2]}, err
	}
}

// maxBody is the largest request body accepted (413 beyond).
const maxBody = 64 << 10

// killBody is the request body; every field is optional.
type killBody struct {
	Force        bool     `json:"force"`
	GraceSeconds *float64 `json:"grace_seconds"`
	StartTicks   *uint64  `json:"start_ticks"`
}

type killJSON struct {
	Success   bool   `json:"success"`
	Message   string `json:"message"`
	PID       int    `json:"pid"`
	Name      string `json:"name"`
	Forced    bool   `json:"forced"`
	Signal    string `json:"signal"`
	Escalated bool   `json:"escalated"`
	ElapsedMS int64  `json:"elapsed_ms"`
}

type killErrorJSON struct {
	Success bool   `json:"success"`
	Error   string `json:"error"`
	PID     int    `json:"pid"`
	Signal  string `json:"signal,omitempty"`
	State   string `json:"state,omitempty"`
}

// permissionDenied is the sentence of SPEC §3 for a 403 on permissions.
const permissionDenied = "Permission denied - insufficient privileges (may need root)"

func (s *Server) kill(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
	audit := s.log.Info().Str("event", "kill").Str("remote", r.RemoteAddr).Str("user", requestUser(r))
	refuse := func(status int, msg string, pid int) {
		s.metrics.killAttempts.WithLabelValues(killOutcome(status)).Inc()
		audit.Int("pid", pid).Int("status", status).Str("outcome", "refused").Str("reason", msg).Msg("kill attempt")
		writeError(w, status, msg, pid)
	}
	pid, ok := parsePID(ps.ByName("pid"), s.pidMax)
	if !ok {
		refuse(http.StatusBadRequest, "Invalid PID: it must be a whole number from 1 to pid_max, written without sign, spaces or leading zeros", 0)
		return
	}
	if s.cfg.Killer == nil || !s.cfg.KillEnabled {
		refuse(http.StatusForbidden, "Killing processes is disabled on this agent (--kill.enabled=false)", pid)
		return
	}
	if msg, ok := s.mayKill(r); !ok {
		refuse(http.StatusForbidden, msg, pid)
		return
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		refuse(http.StatusUnsupportedMediaType, "Content-Type must be application/json", pid)
		return
	}
	body, status, msg := decodeKillBody(w, r)
	if status != 0 {
		refuse(status, msg, pid)
		return
	}
	req := signals.Request{PID: pid, Force: body.Force, StartTicks: body.StartTicks}
	if body.GraceSeconds != nil {
		g := time.Duration(*body.GraceSeconds * float64(time.Second))
		req.Grace = &g
	}
	audit = audit.Int("pid", pid).Bool("force", req.Force).Interface("grace_seconds", body.GraceSeconds)

	res, err := s.cfg.Killer.Kill(req)
	audit = audit.Str("name", res.Name).Uint32("owner_uid", res.OwnerUID).Str("signal", res.Signal).
		Bool("escalated", res.Escalated).Int64("elapsed_ms", res.Elapsed.Milliseconds())
	if err != nil {
		status, out := killError(err, pid, res)
		s.metrics.killAttempts.WithLabelValues(killOutcome(status)).Inc()
		audit.Int("status", status).Str("outcome", "failed").Str("reason", out.Error).Msg("kill attempt")
		writeJSON(w, status, out)
		return
	}
	s.metrics.killAttempts.WithLabelValues(killOutcome(http.StatusOK)).Inc()
	audit.Int("status", http.StatusOK).Str("outcome", "terminated").Msg("kill attempt")
	writeJSON(w, http.StatusOK, killJSON{
		Success:   true,
		Message:   fmt.Sprintf("Process %s (PID: %d) terminated successfully", res.Name, pid),
		PID:       pid,
		Name:      res.Name,
		Forced:    res.Forced,
		Signal:    res.Signal,
		Escalated: res.Escalated,
		ElapsedMS: res.Elapsed.Milliseconds(),
	})
}

// decodeKillBody reads at most maxBody bytes of strict JSON: unknown fields,
// wrong types, trailing data and out-of-range values are refused. An empty
// body means the defaults.
func decodeKillBody(w http.ResponseWriter, r *http.Request) (killBody, int, string) {
	var body killBody
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return body, http.StatusRequestEntityTooLarge, "Request body is larger than 64 KiB"
	}
	if err != nil {
		return body, http.StatusBadRequest, "Cannot read the request body"
	}
	if len(bytes.TrimSpace(raw)) == 0 {
		return body, 0, ""
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		return body, http.StatusBadRequest, "Invalid JSON body: " + err.Error()
	}
	if dec.More() {
		return body, http.StatusBadRequest, "Invalid JSON body: data after the object"
	}
	if g := body.GraceSeconds; g != nil && (*g < 0 || *g > signals.MaxGrace.Seconds()) {
		return body, http.StatusBadRequest, "grace_seconds must be from 0 to 60"
	}
	return body, 0, ""
}

// killError maps a failed kill to its status and body.
func killError(err error, pid int, res signals.Result) (int, killErrorJSON) {
	out := killErrorJSON{PID: pid}
	status := http.StatusInternalServerError
	switch {
	case errors.Is(err, signals.ErrNotFound):
		status, out.Error = http.StatusNotFound, "Process not found"
	case errors.Is(err, signals.ErrStartMismatch):
		status, out.Error = http.StatusConflict, "Process start time does not match start_ticks: the PID now belongs to another process; nothing was sent"
	case errors.Is(err, signals.ErrZombie):
		status, out.Error = http.StatusConflict, fmt.Sprintf("Process is a zombie; its parent PID %d must reap it", res.PPID)
	case errors.Is(err, signals.ErrProtected):
		status, out.Error = http.StatusForbidden, "Process is protected and may not be killed (PID 1, the agent, kernel threads and --kill.protect names)"
	case errors.Is(err, signals.ErrPermission):
		status, out.Error = http.StatusForbidden, permissionDenied
	case errors.Is(err, signals.ErrNoDescriptors):
		status, out.Error = http.StatusServiceUnavailable, "The agent is out of file descriptors; try again"
	case errors.Is(err, signals.ErrBadGracePeriod):
		status, out.Error = http.StatusBadRequest, "grace_seconds must be from 0 to 60"
	case errors.Is(err, signals.ErrStillAlive):
		state := StatusName(res.State)
		status, out.Error = http.StatusGatewayTimeout, "Process is still alive after SIGKILL (state: "+state+")"
		out.Signal, out.State = "SIGKILL", state
	default:
		out.Error = "Kill failed: " + err.Error()
	}
	return status, out
}

// requestUser returns the user an authenticated request was verified as, or "".
func requestUser(r *http.Request) string {
	u, _ := r.Context().Value(userKey{}).(string)
	return u
}

// mayKill decides whether this client may kill at all; the exposure rules
// (loopback, authentication, --kill.users) live in security.go.
func (s *Server) mayKill(r *http.Request) (string, bool) {
	if s.cfg.KillPolicy == nil {
		return "", true
	}
	return s.cfg.KillPolicy(r)
}
