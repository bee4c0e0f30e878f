package sampler

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"testing"
)

func TestStatDecode(t *testing.T) {
	const tail = " 100 100 0 -1 4194304 10 0 0 0 7 3 0 0 20 -5 4 0 12345 1000 250 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n"
	tests := []struct {
		name string
		in   string
		want Stat
		err  error
	}{
		{"plain", "100 (python3) R 1" + tail, Stat{PID: 100, Comm: []byte("python3"), State: 'R', PPID: 1, Flags: 4194304, UTime: 7, STime: 3, Nice: -5, Threads: 4, StartTicks: 12345, RSSPages: 250}, nil},
		{"parens and spaces", "100 ((a b ) ( c d) ) S 1" + tail, Stat{PID: 100, Comm: []byte("(a b ) ( c d) "), State: 'S', PPID: 1, Flags: 4194304, UTime: 7, STime: 3, Nice: -5, Threads: 4, StartTicks: 12345, RSSPages: 250}, nil},
		{"newline and invalid utf8", "100 (a\nb\xff) S 1" + tail, Stat{PID: 100, Comm: []byte("a\nb\xff"), State: 'S', PPID: 1, Flags: 4194304, UTime: 7, STime: 3, Nice: -5, Threads: 4, StartTicks: 12345, RSSPages: 250}, nil},
		{"empty comm", "100 () S 1" + tail, Stat{PID: 100, Comm: []byte(""), State: 'S', PPID: 1, Flags: 4194304, UTime: 7, STime: 3, Nice: -5, Threads: 4, StartTicks: 12345, RSSPages: 250}, nil},
		{"exactly 24 fields", "100 (x) S 1 100 100 0 -1 4194304 10 0 0 0 7 3 0 0 20 -5 4 0 12345 1000 250", Stat{PID: 100, Comm: []byte("x"), State: 'S', PPID: 1, Flags: 4194304, UTime: 7, STime: 3, Nice: -5, Threads: 4, StartTicks: 12345, RSSPages: 250}, nil},
		{"max uint64 times", "100 (x) S 1 100 100 0 -1 4194304 10 0 0 0 18446744073709551615 18446744073709551615 0 0 20 0 1 0 18446744073709551615 1000 18446744073709551615", Stat{PID: 100, Comm: []byte("x"), State: 'S', PPID: 1, Flags: 4194304, UTime: 1<<64 - 1, STime: 1<<64 - 1, Threads: 1, StartTicks: 1<<64 - 1, RSSPages: 1<<64 - 1}, nil},
		{"overflow", "100 (x) S 1 100 100 0 -1 4194304 10 0 0 0 18446744073709551616 3 0 0 20 0 1 0 1 1000 1", Stat{}, ErrStatNumber},
		{"double space", "100 (x) S  1" + tail, Stat{}, ErrStatNumber},
		{"line ends after rss", "100 (x) S 1 100 100 0 -1 4194304 10 0 0 0 7 3 0 0 20 -5 4 0 12345 1000 250\n", Stat{PID: 100, Comm: []byte("x"), State: 'S', PPID: 1, Flags: 4194304, UTime: 7, STime: 3, Nice: -5, Threads: 4, StartTicks: 12345, RSSPages: 250}, nil},
		{"newline before rss", "100 (x) S 1 100 100 0 -1 4194304 10 0 0 0 7 3 0 0 20 -5 4 0 12345 1000\n250", Stat{}, ErrStatTruncated},
		{"truncated after start", "100 (x) S 1 100 100 0 -1 4194304 10 0 0 0 7 3 0 0 20 0 1 0 12345", Stat{}, ErrStatTruncated},
		{"truncated in comm", "100 (pyth", Stat{}, ErrStatNoComm},
		{"no pid", "(x) S 1" + tail, Stat{}, ErrStatNoComm},
		{"bad pid", "1x0 (x) S 1" + tail, Stat{}, ErrStatNumber},
		{"zero pid", "0 (x) S 1" + tail, Stat{}, ErrStatNumber},
		{"two letter state", "100 (x) SS 1" + tail, Stat{}, ErrStatNumber},
		{"letters in number", "100 (x) S 1a" + tail, Stat{}, ErrStatNumber},
		{"empty", "", Stat{}, ErrStatNoComm},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s Stat
			err := s.Decode([]byte(tt.in))
			if err != tt.err {
				t.Fatalf("err = %v, want %v", err, tt.err)
			}
			if err != nil {
				return
			}
			if !bytes.Equal(s.Comm, tt.want.Comm) {
				t.Errorf("comm = %q, want %q", s.Comm, tt.want.Comm)
			}
			s.Comm, tt.want.Comm = nil, nil
			if !reflect.DeepEqual(s, tt.want) {
				t.Errorf("got %+v\nwant %+v", s, tt.want)
			}
		})
	}
}

func TestStatDecodeKthread(t *testing.T) {
	var s Stat
	if err := s.Decode([]byte("2 (kthreadd) S 0 0 0 0 -1 2129984 0 0 0 0 0 10 0 0 20 0 1 0 5 0 0")); err != nil {
		t.Fatal(err)
	}
	if !s.Kthread() {
		t.Errorf("flags %#x: want a kernel thread", s.Flags)
	}
}

func TestStatDecodeAllocs(t *testing.T) {
	line := []byte("100 ((a b ) ( c d) ) S 1 100 100 0 -1 4194304 10 0 0 0 7 3 0 0 20 -5 4 0 12345 1000 250 0 0 0\n")
	var s Stat
	if n := testing.AllocsPerRun(100, func() { _ = s.Decode(line) }); n != 0 {
		t.Errorf("Decode allocates %v times, want 0", n)
	}
}

// referenceStat is a slow, obviously-correct parser used as the fuzz oracle.
func referenceStat(b []byte) (Stat, bool) {
	open, closing := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
	if open < 1 || closing < open {
		return Stat{}, false
	}
	pid, err := strconv.ParseInt(string(bytes.Trim(b[:open], " \n")), 10, 32)
	if err != nil || pid <= 0 || pid > maxPID || b[0] == '+' || b[0] == '-' {
		return Stat{}, false
	}
	rest := b[closing+1:]
	if i := bytes.IndexByte(rest, '\n'); i >= 0 {
		rest = rest[:i]
	}
	if len(rest) < 2 || rest[0] != ' ' {
		return Stat{}, false
	}
	fields := bytes.Split(rest[1:], []byte(" "))
	if len(fields) < 22 || len(fields[0]) != 1 {
		return Stat{}, false
	}
	for _, x := range fields[:22] {
		if len(x) == 0 { // two spaces in a row: not what the kernel writes
			return Stat{}, false
		}
	}
	u := func(i int) uint64 {
		v, e := strconv.ParseUint(string(fields[i-3]), 10, 64)
		if e != nil || fields[i-3][0] == '+' {
			err = e
			if err == nil {
				err = strconv.ErrSyntax
			}
		}
		return v
	}
	i32 := func(i int) int32 {
		v, e := strconv.ParseInt(string(fields[i-3]), 10, 32)
		if e != nil || fields[i-3][0] == '+' {
			err = e
			if err == nil {
				err = strconv.ErrSyntax
			}
		}
		return int32(v)
	}
	s := Stat{PID: int32(pid), Comm: b[open+1 : closing], State: fields[0][0],
		PPID: i32(4), Flags: uint32(u(9)), UTime: u(14), STime: u(15), Nice: i32(19),
		Threads: i32(20), StartTicks: u(22), RSSPages: u(24)}
	return s, err == nil
}

func FuzzStatDecode(f *testing.F) {
	paths, _ := filepath.Glob("../testdata/proc/*/stat")
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("100 (x) S 1 100 100 0 -1 4194304 10 0 0 0 18446744073709551615 3 0 0 20 0 1 0 1 1000 1"))
	f.Add([]byte("100 (x"))
	f.Fuzz(func(t *testing.T, b []byte) {
		var s Stat
		err := s.Decode(b)
		ref, ok := referenceStat(b)
		if (err == nil) != ok {
			t.Fatalf("Decode err = %v, reference ok = %v for %q", err, ok, b)
		}
		if err != nil {
			return
		}
		if !bytes.Equal(s.Comm, ref.Comm) {
			t.Fatalf("comm %q, reference %q", s.Comm, ref.Comm)
		}
		s.Comm, ref.Comm = nil, nil
		if !reflect.DeepEqual(s, ref) {
			t.Fatalf("got %+v, reference %+v for %q", s, ref, b)
		}
	})
}

func TestParseStatmResident(t *testing.T) {
	for in, want := range map[string]int64{
		"2345 789 120 1 0 300 0\n": 789,
		"1 0 0 0 0 0 0":            0,
		"2345":                     -1,
		"2345 78x9 1":              -1,
		"2345 789":                 -1,
		"":                         -1,
	} {
		got, err := parseStatmResident([]byte(in))
		if (err != nil) != (want < 0) || (err == nil && int64(got) != want) {
			t.Errorf("parseStatmResident(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
}

func BenchmarkStatDecode(b *testing.B) {
	line := []byte("4242 (python3) S 1 4242 4242 0 -1 4194560 3453 0 12 0 1520 312 0 0 20 0 4 0 123456 1234567890 5234 18446744073709551615 94000000000000 94000000100000 140000000000000 0 0 0 0 16781312 134235395 0 0 0 17 1 0 0 0 0 0 94000000200000 94000000300000 94000001000000 140000000100000 140000000100100 140000000100100 140000000200000 0\n")
	var s Stat
	b.ReportAllocs()
	for b.Loop() {
		if err := s.Decode(line); err != nil {
			b.Fatal(err)
		}
	}
}
