package sampler

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

func FuzzParseStatusUID(f *testing.F) {
	paths, _ := filepath.Glob("../testdata/proc/*/status")
	for _, p := range paths {
		b, _ := os.ReadFile(p)
		f.Add(b)
	}
	f.Add([]byte("Name:\tx\nUid:\t4294967295\t0\t0\t0\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		uid, ok := parseStatusUID(b)
		if !ok {
			return
		}
		// The uid is the digit run after the first "\nUid:" line's blanks.
		i := bytes.Index(b, []byte("\nUid:"))
		rest := bytes.TrimLeft(b[i+5:], " \t")
		j := 0
		for j < len(rest) && rest[j] >= '0' && rest[j] <= '9' {
			j++
		}
		if v, err := strconv.ParseUint(string(rest[:j]), 10, 32); err != nil || uint32(v) != uid {
			t.Fatalf("uid %d, digits %q after Uid: in %q", uid, rest[:j], b)
		}
		if uid == NoUID {
			t.Fatal("parsed the NoUID marker as a uid")
		}
	})
}

func FuzzParseStatmResident(f *testing.F) {
	f.Add([]byte("2345 789 120 1 0 300 0\n"))
	f.Add([]byte("1 18446744073709551615 0"))
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := parseStatmResident(b)
		if err != nil {
			return
		}
		// The second space-separated field, followed by another field.
		fields := bytes.Split(b, []byte(" "))
		if len(fields) < 3 {
			t.Fatalf("resident %d from %q, which has %d fields", v, b, len(fields))
		}
		if want, err := strconv.ParseUint(string(fields[1]), 10, 64); err != nil || want != v {
			t.Fatalf("resident %d, second field %q", v, fields[1])
		}
	})
}

func FuzzJoinCmdline(f *testing.F) {
	paths, _ := filepath.Glob("../testdata/proc/*/cmdline")
	for _, p := range paths {
		b, _ := os.ReadFile(p)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		in := append([]byte(nil), b...)
		out := JoinCmdline(in)
		if len(out) > CmdlineMax || bytes.IndexByte(out, 0) >= 0 {
			t.Fatalf("joined %q: %d bytes, NUL inside", out, len(out))
		}
		if len(out) > 0 && len(b) > 0 && out[0] != b[0] && b[0] != 0 {
			t.Fatal("the first byte changed")
		}
	})
}

// FuzzDirents feeds arbitrary linux_dirent64 buffers to the /proc lister.
func FuzzDirents(f *testing.F) {
	rec := func(name string) []byte {
		b := make([]byte, 19, 19+len(name)+8)
		b = append(b, name...)
		b = append(b, 0)
		for len(b)%8 != 0 {
			b = append(b, 0)
		}
		binary.NativeEndian.PutUint16(b[16:], uint16(len(b)))
		return b
	}
	f.Add(append(append(rec("1"), rec("self")...), rec("4194304")...))
	f.Add(rec("0123"))
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, pid := range appendDirentPIDs(nil, b) {
			if pid <= 0 || pid > maxPID {
				t.Fatalf("PID %d out of range", pid)
			}
		}
	})
}
