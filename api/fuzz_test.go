package api

import (
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

var pidPattern = regexp.MustCompile(`^[1-9][0-9]*$`)

func FuzzParsePID(f *testing.F) {
	for _, s := range []string{"1", "-1", "0", "+5", "05", "0x10", "1.5", " 5", "4194304", "4194305", "99999999999999999999", "١٢"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		pid, ok := parsePID(s, defaultPIDMax)
		n, err := strconv.Atoi(s)
		want := pidPattern.MatchString(s) && err == nil && n <= defaultPIDMax
		if ok != want || (ok && pid != n) {
			t.Fatalf("parsePID(%q) = %d, %v; want ok=%v", s, pid, ok, want)
		}
	})
}

func FuzzNetTableInode(f *testing.F) {
	f.Add("   0: 0100007F:1F40 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 1001 1 0000000000000000 100 0 0 10 0")
	f.Add("  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode")
	f.Fuzz(func(t *testing.T, line string) {
		inode, ok := netTableInode([]byte(line))
		if !ok {
			return
		}
		// The tenth space-separated field (the kernel separates with spaces).
		fields := strings.FieldsFunc(line, func(r rune) bool { return r == ' ' })
		if len(fields) < 10 {
			t.Fatalf("inode %d from a line of %d fields: %q", inode, len(fields), line)
		}
		if v, err := strconv.ParseUint(fields[9], 10, 64); err != nil || v != inode {
			t.Fatalf("inode %d, tenth field %q: %q", inode, fields[9], line)
		}
	})
}

func FuzzRedact(f *testing.F) {
	for _, s := range []string{"app --password=hunter2", "mysql -uroot -pX", "psql postgres://u:p@h/d", "sshpass -p x ssh", "curl -H Authorization: Bearer abc", "a  b   c"} {
		f.Add(s)
	}
	r, _ := NewRedactor(true, nil)
	f.Fuzz(func(t *testing.T, s string) {
		once := r.Redact(s)
		if twice := r.Redact(once); twice != once {
			t.Fatalf("not idempotent: %q → %q → %q", s, once, twice)
		}
		if strings.Count(once, " ") != strings.Count(s, " ") {
			t.Fatalf("argument count changed: %q → %q", s, once)
		}
	})
}

func FuzzKillBody(f *testing.F) {
	for _, s := range []string{`{}`, `{"force":true}`, `{"grace_seconds":60}`, `{"start_ticks":123}`, `{"x":1}`, `[]`, `{"grace_seconds":1e999}`, ``} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r := httptest.NewRequest("POST", "/", strings.NewReader(s))
		body, status, msg := decodeKillBody(httptest.NewRecorder(), r)
		switch status {
		case 0:
			if g := body.GraceSeconds; g != nil && (*g < 0 || *g > 60) {
				t.Fatalf("grace %v accepted", *g)
			}
		case 400, 413:
			if msg == "" {
				t.Fatal("an error without a sentence")
			}
		default:
			t.Fatalf("status %d", status)
		}
	})
}
