package sampler

import "errors"

// CommCap is the largest comm this package keeps. The kernel's TASK_COMM_LEN is
// 16, but kernel threads and workqueue workers report longer names in stat
// ("kworker/0:1-events_power_efficient"), up to 64 bytes since Linux 6.13.
const CommCap = 64

// pfKthread is PF_KTHREAD from include/linux/sched.h: the task is a kernel thread.
const pfKthread = 0x00200000

// Errors returned by Stat.Decode. They are allocated once: decoding sits in
// the per-process loop.
var (
	ErrStatNoComm    = errors.New("stat: no comm in parentheses")
	ErrStatTruncated = errors.New("stat: too few fields")
	ErrStatNumber    = errors.New("stat: malformed number")
)

// Stat holds the fields of /proc/<pid>/stat that procwatch uses. Field numbers
// follow proc(5) (1-based).
type Stat struct {
	PID        int32  // (1) pid
	Comm       []byte // (2) comm, without the parentheses; aliases the decoded buffer
	State      byte   // (3) state letter
	PPID       int32  // (4) ppid
	Flags      uint32 // (9) kernel flags (PF_*)
	UTime      uint64 // (14) user time, clock ticks
	STime      uint64 // (15) system time, clock ticks
	Nice       int32  // (19) nice, -20..19
	Threads    int32  // (20) num_threads
	StartTicks uint64 // (22) start time, clock ticks since boot
	RSSPages   uint64 // (24) resident set size, pages
}

// Kthread reports whether the task is a kernel thread (PF_KTHREAD).
func (s *Stat) Kthread() bool { return s.Flags&pfKthread != 0 }

// Decode parses one /proc/<pid>/stat line into s. Comm may contain anything,
// including ')', spaces, newlines and invalid UTF-8, so it is taken as the
// bytes between the first '(' and the last ')'; the remaining fields are walked
// by hand. Decode does not allocate. On error s is left partly filled and must
// not be used.
func (s *Stat) Decode(b []byte) error {
	open := -1
	for i, c := range b {
		if c == '(' {
			open = i
			break
		}
	}
	closing := -1
	for i := len(b) - 1; i > open; i-- {
		if b[i] == ')' {
			closing = i
			break
		}
	}
	if open < 1 || closing < 0 {
		return ErrStatNoComm
	}
	pid, ok := parseInt(trimSpace(b[:open]))
	if !ok || pid <= 0 || pid > maxPID {
		return ErrStatNumber
	}
	s.PID = int32(pid)
	s.Comm = b[open+1 : closing]

	// Walk the fields after ") ". Field 3 (state) is the first.
	rest := b[closing+1:]
	field := 2
	for len(rest) > 0 {
		// Skip the separating spaces.
		i := 0
		for i < len(rest) && rest[i] == ' ' {
			i++
		}
		if i == len(rest) {
			break
		}
		j := i
		for j < len(rest) && rest[j] != ' ' && rest[j] != '\n' {
			j++
		}
		tok := rest[i:j]
		field++
		if j < len(rest) && rest[j] == '\n' {
			rest = nil // the line ends here
		} else {
			rest = rest[j:]
		}
		var err error
		switch field {
		case 3:
			if len(tok) != 1 {
				return ErrStatNumber
			}
			s.State = tok[0]
		case 4:
			s.PPID, err = int32Field(tok)
		case 9:
			var v uint64
			v, err = uintField(tok)
			s.Flags = uint32(v)
		case 14:
			s.UTime, err = uintField(tok)
		case 15:
			s.STime, err = uintField(tok)
		case 19:
			s.Nice, err = int32Field(tok)
		case 20:
			s.Threads, err = int32Field(tok)
		case 22:
			s.StartTicks, err = uintField(tok)
		case 24:
			s.RSSPages, err = uintField(tok)
			if err == nil {
				return nil // nothing further is needed
			}
		}
		if err != nil {
			return err
		}
	}
	return ErrStatTruncated
}

// maxPID is PID_MAX_LIMIT (4194304 on 64-bit kernels).
const maxPID = 1 << 22

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\n') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\n') {
		b = b[:len(b)-1]
	}
	return b
}

// parseUint parses a decimal unsigned number without
// allocating; ok is false on any other byte or on overflow.
func parseUint(b []byte) (uint64, bool) {
	if len(b) == 0 {
		return 0, false
	}
	var v uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if v > (^uint64(0)-d)/10 {
			return 0, false
		}
		v = v*10 + d
	}
	return v, true
}

// parseInt parses an optionally negative decimal number that fits in int64.
func parseInt(b []byte) (int64, bool) {
	neg := false
	if len(b) > 0 && b[0] == '-' {
		neg, b = true, b[1:]
	}
	v, ok := parseUint(b)
	if !ok || v > 1<<63-1 {
		return 0, false
	}
	if neg {
		return -int64(v), true
	}
	return int64(v), true
}

func uintField(b []byte) (uint64, error) {
	v, ok := parseUint(b)
	if !ok {
		return 0, ErrStatNumber
	}
	return v, nil
}

func int32Field(b []byte) (int32, error) {
	v, ok := parseInt(b)
	if !ok || v < -1<<31 || v > 1<<31-1 {
		return 0, ErrStatNumber
	}
	return int32(v), nil
}
