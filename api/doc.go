// Package api serves procwatch's HTTP JSON API with httprouter handlers.
//
// It serves the latest published sample: the body of GET /api/processes at
// the default limit is rendered once per sample, when the sampling loop calls
// Publish, and then written as bytes to every request, so a busy dashboard
// costs no JSON encoding. Other limits are rendered on demand from the same
// sample. Every error answers the JSON body of SPEC §4, including unknown
// paths (404), wrong methods (405) and recovered panics (500).
//
// Kernel bytes (comm, cmdline) go through encoding/json, which replaces
// invalid UTF-8 with U+FFFD and escapes control characters, so responses stay
// valid JSON whatever a process calls itself.
package api
