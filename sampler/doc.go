// Package sampler reads every process from a procfs tree and computes one
// consistent sample: per-process CPU percent from stat jiffies over the
// monotonic wall interval, resident memory, state, parentage and thread
// counts, plus the top lists by CPU and by RAM and the zombie list.
//
// It is the hot path of procwatch, so it is written to allocate nothing per
// sample once the process count is stable:
//
//   - /proc is listed with getdents(2) into a reused buffer and the names are
//     parsed in place;
//   - every process's /proc/<pid>/stat is opened once and the descriptor is
//     kept, then re-read with pread(2) at offset 0 each sample. A held
//     descriptor answers ESRCH once its process is gone, even if the PID has
//     been reused, so it doubles as a reuse guard. When descriptors run short
//     the sampler falls back to open/read/close;
//   - stat is decoded by hand from the last ')' (see Stat.Decode), never with
//     fmt scanning or string splitting;
//   - per-process records live in two preallocated arrays that swap roles each
//     sample and grow only when the process count does;
//   - the top lists are chosen by bounded heap selection, not by sorting every
//     process.
//
// Cold data (command line and user name) is read only for processes that land
// in a top list or the zombie list, and cached by (pid, start ticks).
//
// The package knows nothing of HTTP, history or signals. prometheus/procfs is
// deliberately not used here: its Stat parser uses fmt scanning and allocates
// per call, which is right for a scrape-time cold path and wrong for a sampler
// that runs every few seconds over thousands of processes.
package sampler
