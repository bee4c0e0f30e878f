package sampler

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
)

// Identity is what deciding whether to signal a process needs: who it is,
// what state it is in, and who owns it. ReadIdentity reads it on demand.
type Identity struct {
	PID        int
	Tgid       int
	PPID       int
	Name       string
	State      byte
	StartTicks uint64
	Kthread    bool
	UIDs       [4]uint32 // real, effective, saved, filesystem
}

// ReadIdentity reads /proc/<pid>/stat and status. Errors wrap the file
// system's (fs.ErrNotExist for a process that is gone).
func ReadIdentity(procRoot string, pid int) (Identity, error) {
	dir := filepath.Join(procRoot, strconv.Itoa(pid))
	b, err := os.ReadFile(filepath.Join(dir, "stat"))
	if err != nil {
		return Identity{}, err
	}
	var st Stat
	if err := st.Decode(b); err != nil {
		return Identity{}, fmt.Errorf("%s/stat: %w", dir, err)
	}
	id := Identity{PID: int(st.PID), PPID: int(st.PPID), Name: string(st.Comm), State: st.State,
		StartTicks: st.StartTicks, Kthread: st.Kthread()}
	status, err := os.ReadFile(filepath.Join(dir, "status"))
	if err != nil {
		return Identity{}, err
	}
	if id.Tgid, err = statusInt(status, "Tgid:"); err != nil {
		return Identity{}, fmt.Errorf("%s/status: %w", dir, err)
	}
	if !parseStatusUIDs(status, id.UIDs[:]) {
		return Identity{}, fmt.Errorf("%s/status: no valid Uid line", dir)
	}
	return id, nil
}

func statusInt(b []byte, key string) (int, error) {
	i := bytes.Index(b, []byte("\n"+key))
	if i < 0 {
		return 0, fmt.Errorf("no %s line", key)
	}
	line := bytes.TrimLeft(b[i+1+len(key):], " \t")
	if j := bytes.IndexByte(line, '\n'); j >= 0 {
		line = line[:j]
	}
	return strconv.Atoi(string(bytes.TrimSpace(line)))
}
