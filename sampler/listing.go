package sampler

import (
	"encoding/binary"
	"slices"

	"golang.org/x/sys/unix"
)

// lister enumerates the numeric entries of a procfs root with getdents(2),
// reusing one directory descriptor and one buffer across samples.
type lister struct {
	fd   int
	buf  []byte
	pids []int32
}

func newLister(dirfd int) *lister {
	return &lister{fd: dirfd, buf: make([]byte, 32<<10)}
}

// list returns the PIDs in the proc root in ascending order. The returned
// slice is reused by the next call.
func (l *lister) list() ([]int32, error) {
	l.pids = l.pids[:0]
	if _, err := unix.Seek(l.fd, 0, 0); err != nil {
		return nil, err
	}
	for {
		n, err := unix.Getdents(l.fd, l.buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, err
		}
		if n <= 0 {
			break
		}
		l.pids = appendDirentPIDs(l.pids, l.buf[:n])
	}
	// The kernel lists /proc in ascending PID order already (pdqsort then
	// costs one linear pass); a fixture tree on disk lists in hash order.
	slices.Sort(l.pids)
	return l.pids, nil
}

// appendDirentPIDs appends the names in a buffer of linux_dirent64 records
// that are positive decimal numbers. Names are parsed in place, never copied
// into strings.
func appendDirentPIDs(dst []int32, buf []byte) []int32 {
	const nameOff = 19 // d_ino(8) d_off(8) d_reclen(2) d_type(1)
	for len(buf) >= nameOff {
		reclen := int(binary.NativeEndian.Uint16(buf[16:18]))
		if reclen < nameOff || reclen > len(buf) {
			break
		}
		name := buf[nameOff:reclen]
		buf = buf[reclen:]
		if len(name) == 0 || name[0] < '1' || name[0] > '9' {
			continue
		}
		var v int64
		ok := true
		for _, c := range name {
			if c == 0 {
				break
			}
			if c < '0' || c > '9' || v > maxPID {
				ok = false
				break
			}
			v = v*10 + int64(c-'0')
		}
		if ok && v > 0 && v <= maxPID {
			dst = append(dst, int32(v))
		}
	}
	return dst
}
