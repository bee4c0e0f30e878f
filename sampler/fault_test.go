package sampler

import (
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/procwatch/procwatch/sampler/proctest"
	"github.com/rs/zerolog"
)

func init() {
	// Run by proctest.Call in a process whose descriptors are capped at arg:
	// sample /proc twice and report how many processes each sample read.
	proctest.Handle("lowfd-sample", func(arg string) string {
		limit, _ := strconv.ParseUint(arg, 10, 64)
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: limit, Max: limit}); err != nil {
			return "setrlimit: " + err.Error()
		}
		s, err := New(Config{MaxHeldFiles: 1 << 20}, zerolog.Nop()) // more than the limit allows
		if err != nil {
			return "new: " + err.Error()
		}
		first, err := s.Sample()
		if err != nil {
			return "sample: " + err.Error()
		}
		n1 := len(first.Procs)
		second, err := s.Sample()
		if err != nil {
			return "sample: " + err.Error()
		}
		return fmt.Sprintf("%d %d %d", n1, len(second.Procs), s.held)
	})
}

// TestVanishingAtEveryRead removes processes, or single files of them,
// between listing and reading: each is skipped quietly.
func TestVanishingAtEveryRead(t *testing.T) {
	root := copyTree(t, "../testdata/proc")
	// Fixture files are regular files: a held descriptor would keep reading
	// an unlinked one (unlike a proc file, which answers ESRCH), so this
	// sampler holds at most one and opens the rest after the hook has run.
	s := newTestSampler(t, root, Config{Clock: newFixtureClock(), MaxHeldFiles: 1})
	s.afterList = func() {
		for path, what := range map[string]string{
			"201":         "dir",  // the whole process: stat and statm held, re-read fails
			"202/statm":   "file", // exits between the stat and statm reads
			"17/stat":     "file",
			"100/status":  "file", // the uid re-read (every 64th sample) fails: NoUID, still listed
			"5000/nosuch": "none", // listed but never existed
		} {
			switch what {
			case "dir":
				os.RemoveAll(filepath.Join(root, path))
			case "file":
				os.Remove(filepath.Join(root, path))
			}
		}
	}
	w, err := s.Sample()
	if err != nil {
		t.Fatal(err)
	}
	for _, gone := range []int32{201, 202, 17} {
		if w.Find(gone) >= 0 {
			t.Errorf("PID %d vanished but is listed", gone)
		}
	}
	if w.Find(100) < 0 || w.Find(200) < 0 {
		t.Error("processes that did not vanish are missing")
	}
	if w.Skipped != 0 {
		t.Errorf("%d vanished processes counted as errors", w.Skipped)
	}
}

// TestWallClockJump: the monotonic boot clock drives cpu_percent; timestamps
// follow the wall clock wherever it jumps.
func TestWallClockJump(t *testing.T) {
	root := copyTree(t, "../testdata/proc")
	clock := newFixtureClock()
	s := newTestSampler(t, root, Config{Clock: clock})
	if _, err := s.Sample(); err != nil {
		t.Fatal(err)
	}
	writeStat(t, root, 200, "python3", "R", 1, 500000+300, 3000, 131200)
	clock.boot += 3 * time.Second
	clock.wall = clock.wall.Add(-time.Hour) // NTP stepped the clock back
	w, err := s.Sample()
	if err != nil {
		t.Fatal(err)
	}
	if got := w.Procs[w.Find(200)].CPUPercent; math.Abs(got-100) > 1e-9 {
		t.Errorf("cpu %v after a wall-clock jump, want 100 (300 ticks over 3 s)", got)
	}
	if !w.Time.Equal(clock.wall) || w.Interval != 3*time.Second {
		t.Errorf("time %v interval %v", w.Time, w.Interval)
	}
}

// TestDescriptorExhaustion samples /proc in a process allowed few
// descriptors, with more processes than it could hold: the sampler sheds
// what it holds and reads the rest with open/read/close.
func TestDescriptorExhaustion(t *testing.T) {
	proctest.Idle(t, 300) // 600 descriptors to hold them all, with a limit of 128
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	got := proctest.Call(t, cmd, "lowfd-sample", "128")
	var first, second, held int
	if _, err := fmt.Sscanf(got, "%d %d %d", &first, &second, &held); err != nil {
		t.Fatalf("helper: %q", got)
	}
	if first < 300 || second < 300 {
		t.Errorf("read %d then %d processes under a limit of 128 descriptors, want every one (over 300)", first, second)
	}
	if held >= 128 {
		t.Errorf("still holding %d descriptors", held)
	}
}
