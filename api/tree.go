package api

import (
	"net/http"
	"slices"

	"github.com/julienschmidt/httprouter"
	"github.com/procwatch/procwatch/sampler"
)

type treeNodeJSON struct {
	PID    int32  `json:"pid"`
	Name   string `json:"name"`
	Status string `json:"status,omitempty"`
}

type treeChildJSON struct {
	PID        int32   `json:"pid"`
	Name       string  `json:"name"`
	Status     string  `json:"status"`
	CPUPercent float64 `json:"cpu_percent"`
	MemoryMB   float64 `json:"memory_mb"`
	ParentPID  int32   `json:"parent_pid"`
	Depth      int     `json:"depth"`
}

type treeJSON struct {
	Success       bool            `json:"success"`
	PID           int32           `json:"pid"`
	Name          string          `json:"name"`
	Parent        *treeNodeJSON   `json:"parent"`
	Ancestors     []treeNodeJSON  `json:"ancestors"`
	Children      []treeChildJSON `json:"children"`
	TotalChildren int             `json:"total_children"`
}

// maxTreeDepth bounds ?depth= and, without it, the walk itself: parentage
// chains on a real system are short, and a bound keeps a corrupt table from
// looping.
const maxTreeDepth = 64

func (s *Server) tree(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
	pid, ok := s.pidParam(w, ps)
	if !ok {
		return
	}
	depth := maxTreeDepth
	if q := r.URL.Query(); q.Has("depth") {
		if depth, ok = parseBoundedInt(q.Get("depth"), 1, maxTreeDepth); !ok {
			writeError(w, http.StatusBadRequest, "depth must be a whole number from 1 to 64", pid)
			return
		}
	}
	var body *treeJSON
	var err error
	if !s.src.Latest(func(smp *sampler.Sample) { body, err = s.buildTree(smp, pid, depth) }) {
		writeError(w, http.StatusServiceUnavailable, "No sample yet; the first one completes within one interval", pid)
		return
	}
	if err != nil {
		writeProcError(w, err, pid)
		return
	}
	writeJSON(w, http.StatusOK, body)
}

// buildTree answers from the sample's parent table. A PID that appeared since
// the sample is read fresh (it can have no children in the sample).
func (s *Server) buildTree(smp *sampler.Sample, pid, depth int) (*treeJSON, error) {
	body := &treeJSON{Success: true, PID: int32(pid), Ancestors: []treeNodeJSON{}, Children: []treeChildJSON{}}
	var ppid int32
	i := smp.Find(int32(pid))
	if i >= 0 {
		body.Name, ppid = smp.Procs[i].Name(), smp.Procs[i].PPID
	} else {
		id, err := readIdentity(s.cfg.ProcRoot, pid)
		if err != nil {
			return nil, err
		}
		body.Name, ppid = id.Name, int32(id.PPID)
	}

	// Ancestors, nearest first, up to the root (PID 1, or 2 for kernel threads).
	for hops := 0; ppid > 0 && hops < maxTreeDepth; hops++ {
		node := treeNodeJSON{PID: ppid, Name: "?", Status: "unknown"}
		next := int32(0)
		if j := smp.Find(ppid); j >= 0 {
			node.Name, node.Status, next = smp.Procs[j].Name(), StatusName(smp.Procs[j].State), smp.Procs[j].PPID
		} else if st, err := readStat(s.cfg.ProcRoot, int(ppid)); err == nil {
			node.Name, node.Status, next = string(st.Comm), StatusName(st.State), st.PPID
		}
		if hops == 0 {
			parent := node
			body.Parent = &parent
		}
		body.Ancestors = append(body.Ancestors, treeNodeJSON{PID: node.PID, Name: node.Name})
		ppid = next
	}

	if i >= 0 {
		// Children of each process, as index ranges over a list sorted by
		// (parent, PID): one pass to sort, then a depth-first walk.
		order := make([]int32, len(smp.Procs))
		for k := range order {
			order[k] = int32(k)
		}
		slices.SortFunc(order, func(a, b int32) int {
			pa, pb := &smp.Procs[a], &smp.Procs[b]
			if pa.PPID != pb.PPID {
				return int(pa.PPID - pb.PPID)
			}
			return int(pa.PID - pb.PID)
		})
		childrenOf := func(parent int32) []int32 {
			lo, _ := slices.BinarySearchFunc(order, parent, func(k int32, p int32) int { return int(smp.Procs[k].PPID - p) })
			hi := lo
			for hi < len(order) && smp.Procs[order[hi]].PPID == parent {
				hi++
			}
			return order[lo:hi]
		}
		var walk func(parent int32, d int)
		walk = func(parent int32, d int) {
			for _, k := range childrenOf(parent) {
				c := &smp.Procs[k]
				if c.PID == parent {
					continue // a process is never its own parent; guard a corrupt table
				}
				body.Children = append(body.Children, treeChildJSON{
					PID: c.PID, Name: c.Name(), Status: StatusName(c.State),
					CPUPercent: round1(c.CPUPercent), MemoryMB: round1(float64(c.RSS) / MiB),
					ParentPID: c.PPID, Depth: d,
				})
				if d < depth {
					walk(c.PID, d+1)
				}
			}
		}
		walk(int32(pid), 1)
	}
	body.TotalChildren = len(body.Children)
	return body, nil
}
