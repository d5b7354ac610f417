package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const fcMainEnv = "ROAM_FLAGCHECK_EDGE_MAIN" // set: the test binary is roam-edge

// TestFlagCheckMainProcess is the roam-edge process of TestFlagCheckMain;
// it does nothing in a test run of its own.
func TestFlagCheckMainProcess(t *testing.T) {
	if os.Getenv(fcMainEnv) != "1" {
		return
	}
	os.Args = append([]string{"roam-edge"}, flag.Args()...)
	main()
	os.Exit(0)
}

// TestFlagCheckMain: roam-edge refuses a flag that cannot work before it
// loads a module or opens its backend, as roam edge and roam run do: exit
// status 1 and the message on stderr.
func TestFlagCheckMain(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--pool-size", "-1"}, "roam-edge: --pool-size -1: use 1 or more, or 0 for the default"},
		{[]string{"--port", "70000"}, "roam-edge: --port 70000: use 1 to 65535, or 0 for a free one"},
		{[]string{"--shutdown-drain", "-1s"}, "roam-edge: --shutdown-drain -1s: use a positive duration"},
	} {
		dir := t.TempDir()
		data, cache := filepath.Join(dir, "data"), filepath.Join(dir, "cache")
		// A host that took the flag would serve until killed: the timeout
		// ends it, and the test fails on its status.
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		cmd := exec.CommandContext(ctx, os.Args[0], append([]string{"-test.run=^TestFlagCheckMainProcess$", "--",
			filepath.Join(dir, "none.wasm"), "--port", "0", "--data-dir", data, "--cache-dir", cache}, c.args...)...)
		cmd.Env = append(os.Environ(), fcMainEnv+"=1")
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		cancel()
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 1 {
			t.Errorf("%v: %v, want exit status 1; stdout:\n%s\nstderr:\n%s", c.args, err, stdout.String(), stderr.String())
			continue
		}
		if !strings.Contains(stderr.String(), c.want) {
			t.Errorf("%v: stderr %q lacks %q", c.args, stderr.String(), c.want)
		}
		for _, d := range []string{data, cache} {
			if _, err := os.Stat(d); err == nil {
				t.Errorf("%v: %s was made before the flag was refused", c.args, d)
			}
		}
	}
}
