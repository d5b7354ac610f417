package host

import (
	"flag"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// parseFlagsFC parses args as a host's command line.
func parseFlagsFC(t *testing.T, args ...string) (Flags, error) {
	t.Helper()
	var f Flags
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	f.Register(fs)
	return f, fs.Parse(args)
}

// TestFlagCheckMessages: Flags.Check, which every host calls before it
// opens anything, refuses what roam run refused before it moved here, with
// the same words, and takes the defaults.
func TestFlagCheckMessages(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	def, err := parseFlagsFC(t, "--data-dir", filepath.Join(dir, "new", "data"))
	if err != nil {
		t.Fatal(err)
	}
	if err := def.Check(); err != nil {
		t.Fatalf("the defaults: %v", err)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--port", "70000"}, "--port 70000: use 1 to 65535, or 0 for a free one"},
		{[]string{"--port", "-1"}, "--port -1"},
		{[]string{"--max-body-bytes", "-5"}, "--max-body-bytes -5: use a positive size in bytes (0 takes the default, 4194304)"},
		{[]string{"--request-timeout", "-1s"}, "--request-timeout -1s"},
		{[]string{"--shutdown-grace", "-1s"}, "--shutdown-grace -1s"},
		{[]string{"--shutdown-drain", "-1s"}, "--shutdown-drain -1s: use a positive duration"},
		{[]string{"--shutdown-drain", "11s"}, "--shutdown-drain 11s is longer than --shutdown-grace 10s"},
		{[]string{"--shutdown-grace", "0", "--shutdown-drain", "1ms"}, "--shutdown-drain 1ms is longer than --shutdown-grace 0s"},
		{[]string{"--log-format", "yaml"}, `--log-format "yaml": use text or json`},
		{[]string{"--log-level", "loud"}, `--log-level "loud"`},
		{[]string{"--cors-origins", "ftp://x"}, "--cors-origins"},
		{[]string{"--data-dir", ""}, "--data-dir is empty"},
		{[]string{"--data-dir", file}, "--data-dir " + file + " is a file, not a directory"},
		{[]string{"--data-dir", filepath.Join(file, "sub")}, ": " + file + " is a file, not a directory"},
	} {
		f, err := parseFlagsFC(t, append([]string{"--data-dir", filepath.Join(dir, "d")}, c.args...)...)
		if err != nil {
			t.Fatalf("%v: %v", c.args, err)
		}
		if err := f.Check(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: Check() = %v, want an error containing %q", c.args, err, c.want)
		}
	}
	// A drain up to the whole grace is the user's to ask for.
	for _, args := range [][]string{
		{"--shutdown-drain", "10s"},
		{"--shutdown-drain", "0"},
		{"--shutdown-drain", "30s", "--shutdown-grace", "1m"},
	} {
		f, err := parseFlagsFC(t, append([]string{"--data-dir", dir}, args...)...)
		if err != nil {
			t.Fatal(err)
		}
		if err := f.Check(); err != nil {
			t.Errorf("%v: %v", args, err)
		}
	}
}

// TestFlagCheckDrainArgs: --shutdown-drain parses, and roam run passes it
// on to the host it builds (Args) only when set.
func TestFlagCheckDrainArgs(t *testing.T) {
	f, err := parseFlagsFC(t, "--shutdown-drain", "1500ms", "--shutdown-grace", "20s")
	if err != nil || f.ShutdownDrain != 1500*time.Millisecond {
		t.Fatalf("--shutdown-drain 1500ms: %v, %v", f.ShutdownDrain, err)
	}
	back, err := parseFlagsFC(t, f.Args()...)
	if err != nil || !reflect.DeepEqual(back, f) {
		t.Fatalf("round trip: %+v, %v; want %+v", back, err, f)
	}
	def, _ := parseFlagsFC(t)
	if def.ShutdownDrain != 0 || strings.Contains(strings.Join(def.Args(), " "), "--shutdown-drain") {
		t.Errorf("default drain %v, args %v: want 0 and no --shutdown-drain", def.ShutdownDrain, def.Args())
	}
	if _, err := parseFlagsFC(t, "--shutdown-drain", "soon"); err == nil {
		t.Error("--shutdown-drain soon: accepted")
	}
}
