// Package history keeps a compact per-process history and answers windows of
// it with statistics.
//
// A series is keyed by (PID, start ticks), so a reused PID starts a new series
// while the old one stays queryable as an exited incarnation. Each series has
// two tiers: a ring of the last Config.Points raw samples (12 bytes each) and
// 5-minute rollups (24 bytes each: count, sum and max of CPU and of RSS) over
// the whole retention. Points hold no pointers, so the garbage collector never
// scans them; rings start small and double as a process ages, so a
// short-lived process never costs a full ring; evicted series' buffers are
// recycled, so a steady state appends without allocating.
//
// Series live in a fixed number of shards (a power of two), each with its own
// mutex and padded to a cache line, chosen by PID so that every incarnation of
// a PID is found in one place.
//
// The package knows nothing of /proc or HTTP: the caller appends plain values
// and passes the times.
package history
