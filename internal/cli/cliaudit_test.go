package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/roam-dev/roam/host"
	"github.com/roam-dev/roam/host/edge"
)

// TestCLIAuditEdgeFlags: the edge command (roam edge, and roam-edge of the
// edge image) refuses settings it used to take silently, before it loads a
// module: the module named does not exist, and the error must be about the
// flag.
func TestCLIAuditEdgeFlags(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	os.WriteFile(file, nil, 0o644)
	for _, c := range []struct {
		flags []string
		want  string
	}{
		{[]string{"--pool-size", "-2"}, "--pool-size -2: use 1 or more, or 0 for the default"},
		{[]string{"--pool-size", "100000"}, "the base pool alone would exceed --pool-memory-mb 256"},
		{[]string{"--pool-size", "600", "--pool-memory-mb", "512"}, "--pool-memory-mb 512"},
		{[]string{"--max-queue", "-1"}, "--max-queue -1: use 0 for no queue"},
		{[]string{"--port", "65536"}, "--port 65536"},
		{[]string{"--data-dir", file}, "--data-dir " + file + " is a file"},
		{[]string{"--log-format", "yml"}, "--log-format"},
	} {
		cmd := EdgeCommand("roam-edge", &bytes.Buffer{}, &bytes.Buffer{})
		cmd.SilenceUsage, cmd.SilenceErrors = true, true
		cmd.SetArgs(append([]string{filepath.Join(dir, "none.wasm"), "--data-dir", filepath.Join(dir, "d")}, c.flags...))
		err := cmd.ExecuteContext(context.Background())
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("roam-edge %v: %v, want an error containing %q", c.flags, err, c.want)
		}
	}
	// A large pool within a large enough budget is the user's to ask for,
	// and a data directory is made when it does not exist yet. The checks
	// are the edge host's own (edge.Config.Check, host.Flags.Check), which
	// edge.Run calls before it loads anything.
	ok := host.Flags{Port: 8080, DataDir: filepath.Join(dir, "new", "data"), LogLevel: "info", LogFormat: "text"}
	if err := (edge.Config{Flags: ok, PoolSize: 600, PoolMemoryMB: 1024}).Check(); err != nil {
		t.Errorf("600 instances in 1024 MiB: %v", err)
	}
	if err := ok.Check(); err != nil {
		t.Errorf("a data dir yet to be made: %v", err)
	}
}

// TestCLIAuditEdgeNoArgs: with nothing to run, the edge command says what
// it takes.
func TestCLIAuditEdgeNoArgs(t *testing.T) {
	cmd := EdgeCommand("roam-edge", &bytes.Buffer{}, &bytes.Buffer{})
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	cmd.SetArgs([]string{})
	err := cmd.ExecuteContext(context.Background())
	if err == nil || !strings.Contains(err.Error(), "FILE.wasm (roam build --target wasm makes one)") {
		t.Fatalf("roam-edge: %v", err)
	}
}
