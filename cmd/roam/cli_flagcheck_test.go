package main

import (
	"path/filepath"
	"testing"
)

// TestFlagCheckShutdownDrain: roam run and roam edge refuse a negative
// --shutdown-drain, and one longer than the --shutdown-grace it is part
// of, before they build or load anything.
func TestFlagCheckShutdownDrain(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		flags []string
		want  string
	}{
		{[]string{"--shutdown-drain", "-1s"}, "--shutdown-drain -1s: use a positive duration"},
		{[]string{"--shutdown-drain", "11s"}, "--shutdown-drain 11s is longer than --shutdown-grace 10s"},
		{[]string{"--shutdown-drain", "3s", "--shutdown-grace", "2s"}, "--shutdown-drain 3s is longer than --shutdown-grace 2s"},
	} {
		roamFails(t, []string{c.want}, append([]string{"run", "./no/such/app"}, c.flags...)...)
		roamFails(t, []string{c.want}, append([]string{"edge", filepath.Join(dir, "none.wasm")}, c.flags...)...)
	}
}
