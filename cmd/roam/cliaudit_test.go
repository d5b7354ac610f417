package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/roam-dev/roam/host"
)

// roamFails runs roam in-process and returns its error, which must
// contain every string of want.
func roamFails(t *testing.T, want []string, args ...string) error {
	t.Helper()
	var out, errOut bytes.Buffer
	err := run(context.Background(), args, &out, &errOut)
	if err == nil {
		t.Errorf("roam %s: no error; stdout:\n%s", strings.Join(args, " "), out.String())
		return nil
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("roam %s: %q lacks %q", strings.Join(args, " "), err, w)
		}
	}
	return err
}

// TestCLIAuditFlagMistakes: the mistakes of a user used to Go's flags or
// to kubectl name the help to read, and what cobra let through is refused.
func TestCLIAuditFlagMistakes(t *testing.T) {
	for _, c := range []struct {
		args []string
		want []string
	}{
		{[]string{"run", "-port", "0"}, []string{"-port", "two dashes, --port", "roam run --help"}},
		{[]string{"build", "-target=wasm"}, []string{"two dashes, --target", "roam build --help"}},
		{[]string{"run", "--bogus"}, []string{"unknown flag: --bogus", "roam run --help"}},
		{[]string{"edge", "--pool-size", "x", "a.wasm"}, []string{"--pool-size", "roam edge --help"}},
		{[]string{"operator", "instal"}, []string{`unknown command "instal" for "roam operator"`}},
		{[]string{"version", "extra"}, []string{`"extra"`}},
		{[]string{"dist", "--jobs", "-1"}, []string{"--jobs -1"}},
		// Without --image-repo the advice read "roam dist --push  pushed /inventory-wasm".
		{[]string{"manifests", "../../examples/shop", "--namespace", "shop", "--mode", "inventory=edge"}, []string{"roam dist --push REPO pushes REPO/inventory-wasm"}},
	} {
		roamFails(t, c.want, c.args...)
	}
	var out bytes.Buffer
	if err := run(context.Background(), []string{"operator"}, &out, &out); err != nil || !strings.Contains(out.String(), "install") {
		t.Errorf("roam operator: %v\n%s", err, out.String())
	}
}

// TestCLIAuditHostFlagsFirst: roam run refuses host settings that cannot
// work before it builds anything (the host said so only after the build,
// or took its default silently), and roam edge before it loads a module.
// Each case names a package or module that does not exist: the error must
// be about the flag, not about what would have been built or loaded.
func TestCLIAuditHostFlagsFirst(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	os.WriteFile(file, nil, 0o644)
	for _, c := range []struct {
		flags []string
		want  string
	}{
		{[]string{"--port", "70000"}, "--port 70000: use 1 to 65535, or 0"},
		{[]string{"--port", "-1"}, "--port -1"},
		{[]string{"--data-dir", file}, "is a file, not a directory"},
		{[]string{"--data-dir", filepath.Join(file, "sub")}, file + " is a file, not a directory"},
		{[]string{"--request-timeout", "-1s"}, "--request-timeout -1s"},
		{[]string{"--max-body-bytes", "-1"}, "--max-body-bytes -1"},
		{[]string{"--shutdown-grace", "-1s"}, "--shutdown-grace -1s"},
		{[]string{"--log-format", "yaml"}, `--log-format "yaml": use text or json`},
		{[]string{"--log-level", "loud"}, `--log-level "loud"`},
		{[]string{"--cors-origins", "ftp://x"}, "--cors-origins"},
	} {
		roamFails(t, []string{c.want}, append([]string{"run", "./no/such/app"}, c.flags...)...)
		roamFails(t, []string{c.want}, append([]string{"edge", filepath.Join(dir, "none.wasm")}, c.flags...)...)
	}
	// A port in use is found before the build too.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	roamFails(t, []string{"port " + port + " on 127.0.0.1 is in use", "--port"}, "run", "./no/such/app", "--port", port)
	// Dapr asked for, and no sidecar to reach.
	for _, k := range []string{"DAPR_GRPC_PORT", "DAPR_HTTP_PORT", "DAPR_GRPC_ENDPOINT", "DAPR_HTTP_ENDPOINT"} {
		t.Setenv(k, "")
	}
	roamFails(t, []string{"--backend dapr: no sidecar address"}, "run", "./no/such/app", "--backend", "dapr", "--port", "0")
	for _, c := range []struct {
		flags []string
		want  string
	}{
		{[]string{"--pool-size", "-1"}, "--pool-size -1"},
		// The base pool is made in full: 100000 instances grew the host by
		// gigabytes a second until the kernel killed it.
		{[]string{"--pool-size", "100000"}, "--pool-memory-mb 256"},
		{[]string{"--max-queue", "-1"}, "--max-queue -1"},
	} {
		roamFails(t, []string{c.want}, append([]string{"edge", filepath.Join(dir, "none.wasm"), "--data-dir", filepath.Join(dir, "d")}, c.flags...)...)
	}
}

// TestCLIAuditBuildTargets: a --target roam cannot build says so before a
// build; --target / used to build for this machine, printing "(/)", and
// js/wasm to fail in bbolt's source.
func TestCLIAuditBuildTargets(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--target", "/"}, `--target "/": use native, wasm, or GOOS/GOARCH`},
		{[]string{"--target", "linux/"}, `--target "linux/"`},
		{[]string{"--target", "js/wasm"}, "--target wasm builds the app as a wasip1 module"},
		{[]string{"--target", "wasip1/wasm"}, "--target wasm builds the app as a wasip1 module"},
		{[]string{"--target", "wasm", "--backends", "dapr"}, "--backends is for native binaries"},
	} {
		roamFails(t, []string{c.want}, append(append([]string{"build"}, c.args...), "-o", filepath.Join(t.TempDir(), "x"), "../../examples/shop/orders")...)
	}
}

// TestCLIAuditOutputPath: roam build's output is named after the first
// argument's directory, in the directory -o names if it names one.
func TestCLIAuditOutputPath(t *testing.T) {
	wd, _ := os.Getwd()
	here := filepath.Base(wd)
	dir := t.TempDir()
	for _, c := range []struct{ o, arg, ext, want string }{
		{"", ".", ".wasm", here + ".wasm"}, // was "..wasm"
		{"", ".", "", here},                // was "app"
		{"", "./...", "", here},
		{"", "../../examples/shop/", "", "shop"},
		{"", "github.com/acme/shop/...", "", "shop"}, // was "..."
		{dir, "../../examples/shop/orders", ".wasm", filepath.Join(dir, "orders.wasm")},
		{filepath.Join(dir, "new") + "/", "../../examples/shop/orders", "", filepath.Join(dir, "new", "orders")},
		{filepath.Join(dir, "bin"), "../../examples/shop/orders", "", filepath.Join(dir, "bin")},
	} {
		got, err := outputPath(c.o, c.arg, c.ext)
		if err != nil || got != c.want {
			t.Errorf("outputPath(%q, %q, %q) = %q, %v; want %q", c.o, c.arg, c.ext, got, err, c.want)
		}
	}
}

// TestCLIAuditBuildElsewhere: roam build of a package named by its path
// from outside its module, into a directory: the module is the package's
// own (go said "directory prefix ... does not contain main module"), and
// the module lands in the directory under the app's directory's name (go
// build wrote a file named after the generated main there).
func TestCLIAuditBuildElsewhere(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a wasm module")
	}
	orders, err := filepath.Abs("../../examples/shop/orders")
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	t.Chdir(t.TempDir())
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), []string{"build", "--target", "wasm", "-o", out, orders}, &stdout, &stderr); err != nil {
		t.Fatalf("roam build: %v\n%s", err, stderr.String())
	}
	ents, _ := os.ReadDir(out)
	if len(ents) != 1 || ents[0].Name() != "orders.wasm" {
		t.Fatalf("%s holds %v, want orders.wasm", out, ents)
	}
	if want := "built " + filepath.Join(out, "orders.wasm"); !strings.Contains(stdout.String(), want) {
		t.Errorf("stdout %q lacks %q", stdout.String(), want)
	}
}

// TestCLIAuditExitCode: a command a signal stopped exits as shells expect
// of one killed by it.
func TestCLIAuditExitCode(t *testing.T) {
	for _, c := range []struct {
		err  error
		want int
	}{
		{fmt.Errorf("x: %w while building", &host.ShutdownSignal{Signal: syscall.SIGINT}), 130},
		{fmt.Errorf("%w while building", &host.ShutdownSignal{Signal: syscall.SIGTERM}), 143},
		{errors.New("go build failed"), 1},
		{context.Canceled, 1},
	} {
		if got := exitCode(c.err); got != c.want {
			t.Errorf("exitCode(%v) = %d, want %d", c.err, got, c.want)
		}
	}
}

// TestCLIAuditRunStopped: roam run stopped by a signal before its build
// ends returns the signal, and does not start the host.
func TestCLIAuditRunStopped(t *testing.T) {
	defer noExec(t)()
	ctx, cancel := context.WithCancelCause(context.Background())
	cause := &host.ShutdownSignal{Signal: syscall.SIGINT}
	cancel(cause)
	var out bytes.Buffer
	err := run(ctx, []string{"run", "../../examples/shop/orders", "--port", "0", "--data-dir", t.TempDir()}, &out, &out)
	if !errors.Is(err, cause) || exitCode(err) != 130 {
		t.Fatalf("roam run: %v (exit %d), want the interrupt", err, exitCode(err))
	}
}

// noExec makes roam run's exec of the host fail the test; the returned
// func restores it.
func noExec(t *testing.T) func() {
	prev := execHost
	execHost = func(argv0 string, argv []string, envv []string) error {
		t.Errorf("roam run started the host %s", argv0)
		return errors.New("exec refused by the test")
	}
	return func() { execHost = prev }
}

// TestCLIAuditWebPage: the page beside the apps is found whether their
// directory is named as ./examples/shop or as ./examples/shop/....
func TestCLIAuditWebPage(t *testing.T) {
	page, _ := filepath.Abs("../../examples/shop/web")
	for _, arg := range []string{"../../examples/shop", "../../examples/shop/..."} {
		got := webArgs(context.Background(), io.Discard, []string{arg}, nil, t.TempDir())
		if !slices.Contains(got, page) {
			t.Errorf("%s: %v, want --web-dir %s", arg, got, page)
		}
	}
}

// TestCLIAuditRunElsewhere: roam run of an app named by its path from
// outside its module builds the host and the app's wasm module there, and
// starts the host with both (the module was built by import path, which
// does not resolve outside the module: "does not build as a wasm module").
func TestCLIAuditRunElsewhere(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the native host and a wasm module")
	}
	orders, err := filepath.Abs("../../examples/shop/orders")
	if err != nil {
		t.Fatal(err)
	}
	var argv []string
	prev := execHost
	defer func() { execHost = prev }()
	started := errors.New("host started")
	execHost = func(argv0 string, a []string, envv []string) error {
		argv = a
		return started
	}
	// roam run keeps its build under the user cache directory, by working
	// directory: this test's is new each time. Go's cache stays where it is.
	gocache, err := exec.Command("go", "env", "GOCACHE").Output()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("GOCACHE", strings.TrimSpace(string(gocache)))
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	t.Chdir(t.TempDir())
	var out bytes.Buffer
	err = run(context.Background(), []string{"run", orders, "--port", "0", "--data-dir", t.TempDir()}, &out, &out)
	if !errors.Is(err, started) {
		t.Fatalf("roam run: %v\n%s", err, out.String())
	}
	if strings.Contains(out.String(), "does not build") {
		t.Errorf("roam run:\n%s", out.String())
	}
	i := slices.Index(argv, "--web-modules")
	if i < 0 || i+1 >= len(argv) {
		t.Fatalf("host args %v lack --web-modules", argv)
	}
	if _, err := os.Stat(filepath.Join(argv[i+1], "orders.wasm")); err != nil {
		t.Errorf("the module is not served: %v", err)
	}
}
