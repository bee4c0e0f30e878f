package api

import (
	"bufio"
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/procwatch/procwatch/sampler"
	"github.com/prometheus/procfs"
	"golang.org/x/sys/unix"
)

// Reading one process on demand. prometheus/procfs parses status (uids,
// Tgid, VmRSS); the rest is done here because procfs does something else or
// costs too much for the job:
//   - cwd and exe are plain readlinks: procfs's Cwd and Executable answer ""
//     for a link that cannot be read, where the truth is "unknown" (null);
//   - stat is decoded by sampler.Stat, so that a process reads the same here
//     as in the top lists (procfs's Stat parses with fmt and allocates);
//   - descriptors are classified with a stat of each /proc/<pid>/fd/N (the
//     inode the descriptor points at: S_ISREG is a regular file), which
//     procfs's FileDescriptorTargets (link text only) cannot tell;
//   - only the inode column of /proc/<pid>/net/{tcp,tcp6,udp,udp6} is
//     needed, and procfs's readers for those tables are deprecated and
//     parse every column of every line.

var (
	errNotFound = errors.New("process not found")
	errIsThread = errors.New("a thread, not a process")
	errNoAccess = errors.New("permission denied")
)

// freshProc is one process read now from /proc.
type freshProc struct {
	stat      sampler.Stat
	name      string
	uid       *uint32
	rss       uint64
	cmdline   string
	cwd, exe  *string
	numFDs    *int
	openFiles *int
	conns     *int
}

// procErr maps a read error to what the API says about it.
func procErr(err error) error {
	switch {
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, unix.ESRCH):
		return errNotFound
	case errors.Is(err, fs.ErrPermission):
		return errNoAccess
	}
	return err
}

// readStat reads and decodes /proc/<pid>/stat.
func readStat(procRoot string, pid int) (sampler.Stat, error) {
	var st sampler.Stat
	b, err := os.ReadFile(filepath.Join(procRoot, strconv.Itoa(pid), "stat"))
	if err != nil {
		return st, procErr(err)
	}
	return st, st.Decode(b)
}

// readIdentity reads a process that is not in the latest sample: who it is
// and its parent, refusing a thread ID.
func readIdentity(procRoot string, pid int) (sampler.Identity, error) {
	id, err := sampler.ReadIdentity(procRoot, pid)
	if err != nil {
		return id, procErr(err)
	}
	if id.Tgid != pid {
		return id, errIsThread
	}
	return id, nil
}

// readProcess reads everything GET /api/processes/{pid} serves except the
// CPU figure. A field that cannot be read (permissions, hidepid, a zombie)
// is left nil.
func readProcess(procRoot string, pid int, redact *Redactor) (*freshProc, error) {
	st, err := readStat(procRoot, pid)
	if err != nil {
		return nil, err
	}
	p := &freshProc{stat: st, name: string(st.Comm)}

	fsys, err := procfs.NewFS(procRoot)
	if err != nil {
		return nil, err
	}
	proc, err := fsys.Proc(pid)
	if err != nil {
		return nil, procErr(err)
	}
	status, err := proc.NewStatus()
	if err != nil {
		return nil, procErr(err)
	}
	// /proc/<tid> exists for every thread without being listed; the API
	// speaks of processes only.
	if status.TGID != pid {
		return nil, errIsThread
	}
	uid := uint32(status.UIDs[0])
	p.uid = &uid
	p.rss = status.VmRSS // exact, unlike stat's rss field

	if b, err := os.ReadFile(filepath.Join(procRoot, strconv.Itoa(pid), "cmdline")); err == nil {
		p.cmdline = redact.Redact(string(sampler.JoinCmdline(b)))
	}
	// Not procfs's Cwd and Executable: they turn a missing link into "",
	// where the answer is "unknown" (null).
	if cwd, err := os.Readlink(filepath.Join(procRoot, strconv.Itoa(pid), "cwd")); err == nil {
		p.cwd = &cwd
	}
	if exe, err := os.Readlink(filepath.Join(procRoot, strconv.Itoa(pid), "exe")); err == nil {
		p.exe = &exe
	}
	p.readDescriptors(procRoot, pid)
	return p, nil
}

// readDescriptors counts all descriptors, those on regular files, and those
// on TCP or UDP sockets (IPv4 and IPv6, as psutil counts "inet").
func (p *freshProc) readDescriptors(procRoot string, pid int) {
	dir := filepath.Join(procRoot, strconv.Itoa(pid), "fd")
	entries, err := os.ReadDir(dir)
	if err != nil {
		return // no access (another user's process without CAP_SYS_PTRACE), or gone
	}
	n, files := len(entries), 0
	var sockets []uint64
	for _, e := range entries {
		fdPath := filepath.Join(dir, e.Name())
		target, err := os.Readlink(fdPath)
		if err != nil {
			continue // closed meanwhile
		}
		if inode, ok := socketInode(target); ok {
			sockets = append(sockets, inode)
			continue
		}
		var st unix.Stat_t
		if unix.Stat(fdPath, &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFREG {
			files++
		}
	}
	p.numFDs, p.openFiles = &n, &files
	conns, ok := countInetSockets(filepath.Join(procRoot, strconv.Itoa(pid), "net"), sockets)
	if ok {
		p.conns = &conns
	}
}

// socketInode parses "socket:[12345]".
func socketInode(target string) (uint64, bool) {
	s, ok := strings.CutPrefix(target, "socket:[")
	if !ok || !strings.HasSuffix(s, "]") {
		return 0, false
	}
	v, err := strconv.ParseUint(s[:len(s)-1], 10, 64)
	return v, err == nil
}

// countInetSockets counts the sockets whose inode appears in the process's
// own network namespace's tcp, tcp6, udp or udp6 table. ok is false when no
// table could be read.
func countInetSockets(netDir string, sockets []uint64) (int, bool) {
	if len(sockets) == 0 {
		return 0, true
	}
	want := make(map[uint64]int, len(sockets))
	for _, s := range sockets {
		want[s]++
	}
	count, read := 0, false
	for _, table := range []string{"tcp", "tcp6", "udp", "udp6"} {
		f, err := os.Open(filepath.Join(netDir, table))
		if err != nil {
			continue // e.g. IPv6 disabled
		}
		read = true
		sc := bufio.NewScanner(f)
		sc.Scan() // header
		for sc.Scan() {
			if inode, ok := netTableInode(sc.Bytes()); ok && want[inode] > 0 {
				count += want[inode]
				want[inode] = 0 // a socket appears once, even in tcp and tcp6
			}
		}
		f.Close()
	}
	return count, read
}

// netTableInode returns the inode column (the tenth) of a line of
// /proc/net/{tcp,udp}[6].
func netTableInode(line []byte) (uint64, bool) {
	fields := 0
	for len(line) > 0 {
		line = bytes.TrimLeft(line, " ")
		end := bytes.IndexByte(line, ' ')
		if end < 0 {
			end = len(line)
		}
		if fields == 9 {
			v, err := strconv.ParseUint(string(line[:end]), 10, 64)
			return v, err == nil
		}
		fields++
		line = line[end:]
	}
	return 0, false
}
