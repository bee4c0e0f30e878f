package sampler

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
)

var errNoMemTotal = errors.New("meminfo: no MemTotal line")

// ReadMemTotal returns MemTotal, in bytes, from <procRoot>/meminfo.
func ReadMemTotal(procRoot string) (uint64, error) {
	b, err := os.ReadFile(filepath.Join(procRoot, "meminfo"))
	if err != nil {
		return 0, err
	}
	return parseMemTotal(b)
}

// parseMemTotal returns MemTotal from /proc/meminfo contents, in bytes.
func parseMemTotal(b []byte) (uint64, error) {
	return parseKeyedNumber(b, "MemTotal:", 1024, errNoMemTotal)
}

var errNoBtime = errors.New("stat: no btime line")

// parseBtime returns btime (boot time, seconds since the epoch) from /proc/stat.
func parseBtime(b []byte) (uint64, error) {
	return parseKeyedNumber(b, "btime", 1, errNoBtime)
}

// parseKeyedNumber finds the line that starts with key and returns its first
// number times scale.
func parseKeyedNumber(b []byte, key string, scale uint64, missing error) (uint64, error) {
	for len(b) > 0 {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		if !bytes.HasPrefix(line, []byte(key)) {
			continue
		}
		line = line[len(key):]
		i := 0
		for i < len(line) && (line[i] == ' ' || line[i] == '\t') {
			i++
		}
		j := i
		for j < len(line) && line[j] >= '0' && line[j] <= '9' {
			j++
		}
		v, ok := parseUint(line[i:j])
		if !ok {
			return 0, ErrStatNumber
		}
		return v * scale, nil
	}
	return 0, missing
}

var errStatm = errors.New("statm: malformed")

// parseStatmResident returns the second field of /proc/<pid>/statm: resident
// pages.
func parseStatmResident(b []byte) (uint64, error) {
	i := bytes.IndexByte(b, ' ')
	if i < 0 {
		return 0, errStatm
	}
	b = b[i+1:]
	j := 0
	for j < len(b) && b[j] >= '0' && b[j] <= '9' {
		j++
	}
	if j == len(b) || b[j] != ' ' {
		return 0, errStatm
	}
	v, ok := parseUint(b[:j])
	if !ok {
		return 0, errStatm
	}
	return v, nil
}
