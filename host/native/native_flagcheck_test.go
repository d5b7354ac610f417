package native_test

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/roam-dev/roam/host"
	"github.com/roam-dev/roam/host/native"
	"github.com/roam-dev/roam/internal/syncbuf"
)

const fcMainEnv = "ROAM_FLAGCHECK_NATIVE_MAIN" // set: the test binary is a native host

// TestFlagCheckMainProcess is the host process of TestFlagCheckMain: it
// calls Main, as the main package roam build generates does. It does
// nothing in a test run of its own.
func TestFlagCheckMainProcess(t *testing.T) {
	if os.Getenv(fcMainEnv) != "1" {
		return
	}
	os.Args = append([]string{"roam-host"}, flag.Args()...)
	native.Main()
	os.Exit(0)
}

// TestFlagCheckMain: the native host's binary refuses a flag that cannot
// work before it opens its backend, as roam run refuses it before it
// builds the binary: exit status 1 (roam run's for the same flag) and the
// same message on stderr. It used to open the backend, making the data
// directory, and fail at the listen ("listen tcp: address 70000: invalid
// port"), or take the value silently.
func TestFlagCheckMain(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--port", "70000"}, "roam: --port 70000: use 1 to 65535, or 0 for a free one\n"},
		{[]string{"--max-body-bytes", "-5"}, "roam: --max-body-bytes -5: use a positive size in bytes"},
		{[]string{"--shutdown-drain", "-1s"}, "roam: --shutdown-drain -1s: use a positive duration"},
	} {
		data := filepath.Join(t.TempDir(), "data")
		// A host that took the flag would serve until killed: the timeout
		// ends it, and the test fails on its status.
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		cmd := exec.CommandContext(ctx, os.Args[0], append([]string{"-test.run=^TestFlagCheckMainProcess$", "--",
			"--port", "0", "--data-dir", data, "--apps", "inventory"}, c.args...)...)
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
		if _, err := os.Stat(data); err == nil {
			t.Errorf("%v: the data directory was made: the backend was opened before the flag was refused", c.args)
		}
	}
}

// TestFlagCheckDrain: --shutdown-drain reaches ServeOptions.Drain: after a
// SIGTERM the host drains for that long (it logs the drain), not for the
// default (5 s with the default grace).
func TestFlagCheckDrain(t *testing.T) {
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	stdout, stderr := &syncbuf.Buffer{}, &syncbuf.Buffer{}
	done := make(chan error, 1)
	go func() {
		done <- native.Run(ctx, []string{"--port", "0", "--data-dir", t.TempDir(), "--apps", "inventory",
			"--shutdown-drain", "250ms"}, stdout, stderr)
	}()
	deadline := time.Now().Add(time.Minute)
	for !strings.Contains(stdout.String(), "roam: ready on") {
		select {
		case err := <-done:
			t.Fatalf("Run: %v\n%s\n%s", err, stdout, stderr)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("host not ready:\n%s\n%s", stdout, stderr)
		}
		time.Sleep(10 * time.Millisecond)
	}
	start := time.Now()
	cancel(&host.ShutdownSignal{Signal: syscall.SIGTERM})
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run after a SIGTERM: %v\n%s", err, stderr)
		}
	case <-time.After(time.Minute):
		t.Fatal("Run did not return")
	}
	took := time.Since(start)
	if !strings.Contains(stderr.String(), "drain=250ms") {
		t.Errorf("the shutdown did not drain for --shutdown-drain 250ms; log:\n%s", stderr)
	}
	if took < 250*time.Millisecond || took > 4*time.Second {
		t.Errorf("the shutdown took %s, want about 250ms", took)
	}
}
