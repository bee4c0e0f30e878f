// Package signals terminates one process safely and says what happened.
//
// Safety comes from a pidfd (Linux 5.3 and later): the process is opened
// first, then inspected, then the pidfd is checked (its fdinfo) to still refer
// to that PID, so the name, owner, start time and state that the guards look at
// all belong to the process the pidfd holds. Every signal goes through that
// one pidfd, and the wait for exit is a poll on it (readable once the process
// has exited): a PID reused meanwhile by another process can never be
// signalled. Where the kernel has no pidfd (detected once, at New) kill(2) is
// used after a start-time check, with the narrow race that implies; it is
// logged at start.
//
// The package knows nothing of HTTP or of how /proc is parsed: the caller
// passes an Inspect function.
package signals
