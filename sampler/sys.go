package sampler

import (
	"strconv"
	"unsafe"

	"golang.org/x/sys/unix"
)

// pathBuf holds a NUL-terminated path relative to the proc root, built in
// place so that opening a per-process file allocates nothing.
type pathBuf [64]byte

// pidPath writes "<pid>/<name>\x00" into p and returns p.
func (p *pathBuf) pidPath(pid int32, name string) *pathBuf {
	b := strconv.AppendInt(p[:0], int64(pid), 10)
	b = append(b, '/')
	b = append(b, name...)
	b = append(b, 0)
	_ = b // b aliases p: pidPath never needs more than 64 bytes for the names used here
	return p
}

// openAt opens the NUL-terminated relative path in p beneath dirfd, read-only.
//
// This is the package's only use of unsafe: unix.Openat takes a Go string and
// copies it to a new NUL-terminated []byte on every call, which would be one
// allocation per process per sample on the open/read/close fallback path.
func openAt(dirfd int, p *pathBuf) (int, error) {
	fd, _, errno := unix.Syscall6(unix.SYS_OPENAT, uintptr(dirfd),
		uintptr(unsafe.Pointer(&p[0])), uintptr(unix.O_RDONLY|unix.O_CLOEXEC), 0, 0, 0)
	if errno != 0 {
		return -1, errno
	}
	return int(fd), nil
}

// preadFull reads the file behind fd from offset 0 into buf and returns the
// bytes read. procfs generates these files in one pass, so a short read means
// the end of the file; a read that fills buf means the buffer was too small.
func preadFull(fd int, buf []byte) ([]byte, error) {
	for {
		n, err := unix.Pread(fd, buf, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, err
		}
		return buf[:n], nil
	}
}
