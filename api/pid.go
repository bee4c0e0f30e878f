package api

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// defaultPIDMax is PID_MAX_LIMIT on 64-bit kernels, used when pid_max cannot be read.
const defaultPIDMax = 1 << 22

// readPIDMax reads <procRoot>/sys/kernel/pid_max.
func readPIDMax(procRoot string) int {
	b, err := os.ReadFile(filepath.Join(procRoot, "sys", "kernel", "pid_max"))
	if err != nil {
		return defaultPIDMax
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || n < 1 {
		return defaultPIDMax
	}
	return n
}

// parsePID accepts exactly ^[1-9][0-9]*$ up to pidMax. Nothing is parsed
// leniently — no sign, no leading zero, no hex, no spaces — because the
// number ends up in a signal call, where kill(-1) signals every process.
func parsePID(s string, pidMax int) (int, bool) {
	n, ok := parseBoundedInt(s, 1, pidMax)
	return n, ok
}
