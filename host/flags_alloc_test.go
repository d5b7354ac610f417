package host

import (
	"path/filepath"
	"testing"
)

// TestFlagCheckAllocs: Flags.Check reads --log-level without building a
// logger. Building one only to close it allocated the logger's 1.2 MB
// queue (and started and stopped its goroutine) at every start of every
// host, garbage that made a GC run during start-up: about 0.9 MB of the
// native shop's idle RSS (BENCHMARKS.md, "Native idle RSS, session 9").
// The check itself makes a handful of small allocations (8 here; 20 with
// the logger).
func TestFlagCheckAllocs(t *testing.T) {
	f, err := parseFlagsFC(t, "--data-dir", filepath.Join(t.TempDir(), "data"), "--log-level", "debug", "--log-format", "json")
	if err != nil {
		t.Fatal(err)
	}
	var cerr error
	allocs := testing.AllocsPerRun(20, func() { cerr = f.Check() })
	if cerr != nil {
		t.Fatal(cerr)
	}
	t.Logf("Flags.Check: %.0f allocations", allocs)
	if allocs > 12 {
		t.Errorf("Flags.Check made %.0f allocations, want at most 12: is it building a logger again?", allocs)
	}
}
