package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// selfSigned writes a certificate for 127.0.0.1 and its key into dir.
func selfSigned(t *testing.T, dir string) *x509.CertPool {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "procwatch test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(key)
	os.WriteFile(filepath.Join(dir, "tls.crt"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(filepath.Join(dir, "tls.key"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return pool
}

func TestTLSAndAuthRoundTrip(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	dir := t.TempDir()
	pool := selfSigned(t, dir)
	hash, _ := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	cfg := "tls_server_config:\n  cert_file: tls.crt\n  key_file: tls.key\nbasic_auth_users:\n  alice: " + string(hash) + "\n"
	if err := os.WriteFile(filepath.Join(dir, "web.yml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd, addr, logs := startAgent(t, buildAgent(t), "--web.listen-address=127.0.0.1:0", "--telemetry-interval=1s", "--web.config.file="+filepath.Join(dir, "web.yml"))
	defer stopAgent(t, cmd, logs)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}, Timeout: 5 * time.Second}
	get := func(path, user, pass string) int {
		req, _ := http.NewRequest("GET", "https://"+addr+path, nil)
		if user != "" {
			req.SetBasicAuth(user, pass)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := get("/healthz", "", ""); code != 200 && code != 503 {
		t.Errorf("/healthz over TLS without credentials: %d", code)
	}
	if code := get("/api/processes/1", "", ""); code != 401 {
		t.Errorf("no credentials: %d", code)
	}
	if code := get("/api/processes/1", "alice", "wrong"); code != 401 {
		t.Errorf("wrong password: %d", code)
	}
	if code := get("/api/processes/1", "alice", "s3cret"); code != 200 {
		t.Errorf("right password: %d", code)
	}
	// Plain HTTP to the TLS port does not get an answer from the API.
	if resp, err := http.Get("http://" + addr + "/healthz"); err == nil {
		if resp.StatusCode == 200 {
			t.Error("plain HTTP served on the TLS listener")
		}
		resp.Body.Close()
	}
}

func TestBadWebConfigExits2(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "web.yml"), []byte("basic_auth_users: [not, a, map]\n"), 0o600)
	out, err := exec.Command(buildAgent(t), "--web.listen-address=127.0.0.1:0", "--web.config.file="+filepath.Join(dir, "web.yml")).CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 || strings.Count(strings.TrimSpace(string(out)), "\n") != 0 {
		t.Errorf("bad web config: %v %q, want exit 2 with one line", err, out)
	}
}

func TestUnprivilegedAgentIsDegraded(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	if os.Getuid() != 0 {
		t.Skip("needs root to start the agent as uid 65534")
	}
	// uid 65534 cannot enter the go tool's private build directory.
	dir, err := os.MkdirTemp("", "procwatch-agent-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o755)
	bin := filepath.Join(dir, "procwatch")
	b, _ := os.ReadFile(buildAgent(t))
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--web.listen-address=127.0.0.1:0", "--telemetry-interval=1s")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	dec := json.NewDecoder(stderr)
	var addr string
	sawWarning := false
	for addr == "" {
		var line map[string]any
		if err := dec.Decode(&line); err != nil {
			t.Fatalf("agent log: %v", err)
		}
		msg, _ := line["message"].(string)
		if strings.HasPrefix(msg, "degraded visibility: no CAP_SYS_PTRACE") {
			sawWarning = true
		}
		if msg == "Process monitoring enabled" {
			addr = line["address"].(string)
		}
	}
	if !sawWarning {
		t.Error("no warning about what an unprivileged agent cannot see")
	}
	var h map[string]any
	for deadline := time.Now().Add(5 * time.Second); h["status"] != "ok"; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("healthz %v", h)
		}
		fetch(t, "http://"+addr+"/healthz", &h)
	}
	if h["visibility"] != "degraded" {
		t.Errorf("visibility %v, want degraded", h["visibility"])
	}
	// It still serves what it can: other users' details are null, not 0.
	var d map[string]any
	if code := fetch(t, "http://"+addr+"/api/processes/1", &d); code != 200 || d["cwd"] != nil || d["num_fds"] != nil {
		t.Errorf("PID 1 as seen unprivileged: %d cwd=%v num_fds=%v", code, d["cwd"], d["num_fds"])
	}
}

func TestSystemdUnit(t *testing.T) {
	b, err := os.ReadFile("../../deploy/procwatch.service")
	if err != nil {
		t.Fatal(err)
	}
	unit := string(b)
	for _, want := range []string{
		"AmbientCapabilities=CAP_KILL CAP_SYS_PTRACE CAP_DAC_READ_SEARCH\n",
		"CapabilityBoundingSet=CAP_KILL CAP_SYS_PTRACE CAP_DAC_READ_SEARCH\n",
		"NoNewPrivileges=yes", "ProtectSystem=strict", "ProtectHome=read-only", "PrivateTmp=yes",
		"PrivateDevices=yes", "ProtectKernelTunables=yes", "ProtectKernelModules=yes", "ProtectControlGroups=yes",
		"ProtectClock=yes", "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6", "SystemCallFilter=@system-service",
		"StateDirectory=procwatch", "--data-dir=${STATE_DIRECTORY}",
	} {
		if !strings.Contains(unit, want) {
			t.Errorf("unit lacks %q", want)
		}
	}
	for _, line := range strings.Split(unit, "\n") {
		for _, blind := range []string{"ProtectProc=invisible", "ProcSubset=pid", "PrivatePIDs=yes"} {
			if strings.HasPrefix(strings.TrimSpace(line), blind) {
				t.Errorf("unit sets %s, which hides the processes the agent watches", blind)
			}
		}
	}
	path, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Log("systemd-analyze not installed: checked the directives only")
		return
	}
	// Verify a copy whose ExecStart names the binary just built (the unit's
	// own path exists only once installed).
	unitCopy := filepath.Join(t.TempDir(), "procwatch.service")
	if err := os.WriteFile(unitCopy, []byte(strings.ReplaceAll(unit, "/usr/local/bin/procwatch", buildAgent(t))), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(path, "verify", unitCopy).CombinedOutput(); err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("systemd-analyze verify %s: %v\n%q", unitCopy, err, out)
	}
}
