package signals

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"
)

// Target is what the guards need to know about a process.
type Target struct {
	Tgid       int
	PPID       int
	Name       string
	State      byte
	StartTicks uint64
	Kthread    bool
	RealUID    uint32
	SavedUID   uint32
}

// Config configures a Killer.
type Config struct {
	// ProcRoot is the procfs whose PIDs requests name; it must show the
	// agent's own PID namespace (pidfd_open takes PIDs of that namespace).
	ProcRoot string
	// Inspect reads a process; an error wrapping fs.ErrNotExist means gone.
	Inspect func(pid int) (Target, error)
	// Grace is how long SIGTERM gets before SIGKILL when a request does not say.
	Grace time.Duration
	// KillWait is how long to wait for exit after SIGKILL.
	KillWait time.Duration
	// Protect names processes (comm) that may never be killed, beside PID 1,
	// the agent itself and kernel threads.
	Protect []string
	// CapKill says whether the agent holds CAP_KILL in its effective set.
	CapKill bool
	// UID and EUID are the agent's real and effective uids (kill(2)'s rule
	// without CAP_KILL). SelfPID is the agent's PID.
	UID, EUID uint32
	SelfPID   int
}

// Request asks for one process to be terminated.
type Request struct {
	PID        int
	Force      bool           // SIGKILL at once
	Grace      *time.Duration // nil: Config.Grace
	StartTicks *uint64        // when set, must match the process's
}

// Result says what was done.
type Result struct {
	Name      string
	OwnerUID  uint32
	Signal    string // the last signal sent: SIGTERM or SIGKILL
	Forced    bool   // SIGKILL was sent
	Escalated bool   // by the fallback, after the grace period
	Elapsed   time.Duration
	State     byte // the state seen last (for a process still alive)
	PPID      int
}

// Errors a request can end in. Callers branch with errors.Is.
var (
	ErrNotFound       = errors.New("no such process")
	ErrStartMismatch  = errors.New("start ticks do not match: the PID was reused")
	ErrZombie         = errors.New("process is a zombie")
	ErrProtected      = errors.New("process is protected")
	ErrPermission     = errors.New("permission denied")
	ErrNoDescriptors  = errors.New("out of file descriptors")
	ErrStillAlive     = errors.New("process still alive after SIGKILL")
	ErrBadGracePeriod = errors.New("grace period out of range 0..60s")
)

// MaxGrace is the longest grace period a request may ask for.
const MaxGrace = 60 * time.Second

// Killer terminates processes. It is safe for concurrent use; concurrent
// requests for one process share one escalation.
type Killer struct {
	cfg       Config
	log       zerolog.Logger
	havePidfd bool
	protect   map[string]bool

	mu       sync.Mutex
	inflight map[inflightKey]*escalation
}

type inflightKey struct {
	pid   int
	start uint64
}

type escalation struct {
	done chan struct{}
	res  Result
	err  error
}

// New probes pidfd support once and returns a Killer.
func New(cfg Config, log zerolog.Logger) *Killer {
	if cfg.ProcRoot == "" {
		cfg.ProcRoot = "/proc"
	}
	if cfg.Grace == 0 {
		cfg.Grace = 5 * time.Second
	}
	if cfg.KillWait == 0 {
		cfg.KillWait = 5 * time.Second
	}
	if cfg.SelfPID == 0 {
		cfg.SelfPID = os.Getpid()
	}
	k := &Killer{cfg: cfg, log: log, protect: map[string]bool{}, inflight: map[inflightKey]*escalation{}}
	for _, n := range cfg.Protect {
		k.protect[n] = true
	}
	fd, err := unix.PidfdOpen(os.Getpid(), 0)
	if err == nil {
		unix.Close(fd)
		k.havePidfd = true
	} else {
		log.Warn().Err(err).Msg("the kernel offers no pidfd: kill falls back to kill(2) after a start-time check")
	}
	return k
}

// UsesPidfd reports whether signals go through pidfds.
func (k *Killer) UsesPidfd() bool { return k.havePidfd }

// Kill terminates one process, or says why not. It returns once the process
// has exited, or once it is clear that it will not.
func (k *Killer) Kill(req Request) (Result, error) {
	grace := k.cfg.Grace
	if req.Grace != nil {
		grace = *req.Grace
	}
	if grace < 0 || grace > MaxGrace {
		return Result{}, ErrBadGracePeriod
	}
	if req.PID <= 0 {
		return Result{}, ErrNotFound // never 0 or negative: kill(-1) signals everything
	}
	var p *proc
	var err error
	if k.havePidfd {
		p, err = k.openPidfd(req.PID)
	} else {
		p, err = k.openPlain(req.PID)
	}
	if err != nil {
		return Result{}, err
	}
	defer p.close()
	res := Result{Name: p.target.Name, OwnerUID: p.target.RealUID, State: p.target.State, PPID: p.target.PPID}
	if err := k.guard(req, p); err != nil {
		return res, err
	}

	key := inflightKey{req.PID, p.target.StartTicks}
	k.mu.Lock()
	if e, ok := k.inflight[key]; ok {
		k.mu.Unlock()
		<-e.done
		return e.res, e.err
	}
	e := &escalation{done: make(chan struct{})}
	k.inflight[key] = e
	k.mu.Unlock()

	e.res, e.err = k.escalate(p, req.Force, grace, res)
	k.mu.Lock()
	delete(k.inflight, key)
	k.mu.Unlock()
	close(e.done)
	return e.res, e.err
}

// guard applies every check that must pass before a signal is sent.
func (k *Killer) guard(req Request, p *proc) error {
	t := &p.target
	if t.Tgid != req.PID {
		return ErrNotFound // a thread ID: the API speaks of processes only
	}
	if req.StartTicks != nil && *req.StartTicks != t.StartTicks {
		return ErrStartMismatch
	}
	if req.PID == 1 || req.PID == k.cfg.SelfPID || t.Kthread || k.protect[t.Name] {
		return ErrProtected
	}
	if t.State == 'Z' || t.State == 'X' {
		// "Exited" is the pidfd's word, not the state letter's: a process
		// whose main thread ended while others run shows Z and is alive.
		if exited, _ := p.exited(0); exited {
			return ErrZombie
		}
	}
	if !k.cfg.CapKill {
		// kill(2): the sender's real or effective uid must equal the
		// target's real or saved uid.
		if k.cfg.UID != t.RealUID && k.cfg.UID != t.SavedUID && k.cfg.EUID != t.RealUID && k.cfg.EUID != t.SavedUID {
			return ErrPermission
		}
	}
	return nil
}

func (k *Killer) escalate(p *proc, force bool, grace time.Duration, res Result) (Result, error) {
	start := time.Now()
	finish := func(err error) (Result, error) {
		res.Elapsed = time.Since(start)
		return res, err
	}
	if !force {
		res.Signal = "SIGTERM"
		if err := p.signal(unix.SIGTERM); err != nil {
			return finish(err)
		}
		// A stopped process cannot act on SIGTERM until it runs again.
		_ = p.signal(unix.SIGCONT)
		exited, err := p.exited(grace)
		if err != nil {
			return finish(err)
		}
		if exited {
			return finish(nil)
		}
		res.Escalated = true
	}
	res.Signal, res.Forced = "SIGKILL", true
	if err := p.signal(unix.SIGKILL); err != nil {
		return finish(err)
	}
	exited, err := p.exited(k.cfg.KillWait)
	if err != nil {
		return finish(err)
	}
	if !exited {
		if t, err := k.cfg.Inspect(p.pid); err == nil {
			res.State = t.State
		}
		return finish(ErrStillAlive)
	}
	return finish(nil)
}

// proc is an opened target: a pidfd, or (without pidfds) the PID and the
// start ticks that identify it.
type proc struct {
	k      *Killer
	pid    int
	pidfd  int // -1 without pidfds
	target Target
}

func (k *Killer) inspect(pid int) (Target, error) {
	t, err := k.cfg.Inspect(pid)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ESRCH) {
		return t, ErrNotFound
	}
	if errors.Is(err, fs.ErrPermission) {
		return t, ErrPermission
	}
	return t, err
}

func (k *Killer) openPidfd(pid int) (*proc, error) {
	fd, err := unix.PidfdOpen(pid, 0)
	switch {
	case errors.Is(err, unix.ESRCH), errors.Is(err, unix.EINVAL), errors.Is(err, unix.ENOENT):
		// EINVAL (before Linux 6.9) or ENOENT: pid is a thread, not a
		// thread-group leader.
		return nil, ErrNotFound
	case errors.Is(err, unix.EMFILE), errors.Is(err, unix.ENFILE):
		return nil, ErrNoDescriptors
	case err != nil:
		return nil, fmt.Errorf("pidfd_open: %w", err)
	}
	p := &proc{k: k, pid: pid, pidfd: fd}
	if p.target, err = k.inspect(pid); err != nil {
		p.close()
		return nil, err
	}
	// The stat just read belongs to the pidfd's process only if the pidfd
	// still refers to this PID: fdinfo says -1 once the process is gone.
	if got, err := k.pidfdPID(fd); err != nil || got != pid {
		p.close()
		if err != nil && !errors.Is(err, ErrNotFound) {
			return nil, err
		}
		return nil, ErrNotFound
	}
	return p, nil
}

// pidfdPID reads the Pid: line of the pidfd's fdinfo, through the configured
// procfs so that the PID is of the same namespace as requests'.
func (k *Killer) pidfdPID(fd int) (int, error) {
	b, err := os.ReadFile(filepath.Join(k.cfg.ProcRoot, "self", "fdinfo", strconv.Itoa(fd)))
	if err != nil {
		return 0, fmt.Errorf("read pidfd fdinfo: %w", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Pid:"); ok {
			return strconv.Atoi(strings.TrimSpace(v))
		}
	}
	return 0, errors.New("pidfd fdinfo has no Pid line")
}

func (k *Killer) openPlain(pid int) (*proc, error) {
	t, err := k.inspect(pid)
	if err != nil {
		return nil, err
	}
	return &proc{k: k, pid: pid, pidfd: -1, target: t}, nil
}

func (p *proc) close() {
	if p.pidfd >= 0 {
		unix.Close(p.pidfd)
	}
}

func (p *proc) signal(sig unix.Signal) error {
	var err error
	if p.pidfd >= 0 {
		err = unix.PidfdSendSignal(p.pidfd, sig, nil, 0)
	} else {
		// No pidfd: make sure the PID still names the same process.
		t, ierr := p.k.inspect(p.pid)
		if ierr != nil {
			return ierr
		}
		if t.StartTicks != p.target.StartTicks {
			return ErrNotFound
		}
		err = unix.Kill(p.pid, sig)
	}
	switch {
	case err == nil:
		return nil
	case errors.Is(err, unix.ESRCH):
		return ErrNotFound
	case errors.Is(err, unix.EPERM):
		return ErrPermission
	}
	return fmt.Errorf("signal %v: %w", sig, err)
}

// exited waits up to d for the process to exit.
func (p *proc) exited(d time.Duration) (bool, error) {
	deadline := time.Now().Add(d)
	if p.pidfd < 0 {
		for {
			t, err := p.k.inspect(p.pid)
			if errors.Is(err, ErrNotFound) || (err == nil && (t.StartTicks != p.target.StartTicks || t.State == 'Z' || t.State == 'X')) {
				return true, nil
			}
			if time.Now().After(deadline) {
				return false, nil
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	for {
		fds := []unix.PollFd{{Fd: int32(p.pidfd), Events: unix.POLLIN}}
		ms := int(time.Until(deadline).Milliseconds())
		n, err := unix.Poll(fds, max(ms, 0))
		if errors.Is(err, unix.EINTR) {
			continue // retry with the time left
		}
		if err != nil {
			return false, fmt.Errorf("poll pidfd: %w", err)
		}
		if n > 0 {
			return true, nil
		}
		if ms <= 0 {
			return false, nil
		}
	}
}
