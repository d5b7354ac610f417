//go:build !unix

package host

// openFileLimit reports no limit where there is no RLIMIT_NOFILE (Windows
// has no per-process descriptor limit of that kind).
func openFileLimit() (uint64, bool) { return 0, false }
