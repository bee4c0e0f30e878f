package sampler

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// fakeClock is a Clock the test moves by hand.
type fakeClock struct {
	wall time.Time
	boot time.Duration
}

func (c *fakeClock) Now() (time.Time, time.Duration) { return c.wall, c.boot }
func (c *fakeClock) advance(d time.Duration)         { c.wall = c.wall.Add(d); c.boot += d }

// FixtureUsers names the uids used in testdata/proc.
var fixtureUsers = NewUserCache(func(uid uint32) (string, bool) {
	n, ok := map[uint32]string{0: "root", 1000: "alice", 65534: "nobody"}[uid]
	return n, ok
})

func newFixtureClock() *fakeClock {
	return &fakeClock{wall: time.Date(2025, 12, 11, 10, 30, 45, 123e6, time.UTC), boot: 10000 * time.Second}
}

func newTestSampler(t testing.TB, root string, cfg Config) *Sampler {
	t.Helper()
	cfg.ProcRoot = root
	if cfg.Users == nil {
		cfg.Users = fixtureUsers
	}
	s, err := New(cfg, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// copyTree copies the fixture proc tree into a temporary directory the test
// may change.
func copyTree(t testing.TB, src string) string {
	t.Helper()
	dst := t.TempDir()
	err := filepath.Walk(src, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		switch {
		case info.Mode()&os.ModeSymlink != 0:
			l, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(l, target)
		case info.IsDir():
			return os.MkdirAll(target, 0o755)
		default:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			return os.WriteFile(target, b, 0o644)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

// writeStat writes a synthetic stat line for pid under root.
func writeStat(t testing.TB, root string, pid int, comm, state string, ppid int, ticks, start, rssPages uint64) {
	t.Helper()
	dir := filepath.Join(root, fmt.Sprint(pid))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	line := fmt.Sprintf("%d (%s) %s %d %d %d 0 -1 4194304 0 0 0 0 %d 0 0 0 20 0 1 0 %d 1000 %d 0 0 0 0\n",
		pid, comm, state, ppid, pid, pid, ticks, start, rssPages)
	if err := os.WriteFile(filepath.Join(dir, "stat"), []byte(line), 0o644); err != nil {
		t.Fatal(err)
	}
	statm := fmt.Sprintf("%d %d 0 1 0 %d 0\n", rssPages*3, rssPages, rssPages)
	if err := os.WriteFile(filepath.Join(dir, "statm"), []byte(statm), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestSampleFixture(t *testing.T) {
	clock := newFixtureClock()
	s := newTestSampler(t, "../testdata/proc", Config{TopN: 3, Clock: clock})
	w, err := s.Sample()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(w.Procs), 10; got != want {
		t.Fatalf("%d processes, want %d", got, want)
	}
	for i := 1; i < len(w.Procs); i++ {
		if w.Procs[i-1].PID >= w.Procs[i].PID {
			t.Fatalf("procs not in ascending PID order at %d", i)
		}
	}
	if got, want := w.Threads, 23; got != want {
		t.Errorf("threads = %d, want %d", got, want)
	}
	if got, want := w.MemTotal, uint64(8000000*1024); got != want {
		t.Errorf("MemTotal = %d, want %d", got, want)
	}
	if len(w.Zombies) != 1 || w.Procs[w.Zombies[0]].PID != 300 {
		t.Errorf("zombies = %v, want the process 300", w.Zombies)
	}
	weird := &w.Procs[w.Find(100)]
	if got := string(weird.Comm()); got != "(a b ) ( c d) " {
		t.Errorf("comm = %q", got)
	}
	if !w.Procs[w.Find(2)].Kthread || w.Procs[w.Find(1)].Kthread {
		t.Error("kernel thread flag wrong for PIDs 1 and 2")
	}
	// No address space, so no statm read or held: RSS is 0 by definition.
	for _, pid := range []int32{2, 17, 300} {
		if p := &w.Procs[w.Find(pid)]; p.statmFD != -1 || p.RSS != 0 || p.fd < 0 {
			t.Errorf("PID %d: statm descriptor %d, stat descriptor %d, RSS %d", pid, p.statmFD, p.fd, p.RSS)
		}
	}
	if p := &w.Procs[w.Find(200)]; p.statmFD < 0 {
		t.Error("a user process holds no statm descriptor")
	}
	if got := string(w.Procs[w.Find(17)].Comm()); got != "kworker/0:1-events_power_efficient" {
		t.Errorf("long kernel thread comm = %q", got)
	}
	// First sample: CPU over each process's life. python3 has 500000 ticks
	// = 5000 s over a life of 10000 s - 30 s.
	py := &w.Procs[w.Find(200)]
	if want := 5000.0 / (10000 - 30) * 100; math.Abs(py.CPUPercent-want) > 1e-9 {
		t.Errorf("python3 cpu = %v, want %v", py.CPUPercent, want)
	}
	if got, want := py.RSS, uint64(131200*os.Getpagesize()); got != want {
		t.Errorf("rss = %d, want %d (from statm, not stat's approximate field)", got, want)
	}
	if got, want := w.StartedAt(py), time.Unix(1764000000+30, 0).UTC(); !got.Equal(want) {
		t.Errorf("started at %v, want %v", got, want)
	}

	pids := func(list []Ranked) (out []int32) {
		for _, r := range list {
			out = append(out, w.Procs[r.Index].PID)
		}
		return out
	}
	if got, want := fmt.Sprint(pids(w.TopCPU)), "[200 400 101]"; got != want {
		t.Errorf("top cpu = %s, want %s", got, want)
	}
	if got, want := fmt.Sprint(pids(w.TopRAM)), "[400 200 101]"; got != want {
		t.Errorf("top ram = %s, want %s", got, want)
	}
	top := w.TopCPU[0]
	if top.Username != "alice" || top.UID != 1000 || top.Cmdline != "python3 /app/server.py --port 8000 --db-password=hunter2" {
		t.Errorf("cold data = %+v", top)
	}
	if r := w.TopCPU[2]; r.Username != "nobody" || r.Cmdline != "/opt/bad \"arg\" \xff" {
		t.Errorf("cold data of the odd process = %+v", r)
	}
}

func TestTopTiesByPID(t *testing.T) {
	root := copyTree(t, "../testdata/proc")
	for pid := 1000; pid < 1010; pid++ {
		writeStat(t, root, pid, "same", "S", 1, 0, 9000, 7)
	}
	s := newTestSampler(t, root, Config{TopN: 20, Clock: newFixtureClock()})
	w, err := s.Sample()
	if err != nil {
		t.Fatal(err)
	}
	var last int32
	for _, r := range w.TopCPU {
		p := &w.Procs[r.Index]
		if p.CPUPercent == 0 {
			if p.PID < last {
				t.Fatalf("tie broken out of PID order: %d after %d", p.PID, last)
			}
			last = p.PID
		}
	}
	if last == 0 {
		t.Fatal("no zero-CPU processes in the top list")
	}
}

func TestCPUOverInterval(t *testing.T) {
	root := copyTree(t, "../testdata/proc")
	clock := newFixtureClock()
	s := newTestSampler(t, root, Config{Clock: clock})
	if _, err := s.Sample(); err != nil {
		t.Fatal(err)
	}
	// python3 uses 450 more ticks (4.5 s of CPU) over 3 s: 150 %.
	writeStat(t, root, 200, "python3", "R", 1, 500000+450, 3000, 131200)
	// PID 201 is reused by a new process started 2 s ago with 1 s of CPU:
	// 50 % over its life, never a delta against the old process's ticks.
	writeStat(t, root, 201, "new", "R", 1, 100, uint64((10000+3-2)*ClockTicks), 10)
	// PID 5000 is born since the last sample: measured over its life (1 s).
	writeStat(t, root, 5000, "born", "R", 1, 25, uint64((10000+3-1)*ClockTicks), 10)
	// PID 202 exits.
	if err := os.RemoveAll(filepath.Join(root, "202")); err != nil {
		t.Fatal(err)
	}
	clock.advance(3 * time.Second)
	w, err := s.Sample()
	if err != nil {
		t.Fatal(err)
	}
	if w.Interval != 3*time.Second {
		t.Errorf("interval = %v", w.Interval)
	}
	check := func(pid int32, want float64) {
		t.Helper()
		i := w.Find(pid)
		if i < 0 {
			t.Fatalf("PID %d missing", pid)
		}
		if got := w.Procs[i].CPUPercent; math.Abs(got-want) > 1e-9 {
			t.Errorf("PID %d cpu = %v, want %v", pid, got, want)
		}
	}
	check(200, 150)
	check(201, 50)
	check(5000, 25)
	check(1, 0)
	if w.Find(202) >= 0 {
		t.Error("PID 202 exited but is still listed")
	}
	if w.TopCPU[0].Username != "alice" || w.Procs[w.TopCPU[0].Index].PID != 200 {
		t.Errorf("top = %+v", w.TopCPU[0])
	}
}

func TestUnreadableProcessIsSkipped(t *testing.T) {
	root := copyTree(t, "../testdata/proc")
	if err := os.WriteFile(filepath.Join(root, "202", "stat"), []byte("202 (trunc"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(root, "201", "stat")); err != nil { // vanished mid-read
		t.Fatal(err)
	}
	s := newTestSampler(t, root, Config{Clock: newFixtureClock()})
	w, err := s.Sample()
	if err != nil {
		t.Fatal(err)
	}
	if len(w.Procs) != 8 || w.Find(201) >= 0 || w.Find(202) >= 0 {
		t.Errorf("got %d processes; 201 at %d, 202 at %d", len(w.Procs), w.Find(201), w.Find(202))
	}
	if w.Skipped != 1 {
		t.Errorf("skipped = %d, want 1 (the malformed one; a vanished one is not an error)", w.Skipped)
	}
}

func TestLatestSeesCompleteSample(t *testing.T) {
	s := newTestSampler(t, "../testdata/proc", Config{Clock: newFixtureClock()})
	if s.Latest(func(*Sample) {}) {
		t.Fatal("Latest before the first sample")
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 200 {
			s.Latest(func(w *Sample) {
				if len(w.Procs) != 10 || w.Procs[len(w.Procs)-1].PID != 400 {
					t.Errorf("incomplete sample: %d processes", len(w.Procs))
				}
			})
		}
	}()
	for range 200 {
		if _, err := s.Sample(); err != nil {
			t.Fatal(err)
		}
	}
	<-done
}

// synthTree builds a proc tree of n processes.
func synthTree(t testing.TB, n int) string {
	t.Helper()
	root := copyTree(t, "../testdata/proc")
	for i := range n {
		writeStat(t, root, 10000+i, fmt.Sprintf("proc %d", i), "S", 1, uint64(i), 100, uint64(i%977))
	}
	return root
}

func TestSampleAllocs(t *testing.T) {
	for _, n := range []int{1000, 5000} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			s := newTestSampler(t, synthTree(t, n), Config{Clock: newFixtureClock()})
			if _, err := s.Sample(); err != nil {
				t.Fatal(err)
			}
			if got := testing.AllocsPerRun(5, func() { s.Sample() }); got != 0 {
				t.Errorf("%v allocations per sample, want 0", got)
			}
		})
	}
	t.Run("proc", func(t *testing.T) {
		s, err := New(Config{}, zerolog.Nop())
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		s.Sample()
		if got := testing.AllocsPerRun(5, func() { s.Sample() }); got != 0 {
			t.Errorf("%v allocations per sample of /proc, want 0", got)
		}
	})
}

func TestFallbackWithoutHeldFiles(t *testing.T) {
	s := newTestSampler(t, synthTree(t, 100), Config{MaxHeldFiles: 10, Clock: newFixtureClock()})
	for range 3 {
		w, err := s.Sample()
		if err != nil {
			t.Fatal(err)
		}
		if len(w.Procs) != 110 {
			t.Fatalf("%d processes", len(w.Procs))
		}
	}
	if s.held != 10 {
		t.Errorf("held %d descriptors, want the cap of 10", s.held)
	}
	if got := testing.AllocsPerRun(5, func() { s.Sample() }); got != 0 {
		t.Errorf("open/read/close fallback allocates %v times per sample", got)
	}
}

func TestJoinCmdline(t *testing.T) {
	for in, want := range map[string]string{
		"a\x00b\x00c\x00":                   "a b c",
		"a\x00\x00b\x00":                    "a  b",
		"":                                  "",
		"single":                            "single",
		"x\x00" + strings.Repeat("y", 5000): "x " + strings.Repeat("y", CmdlineMax-2),
	} {
		if got := string(JoinCmdline([]byte(in))); got != want {
			t.Errorf("JoinCmdline(%.20q) = %.20q (len %d), want %.20q (len %d)", in, got, len(got), want, len(want))
		}
	}
}

func TestParseStatusUID(t *testing.T) {
	b, err := os.ReadFile("../testdata/proc/101/status")
	if err != nil {
		t.Fatal(err)
	}
	if uid, ok := parseStatusUID(b); !ok || uid != 65534 {
		t.Errorf("uid = %d, %v", uid, ok)
	}
	if _, ok := parseStatusUID([]byte("Name:\tx\nUid:\tz\n")); ok {
		t.Error("malformed Uid line accepted")
	}
}

func TestUIDCarriedAndRefreshed(t *testing.T) {
	root := copyTree(t, "../testdata/proc")
	s := newTestSampler(t, root, Config{Clock: newFixtureClock()})
	w, err := s.Sample()
	if err != nil {
		t.Fatal(err)
	}
	if uid := w.Procs[w.Find(101)].UID; uid != 65534 {
		t.Fatalf("uid %d", uid)
	}
	// The process drops to uid 1000 after it started.
	status, _ := os.ReadFile(filepath.Join(root, "101", "status"))
	changed := strings.Replace(string(status), "Uid:\t65534\t65534\t65534\t65534", "Uid:\t1000\t1000\t1000\t1000", 1)
	if err := os.WriteFile(filepath.Join(root, "101", "status"), []byte(changed), 0o644); err != nil {
		t.Fatal(err)
	}
	seen := 0
	for i := 1; i <= uidRefresh; i++ {
		w, _ = s.Sample()
		if w.Procs[w.Find(101)].UID == 1000 {
			seen = i
			break
		}
	}
	if seen == 0 {
		t.Fatalf("uid change not seen within %d samples", uidRefresh)
	}
	if seen == 1 && (101+w.Seq)%uidRefresh != 0 {
		t.Error("uid re-read every sample, not carried over")
	}
}

func TestReadErrorsLoggedOncePerMinute(t *testing.T) {
	root := copyTree(t, "../testdata/proc")
	if err := os.WriteFile(filepath.Join(root, "202", "stat"), []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	var logs strings.Builder
	s, err := New(Config{ProcRoot: root, Users: fixtureUsers, Clock: newFixtureClock()}, zerolog.New(&logs))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for range 50 {
		if _, err := s.Sample(); err != nil {
			t.Fatal(err)
		}
	}
	if n := strings.Count(logs.String(), "\n"); n != 1 || !strings.Contains(logs.String(), `"errors":1`) {
		t.Errorf("50 failing samples logged %d lines: %s", n, logs.String())
	}
}
