package edge

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/roam-dev/roam/backend/memory"
	"github.com/roam-dev/roam/internal/build"
	"github.com/roam-dev/roam/sdk"
)

// TestGrants: a module sees no environment and no files by default; a
// manifest grants exactly what it names, read-only where it says so.
func TestGrants(t *testing.T) {
	dir := t.TempDir()
	root, _ := filepath.Abs("../..")
	wasmPath := filepath.Join(dir, "grants.wasm")
	if _, err := build.Wasm(context.Background(), build.Options{Dir: root, Patterns: []string{"./host/edge/testdata/grantsapp"}, Out: wasmPath, Release: true}); err != nil {
		t.Fatal(err)
	}
	assets := filepath.Join(dir, "assets")
	os.Mkdir(assets, 0o755)
	os.WriteFile(filepath.Join(assets, "hello.txt"), []byte("hi from the host"), 0o644)
	manifest := filepath.Join(dir, "edge.json")
	os.WriteFile(manifest, []byte(`{"modules": [{"path": "grants.wasm", "pool_size": 1, "timeout": "5s",
		"env": {"REGION": "eu-west"},
		"mounts": [{"host": "./assets", "guest": "/assets", "read_only": true}]}]}`), 0o644)
	os.Setenv("ROAM_HOST_SECRET", "must-not-leak")
	defer os.Unsetenv("ROAM_HOST_SECRET")

	rt := newRuntime(t, nil)
	b := memory.New(memory.Options{})
	defer b.Close()
	bind := Binding{Backend: b, Logger: testLogger(t)}
	call := func(m *Module, method, body string) (string, error) {
		out, err := m.Call(context.Background(), method, []byte(body))
		return string(out), err
	}

	// Without a manifest: nothing.
	specs, err := ModuleSpecs([]string{wasmPath}, ModuleOptions{PoolSize: 1})
	if err != nil {
		t.Fatal(err)
	}
	bare, err := rt.Load(context.Background(), mustRead(t, specs[0].Path), specs[0].Options, bind)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"REGION", "ROAM_HOST_SECRET", "PATH", "HOME"} {
		if out, err := call(bare, "Getenv", `{"Key":"`+key+`"}`); err != nil || out != `{"Value":""}` {
			t.Errorf("ungranted env %s: %s %v", key, out, err)
		}
	}
	if _, err := call(bare, "ReadFile", `{"Path":"/assets/hello.txt"}`); sdk.CodeOf(err) != sdk.NotFound {
		t.Errorf("ungranted file read: %v", err)
	}
	if _, err := call(bare, "ReadFile", `{"Path":"/etc/passwd"}`); sdk.CodeOf(err) != sdk.NotFound {
		t.Errorf("host file visible: %v", err)
	}
	bare.Close(context.Background())

	// With the manifest: exactly the grants.
	specs, err = ModuleSpecs([]string{manifest}, ModuleOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(specs) != 1 || specs[0].Options.PoolSize != 1 || specs[0].Path != wasmPath {
		t.Fatalf("specs: %+v", specs)
	}
	m, err := rt.Load(context.Background(), mustRead(t, specs[0].Path), specs[0].Options, bind)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close(context.Background())
	if out, err := call(m, "Getenv", `{"Key":"REGION"}`); err != nil || out != `{"Value":"eu-west"}` {
		t.Errorf("granted env: %s %v", out, err)
	}
	if out, err := call(m, "Getenv", `{"Key":"ROAM_HOST_SECRET"}`); err != nil || out != `{"Value":""}` {
		t.Errorf("host env leaked: %s %v", out, err)
	}
	if out, err := call(m, "ReadFile", `{"Path":"/assets/hello.txt"}`); err != nil || out != `{"Data":"hi from the host"}` {
		t.Errorf("granted read: %s %v", out, err)
	}
	if _, err := call(m, "WriteFile", `{"Path":"/assets/new.txt","Data":"x"}`); sdk.CodeOf(err) != sdk.FailedPrecondition {
		t.Errorf("write to a read-only mount: %v", err)
	}
	if _, err := os.Stat(filepath.Join(assets, "new.txt")); err == nil {
		t.Error("the read-only mount was written")
	}
}

func TestManifestErrors(t *testing.T) {
	dir := t.TempDir()
	for name, body := range map[string]string{
		"unknown field": `{"modules": [{"path": "x.wasm", "sockets": true}]}`,
		"no modules":    `{"modules": []}`,
		"no path":       `{"modules": [{"pool_size": 1}]}`,
		"bad timeout":   `{"modules": [{"path": "x.wasm", "timeout": "soon"}]}`,
		"bad mount":     `{"modules": [{"path": "x.wasm", "mounts": [{"host": "./nope", "guest": "/x"}]}]}`,
		"relative":      `{"modules": [{"path": "x.wasm", "mounts": [{"host": ".", "guest": "x"}]}]}`,
	} {
		p := filepath.Join(dir, strings.ReplaceAll(name, " ", "-")+".json")
		os.WriteFile(p, []byte(body), 0o644)
		if _, err := ModuleSpecs([]string{p}, ModuleOptions{}); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
