package bench

import (
	"os"
	"os/user"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/procwatch/procwatch/sampler"
	"github.com/procwatch/procwatch/sampler/proctest"
	"github.com/prometheus/procfs"
	"github.com/rs/zerolog"
	"github.com/shirou/gopsutil/v4/process"
	"golang.org/x/sys/unix"
)

func TestMain(m *testing.M) {
	proctest.RunHelperIfAsked()
	os.Exit(m.Run())
}

// row is what every implementation must produce for each process.
type row struct {
	pid, ppid, threads int
	state              string
	ticks, rss, start  float64
	uid                uint32
}

const topN = 10

// topOf returns the indices of the topN rows by key, as a sort would pick them.
func topOf(rows []row, key func(*row) float64) []int {
	idx := make([]int, len(rows))
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(a, b int) int {
		ka, kb := key(&rows[a]), key(&rows[b])
		switch {
		case ka > kb:
			return -1
		case ka < kb:
			return 1
		}
		return rows[a].pid - rows[b].pid
	})
	return idx[:min(topN, len(idx))]
}

func lookupUser(uid uint32) string {
	u, err := user.LookupId(strconv.FormatUint(uint64(uid), 10))
	if err != nil {
		return strconv.FormatUint(uint64(uid), 10)
	}
	return u.Username
}

func perProc(b *testing.B, procs int) {
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*max(procs, 1)), "ns/proc")
	b.ReportMetric(float64(procs), "procs")
}

// sampleProcfs is prometheus/procfs used the natural way.
func sampleProcfs(b *testing.B, fs procfs.FS) int {
	all, err := fs.AllProcs()
	if err != nil {
		b.Fatal(err)
	}
	rows := make([]row, 0, len(all))
	for _, p := range all {
		st, err := p.Stat()
		if err != nil {
			continue
		}
		status, err := p.NewStatus()
		if err != nil {
			continue
		}
		rows = append(rows, row{pid: p.PID, ppid: st.PPID, threads: st.NumThreads, state: st.State,
			ticks: float64(st.UTime + st.STime), rss: float64(st.ResidentMemory()), start: float64(st.Starttime), uid: uint32(status.UIDs[0])})
	}
	for _, top := range [][]int{topOf(rows, func(r *row) float64 { return r.ticks }), topOf(rows, func(r *row) float64 { return r.rss })} {
		for _, i := range top {
			p, err := fs.Proc(rows[i].pid)
			if err != nil {
				continue
			}
			_, _ = p.CmdLine()
			_ = lookupUser(rows[i].uid)
		}
	}
	return len(rows)
}

// sampleGopsutil is gopsutil v4 used the natural way.
func sampleGopsutil(b *testing.B) int {
	all, err := process.Processes()
	if err != nil {
		b.Fatal(err)
	}
	rows := make([]row, 0, len(all))
	live := make([]*process.Process, 0, len(all))
	for _, p := range all {
		times, err := p.Times()
		if err != nil {
			continue
		}
		mem, err := p.MemoryInfo()
		if err != nil {
			continue
		}
		_, _ = p.Name()
		status, _ := p.Status()
		ppid, _ := p.Ppid()
		threads, _ := p.NumThreads()
		created, _ := p.CreateTime()
		uids, _ := p.Uids()
		r := row{pid: int(p.Pid), ppid: int(ppid), threads: int(threads), state: strings.Join(status, ","),
			ticks: times.User + times.System, rss: float64(mem.RSS), start: float64(created)}
		if len(uids) > 0 {
			r.uid = uids[0]
		}
		rows = append(rows, r)
		live = append(live, p)
	}
	for _, top := range [][]int{topOf(rows, func(r *row) float64 { return r.ticks }), topOf(rows, func(r *row) float64 { return r.rss })} {
		for _, i := range top {
			_, _ = live[i].Username()
			_, _ = live[i].Cmdline()
		}
	}
	return len(rows)
}

// BenchmarkFullSample runs the job four ways at the machine's own process
// count and with 1,000 and 5,000 extra idle processes (killed by PID after).
func BenchmarkFullSample(b *testing.B) {
	spawned := 0
	for _, extra := range []int{0, 1000, 5000} {
		proctest.Idle(b, extra-spawned)
		spawned = extra
		b.Run("extra="+strconv.Itoa(extra), func(b *testing.B) {
			b.Run("procwatch", func(b *testing.B) {
				s, err := sampler.New(sampler.Config{TopN: topN}, zerolog.Nop())
				if err != nil {
					b.Fatal(err)
				}
				defer s.Close()
				w, _ := s.Sample() // steady state: descriptors open, top entries known
				b.ReportAllocs()
				for b.Loop() {
					if w, err = s.Sample(); err != nil {
						b.Fatal(err)
					}
				}
				perProc(b, len(w.Procs))
			})
			b.Run("procfs", func(b *testing.B) {
				fs, err := procfs.NewFS("/proc")
				if err != nil {
					b.Fatal(err)
				}
				n := 0
				b.ReportAllocs()
				for b.Loop() {
					n = sampleProcfs(b, fs)
				}
				perProc(b, n)
			})
			b.Run("gopsutil", func(b *testing.B) {
				n := 0
				b.ReportAllocs()
				for b.Loop() {
					n = sampleGopsutil(b)
				}
				perProc(b, n)
			})
			b.Run("floor-open-read-close", func(b *testing.B) {
				n := 0
				buf := make([]byte, 4096)
				path := make([]byte, 0, 64)
				b.ReportAllocs()
				for b.Loop() {
					n = 0
					for _, pid := range listPIDs(b) {
						path = append(strconv.AppendInt(append(path[:0], "/proc/"...), int64(pid), 10), "/stat\x00"...)
						fd, err := unix.Open(string(path[:len(path)-1]), unix.O_RDONLY|unix.O_CLOEXEC, 0)
						if err != nil {
							continue
						}
						_, _ = unix.Read(fd, buf)
						unix.Close(fd)
						n++
					}
				}
				perProc(b, n)
			})
		})
	}
}

var pidBuf []int

// listPIDs lists /proc with a reused slice (the floor's listing).
func listPIDs(b *testing.B) []int {
	d, err := os.Open("/proc")
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		b.Fatal(err)
	}
	pidBuf = pidBuf[:0]
	for _, n := range names {
		if pid, err := strconv.Atoi(n); err == nil {
			pidBuf = append(pidBuf, pid)
		}
	}
	return pidBuf
}
