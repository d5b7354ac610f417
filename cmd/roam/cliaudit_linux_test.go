//go:build linux

package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/roam-dev/roam/host"
)

// The test binary is also a stand-in for the go command, run through a
// "go" link on PATH: the build of a wasm module signals roam (its parent)
// with SIGUSR1, as a user's Ctrl-C would come during roam run's web step,
// then waits to be stopped; anything else runs the real go.
func init() {
	if os.Getenv("ROAM_CLIAUDIT_FAKE_GO") == "" {
		return
	}
	if len(os.Args) > 1 && os.Args[1] == "build" && os.Getenv("GOOS") == "wasip1" {
		syscall.Kill(os.Getppid(), syscall.SIGUSR1)
		time.Sleep(time.Hour)
		os.Exit(2)
	}
	real := os.Getenv("ROAM_CLIAUDIT_REAL_GO")
	env := append(os.Environ(), "ROAM_CLIAUDIT_FAKE_GO=")
	if err := syscall.Exec(real, append([]string{real}, os.Args[1:]...), env); err != nil {
		os.Stderr.WriteString(err.Error())
		os.Exit(2)
	}
}

// TestCLIAuditRunStoppedInWebStep: a Ctrl-C while roam run builds the
// apps' wasm modules stops roam. It used to report each module as not
// building ("go build failed:") and then start the host anyway, the signal
// spent.
func TestCLIAuditRunStoppedInWebStep(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the native host")
	}
	real, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command")
	}
	real, _ = filepath.Abs(real)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := t.TempDir()
	if err := os.Symlink(self, filepath.Join(bin, "go")); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	t.Setenv("ROAM_CLIAUDIT_FAKE_GO", "1")
	t.Setenv("ROAM_CLIAUDIT_REAL_GO", real)
	defer noExec(t)()
	// A stray second SIGUSR1 must not kill the test binary.
	guard := make(chan os.Signal, 4)
	signal.Notify(guard, syscall.SIGUSR1)
	defer signal.Stop(guard)

	ctx, stop := host.NotifyContext(context.Background(), syscall.SIGUSR1)
	defer stop()
	var out bytes.Buffer
	err = run(ctx, []string{"run", "../../examples/shop/orders", "--port", "0", "--data-dir", t.TempDir()}, &out, &out)
	var s *host.ShutdownSignal
	if !errors.As(err, &s) || s.Signal != syscall.SIGUSR1 || exitCode(err) != 128+int(syscall.SIGUSR1) {
		t.Fatalf("roam run: %v (exit %d), want SIGUSR1's; output:\n%s", err, exitCode(err), out.String())
	}
	if strings.Contains(out.String(), "does not build as a wasm module") {
		t.Errorf("a stopped build reported as a failed one:\n%s", out.String())
	}
}
