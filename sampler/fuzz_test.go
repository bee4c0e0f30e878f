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
		// The uid is the number after the first "\nUid:" line's blanks.
		i := bytes.Index(b, []byte("\nUid:"))
		rest := bytes.TrimLeft(b[i+5:], " \t")
		if !bytes.HasPrefix(rest, []byte(strconv.FormatUint(uint64(uid), 10))) && uid != 0 {
			t.Fatalf("uid %d not found after Uid: in %q", uid, b)
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
		fields := bytes.Fields(b)
		if len(fields) < 3 || strconv.FormatUint(v, 10) != string(bytes.TrimLeft(fields[1], "0")) && v != 0 {
			t.Fatalf("resident %d from %q", v, b)
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
