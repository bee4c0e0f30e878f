package sampler

import (
	"os"
	"strconv"
	"testing"

	"github.com/procwatch/procwatch/sampler/proctest"
	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"
)

// BenchmarkSample measures one full sample of the real /proc, per process,
// beside two readers that do less work (no parsing, no statm, no ranking):
//
//   - open-read-close: listing /proc and openat/read/close of every
//     /proc/<pid>/stat through raw syscalls with reused buffers, the floor
//     any reader that reopens files cannot go below;
//   - os-open-read-close: the same through os.Open, Read and Close, as a Go
//     program plainly written does it (the os package adds fcntl and epoll
//     registration calls per file).
//
// extra=N spawns N idle processes first and kills them (by PID) afterwards.
func BenchmarkSample(b *testing.B) {
	for _, extra := range []int{0, 1000} {
		b.Run("extra="+strconv.Itoa(extra), func(b *testing.B) {
			proctest.Idle(b, extra)
			b.Run("procwatch", func(b *testing.B) {
				s, err := New(Config{}, zerolog.Nop())
				if err != nil {
					b.Fatal(err)
				}
				defer s.Close()
				w, _ := s.Sample() // open the descriptors: the steady state is what runs every interval
				n := len(w.Procs)
				b.ReportAllocs()
				for b.Loop() {
					if w, err = s.Sample(); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/proc")
				b.ReportMetric(float64(n), "procs")
			})
			b.Run("open-read-close", func(b *testing.B) {
				root, err := unix.Open("/proc", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
				if err != nil {
					b.Fatal(err)
				}
				defer unix.Close(root)
				l := newLister(root)
				buf := make([]byte, 4096)
				var n int
				b.ReportAllocs()
				for b.Loop() {
					pids, err := l.list()
					if err != nil {
						b.Fatal(err)
					}
					n = len(pids)
					for _, pid := range pids {
						var path pathBuf
						fd, err := openAt(root, path.pidPath(pid, "stat"))
						if err != nil {
							continue
						}
						_, _ = unix.Read(fd, buf)
						unix.Close(fd)
					}
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/proc")
				b.ReportMetric(float64(n), "procs")
			})
			b.Run("os-open-read-close", func(b *testing.B) {
				root, err := unix.Open("/proc", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
				if err != nil {
					b.Fatal(err)
				}
				defer unix.Close(root)
				l := newLister(root)
				buf := make([]byte, 4096)
				path := make([]byte, 0, 64)
				var n int
				b.ReportAllocs()
				for b.Loop() {
					pids, err := l.list()
					if err != nil {
						b.Fatal(err)
					}
					n = len(pids)
					for _, pid := range pids {
						path = append(strconv.AppendInt(append(path[:0], "/proc/"...), int64(pid), 10), "/stat"...)
						f, err := os.Open(string(path))
						if err != nil {
							continue
						}
						_, _ = f.Read(buf)
						f.Close()
					}
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/proc")
				b.ReportMetric(float64(n), "procs")
			})
		})
	}
}
