package sampler

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"
)

// ClockTicks is USER_HZ, the unit of the times in /proc/<pid>/stat. It is 100
// on every architecture Linux supports for userspace ABI purposes (procfs and
// ps assume the same).
const ClockTicks = 100

// Config configures a Sampler. The zero value samples /proc with the defaults.
type Config struct {
	// ProcRoot is the procfs to read; tests point it at a fixture tree.
	ProcRoot string
	// TopN is how many processes each top list keeps (the most an API
	// request may ask for). Default 100.
	TopN int
	// MaxHeldFiles caps the descriptors (on stat and statm) kept open
	// between samples; processes beyond it are read with open/read/close. 0
	// derives the cap from RLIMIT_NOFILE, leaving room for the rest of the
	// agent.
	MaxHeldFiles int
	// Users resolves uids to names; nil uses the system user database.
	Users UserLookup
	// Clock tells the time; nil uses the system clocks.
	Clock Clock
}

// Clock gives the wall time (for timestamps) and the time since boot on the
// monotonic CLOCK_BOOTTIME (for intervals and process ages: the kernel counts
// start ticks on the same clock).
type Clock interface {
	Now() (wall time.Time, sinceBoot time.Duration)
}

// UserLookup maps a uid to a user name; it returns the number as a decimal
// string where no name exists.
type UserLookup interface {
	Username(uid uint32) string
}

// Proc is one process in a sample. It holds no pointers, so a sample's array
// of thousands of them costs the garbage collector nothing to scan.
type Proc struct {
	PID        int32
	PPID       int32
	Threads    int32
	Nice       int8
	State      byte // the stat state letter: R S D T t Z X I P W K
	Kthread    bool
	commLen    uint8
	StartTicks uint64  // clock ticks since boot: with PID, the process's identity
	Ticks      uint64  // user+system CPU time, clock ticks
	DeltaTicks uint64  // CPU ticks since the previous sample (all of them for a process new to this one)
	UID        uint32  // real uid, or NoUID where status could not be read
	RSS        uint64  // resident set size, bytes
	CPUPercent float64 // over the last interval (or the process's life if newer); 100 = one core
	fd         int32   // held stat descriptor, or -1
	statmFD    int32   // held statm descriptor, or -1
	comm       [CommCap]byte
}

// Comm returns the kernel's comm for p. The slice aliases p.
func (p *Proc) Comm() []byte { return p.comm[:p.commLen] }

// Name returns comm as a string (it allocates; use Comm on hot paths).
func (p *Proc) Name() string { return string(p.Comm()) }

// Ranked is an entry of a top list: the index of the process in Sample.Procs
// and its cold data.
type Ranked struct {
	Index    int32
	UID      uint32 // real uid, or NoUID where it could not be read
	Username string
	Cmdline  string // argv joined by spaces, at most CmdlineMax bytes
}

// NoUID marks a uid that could not be read.
const NoUID = ^uint32(0)

// Sample is one consistent picture of every visible process.
type Sample struct {
	mu sync.RWMutex

	Seq       uint64        // 1 for the first sample
	Time      time.Time     // wall clock when the sample started
	SinceBoot time.Duration // CLOCK_BOOTTIME when the sample started
	Interval  time.Duration // since the previous sample; 0 for the first
	Duration  time.Duration // how long taking the sample took
	BootTime  time.Time     // btime: wall clock time of boot
	MemTotal  uint64        // bytes
	Procs     []Proc        // ascending PID
	Threads   int           // sum of Procs[i].Threads
	TopCPU    []Ranked      // by CPUPercent descending, ties by PID
	TopRAM    []Ranked      // by RSS descending, ties by PID
	Zombies   []int32       // indices into Procs of processes in state Z
	Skipped   int           // processes listed but unreadable for another reason than exiting
}

// Find returns the index of pid in s.Procs, or -1.
func (s *Sample) Find(pid int32) int {
	lo, hi := 0, len(s.Procs)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if s.Procs[m].PID < pid {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo < len(s.Procs) && s.Procs[lo].PID == pid {
		return lo
	}
	return -1
}

// StartedAt returns the wall time at which p started: boot time plus its
// start ticks.
func (s *Sample) StartedAt(p *Proc) time.Time { return StartedAt(s.BootTime, p.StartTicks) }

// StartedAt returns the wall time of start ticks, given the boot time.
func StartedAt(bootTime time.Time, startTicks uint64) time.Time {
	return bootTime.Add(ticksDuration(startTicks))
}

// LifetimeCPUPercent is the CPU percent of a process measured over its life
// so far: its ticks over the time since it started (at least one tick, so a
// process born this instant is not divided by zero).
func LifetimeCPUPercent(ticks, startTicks uint64, sinceBoot time.Duration) float64 {
	life := sinceBoot - ticksDuration(startTicks)
	return ticksPercent(ticks, max(life, time.Second/ClockTicks))
}

func ticksDuration(ticks uint64) time.Duration {
	return time.Duration(ticks) * (time.Second / ClockTicks)
}

// MemoryPercent returns p's RSS as a percentage of MemTotal.
func (s *Sample) MemoryPercent(p *Proc) float64 {
	if s.MemTotal == 0 {
		return 0
	}
	return float64(p.RSS) * 100 / float64(s.MemTotal)
}

// Sampler takes samples. Sample must be called from one goroutine at a time;
// Latest may be called from any goroutine.
type Sampler struct {
	cfg      Config
	log      zerolog.Logger
	rootFD   int
	memFD    int
	bootTime time.Time
	pageSize uint64

	list       *lister
	bufs       [2]*Sample
	next       int
	published  atomic.Pointer[Sample]
	seq        uint64
	held       int
	stat       Stat
	readBuf    []byte
	statmBuf   []byte
	cold       coldCache
	topCPU     topHeap
	topRAM     topHeap
	lastWarn   time.Time
	unlogged   int // read errors since the last warning
	shedWarned bool
	heldGauge  atomic.Int64 // held, as of the latest sample, for other goroutines

	// afterList, when set (by tests), runs between listing /proc and reading
	// the processes: where a process that exits is most likely to vanish.
	afterList func()
}

var errBadConfig = errors.New("sampler: bad config")

// New opens the proc root and prepares the buffers.
func New(cfg Config, log zerolog.Logger) (*Sampler, error) {
	if cfg.ProcRoot == "" {
		cfg.ProcRoot = "/proc"
	}
	if cfg.TopN == 0 {
		cfg.TopN = 100
	}
	if cfg.TopN < 1 || cfg.MaxHeldFiles < 0 {
		return nil, fmt.Errorf("%w: TopN %d, MaxHeldFiles %d", errBadConfig, cfg.TopN, cfg.MaxHeldFiles)
	}
	if cfg.MaxHeldFiles == 0 {
		cfg.MaxHeldFiles = defaultHeldFiles()
	}
	if cfg.Users == nil {
		cfg.Users = NewUserCache(nil)
	}
	if cfg.Clock == nil {
		cfg.Clock = SystemClock{}
	}
	rootFD, err := unix.Open(cfg.ProcRoot, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("sampler: open proc root %s: %w", cfg.ProcRoot, err)
	}
	s := &Sampler{
		cfg:      cfg,
		log:      log,
		rootFD:   rootFD,
		pageSize: uint64(os.Getpagesize()),
		list:     newLister(rootFD),
		bufs:     [2]*Sample{{}, {}},
		readBuf:  make([]byte, 8192),
		statmBuf: make([]byte, 512),
		cold:     newColdCache(cfg.Users),
		topCPU:   topHeap{idx: make([]int32, 0, cfg.TopN)},
		topRAM:   topHeap{idx: make([]int32, 0, cfg.TopN)},
	}
	statFile, err := os.ReadFile(filepath.Join(cfg.ProcRoot, "stat"))
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("sampler: %w", err)
	}
	btime, err := parseBtime(statFile)
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("sampler: %s/stat: %w", cfg.ProcRoot, err)
	}
	s.bootTime = time.Unix(int64(btime), 0).UTC()
	if s.memFD, err = unix.Openat(rootFD, "meminfo", unix.O_RDONLY|unix.O_CLOEXEC, 0); err != nil {
		s.Close()
		return nil, fmt.Errorf("sampler: open meminfo: %w", err)
	}
	return s, nil
}

// defaultHeldFiles leaves 1024 descriptors of the soft RLIMIT_NOFILE (which
// the Go runtime raises to the hard limit at start) for everything else.
func defaultHeldFiles() int {
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err != nil || rl.Cur < 2048 {
		return 0
	}
	return int(min(rl.Cur-1024, 1<<20))
}

// Close releases every descriptor the sampler holds. Samples already taken
// stay readable.
func (s *Sampler) Close() {
	// Descriptors move from the previous buffer to the new one each sample
	// (the previous copy is left stale, never written: readers may be on it),
	// so the live ones are those of the latest published sample.
	if p := s.published.Load(); p != nil {
		for i := range p.Procs {
			for _, fd := range [2]int32{p.Procs[i].fd, p.Procs[i].statmFD} {
				if fd >= 0 {
					unix.Close(int(fd))
				}
			}
		}
	}
	if s.memFD > 0 {
		unix.Close(s.memFD)
	}
	unix.Close(s.rootFD)
}

// Latest calls fn with the latest complete sample and reports whether there
// was one. fn must not keep the sample or anything in it: the buffer is reused
// by a later sample once fn returns.
func (s *Sampler) Latest(fn func(*Sample)) bool {
	p := s.published.Load()
	if p == nil {
		return false
	}
	// The sampler may have started rewriting this buffer since it was loaded;
	// the read lock then waits until that newer sample is complete, so fn
	// always sees one whole sample.
	p.mu.RLock()
	defer p.mu.RUnlock()
	fn(p)
	return true
}

// Sample reads every process and publishes the result; it returns the new
// sample, which stays valid until the next-but-one call.
func (s *Sampler) Sample() (*Sample, error) {
	start := time.Now()
	// List first: if that fails, the buffer is left untouched for a reader
	// still holding it from the sample before last.
	pids, err := s.list.list()
	if err != nil {
		return nil, fmt.Errorf("sampler: list %s: %w", s.cfg.ProcRoot, err)
	}
	if s.afterList != nil {
		s.afterList()
	}
	w := s.bufs[s.next]
	prev := s.published.Load()
	w.mu.Lock()
	defer w.mu.Unlock()

	wall, sinceBoot := s.cfg.Clock.Now()
	s.seq++
	w.Seq = s.seq
	w.Time = wall
	w.SinceBoot = sinceBoot
	w.BootTime = s.bootTime
	w.Interval = 0
	if prev != nil {
		w.Interval = sinceBoot - prev.SinceBoot
	}
	if b, err := preadFull(s.memFD, s.readBuf); err == nil {
		if mt, err := parseMemTotal(b); err == nil {
			w.MemTotal = mt
		}
	}

	var prevProcs []Proc
	if prev != nil {
		prevProcs = prev.Procs
	}
	w.Procs = w.Procs[:0]
	w.Threads, w.Skipped = 0, 0
	j := 0
	for _, pid := range pids {
		for j < len(prevProcs) && prevProcs[j].PID < pid {
			s.release(&prevProcs[j]) // gone since the last sample
			j++
		}
		var old *Proc
		if j < len(prevProcs) && prevProcs[j].PID == pid {
			old = &prevProcs[j]
			j++
		}
		s.readProc(w, pid, old)
	}
	for ; j < len(prevProcs); j++ {
		s.release(&prevProcs[j])
	}

	s.rank(w)
	s.cold.fill(s, w)
	w.Duration = time.Since(start)
	s.heldGauge.Store(int64(s.held))
	s.published.Store(w)
	s.next ^= 1
	return w, nil
}

// shed halves the hold budget and closes descriptors held by the processes
// already read in this sample (the sampler owns that buffer) until the count
// is within it, so the open/read/close fallback has room to work.
func (s *Sampler) shed() {
	s.cfg.MaxHeldFiles = s.held / 2
	if !s.shedWarned {
		s.shedWarned = true
		s.log.Warn().Int("held", s.held).Int("budget", s.cfg.MaxHeldFiles).Msg("out of file descriptors: holding fewer, reading the rest with open/read/close")
	}
	procs := s.bufs[s.next].Procs
	for i := len(procs) - 1; i >= 0 && s.held > s.cfg.MaxHeldFiles; i-- {
		p := &procs[i]
		s.closeFD(p.fd)
		s.closeFD(p.statmFD)
		p.fd, p.statmFD = -1, -1
	}
}

// release closes the descriptors a vanished process held. p is in the
// previous sample, which readers may be looking at, so it is not written.
func (s *Sampler) release(p *Proc) {
	s.closeFD(p.fd)
	s.closeFD(p.statmFD)
}

// readProc reads one process's stat and statm, reusing the descriptors old
// held, and appends it to w. A process that exited meanwhile is skipped
// quietly.
func (s *Sampler) readProc(w *Sample, pid int32, old *Proc) {
	statFD, statmFD := int32(-1), int32(-1)
	if old != nil {
		// The descriptors move to the new record, or are closed below. old
		// itself is left as it is: readers may be looking at it.
		statFD, statmFD = old.fd, old.statmFD
	}
	b, reopened, err := s.reread(&statFD, pid, "stat", s.readBuf)
	if reopened {
		old = nil // the old descriptor's process is gone: a reused PID
	}
	if err == nil {
		err = s.stat.Decode(b)
		if err == nil && s.stat.PID != pid {
			err = ErrStatNumber
		}
	}
	var rss uint64
	if err == nil && (s.stat.Kthread() || s.stat.State == 'Z') {
		// No address space (a kernel thread, or a zombie leader whose mm is
		// gone): statm would read all zeros, so it is neither read nor held.
		s.closeFD(statmFD)
		statmFD = -1
	} else if err == nil {
		// RSS comes from statm, not stat: statm and status sum the per-CPU
		// RSS counters exactly while stat reads them approximately (off by
		// up to the counter batch, at least 32 pages, per CPU). On this
		// project's 6.18 kernel stat differed from VmRSS by 34–52 pages.
		if b, _, err = s.reread(&statmFD, pid, "statm", s.statmBuf); err == nil {
			rss, err = parseStatmResident(b)
		}
	}
	if err != nil {
		s.closeFD(statFD)
		s.closeFD(statmFD)
		s.skip(err)
		return
	}

	w.Procs = append(w.Procs, Proc{})
	p := &w.Procs[len(w.Procs)-1]
	st := &s.stat
	p.PID, p.PPID, p.Threads = pid, st.PPID, st.Threads
	p.Nice = int8(max(-128, min(127, st.Nice)))
	p.State, p.Kthread = st.State, st.Kthread()
	p.commLen = uint8(copy(p.comm[:], st.Comm))
	p.StartTicks = st.StartTicks
	p.Ticks = st.UTime + st.STime
	p.RSS = rss * s.pageSize
	p.fd, p.statmFD = statFD, statmFD
	w.Threads += int(p.Threads)

	// The real uid is read from status when a process is first seen and
	// carried over after that (status costs some 5 µs, more than the rest
	// of the process together); 1/uidRefresh of the processes re-read it each
	// sample, so a process that changes uid later shows it within uidRefresh
	// samples. fstat of the stat descriptor would be cheaper but gives the
	// effective uid, and root for non-dumpable processes.
	same := old != nil && old.StartTicks == p.StartTicks
	if same && (uint64(pid)+w.Seq)%uidRefresh != 0 {
		p.UID = old.UID
	} else {
		p.UID = s.readUID(pid)
	}

	sinceLast := same && p.Ticks >= old.Ticks // ticks never go back for one incarnation
	p.DeltaTicks = p.Ticks
	if sinceLast {
		p.DeltaTicks = p.Ticks - old.Ticks
	}
	if sinceLast && w.Interval > 0 {
		p.CPUPercent = ticksPercent(p.DeltaTicks, w.Interval)
	} else {
		// Born since the last sample (or a reused PID, or the first
		// sample): measure over its life so far rather than report 0.
		p.CPUPercent = LifetimeCPUPercent(p.Ticks, p.StartTicks, w.SinceBoot)
	}
}

// reread returns the contents of pid's file name. It re-reads the descriptor
// in *fd when there is one; when there is none, or it belonged to a process
// that has exited (the PID was reused), it opens the file afresh and keeps the
// descriptor in *fd if the budget allows. reopened reports the second case.
func (s *Sampler) reread(fd *int32, pid int32, name string, buf []byte) (b []byte, reopened bool, err error) {
	if *fd >= 0 {
		if b, err = preadFull(int(*fd), buf); err == nil {
			if s.held > s.cfg.MaxHeldFiles {
				s.closeFD(*fd) // over budget since descriptors ran short: shed
				*fd = -1
			}
			b, err = whole(b, buf)
			return b, false, err
		}
		s.closeFD(*fd)
		*fd = -1
		if !errors.Is(err, unix.ESRCH) {
			return nil, false, err
		}
		reopened = true
	}
	var path pathBuf
	nfd, err := openAt(s.rootFD, path.pidPath(pid, name))
	if errors.Is(err, unix.EMFILE) || errors.Is(err, unix.ENFILE) {
		// Out of descriptors: hold half as many from now on, give back
		// those this sample took beyond that, and try once more.
		s.shed()
		nfd, err = openAt(s.rootFD, path.pidPath(pid, name))
	}
	if err != nil {
		return nil, reopened, err
	}
	b, err = preadFull(nfd, buf)
	if err == nil && s.held < s.cfg.MaxHeldFiles {
		*fd = int32(nfd)
		s.held++
	} else {
		unix.Close(nfd)
	}
	if err != nil {
		return nil, reopened, err
	}
	b, err = whole(b, buf)
	return b, reopened, err
}

// whole rejects a read that filled the whole buffer: the file was longer than
// any well-formed one.
func whole(b, buf []byte) ([]byte, error) {
	if len(b) == len(buf) {
		return nil, ErrStatTruncated
	}
	return b, nil
}

// uidRefresh is how many samples a carried-over uid may age.
const uidRefresh = 64

// readUID reads the real uid from /proc/<pid>/status without allocating.
func (s *Sampler) readUID(pid int32) uint32 {
	var path pathBuf
	fd, err := openAt(s.rootFD, path.pidPath(pid, "status"))
	if err != nil {
		return NoUID
	}
	defer unix.Close(fd)
	b, err := preadFull(fd, s.readBuf)
	if err != nil {
		return NoUID
	}
	uid, ok := parseStatusUID(b)
	if !ok {
		return NoUID
	}
	return uid
}

func ticksPercent(ticks uint64, over time.Duration) float64 {
	return float64(ticks) / ClockTicks / over.Seconds() * 100
}

func (s *Sampler) closeFD(fd int32) {
	if fd >= 0 {
		unix.Close(int(fd))
		s.held--
	}
}

// skip accounts for a process that could not be read. Exiting between the
// listing and the read is normal and silent; anything else is counted and
// logged at most once a minute.
func (s *Sampler) skip(err error) {
	if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ESRCH) {
		return
	}
	w := s.bufs[s.next]
	w.Skipped++
	s.unlogged++
	if now := time.Now(); now.Sub(s.lastWarn) >= time.Minute {
		// A broken host fails the same way every sample: one line a
		// minute, with how many failures it stands for.
		s.log.Warn().Err(err).Int("errors", s.unlogged).Msg("cannot read some processes; logged at most once a minute")
		s.lastWarn, s.unlogged = now, 0
	}
}

// SystemClock reads the real clocks.
type SystemClock struct{}

// Now returns the wall time and CLOCK_BOOTTIME.
func (SystemClock) Now() (time.Time, time.Duration) {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts)
	return time.Now(), time.Duration(ts.Nano())
}

// HeldFiles returns how many /proc descriptors the sampler keeps open
// between samples. Only the sampling goroutine changes it; others read a
// value at most one sample old.
func (s *Sampler) HeldFiles() int { return int(s.heldGauge.Load()) }

// BootTime returns the boot time (btime) the sampler read at start.
func (s *Sampler) BootTime() time.Time { return s.bootTime }

// Now reads the sampler's clock.
func (s *Sampler) Now() (time.Time, time.Duration) { return s.cfg.Clock.Now() }

// Users returns the sampler's uid-to-name lookup.
func (s *Sampler) Users() UserLookup { return s.cfg.Users }
