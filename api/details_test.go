package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
)

func TestDetailsGolden(t *testing.T) {
	redact, _ := NewRedactor(true, nil)
	s, _ := newFixtureServer(t, Config{ProcRoot: "../testdata/proc", Redact: redact})
	for _, pid := range []int{200, 100, 101, 300, 2} {
		t.Run(fmt.Sprint(pid), func(t *testing.T) {
			code, _, body := get(t, s.Handler(), "GET", fmt.Sprintf("/api/processes/%d", pid))
			if code != http.StatusOK {
				t.Fatalf("status %d: %s", code, body)
			}
			golden(t, fmt.Sprintf("api_details_%d.json", pid), body)
		})
	}
	_, _, body := get(t, s.Handler(), "GET", "/api/processes/200")
	var d map[string]any
	if err := json.Unmarshal(body, &d); err != nil {
		t.Fatal(err)
	}
	// fds: /dev/null, two sockets in the tables (tcp, udp6), one socket in
	// none (a unix socket), two regular files.
	for k, want := range map[string]any{"num_fds": 6.0, "connections": 2.0, "open_files": 2.0, "cwd": "/app", "exe": "/usr/bin/python3.11", "uid": 1000.0, "username": "alice", "success": true} {
		if d[k] != want {
			t.Errorf("%s = %v, want %v", k, d[k], want)
		}
	}
	if strings.Contains(string(body), "hunter2") {
		t.Errorf("a secret leaked: %s", body)
	}
	// Without a descriptor table the agent may read, the fields are null, never 0.
	_, _, body = get(t, s.Handler(), "GET", "/api/processes/100")
	for _, k := range []string{`"num_fds":null`, `"connections":null`, `"open_files":null`, `"cwd":null`, `"exe":null`} {
		if !strings.Contains(string(body), k) {
			t.Errorf("want %s in %s", k, body)
		}
	}
}

func TestSecretsRedactedEverywhere(t *testing.T) {
	redact, _ := NewRedactor(true, nil)
	s, _ := newFixtureServer(t, Config{ProcRoot: "../testdata/proc", Redact: redact})
	for _, target := range []string{"/api/processes", "/api/processes?limit=100", "/api/processes/200"} {
		_, _, body := get(t, s.Handler(), "GET", target)
		if strings.Contains(string(body), "hunter2") || !strings.Contains(string(body), "--db-password=***") {
			t.Errorf("%s: %s", target, body)
		}
	}
	off, _ := NewRedactor(false, nil)
	s, _ = newFixtureServer(t, Config{ProcRoot: "../testdata/proc", Redact: off})
	if _, _, body := get(t, s.Handler(), "GET", "/api/processes/200"); !strings.Contains(string(body), "hunter2") {
		t.Error("--cmdline.redact=false still redacts")
	}
}

func TestBadPIDs(t *testing.T) {
	s, _ := newFixtureServer(t, Config{ProcRoot: "../testdata/proc"})
	for _, bad := range []string{"-1", "0", "+5", "05", "0x10", "1.5", "%205", "5%20", "4194305", "99999999999999999999", "abc", "1e3", "%E2%91%A0"} {
		for _, suffix := range []string{"", "/tree", "/history"} {
			target := "/api/processes/" + bad + suffix
			code, _, body := get(t, s.Handler(), "GET", target)
			if code != http.StatusBadRequest || !strings.HasPrefix(string(body), `{"success":false,"error":"Invalid PID`) {
				t.Errorf("%s: %d %s", target, code, body)
			}
		}
	}
	code, _, body := get(t, s.Handler(), "GET", "/api/processes/4242")
	if want := `{"success":false,"error":"Process not found","pid":4242}` + "\n"; code != 404 || string(body) != want {
		t.Errorf("unknown PID: %d %s", code, body)
	}
	if code, _, _ := get(t, s.Handler(), "GET", "/api/processes/4242/tree"); code != 404 {
		t.Errorf("unknown PID tree: %d", code)
	}
	if code, _, _ := get(t, s.Handler(), "POST", "/api/processes/200"); code != 405 {
		t.Errorf("POST details: %d", code)
	}
}

func TestTreeGolden(t *testing.T) {
	s, _ := newFixtureServer(t, Config{ProcRoot: "../testdata/proc"})
	for _, target := range []string{"/api/processes/1/tree", "/api/processes/200/tree", "/api/processes/1/tree?depth=1", "/api/processes/202/tree", "/api/processes/2/tree"} {
		code, _, body := get(t, s.Handler(), "GET", target)
		if code != http.StatusOK {
			t.Fatalf("%s: %d %s", target, code, body)
		}
		name := strings.NewReplacer("/api/processes/", "api_tree_", "/tree", "", "?depth=", "_depth").Replace(target) + ".json"
		golden(t, name, body)
	}
	var tr treeJSON
	_, _, body := get(t, s.Handler(), "GET", "/api/processes/1/tree")
	if err := json.Unmarshal(body, &tr); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range tr.Children {
		got = append(got, fmt.Sprintf("%d@%d<%d", c.PID, c.Depth, c.ParentPID))
	}
	// Depth-first, children in PID order.
	if want := "100@1<1 101@1<1 200@1<1 201@2<200 202@3<201 300@2<200 400@1<1"; strings.Join(got, " ") != want {
		t.Errorf("children %s\nwant     %s", strings.Join(got, " "), want)
	}
	if tr.Parent != nil || tr.TotalChildren != 7 {
		t.Errorf("parent %v, total %d", tr.Parent, tr.TotalChildren)
	}
	_, _, body = get(t, s.Handler(), "GET", "/api/processes/202/tree")
	if err := json.Unmarshal(body, &tr); err != nil {
		t.Fatal(err)
	}
	if len(tr.Ancestors) != 3 || tr.Ancestors[0].PID != 201 || tr.Ancestors[2].PID != 1 || tr.Parent.PID != 201 || tr.Parent.Status != "sleeping" {
		t.Errorf("ancestors %+v parent %+v", tr.Ancestors, tr.Parent)
	}
	for _, bad := range []string{"0", "65", "-1", "x", ""} {
		if code, _, _ := get(t, s.Handler(), "GET", "/api/processes/1/tree?depth="+bad); code != 400 {
			t.Errorf("depth=%q: %d", bad, code)
		}
	}
}
