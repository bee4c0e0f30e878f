package sampler

// topHeap selects the best n processes by bounded heap selection: a min-heap
// of at most n indices whose root is the weakest entry kept, so each further
// process costs one comparison unless it displaces the root (O(P log n), not a
// sort of every process).
type topHeap struct {
	idx   []int32 // capacity n
	procs []Proc
	key   func(*Proc) float64
}

// below reports whether a ranks below b: a smaller key, or an equal key and a
// larger PID (ties go to the smaller PID).
func (h *topHeap) below(a, b int32) bool {
	pa, pb := &h.procs[a], &h.procs[b]
	ka, kb := h.key(pa), h.key(pb)
	if ka != kb {
		return ka < kb
	}
	return pa.PID > pb.PID
}

func (h *topHeap) reset(procs []Proc, key func(*Proc) float64) {
	h.idx, h.procs, h.key = h.idx[:0], procs, key
}

func (h *topHeap) offer(i int32) {
	if len(h.idx) < cap(h.idx) {
		h.idx = append(h.idx, i)
		h.up(len(h.idx) - 1)
		return
	}
	if h.below(h.idx[0], i) {
		h.idx[0] = i
		h.down(0, len(h.idx))
	}
}

func (h *topHeap) up(j int) {
	for j > 0 {
		parent := (j - 1) / 2
		if !h.below(h.idx[j], h.idx[parent]) {
			return
		}
		h.idx[j], h.idx[parent] = h.idx[parent], h.idx[j]
		j = parent
	}
}

func (h *topHeap) down(j, n int) {
	for {
		l := 2*j + 1
		if l >= n {
			return
		}
		m := l
		if r := l + 1; r < n && h.below(h.idx[r], h.idx[l]) {
			m = r
		}
		if !h.below(h.idx[m], h.idx[j]) {
			return
		}
		h.idx[j], h.idx[m] = h.idx[m], h.idx[j]
		j = m
	}
}

// sorted heap-sorts the kept indices in place, best first, and returns them.
func (h *topHeap) sorted() []int32 {
	for n := len(h.idx) - 1; n > 0; n-- {
		h.idx[0], h.idx[n] = h.idx[n], h.idx[0]
		h.down(0, n)
	}
	return h.idx
}

func cpuKey(p *Proc) float64 { return p.CPUPercent }
func rssKey(p *Proc) float64 { return float64(p.RSS) }

// rank fills the top lists, the zombie list and the totals of w.
func (s *Sampler) rank(w *Sample) {
	s.topCPU.reset(w.Procs, cpuKey)
	s.topRAM.reset(w.Procs, rssKey)
	w.Zombies = w.Zombies[:0]
	for i := range w.Procs {
		s.topCPU.offer(int32(i))
		s.topRAM.offer(int32(i))
		if w.Procs[i].State == 'Z' {
			w.Zombies = append(w.Zombies, int32(i))
		}
	}
	w.TopCPU = rankedFrom(w.TopCPU, s.topCPU.sorted())
	w.TopRAM = rankedFrom(w.TopRAM, s.topRAM.sorted())
}

func rankedFrom(dst []Ranked, idx []int32) []Ranked {
	dst = dst[:0]
	for _, i := range idx {
		dst = append(dst, Ranked{Index: i})
	}
	return dst
}
