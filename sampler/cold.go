package sampler

import (
	"bytes"
	"os/user"
	"strconv"
	"sync"

	"golang.org/x/sys/unix"
)

// CmdlineMax is the most bytes of a command line kept.
const CmdlineMax = 4096

// coldKey identifies a process incarnation.
type coldKey struct {
	pid   int32
	start uint64
}

type coldEntry struct {
	cmdline string
	lastSeq uint64
}

// coldCache holds the command lines of processes that appear in a top list.
// A command line is read only for a process new to a list, so a steady state
// reads no cold file and allocates nothing. Only the sampler goroutine uses it.
type coldCache struct {
	users   UserLookup
	entries map[coldKey]coldEntry
	buf     []byte
}

// coldKeep is how many samples an entry outlives its last use, so a process
// hovering at the edge of a top list is not re-read each time it re-enters.
const coldKeep = 20

func newColdCache(users UserLookup) coldCache {
	return coldCache{users: users, entries: make(map[coldKey]coldEntry), buf: make([]byte, CmdlineMax+1)}
}

func (c *coldCache) fill(s *Sampler, w *Sample) {
	for _, list := range [2][]Ranked{w.TopCPU, w.TopRAM} {
		for i := range list {
			r := &list[i]
			p := &w.Procs[r.Index]
			k := coldKey{p.PID, p.StartTicks}
			e, ok := c.entries[k]
			if !ok {
				e = c.read(s.rootFD, p)
			}
			e.lastSeq = w.Seq
			c.entries[k] = e
			r.UID, r.Cmdline = p.UID, e.cmdline
			r.Username = ""
			if p.UID != NoUID {
				r.Username = c.users.Username(p.UID)
			}
		}
	}
	for k, e := range c.entries {
		if e.lastSeq+coldKeep < w.Seq {
			delete(c.entries, k)
		}
	}
}

// read loads the command line of one process; one that exits meanwhile gets
// an empty one.
func (c *coldCache) read(rootFD int, p *Proc) coldEntry {
	var e coldEntry
	// Kernel threads and zombies have an empty cmdline file already.
	if b := c.readFile(rootFD, p.PID, "cmdline"); len(b) > 0 {
		e.cmdline = string(JoinCmdline(b))
	}
	return e
}

func (c *coldCache) readFile(rootFD int, pid int32, name string) []byte {
	var path pathBuf
	fd, err := openAt(rootFD, path.pidPath(pid, name))
	if err != nil {
		return nil
	}
	defer unix.Close(fd)
	n, err := unix.Read(fd, c.buf)
	if err != nil || n < 0 {
		return nil
	}
	return c.buf[:n]
}

// JoinCmdline turns the NUL-separated argv of /proc/<pid>/cmdline into one
// line joined by single spaces, in place, at most CmdlineMax bytes.
func JoinCmdline(b []byte) []byte {
	if len(b) > CmdlineMax {
		b = b[:CmdlineMax]
	}
	b = bytes.TrimRight(b, "\x00")
	for i, c := range b {
		if c == 0 {
			b[i] = ' '
		}
	}
	return b
}

// parseStatusUID returns the real uid from the "Uid:" line of
// /proc/<pid>/status.
func parseStatusUID(b []byte) (uint32, bool) {
	var uids [1]uint32
	return uids[0], parseStatusUIDs(b, uids[:])
}

// parseStatusUIDs fills uids, in order, from the "Uid:" line (real,
// effective, saved, filesystem). A uid of 2^32-1 is refused: it is NoUID.
func parseStatusUIDs(b []byte, uids []uint32) bool {
	i := bytes.Index(b, []byte("\nUid:"))
	if i < 0 {
		return false
	}
	b = b[i+5:]
	for k := range uids {
		for len(b) > 0 && (b[0] == '\t' || b[0] == ' ') {
			b = b[1:]
		}
		j := 0
		for j < len(b) && b[j] >= '0' && b[j] <= '9' {
			j++
		}
		v, ok := parseUint(b[:j])
		if !ok || v > 1<<32-2 {
			return false
		}
		uids[k], b = uint32(v), b[j:]
	}
	return true
}

// UserCache resolves uids through a lookup function and remembers the answers.
// It is safe for concurrent use.
type UserCache struct {
	lookup func(uid uint32) (string, bool)
	mu     sync.Mutex
	names  map[uint32]string
}

// NewUserCache returns a cache over lookup; nil looks uids up in the system
// user database (os/user).
func NewUserCache(lookup func(uid uint32) (string, bool)) *UserCache {
	if lookup == nil {
		lookup = func(uid uint32) (string, bool) {
			u, err := user.LookupId(strconv.FormatUint(uint64(uid), 10))
			if err != nil {
				return "", false
			}
			return u.Username, true
		}
	}
	return &UserCache{lookup: lookup, names: make(map[uint32]string)}
}

// Username returns the name of uid, or the number as a string where none exists.
func (u *UserCache) Username(uid uint32) string {
	u.mu.Lock()
	defer u.mu.Unlock()
	if n, ok := u.names[uid]; ok {
		return n
	}
	n, ok := u.lookup(uid)
	if !ok {
		n = strconv.FormatUint(uint64(uid), 10)
	}
	u.names[uid] = n
	return n
}
