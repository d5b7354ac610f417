package edge

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/roam-dev/roam/host"
	"github.com/roam-dev/roam/internal/syncbuf"
)

// fcConfig is a Config as roam edge's flag defaults make it, on fresh
// directories, running paths.
func fcConfig(t *testing.T, paths ...string) Config {
	t.Helper()
	dir := t.TempDir()
	var c Config
	c.Paths = paths
	c.Addr, c.Port, c.DataDir = "127.0.0.1", 0, filepath.Join(dir, "data")
	c.LogLevel, c.LogFormat = "info", "text"
	c.MaxBodyBytes = 4 << 20
	c.RequestTimeout = 30 * time.Second
	c.ShutdownGrace = 10 * time.Second
	c.PoolMemoryMB = DefaultPoolMemoryBytes >> 20
	c.PoolIdleTimeout = DefaultIdleTimeout
	c.MaxQueue = DefaultMaxQueue
	c.MemoryLimitMB = DefaultMemoryLimitPages / 16
	c.CacheDir = filepath.Join(dir, "cache")
	return c
}

// TestFlagCheckRun: the edge host's Run (what roam edge and roam-edge
// call) refuses the settings that cannot work before it opens the backend
// or the runtime, or reads a module: the message is about the setting,
// not about the module named, which does not exist. Run used to take a
// --pool-size -1 for the default and a negative --max-queue for no queue,
// build a base pool whatever its size, and go on to the modules.
func TestFlagCheckRun(t *testing.T) {
	for _, c := range []struct {
		set  func(*Config)
		want string
	}{
		{func(c *Config) { c.PoolSize = -1 }, "--pool-size -1: use 1 or more, or 0 for the default (4 per CPU, at least 4, at most 12)"},
		{func(c *Config) { c.PoolSize = 100000 }, "the base pool alone would exceed --pool-memory-mb 256"},
		{func(c *Config) { c.PoolSize, c.PoolMemoryMB = 600, 0 }, "--pool-size 600: at 1 MiB or more an instance"},
		{func(c *Config) { c.MaxQueue = -1 }, "--max-queue -1: use 0 for no queue"},
		{func(c *Config) { c.Port = 70000 }, "--port 70000: use 1 to 65535, or 0 for a free one"},
		{func(c *Config) { c.MaxBodyBytes = -5 }, "--max-body-bytes -5"},
		{func(c *Config) { c.ShutdownDrain = -time.Second }, "--shutdown-drain -1s: use a positive duration"},
		{func(c *Config) { c.ShutdownDrain = time.Minute }, "--shutdown-drain 1m0s is longer than --shutdown-grace 10s"},
		{func(c *Config) { c.LogFormat = "yml" }, `--log-format "yml"`},
		{func(c *Config) { c.MemoryLimitMB = 5000 }, "--memory-limit-mb 5000"},
	} {
		cfg := fcConfig(t, filepath.Join(t.TempDir(), "none.wasm"))
		c.set(&cfg)
		var stdout, stderr bytes.Buffer
		err := Run(context.Background(), cfg, &stdout, &stderr)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Run: %v, want an error containing %q", err, c.want)
		}
		for _, d := range []string{cfg.DataDir, cfg.CacheDir} {
			if _, err := os.Stat(d); err == nil {
				t.Errorf("%q: %s was made before the setting was refused", c.want, d)
			}
		}
		if stdout.Len() > 0 {
			t.Errorf("%q: Run printed %q before the setting was refused", c.want, stdout.String())
		}
	}
	// The defaults, and a large pool in a large enough budget, pass.
	cfg := fcConfig(t)
	if err := cfg.Check(); err != nil {
		t.Errorf("the defaults: %v", err)
	}
	cfg.PoolSize, cfg.PoolMemoryMB = 600, 1024
	if err := cfg.Check(); err != nil {
		t.Errorf("600 instances in 1024 MiB: %v", err)
	}
}

// TestFlagCheckManifestPool: a manifest entry whose base pool cannot fit
// in its memory budget is refused at load, naming the entry, by the rule
// that refuses --pool-size (it was made in full whatever the budget); a
// default pool is never refused, whatever the budget.
func TestFlagCheckManifestPool(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, c := range []struct {
		name, body string
		defaults   ModuleOptions
		want       []string
	}{
		{"over.json", `{"modules": [{"path": "a.wasm"}, {"path": "orders.wasm", "pool_size": 600, "pool_memory_mb": 100}]}`, ModuleOptions{},
			[]string{"over.json, module 1 (orders.wasm)", "pool_size 600", "would exceed pool_memory_mb 100", "lower pool_size, or raise pool_memory_mb"}},
		{"default-budget.json", `{"modules": [{"path": "orders.wasm", "pool_size": 600}]}`, ModuleOptions{},
			[]string{"module 0 (orders.wasm)", "pool_size 600", "would exceed --pool-memory-mb 256"}},
		{"flag-budget.json", `{"modules": [{"path": "orders.wasm", "pool_size": 300}]}`, ModuleOptions{PoolMemoryBytes: 200 << 20},
			[]string{"module 0 (orders.wasm)", "pool_size 300", "would exceed --pool-memory-mb 200"}},
		{"flag-size.json", `{"modules": [{"path": "orders.wasm", "pool_memory_mb": 100}]}`, ModuleOptions{PoolSize: 200},
			[]string{"module 0 (orders.wasm)", "--pool-size 200", "would exceed pool_memory_mb 100"}},
	} {
		_, err := ModuleSpecs([]string{write(c.name, c.body)}, c.defaults, nil)
		if err == nil {
			t.Errorf("%s: accepted", c.name)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %q lacks %q", c.name, err, w)
			}
		}
	}
	for _, c := range []struct {
		name, body string
		defaults   ModuleOptions
		pool       int
	}{
		{"defaults.json", `{"modules": [{"path": "orders.wasm"}]}`, ModuleOptions{}, 0},
		{"tiny-budget.json", `{"modules": [{"path": "orders.wasm", "pool_memory_mb": 1}]}`, ModuleOptions{}, 0},
		{"fits.json", `{"modules": [{"path": "orders.wasm", "pool_size": 100, "pool_memory_mb": 100}]}`, ModuleOptions{}, 100},
		{"big-budget.json", `{"modules": [{"path": "orders.wasm", "pool_size": 600, "pool_memory_mb": 1024}]}`, ModuleOptions{}, 600},
	} {
		specs, err := ModuleSpecs([]string{write(c.name, c.body)}, c.defaults, nil)
		if err != nil || len(specs) != 1 || specs[0].Options.PoolSize != c.pool {
			t.Errorf("%s: %+v, %v; want one spec of pool size %d", c.name, specs, err, c.pool)
		}
	}
}

// TestFlagCheckDrainAndDefaultPool: Run with a manifest whose entry keeps
// the default pool in a budget of 1 MiB loads it and serves (a default pool
// is never refused), and --shutdown-drain reaches ServeOptions.Drain: after
// a SIGTERM the host drains for it, not for the default 5 s.
func TestFlagCheckDrainAndDefaultPool(t *testing.T) {
	manifest := filepath.Join(t.TempDir(), "edge.json")
	body := `{"modules": [{"path": "` + filepath.Join(modDir, "testapp.wasm") + `", "pool_memory_mb": 1}]}`
	if err := os.WriteFile(manifest, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := fcConfig(t, manifest)
	cfg.CacheDir = cacheDir
	cfg.ShutdownDrain = 250 * time.Millisecond
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	pr, pw := io.Pipe()
	stderr := &syncbuf.Buffer{}
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, cfg, pw, stderr)
		pw.Close()
	}()
	select {
	case <-sdReady(pr):
	case err := <-done:
		t.Fatalf("Run: %v\n%s", err, stderr)
	case <-time.After(3 * time.Minute):
		t.Fatalf("the edge host is not ready:\n%s", stderr)
	}
	start := time.Now()
	cancel(&host.ShutdownSignal{Signal: syscall.SIGTERM})
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run after a SIGTERM: %v\n%s", err, stderr)
		}
	case <-time.After(3 * time.Minute):
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
