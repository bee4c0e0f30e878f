package sampler

import (
	"bytes"
	"errors"
)

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
// by hand: the kernel writes them separated by single spaces, and anything
// else is an error. Decode does not allocate. On error s is left partly filled and must
// not be used.
func (s *Stat) Decode(b []byte) error {
	open := bytes.IndexByte(b, '(')
	if open < 1 {
		return ErrStatNoComm
	}
	closing := lastParen(b, open)
	if closing < 0 {
		return ErrStatNoComm
	}
	pid, ok := parseInt(trimSpace(b[:open]))
	if !ok || pid <= 0 || pid > maxPID {
		return ErrStatNumber
	}
	s.PID = int32(pid)
	s.Comm = b[open+1 : closing]

	// The kernel separates the fields after ") " by single spaces. One pass
	// records where fields 3..24 start; only the nine needed are parsed.
	rest := b[closing+1:]
	if len(rest) < 2 || rest[0] != ' ' {
		return ErrStatTruncated
	}
	rest = rest[1:]
	var at [lastField + 2]int // at[f] = offset of field f; at[f+1]-1 is its end
	f := firstField
	at[f] = 0
	i := 0
	for ; i < len(rest) && f <= lastField; i++ {
		if c := rest[i]; c == ' ' || c == '\n' {
			if i == at[f] {
				return ErrStatNumber // an empty field: two separators in a row
			}
			f++
			at[f] = i + 1
			if c == '\n' {
				rest = rest[:i+1]
			}
		}
	}
	if f <= lastField {
		if i != len(rest) || rest[len(rest)-1] == '\n' || f < lastField {
			return ErrStatTruncated
		}
		// The line ends right after field 24, with no separator.
		at[lastField+1] = len(rest) + 1
	}
	field := func(n int) []byte { return rest[at[n] : at[n+1]-1] }

	state := field(3)
	if len(state) != 1 {
		return ErrStatNumber
	}
	s.State = state[0]
	var flags uint64
	var err error
	if s.PPID, err = int32Field(field(4)); err != nil {
		return err
	}
	if flags, err = uintField(field(9)); err != nil {
		return err
	}
	s.Flags = uint32(flags)
	if s.UTime, err = uintField(field(14)); err != nil {
		return err
	}
	if s.STime, err = uintField(field(15)); err != nil {
		return err
	}
	if s.Nice, err = int32Field(field(19)); err != nil {
		return err
	}
	if s.Threads, err = int32Field(field(20)); err != nil {
		return err
	}
	if s.StartTicks, err = uintField(field(22)); err != nil {
		return err
	}
	if s.RSSPages, err = uintField(field(24)); err != nil {
		return err
	}
	return nil
}

// The fields Decode walks: 3 (state) to 24 (rss).
const (
	firstField = 3
	lastField  = 24
)

// lastParen returns the index of the last ')' after from, or -1. It hops
// forward with bytes.IndexByte, which is vectorised, where LastIndexByte walks
// byte by byte: a stat line has one or two ')' and some 250 bytes after them.
func lastParen(b []byte, from int) int {
	last := -1
	for {
		j := bytes.IndexByte(b[from+1:], ')')
		if j < 0 {
			return last
		}
		from += 1 + j
		last = from
	}
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

// parseUint parses a decimal unsigned number without allocating; ok is false
// on any other byte or on overflow.
func parseUint(b []byte) (uint64, bool) {
	if len(b) == 0 {
		return 0, false
	}
	var v uint64
	if len(b) <= 19 { // at most 9999999999999999999 < 2^64: no overflow check needed
		for _, c := range b {
			d := c - '0'
			if d > 9 {
				return 0, false
			}
			v = v*10 + uint64(d)
		}
		return v, true
	}
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
