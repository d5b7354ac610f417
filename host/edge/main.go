package edge

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/roam-dev/roam/backend"
	"github.com/roam-dev/roam/backend/embedded"
	"github.com/roam-dev/roam/host"
	"github.com/roam-dev/roam/host/hostbackend"
	"github.com/roam-dev/roam/internal/wasmrt"
	// The edge host (the roam CLI) always links tracing.
	_ "github.com/roam-dev/roam/host/telemetry"
)

// Config is the edge host's configuration: the native host's flags plus
// the pool's and the runtime's.
type Config struct {
	// Paths are .wasm files, directories whose *.wasm files are loaded, or
	// .json manifests (see Manifest).
	Paths []string
	host.Flags
	DefaultApp string
	// PoolSize is each module's base instance count (0: DefaultPoolSize()).
	PoolSize int
	// MaxPoolSize is how many instances a module's pool may grow to while
	// calls queue (0: DefaultMaxPoolSize(PoolSize); PoolSize for a fixed
	// pool).
	MaxPoolSize int
	// PoolMemoryMB stops a pool's growth once its instances' linear memory
	// adds up to it (0: DefaultPoolMemoryBytes).
	PoolMemoryMB int
	// PoolIdleTimeout closes the instances above PoolSize that stayed idle
	// this long (0: DefaultIdleTimeout).
	PoolIdleTimeout time.Duration
	// MaxQueue is how many calls may wait for an instance (0: none).
	MaxQueue int
	// MemoryLimitMB caps each instance's memory (0: 64).
	MemoryLimitMB int
	// CacheDir holds compiled modules (default: the user cache directory).
	CacheDir string
	// Watch reloads a module when its file changes.
	Watch         bool
	WatchInterval time.Duration // default 500ms
}

// Check refuses the settings that cannot work, before Run opens anything:
// the host's (host.Flags.Check), then a negative --pool-size or
// --max-queue (which moduleOptions would take as the default and as no
// queue), a base pool that cannot fit in --pool-memory-mb (basePoolFits),
// and the pool and memory settings moduleOptions refuses.
func (c Config) Check() error {
	if err := c.Flags.Check(); err != nil {
		return err
	}
	budget := poolBudgetMiB(c.PoolMemoryMB)
	switch {
	case c.PoolSize < 0:
		return fmt.Errorf("--pool-size %d: use 1 or more, or 0 for the default (4 per CPU, at least 4, at most 12)", c.PoolSize)
	case !basePoolFits(c.PoolSize, budget):
		return fmt.Errorf("--pool-size %d: at %d MiB or more an instance (a Go module's takes about 4), the base pool alone would exceed --pool-memory-mb %d: lower --pool-size, or raise --pool-memory-mb", c.PoolSize, minInstanceMiB, budget)
	case c.MaxQueue < 0:
		return fmt.Errorf("--max-queue %d: use 0 for no queue, or the number of calls that may wait", c.MaxQueue)
	}
	_, err := c.moduleOptions()
	return err
}

// minInstanceMiB is the least memory a wasm instance of a Go module
// holds: a fresh one takes about 4 MiB, so a base pool of more than a
// pool's memory budget / minInstanceMiB instances could not fit in it.
const minInstanceMiB = 1

// poolBudgetMiB is the memory budget of a pool whose --pool-memory-mb or
// pool_memory_mb is mb (0: DefaultPoolMemoryBytes), in MiB.
func poolBudgetMiB(mb int) int {
	if mb == 0 {
		return DefaultPoolMemoryBytes >> 20
	}
	return mb
}

// basePoolFits is the one rule by which both --pool-size and a manifest's
// pool_size are refused: a base pool of size instances fits in budgetMiB
// unless it holds more than budgetMiB / minInstanceMiB of them. The base
// pool is made in full at load whatever the budget (which bounds growth
// only), so --pool-size 100000 grew the host by gigabytes a second until
// the kernel killed it. A default pool (size 0: at most 12 instances) is
// never refused, whatever the budget; a negative size or budget is left
// to the checks that refuse it.
func basePoolFits(size, budgetMiB int) bool {
	return size <= 0 || budgetMiB <= 0 || size <= budgetMiB/minInstanceMiB
}

// moduleOptions checks the pool and memory settings and turns them into
// the modules' default options.
func (c *Config) moduleOptions() (ModuleOptions, error) {
	switch {
	case c.MemoryLimitMB < 0 || c.MemoryLimitMB > 4096:
		return ModuleOptions{}, fmt.Errorf("--memory-limit-mb %d: use 1 to 4096", c.MemoryLimitMB)
	case c.MaxPoolSize < 0:
		return ModuleOptions{}, fmt.Errorf("--max-pool-size %d: use 0 for the default (4 × --pool-size, at most %d), or a size no smaller than --pool-size", c.MaxPoolSize, maxPoolCeiling)
	case c.MaxPoolSize > 0 && c.PoolSize > c.MaxPoolSize:
		return ModuleOptions{}, fmt.Errorf("--max-pool-size %d is below --pool-size %d: raise it (equal keeps the pool fixed), or leave it out for %d", c.MaxPoolSize, c.PoolSize, DefaultMaxPoolSize(c.PoolSize))
	case c.PoolMemoryMB < 0 || c.PoolMemoryMB > 1<<20:
		return ModuleOptions{}, fmt.Errorf("--pool-memory-mb %d: use 1 to %d (0 takes the default, %d)", c.PoolMemoryMB, 1<<20, DefaultPoolMemoryBytes>>20)
	case c.PoolIdleTimeout < 0:
		return ModuleOptions{}, fmt.Errorf("--pool-idle-timeout %s: want a positive duration such as 30s", c.PoolIdleTimeout)
	}
	mo := ModuleOptions{PoolSize: c.PoolSize, MaxPoolSize: c.MaxPoolSize, MaxQueue: c.MaxQueue,
		PoolMemoryBytes: uint64(c.PoolMemoryMB) << 20, IdleTimeout: c.PoolIdleTimeout, Timeout: c.RequestTimeout}
	if c.MaxQueue == 0 {
		mo.MaxQueue = NoQueue
	}
	if c.MemoryLimitMB > 0 {
		mo.MemoryLimitPages = uint32(c.MemoryLimitMB) * 16
	}
	return mo, nil
}

// DefaultCacheDir is where compiled modules are cached by default.
func DefaultCacheDir() string {
	d, err := os.UserCacheDir()
	if err != nil {
		d = os.TempDir()
	}
	return filepath.Join(d, "roam", "edge")
}

// Run checks c (Check), loads the modules and serves them on the chosen
// backend until ctx is done. It writes the human-facing start-up lines to
// stdout and logs to stderr.
func Run(ctx context.Context, c Config, stdout, stderr io.Writer) (err error) {
	start := time.Now()
	// Settings that cannot work are refused before anything is opened or
	// loaded (roam edge and roam-edge report them as any error: exit 1).
	if err := c.Check(); err != nil {
		return err
	}
	log, logs, err := host.NewLogger(c.LogLevel, c.LogFormat, stderr)
	if err != nil {
		return err
	}
	defer logs.Close()
	mo, err := c.moduleOptions()
	if err != nil {
		return err
	}
	dataDir, err := filepath.Abs(c.DataDir)
	if err != nil {
		return err
	}
	cfg, secrets, err := host.LoadDataConfig(dataDir)
	if err != nil {
		return err
	}
	if c.CacheDir == "" {
		c.CacheDir = DefaultCacheDir()
	}
	metrics := host.NewMetrics(logs.Dropped)
	tracing, err := host.TracingFromEnv(ctx, nil, log)
	if err != nil {
		return err
	}
	defer host.FlushTracing(tracing, log)

	// The modules' files are read while the runtime and the backend are
	// set up.
	specs, err := ModuleSpecs(c.Paths, mo, log)
	if err != nil {
		return err
	}
	readAhead(specs)

	// The runtime outlives the backend: the backend's Close waits for the
	// deliveries in flight, which run in the modules.
	rt, err := NewRuntime(ctx, RuntimeOptions{CacheDir: c.CacheDir, Logger: log, Registerer: metrics.Registry})
	if err != nil {
		return err
	}
	defer func() {
		// Close interrupts the calls still running and waits for them; one
		// stuck in a backend call ends at its own deadline. Past the grace,
		// the process exits without closing the runtime.
		cctx, cancel := context.WithTimeout(context.Background(), c.ShutdownGrace+time.Second)
		defer cancel()
		if err := rt.Close(cctx); err != nil {
			log.Warn("edge runtime not closed", "err", err)
		}
	}()
	b, err := hostbackend.Open(ctx, hostbackend.Config{
		Backend: c.Backend, DataDir: dataDir, Config: cfg, Secrets: secrets, Logger: log,
		OnDeliver: metrics.OnDeliver, Tracing: tracing != nil,
	})
	if err != nil {
		return err
	}
	// Last, after the server and the modules have stopped, as on the
	// native host: a Close that fails, does not return in time or leaves a
	// delivery's handler running makes the exit non-zero (CloseBackend).
	var srv *host.Server
	defer func() {
		if cerr := host.CloseBackend(b, srv, host.BackendCloseWait); cerr != nil {
			log.Error("backend not closed cleanly", "err", cerr)
			err = errors.Join(err, cerr)
		}
	}()

	var byID atomic.Value // map[string]*Module, set once the modules load
	byID.Store(map[string]*Module(nil))
	srv = host.NewServer(b, host.Options{
		MaxBodyBytes: c.MaxBodyBytes, RequestTimeout: c.RequestTimeout, Pprof: c.Pprof,
		DefaultApp: c.DefaultApp, Logger: log, Metrics: metrics, Tracing: tracing,
		CORSOrigins: c.Origins(), StateAPI: c.StateAPI, StateAPIToken: os.Getenv(host.EnvStateAPIToken), MaxConnections: c.MaxConnections,
		// The very modules served here also run in browsers: serve their
		// current bytes at /web/modules/{app}.wasm.
		Web: &host.WebAssets{Lookup: func(app string) ([]byte, bool) {
			m, ok := byID.Load().(map[string]*Module)[app]
			if !ok {
				return nil, false
			}
			return m.Wasm(), true
		}},
	})
	fmt.Fprintf(stdout, "roam: edge runtime %s %s, compiled code cached in %s\n", RuntimeName(), RuntimeVersion(), rt.CacheDir())
	// The pools fill once the host is ready: until then the start has the
	// CPU, and each module serves with its first instance.
	fillPools := rt.HoldFills()
	defer fillPools()
	mods, err := LoadFiles(ctx, rt, srv, b, specs, log, stdout)
	if err != nil {
		return err
	}
	// Open (and lock) the apps' data files now, as the native host does: a
	// second host of an app on this data directory fails here.
	ids := make([]string, len(mods))
	served := map[string]*Module{}
	for i, m := range mods {
		ids[i] = m.ID()
		served[m.ID()] = m
	}
	byID.Store(served)
	if eb, ok := b.(*embedded.Backend); ok {
		if err := eb.OpenApps(ids...); err != nil {
			return err
		}
	}
	if err := srv.StartDeliveries(); err != nil {
		return err
	}

	ln, err := host.Listen(c.Addr, c.Port)
	if err != nil {
		return err
	}
	var mln net.Listener // --metrics-port's, when set
	if c.MetricsPort != 0 {
		if mln, err = host.ListenMetrics(c.Addr, c.MetricsPort); err != nil {
			ln.Close()
			return err
		}
	}
	if c.Watch {
		wctx, stop := context.WithCancel(ctx)
		defer stop()
		interval := c.WatchInterval
		if interval <= 0 {
			interval = 500 * time.Millisecond
		}
		w := &Watcher{Interval: interval, Logger: log, Stdout: stdout}
		for i, sp := range specs {
			w.Add(sp.Path, mods[i])
		}
		go w.Run(wctx)
	}
	return host.ServeUntilDone(ctx, srv, b, ln, host.ServeOptions{
		Stdout: stdout, Start: start, DataDir: dataDir, Grace: c.ShutdownGrace, Drain: c.ShutdownDrain, Logger: log,
		Metrics: mln,
		OnReady: fillPools,
	})
}

// ModuleFiles expands paths into module files: a directory stands for the
// *.wasm files in it, sorted.
func ModuleFiles(paths []string) ([]string, error) {
	if len(paths) == 0 {
		return nil, errors.New("no modules: name .wasm files or directories holding them (build one with roam build --target wasm)")
	}
	var out []string
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		if !fi.IsDir() {
			out = append(out, p)
			continue
		}
		found, err := filepath.Glob(filepath.Join(p, "*.wasm"))
		if err != nil {
			return nil, err
		}
		if len(found) == 0 {
			return nil, fmt.Errorf("%s holds no .wasm files (build one with roam build --target wasm)", p)
		}
		sort.Strings(found)
		out = append(out, found...)
	}
	return out, nil
}

// LoadFiles loads each spec's file as a module bound to b through srv and
// adds it to srv. It prints one line per module to stdout. The modules load
// side by side (each load is mostly CPU: reading the compiled code from the
// cache, validating it, the first instance), and are added in spec order.
func LoadFiles(ctx context.Context, rt *Runtime, srv *host.Server, b backend.Backend, specs []Spec, log *slog.Logger, stdout io.Writer) ([]*Module, error) {
	bind := Binding{Backend: b, Invoker: srv.Invoker, Logger: log, Tracing: srv.Tracing()}
	type loaded struct {
		m    *Module
		size int
		took time.Duration
		err  error
	}
	res := make([]loaded, len(specs))
	var wg sync.WaitGroup
	parallel := maxParallel()
	sem := make(chan struct{}, parallel)
	// A module compiled without a cache uses the CPUs the other loads
	// leave: one module alone gets them all.
	if workers := runtime.GOMAXPROCS(0) / min(parallel, len(specs)); workers > 1 {
		ctx = wasmrt.WithCompilationWorkers(ctx, workers)
	}
	for i, sp := range specs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			t := time.Now()
			wasm, err := sp.read()
			if err != nil {
				res[i].err = err
				return
			}
			o := sp.Options
			o.Name = filepath.Base(sp.Path)
			m, err := rt.Load(ctx, wasm, o, bind)
			res[i] = loaded{m: m, size: len(wasm), took: time.Since(t), err: err}
		}()
	}
	wg.Wait()
	var mods []*Module
	for i, r := range res {
		if r.err != nil {
			return nil, r.err
		}
		if err := srv.Add(r.m); err != nil {
			return nil, fmt.Errorf("%s: %w", specs[i].Path, err)
		}
		mods = append(mods, r.m)
		if stdout != nil {
			o := r.m.opts
			size := fmt.Sprintf("%d instances", o.PoolSize)
			if o.MaxPoolSize > o.PoolSize {
				size += fmt.Sprintf(" (up to %d)", o.MaxPoolSize)
			}
			fmt.Fprintf(stdout, "roam: module %s: app %s, %s, %.1f MB, loaded in %s\n",
				o.Name, r.m.ID(), size, float64(r.size)/1e6, r.took.Round(time.Millisecond))
		}
	}
	return mods, nil
}

// Watcher reloads modules whose files change. It polls each file's size and
// modification time, and reloads once two polls in a row agree on a new
// stamp, so that a file still being written is not loaded half-way.
type Watcher struct {
	Interval time.Duration
	Logger   *slog.Logger
	Stdout   io.Writer
	files    []*watched
}

type stamp struct {
	size int64
	mod  time.Time
}

type watched struct {
	path          string
	m             *Module
	loaded, last  stamp
	failed, gone  bool
	failedAtStamp stamp
}

func stampOf(path string) (stamp, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return stamp{}, err
	}
	return stamp{fi.Size(), fi.ModTime()}, nil
}

// Add watches path, whose current contents m runs.
func (w *Watcher) Add(path string, m *Module) {
	s, _ := stampOf(path)
	w.files = append(w.files, &watched{path: path, m: m, loaded: s, last: s})
}

// Run polls until ctx is done.
func (w *Watcher) Run(ctx context.Context) {
	t := time.NewTicker(w.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for _, f := range w.files {
			w.poll(ctx, f)
		}
	}
}

func (w *Watcher) poll(ctx context.Context, f *watched) {
	log := w.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s, err := stampOf(f.path)
	if err != nil {
		if !f.gone {
			log.Warn("module file is gone; the loaded version keeps serving", "file", f.path, "app", f.m.ID())
			f.gone = true
		}
		return
	}
	f.gone = false
	stable := s == f.last
	f.last = s
	if !stable || s == f.loaded || (f.failed && s == f.failedAtStamp) {
		return
	}
	wasm, err := os.ReadFile(f.path)
	if err != nil {
		log.Error("reading a changed module", "file", f.path, "err", err)
		return
	}
	start := time.Now()
	if err := f.m.Reload(ctx, wasm); err != nil {
		log.Error("reload failed; the previous version keeps serving", "file", f.path, "app", f.m.ID(), "err", err)
		f.failed, f.failedAtStamp = true, s
		if w.Stdout != nil {
			fmt.Fprintf(w.Stdout, "roam: reload of %s failed, previous version still serving: %s\n", filepath.Base(f.path), firstLine(err.Error()))
		}
		return
	}
	f.failed, f.loaded = false, s
	if w.Stdout != nil {
		fmt.Fprintf(w.Stdout, "roam: reloaded %s (app %s, version %d) in %s\n", filepath.Base(f.path), f.m.ID(), f.m.Version(), time.Since(start).Round(time.Millisecond))
	}
}
