package api

import (
	"context"
	"crypto/sha256"
	"net"
	"net/http"
	"strings"
	"sync"

	"golang.org/x/crypto/bcrypt"
)

// Security configures how the API defends itself when exposed (SPEC §6).
type Security struct {
	// LoopbackOnly is true when every listening address is loopback: then
	// a request whose Host is not a loopback name or address, nor in
	// AllowedHosts, is refused. That is what stops a DNS-rebinding page,
	// whose requests reach 127.0.0.1 carrying the attacker's host name.
	LoopbackOnly bool
	AllowedHosts []string
	// CORSOrigins may call the API from a browser; "*" allows any origin,
	// for GET only.
	CORSOrigins []string
	// Users maps basic-auth user names to bcrypt hashes (the
	// basic_auth_users of a --web.config.file); empty: no authentication.
	Users map[string]string
	// KillUsers may kill from a non-loopback client; empty: every
	// authenticated user.
	KillUsers []string
	// MaxInFlight caps concurrent requests (429 beyond); 0 means 64.
	MaxInFlight int
}

// fakeHash is compared against for an unknown user, so that a response's
// timing does not tell which users exist (as exporter-toolkit does).
var fakeHash = []byte("$2y$10$QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV/LDeSi")

type userKey struct{}

// guard is the middleware in front of the router.
type guard struct {
	cfg      Security
	next     http.Handler
	slots    chan struct{}
	cop      *http.CrossOriginProtection
	anyGET   bool
	origins  map[string]bool
	hosts    map[string]bool
	killers  map[string]bool
	authMu   sync.Mutex
	authSeen map[[32]byte]bool // outcome of bcrypt comparisons, which are slow by design
}

// Secure wraps the API handler in the exposure rules of SPEC §6. Its errors
// are the JSON body of §4.
func (s *Server) Secure(cfg Security) (http.Handler, error) {
	if cfg.MaxInFlight <= 0 {
		cfg.MaxInFlight = 64
	}
	g := &guard{cfg: cfg, next: s.router, slots: make(chan struct{}, cfg.MaxInFlight),
		cop: http.NewCrossOriginProtection(), origins: map[string]bool{}, hosts: map[string]bool{},
		killers: map[string]bool{}, authSeen: map[[32]byte]bool{}}
	for _, o := range cfg.CORSOrigins {
		if o == "*" {
			g.anyGET = true
			continue
		}
		if err := g.cop.AddTrustedOrigin(o); err != nil {
			return nil, err
		}
		g.origins[o] = true
	}
	for _, h := range cfg.AllowedHosts {
		g.hosts[strings.ToLower(h)] = true
	}
	for _, u := range cfg.KillUsers {
		g.killers[u] = true
	}
	s.cfg.KillPolicy = g.mayKill
	return g, nil
}

func (g *guard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	select {
	case g.slots <- struct{}{}:
		defer func() { <-g.slots }()
	default:
		writeError(w, http.StatusTooManyRequests, "Too many requests in flight; try again shortly", 0)
		return
	}
	if g.cfg.LoopbackOnly && !g.hostAllowed(r.Host) {
		writeError(w, http.StatusForbidden, "Host "+quoteHost(r.Host)+" is not allowed on a loopback-only agent; add it with --web.allowed-hosts", 0)
		return
	}
	if r.ContentLength > maxBody {
		writeError(w, http.StatusRequestEntityTooLarge, "Request body is larger than 64 KiB", 0)
		return
	}
	if origin := r.Header.Get("Origin"); origin != "" {
		if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
			g.preflight(w, r, origin)
			return
		}
		g.allowOrigin(w, r, origin)
	}
	if err := g.cop.Check(r); err != nil {
		writeError(w, http.StatusForbidden, "Cross-origin request refused; allow the page's origin with --web.cors-origins", 0)
		return
	}
	if len(g.cfg.Users) > 0 && r.URL.Path != "/healthz" {
		user, ok := g.authenticate(r)
		if !ok {
			w.Header().Set("WWW-Authenticate", `Basic realm="procwatch", charset="UTF-8"`)
			writeError(w, http.StatusUnauthorized, "Authentication required", 0)
			return
		}
		r = r.WithContext(context.WithValue(r.Context(), userKey{}, user))
	}
	g.next.ServeHTTP(w, r)
}

// hostAllowed accepts localhost, any loopback address (with any port), and
// the names of --web.allowed-hosts.
func (g *guard) hostAllowed(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.ToLower(strings.TrimSuffix(strings.Trim(host, "[]"), "."))
	if host == "localhost" || strings.HasSuffix(host, ".localhost") || g.hosts[host] {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func quoteHost(h string) string {
	if len(h) > 100 {
		h = h[:100]
	}
	return `"` + strings.Map(func(r rune) rune {
		if r < ' ' || r == '"' {
			return '?'
		}
		return r
	}, h) + `"`
}

// preflight answers a CORS preflight: the methods and headers the API uses,
// to allowed origins only; POST only to origins listed by name.
func (g *guard) preflight(w http.ResponseWriter, r *http.Request, origin string) {
	method := r.Header.Get("Access-Control-Request-Method")
	named := g.origins[origin]
	if !(named || (g.anyGET && method == http.MethodGet)) || (method != http.MethodGet && method != http.MethodPost) || (method == http.MethodPost && !named) {
		writeError(w, http.StatusForbidden, "Origin not allowed; add it with --web.cors-origins", 0)
		return
	}
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", origin)
	h.Add("Vary", "Origin")
	if named {
		h.Set("Access-Control-Allow-Methods", "GET, POST")
	} else {
		h.Set("Access-Control-Allow-Methods", "GET")
	}
	h.Set("Access-Control-Allow-Headers", "Content-Type, Authorization")
	h.Set("Access-Control-Max-Age", "600")
	w.WriteHeader(http.StatusNoContent)
}

// allowOrigin sets the CORS response headers for an allowed origin.
func (g *guard) allowOrigin(w http.ResponseWriter, r *http.Request, origin string) {
	switch {
	case g.origins[origin]:
		w.Header().Set("Access-Control-Allow-Origin", origin)
		w.Header().Add("Vary", "Origin")
	case g.anyGET && r.Method == http.MethodGet:
		w.Header().Set("Access-Control-Allow-Origin", "*")
	}
}

// authenticate checks basic auth against the bcrypt hashes, remembering
// outcomes so that a dashboard polling every second does not pay bcrypt each
// time.
func (g *guard) authenticate(r *http.Request) (string, bool) {
	user, pass, ok := r.BasicAuth()
	if !ok {
		return "", false
	}
	hash, known := g.cfg.Users[user]
	if !known {
		hash = string(fakeHash)
	}
	key := sha256.Sum256([]byte(user + "\x00" + hash + "\x00" + pass))
	g.authMu.Lock()
	good, seen := g.authSeen[key]
	g.authMu.Unlock()
	if !seen {
		good = bcrypt.CompareHashAndPassword([]byte(hash), []byte(pass)) == nil && known
		g.authMu.Lock()
		if len(g.authSeen) > 1000 {
			clear(g.authSeen) // bounded: a flood of wrong passwords cannot grow it
		}
		g.authSeen[key] = good
		g.authMu.Unlock()
	}
	return user, good
}

// mayKill is the kill policy: a loopback client may; another only when
// authenticated, and only as one of KillUsers where those are set.
func (g *guard) mayKill(r *http.Request) (string, bool) {
	if isLoopbackPeer(r.RemoteAddr) {
		return "", true
	}
	user, _ := r.Context().Value(userKey{}).(string)
	if user == "" {
		return "Killing from a remote client needs authentication: configure basic_auth_users in --web.config.file", false
	}
	if len(g.killers) > 0 && !g.killers[user] {
		return "User " + quoteHost(user) + " may not kill; add it to --kill.users", false
	}
	return "", true
}

func isLoopbackPeer(remoteAddr string) bool {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
