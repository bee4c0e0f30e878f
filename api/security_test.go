package api

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/julienschmidt/httprouter"
	"github.com/procwatch/procwatch/sampler/proctest"
	"golang.org/x/crypto/bcrypt"
)

type reqOpt func(*http.Request)

func header(k, v string) reqOpt          { return func(r *http.Request) { r.Header.Set(k, v) } }
func host(h string) reqOpt               { return func(r *http.Request) { r.Host = h } }
func remote(a string) reqOpt             { return func(r *http.Request) { r.RemoteAddr = a } }
func basicAuth(user, pass string) reqOpt { return func(r *http.Request) { r.SetBasicAuth(user, pass) } }

func do(h http.Handler, method, target, body string, opts ...reqOpt) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, target, strings.NewReader(body))
	r.Host = "127.0.0.1:8754"
	r.RemoteAddr = "127.0.0.1:40000"
	for _, o := range opts {
		o(r)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	return rec
}

func secured(t *testing.T, s *Server, sec Security) http.Handler {
	t.Helper()
	h, err := s.Secure(sec)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestHostCheck(t *testing.T) {
	s, _ := newFixtureServer(t, Config{})
	h := secured(t, s, Security{LoopbackOnly: true, AllowedHosts: []string{"agent.internal"}})
	for _, hh := range []string{"localhost", "localhost:8754", "127.0.0.1", "127.0.0.1:8754", "[::1]:8754", "[::1]", "127.3.2.1:80", "LOCALHOST:1", "agent.internal:8754", "app.localhost"} {
		if rec := do(h, "GET", "/api/processes", "", host(hh)); rec.Code != 200 {
			t.Errorf("Host %q: %d %s", hh, rec.Code, rec.Body)
		}
	}
	for _, hh := range []string{"evil.example", "evil.example:8754", "127.0.0.1.evil.example", "10.0.0.1:8754", "", "localhost.evil.example"} {
		rec := do(h, "GET", "/api/processes", "", host(hh))
		if rec.Code != 403 || !strings.Contains(rec.Body.String(), "--web.allowed-hosts") {
			t.Errorf("forged Host %q: %d %s", hh, rec.Code, rec.Body)
		}
	}
	open := secured(t, s, Security{LoopbackOnly: false})
	if rec := do(open, "GET", "/api/processes", "", host("agent.example.com")); rec.Code != 200 {
		t.Errorf("any Host on an exposed agent: %d", rec.Code)
	}
}

func TestCrossSiteKillRefused(t *testing.T) {
	s := newKillServer(t, true, nil)
	h := secured(t, s, Security{LoopbackOnly: true, CORSOrigins: []string{"https://dash.example", "*"}})
	cmd := proctest.Start(t, exec.Command("sleep", "3600"))
	target := fmt.Sprintf("/api/processes/%d/kill", cmd.Process.Pid)
	for _, origin := range []string{"https://evil.example", "null"} {
		rec := do(h, "POST", target, `{"force":true}`, header("Content-Type", "application/json"),
			header("Origin", origin), header("Sec-Fetch-Site", "cross-site"))
		if rec.Code != 403 {
			t.Errorf("cross-site POST from %s: %d %s", origin, rec.Code, rec.Body)
		}
	}
	// Without Sec-Fetch-Site, an Origin that does not match the Host is refused too.
	if rec := do(h, "POST", target, `{}`, header("Content-Type", "application/json"), header("Origin", "https://evil.example")); rec.Code != 403 {
		t.Errorf("cross-origin POST without Sec-Fetch-Site: %d", rec.Code)
	}
	// A simple form POST, which a browser sends without preflight.
	if rec := do(h, "POST", target, `force=true`, header("Content-Type", "text/plain")); rec.Code != 415 {
		t.Errorf("text/plain POST: %d", rec.Code)
	}
	if !alive(cmd.Process.Pid) {
		t.Fatal("a cross-site request killed the process")
	}
	// The dashboard's origin, listed by name, may kill.
	rec := do(h, "POST", target, `{}`, header("Content-Type", "application/json"),
		header("Origin", "https://dash.example"), header("Sec-Fetch-Site", "cross-site"))
	if rec.Code != 200 || rec.Header().Get("Access-Control-Allow-Origin") != "https://dash.example" {
		t.Errorf("allowed origin: %d %v %s", rec.Code, rec.Header(), rec.Body)
	}
}

func TestCORSPreflight(t *testing.T) {
	s, _ := newFixtureServer(t, Config{})
	h := secured(t, s, Security{LoopbackOnly: true, CORSOrigins: []string{"https://dash.example", "*"}})
	preflight := func(origin, method string) *httptest.ResponseRecorder {
		return do(h, "OPTIONS", "/api/processes/1/kill", "", header("Origin", origin),
			header("Access-Control-Request-Method", method), header("Access-Control-Request-Headers", "content-type"))
	}
	rec := preflight("https://dash.example", "POST")
	if rec.Code != 204 || rec.Header().Get("Access-Control-Allow-Origin") != "https://dash.example" ||
		rec.Header().Get("Access-Control-Allow-Methods") != "GET, POST" || !strings.Contains(rec.Header().Get("Access-Control-Allow-Headers"), "Content-Type") {
		t.Errorf("allowed preflight: %d %v", rec.Code, rec.Header())
	}
	if rec := preflight("https://evil.example", "POST"); rec.Code != 403 || rec.Header().Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("POST preflight from an origin allowed only by *: %d %v", rec.Code, rec.Header())
	}
	if rec := preflight("https://evil.example", "GET"); rec.Code != 204 || rec.Header().Get("Access-Control-Allow-Methods") != "GET" {
		t.Errorf("GET preflight under *: %d %v", rec.Code, rec.Header())
	}
	if rec := preflight("https://dash.example", "DELETE"); rec.Code != 403 {
		t.Errorf("DELETE preflight: %d", rec.Code)
	}
	rec = do(h, "GET", "/api/processes", "", header("Origin", "https://any.example"))
	if rec.Code != 200 || rec.Header().Get("Access-Control-Allow-Origin") != "*" {
		t.Errorf("GET under *: %d %v", rec.Code, rec.Header())
	}
	strict := secured(t, s, Security{LoopbackOnly: true})
	if rec := do(strict, "OPTIONS", "/api/processes", "", header("Origin", "https://dash.example"), header("Access-Control-Request-Method", "GET")); rec.Code != 403 {
		t.Errorf("preflight with no origins configured: %d", rec.Code)
	}
}

func TestBasicAuth(t *testing.T) {
	hash, _ := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	s, _ := newFixtureServer(t, Config{})
	h := secured(t, s, Security{LoopbackOnly: true, Users: map[string]string{"alice": string(hash)}})
	for name, opts := range map[string][]reqOpt{
		"no credentials": nil,
		"wrong password": {basicAuth("alice", "nope")},
		"unknown user":   {basicAuth("mallory", "s3cret")},
	} {
		rec := do(h, "GET", "/api/processes", "", opts...)
		if rec.Code != 401 || !strings.HasPrefix(rec.Header().Get("WWW-Authenticate"), "Basic") || !strings.Contains(rec.Body.String(), `"success":false`) {
			t.Errorf("%s: %d %v", name, rec.Code, rec.Header())
		}
	}
	for i := range 2 { // the second answer comes from the cache
		if rec := do(h, "GET", "/api/processes", "", basicAuth("alice", "s3cret")); rec.Code != 200 {
			t.Errorf("right password (%d): %d", i, rec.Code)
		}
	}
	if rec := do(h, "GET", "/healthz", ""); rec.Code != 200 {
		t.Errorf("/healthz needs no authentication: %d", rec.Code)
	}
}

func TestKillPolicy(t *testing.T) {
	hash, _ := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	users := map[string]string{"alice": string(hash), "bob": string(hash)}
	cmd := proctest.Start(t, exec.Command("sleep", "3600"))
	target := fmt.Sprintf("/api/processes/%d/kill", cmd.Process.Pid)
	ct := header("Content-Type", "application/json")

	// The policy is tested on the handler with a crafted peer address: a
	// non-loopback RemoteAddr, which is exactly what the policy reads.
	s := newKillServer(t, true, nil)
	open := secured(t, s, Security{LoopbackOnly: false})
	rec := do(open, "POST", target, `{}`, ct, remote("192.0.2.10:5555"))
	if rec.Code != 403 || !strings.Contains(rec.Body.String(), "basic_auth_users") {
		t.Errorf("remote kill without authentication: %d %s", rec.Code, rec.Body)
	}
	s = newKillServer(t, true, nil)
	withUsers := secured(t, s, Security{LoopbackOnly: false, Users: users, KillUsers: []string{"alice"}})
	if rec := do(withUsers, "POST", target, `{}`, ct, remote("192.0.2.10:5555"), basicAuth("bob", "pw")); rec.Code != 403 || !strings.Contains(rec.Body.String(), "--kill.users") {
		t.Errorf("remote kill by a user not in --kill.users: %d %s", rec.Code, rec.Body)
	}
	if !alive(cmd.Process.Pid) {
		t.Fatal("a refused remote kill killed the process")
	}
	if rec := do(withUsers, "POST", target, `{}`, ct, remote("192.0.2.10:5555"), basicAuth("alice", "pw")); rec.Code != 200 {
		t.Errorf("remote kill by alice: %d %s", rec.Code, rec.Body)
	}
	// A loopback client may kill without authentication when none is configured.
	other := proctest.Start(t, exec.Command("sleep", "3600"))
	s = newKillServer(t, true, nil)
	local := secured(t, s, Security{LoopbackOnly: true})
	if rec := do(local, "POST", fmt.Sprintf("/api/processes/%d/kill", other.Process.Pid), `{}`, ct); rec.Code != 200 {
		t.Errorf("loopback kill: %d %s", rec.Code, rec.Body)
	}
}

func TestRequestLimits(t *testing.T) {
	s, _ := newFixtureServer(t, Config{})
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	s.Router().GET("/test/slow", func(w http.ResponseWriter, _ *http.Request, _ httprouter.Params) {
		entered <- struct{}{}
		<-release
		writeJSON(w, 200, map[string]bool{"ok": true})
	})
	h := secured(t, s, Security{LoopbackOnly: true, MaxInFlight: 1})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); do(h, "GET", "/test/slow", "") }()
	select {
	case <-entered:
	case <-time.After(5 * time.Second):
		t.Fatal("the slow request never started")
	}
	if rec := do(h, "GET", "/api/processes", ""); rec.Code != 429 {
		t.Errorf("over the cap: %d", rec.Code)
	}
	close(release)
	wg.Wait()
	if rec := do(h, "GET", "/api/processes", ""); rec.Code != 200 {
		t.Errorf("after the slow request: %d", rec.Code)
	}
	r := httptest.NewRequest("POST", "/api/processes/1/kill", strings.NewReader("{}"))
	r.Host, r.ContentLength = "localhost", 1<<20
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	if rec.Code != 413 {
		t.Errorf("declared 1 MiB body: %d", rec.Code)
	}
	if rec := do(h, "GET", "/api/processes", ""); rec.Header().Get("X-Content-Type-Options") != "nosniff" || rec.Header().Get("Cache-Control") != "no-store" {
		t.Errorf("security headers: %v", rec.Header())
	}
}
