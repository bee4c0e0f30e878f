package sampler

import (
	"bytes"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/procwatch/procwatch/sampler/proctest"
	"github.com/rs/zerolog"
)

func TestMain(m *testing.M) {
	proctest.RunHelperIfAsked()
	os.Exit(m.Run())
}

func newProcSampler(t *testing.T) *Sampler {
	t.Helper()
	s, err := New(Config{}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// schedRuntime returns the CPU time pid has used, in nanoseconds, summed over
// its threads' /proc/<pid>/task/<tid>/schedstat: an independent,
// nanosecond-precise measure (the helper's threads live as long as it does).
func schedRuntime(t *testing.T, pid int) float64 {
	t.Helper()
	paths, err := filepath.Glob("/proc/" + strconv.Itoa(pid) + "/task/*/schedstat")
	if err != nil || len(paths) == 0 {
		t.Fatalf("no schedstat for %d: %v", pid, err)
	}
	var sum float64
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		v, err := strconv.ParseFloat(string(bytes.Fields(b)[0]), 64)
		if err != nil {
			t.Fatal(err)
		}
		sum += v
	}
	return sum
}

// TestCPUAccuracy checks cpu_percent of spinning threads against the kernel's
// own nanosecond run-time accounting over the same interval. The spinners
// share the machine with the rest of the test run, so the reference is what
// they actually got, not a nominal 100 per thread; the SPEC's tolerance is
// 3 points per spinning thread.
func TestCPUAccuracy(t *testing.T) {
	for _, threads := range []int{1, 2} {
		t.Run(strconv.Itoa(threads), func(t *testing.T) {
			cmd := proctest.Helper(t, "spin", threads)
			pid := cmd.Process.Pid
			s := newProcSampler(t)
			if _, err := s.Sample(); err != nil {
				t.Fatal(err)
			}
			before, t0 := schedRuntime(t, pid), time.Now()
			time.Sleep(2 * time.Second)
			w, err := s.Sample()
			if err != nil {
				t.Fatal(err)
			}
			truth := (schedRuntime(t, pid) - before) / float64(time.Since(t0).Nanoseconds()) * 100
			i := w.Find(int32(pid))
			if i < 0 {
				t.Fatal("spinner not in the sample")
			}
			got := w.Procs[i].CPUPercent
			t.Logf("%d threads: cpu_percent %.2f, kernel run time %.2f", threads, got, truth)
			if tol := 3.0 * float64(threads); math.Abs(got-truth) > tol {
				t.Errorf("cpu_percent %.2f, kernel says %.2f (tolerance %.0f)", got, truth, tol)
			}
		})
	}
}

func vmRSS(t *testing.T, pid int) uint64 {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) == 3 && f[0] == "VmRSS:" {
			v, err := strconv.ParseUint(f[1], 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return v * 1024
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

func TestRSSMatchesVmRSS(t *testing.T) {
	cmd := proctest.Helper(t, "hold", 64)
	pid := cmd.Process.Pid
	s := newProcSampler(t)
	// The helper's runtime may still touch a page now and then, so compare
	// only a sample bracketed by two equal VmRSS readings: then the
	// resident size did not change while the sampler read it.
	for try := 0; ; try++ {
		before := vmRSS(t, pid)
		w, err := s.Sample()
		if err != nil {
			t.Fatal(err)
		}
		got := w.Procs[w.Find(int32(pid))].RSS
		if after := vmRSS(t, pid); after != before {
			if try == 50 {
				t.Fatalf("VmRSS never held still: %d then %d", before, after)
			}
			time.Sleep(20 * time.Millisecond)
			continue
		}
		if got != before {
			t.Errorf("RSS %d bytes, VmRSS %d", got, before)
		}
		if got < 64<<20 {
			t.Errorf("RSS %d is below the 64 MiB the helper touched", got)
		}
		return
	}
}

func TestStartedAtMatchesPs(t *testing.T) {
	cmd := proctest.Start(t, exec.Command("sleep", "3600"))
	pid := cmd.Process.Pid
	s := newProcSampler(t)
	w, err := s.Sample()
	if err != nil {
		t.Fatal(err)
	}
	got := w.StartedAt(&w.Procs[w.Find(int32(pid))])
	out, err := exec.Command("ps", "-o", "lstart=", "-p", strconv.Itoa(pid)).Output()
	if err != nil {
		t.Skipf("ps: %v", err)
	}
	want, err := time.ParseInLocation("Mon Jan _2 15:04:05 2006", strings.TrimSpace(string(out)), time.Local)
	if err != nil {
		t.Fatal(err)
	}
	if d := got.Sub(want); d < -time.Second || d > time.Second {
		t.Errorf("started_at %v, ps says %v", got, want)
	}
}

func TestZombieCounted(t *testing.T) {
	// The test is the parent and does not wait, so "true" stays a zombie
	// until the cleanup reaps it.
	cmd := proctest.Start(t, exec.Command("true"))
	pid := int32(cmd.Process.Pid)
	s := newProcSampler(t)
	deadline := time.Now().Add(5 * time.Second)
	for {
		w, err := s.Sample()
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, zi := range w.Zombies {
			if z := &w.Procs[zi]; z.PID == pid {
				found = true
				if int(z.PPID) != os.Getpid() {
					t.Errorf("zombie parent %d, want %d", z.PPID, os.Getpid())
				}
			}
		}
		if found {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("zombie never listed")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestVanishingProcesses samples while processes start and exit as fast as
// they can: every sample succeeds, lists no process twice and nothing that
// exits is reported as an error.
func TestVanishingProcesses(t *testing.T) {
	s := newProcSampler(t)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			_ = exec.Command("true").Run()
		}
	}()
	for range 100 {
		w, err := s.Sample()
		if err != nil {
			t.Fatal(err)
		}
		for i := 1; i < len(w.Procs); i++ {
			if w.Procs[i-1].PID >= w.Procs[i].PID {
				t.Fatal("PID listed twice or out of order")
			}
		}
		if w.Skipped != 0 {
			t.Fatalf("%d processes skipped as errors", w.Skipped)
		}
	}
	close(stop)
	<-done
}
