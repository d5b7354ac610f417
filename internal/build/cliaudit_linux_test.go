//go:build linux

package build

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The test binary is also a stand-in for the go command (fakeGo), run
// through a "go" link on PATH: go build starts a child, as go starts
// compilers, and blocks; anything else runs the real go.
func init() {
	switch os.Getenv("ROAM_CLIAUDIT_FAKE_GO") {
	case "":
		return
	case "child":
		time.Sleep(time.Hour)
		os.Exit(0)
	}
	fakeGo()
}

func fakeGo() {
	dir := os.Getenv("ROAM_CLIAUDIT_FAKE_GO")
	if len(os.Args) < 2 || os.Args[1] != "build" {
		real := os.Getenv("ROAM_CLIAUDIT_REAL_GO")
		env := append(os.Environ(), "ROAM_CLIAUDIT_FAKE_GO=")
		if err := syscall.Exec(real, append([]string{real}, os.Args[1:]...), env); err != nil {
			os.Stderr.WriteString(err.Error())
			os.Exit(2)
		}
	}
	// go build's work directory, where go puts it.
	work, err := os.MkdirTemp(os.Getenv("GOTMPDIR"), "go-build")
	if err != nil {
		os.Exit(2)
	}
	child := exec.Command(os.Args[0])
	child.Env = append(os.Environ(), "ROAM_CLIAUDIT_FAKE_GO=child")
	if err := child.Start(); err != nil {
		os.Exit(2)
	}
	os.WriteFile(filepath.Join(dir, "work"), []byte(work), 0o644)
	os.WriteFile(filepath.Join(dir, "child.tmp"), []byte(strconv.Itoa(child.Process.Pid)), 0o644)
	os.Rename(filepath.Join(dir, "child.tmp"), filepath.Join(dir, "child"))
	time.Sleep(time.Hour) // until interrupted
	os.Exit(2)
}

// useFakeGo puts fakeGo first on PATH and returns the directory it
// reports in.
func useFakeGo(t *testing.T) string {
	t.Helper()
	real, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command")
	}
	real, _ = filepath.Abs(real)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin, report := t.TempDir(), t.TempDir()
	if err := os.Symlink(self, filepath.Join(bin, "go")); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	t.Setenv("ROAM_CLIAUDIT_FAKE_GO", report)
	t.Setenv("ROAM_CLIAUDIT_REAL_GO", real)
	return report
}

// alive reports whether pid is a process that has not exited (a zombie
// has).
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && i+2 < len(s) && s[i+2] != 'Z' && s[i+2] != 'X'
}

// TestCLIAuditInterruptedBuild: a build stopped by its context (roam's
// Ctrl-C) stops go as Ctrl-C would, the compilers it started with it, and
// leaves no work directory; its error carries the cause. The go command
// used to get SIGKILL alone: its compile ran on as an orphan, its
// /tmp/go-build* stayed, and the error read "go build failed:" and nothing.
func TestCLIAuditInterruptedBuild(t *testing.T) {
	report := useFakeGo(t)
	// As without a terminal (a supervisor's signal), which go test may
	// have: on one, the terminal's Ctrl-C reaches go's compilers itself.
	prev := ownGroups
	ownGroups = func() bool { return true }
	defer func() { ownGroups = prev }()
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	done := make(chan error, 1)
	go func() {
		_, err := Native(ctx, Options{Dir: "../..", Patterns: []string{"./examples/shop/orders"}, Out: filepath.Join(t.TempDir(), "shop")})
		done <- err
	}()
	var pid int
	for deadline := time.Now().Add(2 * time.Minute); pid == 0; {
		if b, err := os.ReadFile(filepath.Join(report, "child")); err == nil {
			pid, _ = strconv.Atoi(string(b))
			break
		}
		select {
		case err := <-done:
			t.Fatalf("the build ended before it started its compiler: %v", err)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("the fake go build never started")
		}
	}
	defer syscall.Kill(pid, syscall.SIGKILL)
	cause := errors.New("interrupt signal received")
	cancel(cause)
	var err error
	select {
	case err = <-done:
	case <-time.After(2 * time.Minute):
		t.Fatal("the build did not stop")
	}
	if !errors.Is(err, cause) || !strings.Contains(err.Error(), "interrupt signal received while building") {
		t.Errorf("error %q, want one wrapping the cause", err)
	}
	for deadline := time.Now().Add(30 * time.Second); alive(pid); {
		if time.Now().After(deadline) {
			t.Fatalf("the compiler go started (pid %d) runs on after the build stopped", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
	work, _ := os.ReadFile(filepath.Join(report, "work"))
	if len(work) == 0 {
		t.Fatal("the fake go build reported no work directory")
	}
	if _, err := os.Stat(string(work)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("go's work directory %s is left behind (%v)", work, err)
	}
}

// TestCLIAuditThroughSymlink: an app named through a symbolic link to its
// module, from outside the module, builds: go build, run in the module,
// saw it by its real path, not by the overlay's ("stat .../_roam/gen-...:
// directory not found").
func TestCLIAuditThroughSymlink(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a wasm module")
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(root, link); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "orders.wasm")
	pkg, err := Wasm(context.Background(), Options{Dir: t.TempDir(), Patterns: []string{filepath.Join(link, "examples/shop/orders")}, Out: out})
	if err != nil {
		t.Fatal(err)
	}
	if pkg.ImportPath != "github.com/roam-dev/roam/examples/shop/orders" {
		t.Fatalf("built %s", pkg.ImportPath)
	}
	if _, err := os.Stat(out); err != nil {
		t.Fatal(err)
	}
}
