package sampler

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Capability bits from include/uapi/linux/capability.h that procwatch cares about.
const (
	CapDacReadSearch = 2
	CapKill          = 5
	CapSysPtrace     = 19
)

// Caps is a capability set (the CapEff line of /proc/self/status).
type Caps uint64

// Has reports whether capability bit c is in the set.
func (c Caps) Has(bit int) bool { return c&(1<<bit) != 0 }

// Names lists the capabilities procwatch cares about that the set holds.
func (c Caps) Names() []string {
	names := []string{}
	for _, x := range []struct {
		bit  int
		name string
	}{{CapKill, "CAP_KILL"}, {CapSysPtrace, "CAP_SYS_PTRACE"}, {CapDacReadSearch, "CAP_DAC_READ_SEARCH"}} {
		if c.Has(x.bit) {
			names = append(names, x.name)
		}
	}
	return names
}

// ReadCaps returns the agent's effective capabilities from
// <procRoot>/self/status.
func ReadCaps(procRoot string) (Caps, error) {
	b, err := os.ReadFile(filepath.Join(procRoot, "self", "status"))
	if err != nil {
		return 0, fmt.Errorf("read capabilities: %w", err)
	}
	return parseCapEff(b)
}

func parseCapEff(b []byte) (Caps, error) {
	i := bytes.Index(b, []byte("\nCapEff:"))
	if i < 0 {
		return 0, fmt.Errorf("read capabilities: no CapEff line")
	}
	line := b[i+len("\nCapEff:"):]
	if j := bytes.IndexByte(line, '\n'); j >= 0 {
		line = line[:j]
	}
	v, err := strconv.ParseUint(string(bytes.TrimSpace(line)), 16, 64)
	if err != nil {
		return 0, fmt.Errorf("read capabilities: CapEff: %w", err)
	}
	return Caps(v), nil
}

// Visibility says whether the agent can see and read every process.
type Visibility struct {
	Degraded bool
	Reasons  []string // one sentence per limitation, for the start-up log
}

// ProbeVisibility inspects the proc mount options (hidepid, subset=pid) and
// the agent's capabilities. Without CAP_SYS_PTRACE other users' cwd, fds and
// exe cannot be read; without CAP_DAC_READ_SEARCH some of their files neither.
func ProbeVisibility(procRoot string, caps Caps) Visibility {
	var v Visibility
	if b, err := os.ReadFile(filepath.Join(procRoot, "self", "mountinfo")); err == nil {
		if opts := procMountOptions(b, procRoot); opts != "" {
			for _, o := range strings.Split(opts, ",") {
				if strings.HasPrefix(o, "hidepid=") && o != "hidepid=0" && o != "hidepid=off" {
					v.Reasons = append(v.Reasons, "proc is mounted with "+o+": other users' processes are hidden")
				}
				if o == "subset=pid" {
					v.Reasons = append(v.Reasons, "proc is mounted with subset=pid")
				}
			}
		}
	}
	if !caps.Has(CapSysPtrace) {
		v.Reasons = append(v.Reasons, "no CAP_SYS_PTRACE: other users' cwd, exe, descriptors and connections read as null")
	}
	if !caps.Has(CapDacReadSearch) {
		v.Reasons = append(v.Reasons, "no CAP_DAC_READ_SEARCH: some of other users' proc files cannot be read")
	}
	v.Degraded = len(v.Reasons) > 0
	return v
}

// procMountOptions returns the super-block options of the proc mount at
// mountPoint from a mountinfo file, or "".
func procMountOptions(mountinfo []byte, mountPoint string) string {
	for _, line := range strings.Split(string(mountinfo), "\n") {
		// id parent maj:min root mountpoint opts [optional...] - fstype source superopts
		left, right, ok := strings.Cut(line, " - ")
		if !ok {
			continue
		}
		lf, rf := strings.Fields(left), strings.Fields(right)
		if len(lf) < 5 || len(rf) < 3 || rf[0] != "proc" || lf[4] != mountPoint {
			continue
		}
		return rf[2]
	}
	return ""
}
