package edge

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

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
	specs, err := ModuleSpecs([]string{wasmPath}, ModuleOptions{PoolSize: 1}, nil)
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
	specs, err = ModuleSpecs([]string{manifest}, ModuleOptions{}, nil)
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
		"unknown field":        `{"modules": [{"path": "x.wasm", "sockets": true}]}`,
		"no modules":           `{"modules": []}`,
		"no path":              `{"modules": [{"pool_size": 1}]}`,
		"bad timeout":          `{"modules": [{"path": "x.wasm", "timeout": "soon"}]}`,
		"max below pool":       `{"modules": [{"path": "x.wasm", "pool_size": 8, "max_pool_size": 4}]}`,
		"negative max":         `{"modules": [{"path": "x.wasm", "max_pool_size": -1}]}`,
		"negative pool memory": `{"modules": [{"path": "x.wasm", "pool_memory_mb": -1}]}`,
		"bad idle timeout":     `{"modules": [{"path": "x.wasm", "idle_timeout": "-1s"}]}`,
		"bad mount":            `{"modules": [{"path": "x.wasm", "mounts": [{"host": "./nope", "guest": "/x"}]}]}`,
		"relative":             `{"modules": [{"path": "x.wasm", "mounts": [{"host": ".", "guest": "x"}]}]}`,
	} {
		p := filepath.Join(dir, strings.ReplaceAll(name, " ", "-")+".json")
		os.WriteFile(p, []byte(body), 0o644)
		if _, err := ModuleSpecs([]string{p}, ModuleOptions{}, nil); err == nil {
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

// TestManifestPool: a manifest's pool fields become the module's options;
// the flags' values stand where the manifest says nothing.
func TestManifestPool(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "edge.json")
	os.WriteFile(p, []byte(`{"modules": [
		{"path": "a.wasm", "pool_size": 2, "max_pool_size": 6, "pool_memory_mb": 64, "idle_timeout": "5s"},
		{"path": "b.wasm", "max_pool_size": 3},
		{"path": "c.wasm"}]}`), 0o644)
	defaults := ModuleOptions{MaxPoolSize: 16, PoolMemoryBytes: 128 << 20, IdleTimeout: time.Minute}
	specs, err := ModuleSpecs([]string{p}, defaults, nil)
	if err != nil {
		t.Fatal(err)
	}
	a, b, c := specs[0].Options, specs[1].Options, specs[2].Options
	if a.PoolSize != 2 || a.MaxPoolSize != 6 || a.PoolMemoryBytes != 64<<20 || a.IdleTimeout != 5*time.Second {
		t.Errorf("a: %+v", a)
	}
	if b.MaxPoolSize != 3 || b.PoolMemoryBytes != 128<<20 || b.withDefaults().PoolSize != min(DefaultPoolSize(), 3) {
		t.Errorf("b: %+v", b)
	}
	if c.MaxPoolSize != 16 || c.IdleTimeout != time.Minute {
		t.Errorf("c: %+v", c)
	}
	// A ceiling below the flags' pool size is an error too.
	os.WriteFile(p, []byte(`{"modules": [{"path": "a.wasm", "max_pool_size": 2}]}`), 0o644)
	if _, err := ModuleSpecs([]string{p}, ModuleOptions{PoolSize: 4}, nil); err == nil || !strings.Contains(err.Error(), "max_pool_size 2 is below the pool size 4") {
		t.Errorf("max_pool_size below --pool-size: %v", err)
	}
}

// TestConfigPoolFlags: the pool flags become module options, and values
// that make no sense are refused with what to do.
func TestConfigPoolFlags(t *testing.T) {
	c := Config{PoolSize: 4, MaxPoolSize: 12, PoolMemoryMB: 100, PoolIdleTimeout: time.Second, MaxQueue: 0}
	o, err := c.moduleOptions()
	if err != nil {
		t.Fatal(err)
	}
	if o.PoolSize != 4 || o.MaxPoolSize != 12 || o.PoolMemoryBytes != 100<<20 || o.IdleTimeout != time.Second || o.MaxQueue != NoQueue {
		t.Errorf("options %+v", o)
	}
	for _, c := range []struct {
		c    Config
		want string
	}{
		{Config{PoolSize: 8, MaxPoolSize: 4}, "--max-pool-size 4 is below --pool-size 8"},
		{Config{MaxPoolSize: -2}, "--max-pool-size -2"},
		{Config{PoolMemoryMB: -1}, "--pool-memory-mb -1"},
		{Config{PoolIdleTimeout: -time.Second}, "--pool-idle-timeout -1s"},
		{Config{MemoryLimitMB: 5000}, "--memory-limit-mb 5000"},
	} {
		if _, err := c.c.moduleOptions(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want an error about %s", c.c, err, c.want)
		}
	}
}

// TestReadAhead: a spec read ahead gives its file's bytes, or the error of
// reading it, as a plain read would.
func TestReadAhead(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a.wasm")
	if err := os.WriteFile(path, []byte("\x00asm"), 0o644); err != nil {
		t.Fatal(err)
	}
	specs := []Spec{{Path: path}, {Path: filepath.Join(dir, "missing.wasm")}}
	readAhead(specs)
	if b, err := specs[0].read(); err != nil || string(b) != "\x00asm" {
		t.Errorf("read ahead: %q, %v", b, err)
	}
	if _, err := specs[1].read(); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file read ahead: %v, want not-exist", err)
	}
	if b, err := (Spec{Path: path}).read(); err != nil || string(b) != "\x00asm" {
		t.Errorf("plain read: %q, %v", b, err)
	}
}
