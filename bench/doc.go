// Package bench measures procwatch against what a user would otherwise run,
// side by side in one run, so that every performance claim is a ratio:
//
//   - BenchmarkFullSample: one full sample yielding what GET /api/processes
//     needs (every process's CPU ticks, RSS, state, parent, threads, start
//     and uid; command line and user name for the top 10 by CPU and by RAM),
//     done by procwatch's sampler, by prometheus/procfs and by gopsutil v4
//     used the natural way, and by plain open/read/close floors;
//   - BenchmarkAPI: GET /api/processes over loopback beside a handler that
//     writes the same number of constant bytes;
//   - BenchmarkAgentOverhead: the whole agent at a 3 s interval for a minute,
//     its CPU (from its own stat ticks) and resident memory.
//
// It is a module of its own so that the agent never depends on gopsutil.
// `make bench` at the top runs it and prints the table (cmd/benchtable).
package bench
