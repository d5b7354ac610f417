package build

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestCLIAuditOtherDirectory: a package is found, and built, in its own
// module whatever the directory roam runs in: one in no module (cd /tmp &&
// roam build ~/src/shop/orders) or in another module. go list used to run
// in that directory and say "directory prefix ... does not contain main
// module".
func TestCLIAuditOtherDirectory(t *testing.T) {
	orders, err := filepath.Abs("../../examples/shop/orders")
	if err != nil {
		t.Fatal(err)
	}
	other := t.TempDir()
	if err := os.WriteFile(filepath.Join(other, "go.mod"), []byte("module example.com/other\n\ngo 1.26\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{t.TempDir(), other} {
		pkgs, modRoot, err := FindApps(context.Background(), dir, []string{orders})
		if err != nil {
			t.Fatalf("from %s: %v", dir, err)
		}
		if len(pkgs) != 1 || pkgs[0].ImportPath != "github.com/roam-dev/roam/examples/shop/orders" {
			t.Fatalf("from %s: %+v", dir, pkgs)
		}
		if root, _ := filepath.Abs("../.."); modRoot != root {
			t.Errorf("from %s: module root %s, want %s", dir, modRoot, root)
		}
	}
}

// TestCLIAuditPatterns: what the user names is checked before go list
// sees it, and its mistakes are said plainly.
func TestCLIAuditPatterns(t *testing.T) {
	dir := t.TempDir()
	notes := filepath.Join(dir, "notes.txt")
	os.WriteFile(notes, []byte("x"), 0o644)
	other := t.TempDir()
	os.WriteFile(filepath.Join(other, "go.mod"), []byte("module example.com/other\n\ngo 1.26\n"), 0o644)
	os.WriteFile(filepath.Join(other, "a.go"), []byte("package other\n"), 0o644)
	for _, c := range []struct {
		patterns []string
		want     []string
		not      []string
	}{
		{[]string{"./no/such"}, []string{"./no/such: no such directory"}, []string{"lstat", "/..."}},
		{[]string{"./build.go"}, []string{"./build.go is a Go file", "name the directory of its package, ."}, []string{"lstat"}},
		{[]string{"./testdata/ids/lit/lit.go"}, []string{"its package, ./testdata/ids/lit"}, nil},
		{[]string{notes}, []string{"notes.txt is a file, not a directory"}, []string{"lstat"}},
		{[]string{dir}, []string{"is in no Go module", "go mod init"}, nil},
		// Two modules at once: go runs in the first's.
		{[]string{"./testdata/ids/lit", other}, []string{other, "one module"}, nil},
	} {
		_, _, err := FindApps(context.Background(), ".", c.patterns)
		if err == nil {
			t.Errorf("%v: no error", c.patterns)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%v: %q lacks %q", c.patterns, err, w)
			}
		}
		for _, n := range c.not {
			if strings.Contains(err.Error(), n) {
				t.Errorf("%v: %q has %q", c.patterns, err, n)
			}
		}
	}
	// A directory named without ./ is a directory, not a package of the
	// standard library ("package testdata/ids/lit is not in std").
	pkgs, _, err := FindApps(context.Background(), ".", []string{"testdata/ids/lit"})
	if err != nil || len(pkgs) != 1 || pkgs[0].AppIDs[0] != "literal" {
		t.Fatalf("testdata/ids/lit: %+v, %v", pkgs, err)
	}
}

// TestCLIAuditAppIDs: ids that sdk.NewApp would panic on at init are
// refused before a build: roam build used to write a binary that could
// only panic ("apps: same, same"), and roam run printed the panic.
func TestCLIAuditAppIDs(t *testing.T) {
	for _, c := range []struct {
		pattern string
		want    []string
	}{
		{"./testdata/cliaudit/dup*", []string{`app id "same" is declared by both`, "cliaudit/dup1", "cliaudit/dup2"}},
		{"./testdata/cliaudit/twice", []string{"cliaudit/twice declares app \"twice\" twice"}},
		{"./testdata/cliaudit/badid", []string{"cliaudit/badid", `"Orders_v2" is not a DNS label`}},
	} {
		patterns := []string{c.pattern}
		if strings.HasSuffix(c.pattern, "*") {
			patterns = []string{"./testdata/cliaudit/dup1", "./testdata/cliaudit/dup2"}
		}
		_, _, err := FindApps(context.Background(), ".", patterns)
		if err == nil {
			t.Errorf("%s: no error", c.pattern)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %q lacks %q", c.pattern, err, w)
			}
		}
	}
	// An id repeated in a call that need not run is left to run time.
	pkgs, _, err := FindApps(context.Background(), ".", []string{"./testdata/cliaudit/factory"})
	if err != nil || len(pkgs) != 1 {
		t.Fatalf("factory: %+v, %v", pkgs, err)
	}
}

// TestCLIAuditOutIsDirectory: an output that is a directory is refused;
// go build wrote a file named after the generated main into it.
func TestCLIAuditOutIsDirectory(t *testing.T) {
	out := t.TempDir()
	_, err := Wasm(context.Background(), Options{Dir: "../..", Patterns: []string{"./examples/shop/orders"}, Out: out})
	if err == nil || !strings.Contains(err.Error(), "is a directory") {
		t.Fatalf("Out %s: %v", out, err)
	}
	if ents, _ := os.ReadDir(out); len(ents) != 0 {
		t.Fatalf("wrote into %s: %v", out, ents)
	}
}

// TestCLIAuditGoSumHint: a module that requires roam but imports only its
// SDK (what go mod tidy leaves) lacks the go.sum entries of the host that
// roam links in; the error says how to keep them, where go's own advice
// (go get .../host@v0.0.0) lasts only until the next tidy.
func TestCLIAuditGoSumHint(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go mod tidy and go build")
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for name, body := range map[string]string{
		"go.mod": "module example.com/shop\n\ngo 1.26\n\nrequire github.com/roam-dev/roam v0.0.0\n\nreplace github.com/roam-dev/roam => " + root + "\n",
		"app.go": "package shop\n\nimport \"github.com/roam-dev/roam/sdk\"\n\nvar App = sdk.NewApp(\"shop\", func(sdk.Env, *sdk.Router) error { return nil })\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tidy := exec.Command("go", "mod", "tidy")
	tidy.Dir = dir
	tidy.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOPROXY=off", "GOWORK=off")
	if out, err := tidy.CombinedOutput(); err != nil {
		t.Skipf("cannot set up the module offline: %v\n%s", err, out)
	}
	t.Setenv("GOWORK", "off")
	_, err = Native(context.Background(), Options{Dir: dir, Patterns: []string{"."}, Out: filepath.Join(t.TempDir(), "shop")})
	if err == nil {
		t.Skip("built: go mod tidy kept the host's sums")
	}
	for _, w := range []string{"missing go.sum entry", "go mod tidy leaves them out", "cd " + dir + " && go get -tool github.com/roam-dev/roam/cmd/roam@v0.0.0"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error lacks %q:\n%s", w, err)
		}
	}
}

// TestCLIAuditInternalApps: apps that no one main package may import
// together are refused with a reason; go's error named roam's generated
// main ("use of internal package ... not allowed"), which the user cannot
// change.
func TestCLIAuditInternalApps(t *testing.T) {
	_, err := Native(context.Background(), Options{Dir: "../..", Patterns: []string{"./e2e/internal/emptyapp", "./examples/shop/orders"}, Out: filepath.Join(t.TempDir(), "x")})
	if err == nil || !strings.Contains(err.Error(), "e2e/internal/emptyapp is internal to") || !strings.Contains(err.Error(), "build them apart") {
		t.Fatalf("internal app beside another: %v", err)
	}
}
