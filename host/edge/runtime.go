package edge

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/roam-dev/roam/abi"
	"github.com/roam-dev/roam/internal/wasmopt"
	"github.com/roam-dev/roam/internal/wasmrt"
)

// uninterruptible turns off interruption at deadlines, for the benchmark
// that measures its cost. Never in production: see NewRuntime.
var uninterruptible = false

// interpreter selects wazero's interpreter, for the benchmark that compares
// it with the compiler.
var interpreter = false

// RuntimeOptions configure a Runtime. Zero values take the defaults noted.
type RuntimeOptions struct {
	// CacheDir holds compiled code across restarts, in a subdirectory named
	// after the wazero version (compiled code is only valid for the wazero
	// that produced it). Empty keeps compiled code in memory only.
	CacheDir string
	// CacheMaxBytes bounds the cache directory (default 1 GiB; negative for
	// no bound). Compiled code is about four times the module's size, and
	// every rebuilt version adds an entry, so a day of hot reloads would
	// otherwise fill a disk. The oldest entries go first.
	CacheMaxBytes int64
	// Logger receives the runtime's and the guests' logs.
	Logger *slog.Logger
	// Registerer receives the edge collectors (pass host.Metrics.Registry).
	// Nil registers nothing.
	Registerer prometheus.Registerer
}

// Runtime compiles and runs Roam wasm modules. It wraps one wazero runtime,
// shared by every module and every instance: the compiled code, the WASI
// functions and the roam_v1 host functions exist once per process.
type Runtime struct {
	rt wasmrt.Runtime
	// meter is whether modules are metered (wasmopt.Meter) to be stopped at
	// their deadline, rather than interrupted by the runtime itself.
	meter    bool
	cache    wasmrt.CompilationCache
	dir      string
	maxCache int64
	log      *slog.Logger

	mu      sync.Mutex
	modules []*Module
	closed  bool

	// bg counts the instantiations the pools run in the background (the
	// rest of a first load's pool, growth, replacements), which run under
	// bgCtx: Close cancels them and waits for them before it closes the
	// wazero runtime under them.
	bg       sync.WaitGroup
	bgCtx    context.Context
	bgCancel context.CancelFunc
	// freeing is set while a release of memory to the OS is pending.
	freeing atomic.Bool
	// gate, while not nil, holds back the background fill of first loads'
	// pools (see HoldFills); under mu.
	gate chan struct{}
	// pools counts the pools not yet closed, and drained is closed when
	// the last one closes during Close; under mu.
	pools   int
	drained chan struct{}
}

// poolOpened and poolClosed keep Runtime.pools.
func (r *Runtime) poolOpened() {
	r.mu.Lock()
	r.pools++
	r.mu.Unlock()
}

func (r *Runtime) poolClosed() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pools--
	if r.pools == 0 && r.drained != nil {
		close(r.drained)
		r.drained = nil
	}
}

// RuntimeName and RuntimeVersion name the WebAssembly runtime this host
// was built with (internal/wasmrt: wazero, or wazy with the build tag
// roam_wazy) and its version as go.mod resolved it.
func RuntimeName() string    { return wasmrt.Name }
func RuntimeVersion() string { return wasmrt.Version() }

// NewRuntime starts a runtime. It uses wazero's optimizing compiler where
// wazero supports one (amd64 and arm64) and its interpreter elsewhere.
func NewRuntime(ctx context.Context, o RuntimeOptions) (*Runtime, error) {
	r := &Runtime{log: o.Logger}
	r.bgCtx, r.bgCancel = context.WithCancel(context.WithoutCancel(ctx))
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	// A deadline interrupts a looping guest. Without it a guest in an
	// infinite loop would hold its thread for ever and, since compiled wasm
	// cannot be preempted, stall every garbage collection of the host.
	// wazero v1.12's own interruption (WithCloseOnContextDone) exits to Go
	// at every loop header, which costs a Go guest more than half its CPU
	// time (see bench_test.go), so on wazero's compiler the host meters each
	// module instead (wasmopt.Meter: a countdown in the module's own code,
	// and a stop flag the host sets). wazy (build tag roam_wazy) checks
	// inline, always; the interpreter is Go code, and wazero's check costs
	// it little.
	r.meter = !wasmrt.AlwaysInterruptible && !interpreter && !uninterruptible
	cfg := wasmrt.NewConfig(interpreter, !uninterruptible && !r.meter).
		// Per-module caps are enforced by each instance's allocator (see
		// linearMemory); this is the runtime's ceiling.
		WithMemoryLimitPages(65536)
	if o.CacheDir != "" {
		r.dir = filepath.Join(o.CacheDir, wasmrt.Name+"-"+wasmrt.Version())
		r.maxCache = o.CacheMaxBytes
		if r.maxCache == 0 {
			r.maxCache = 1 << 30
		}
		r.pruneCache()
		if err := os.MkdirAll(r.dir, 0o755); err != nil {
			return nil, fmt.Errorf("compilation cache: %w", err)
		}
		c, err := wasmrt.NewCompilationCacheWithDir(r.dir)
		if err != nil {
			return nil, fmt.Errorf("compilation cache %s: %w", r.dir, err)
		}
		r.cache = c
		cfg = cfg.WithCompilationCache(c)
	}
	r.rt = wasmrt.NewRuntimeWithConfig(ctx, cfg)
	if err := wasmrt.InstantiateWASI(ctx, r.rt); err != nil {
		r.Close(ctx)
		return nil, err
	}
	if _, err := newHostModule(r.rt).Instantiate(ctx); err != nil {
		r.Close(ctx)
		return nil, err
	}
	if o.Registerer != nil {
		if err := o.Registerer.Register(&collector{r}); err != nil {
			r.Close(ctx)
			return nil, fmt.Errorf("edge metrics: %w", err)
		}
	}
	return r, nil
}

// pruneCache deletes the oldest files of the cache directory until it fits
// in its bound. wazero rewrites an entry only when it compiles, so "oldest"
// is by compilation; an evicted entry still in use is compiled again once.
func (r *Runtime) pruneCache() {
	if r.dir == "" || r.maxCache < 0 {
		return
	}
	type entry struct {
		path string
		size int64
		mod  time.Time
	}
	var files []entry
	var total int64
	filepath.WalkDir(r.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		if fi, err := d.Info(); err == nil {
			files = append(files, entry{p, fi.Size(), fi.ModTime()})
			total += fi.Size()
		}
		return nil
	})
	if total <= r.maxCache {
		return
	}
	slices.SortFunc(files, func(a, b entry) int { return a.mod.Compare(b.mod) })
	for _, f := range files {
		if total <= r.maxCache {
			break
		}
		if os.Remove(f.path) == nil {
			total -= f.size
			r.log.Info("compilation cache: evicted an old entry", "file", f.path, "bytes", f.size)
		}
	}
}

// CacheDir returns the directory of compiled code, or "".
func (r *Runtime) CacheDir() string { return r.dir }

// Close closes every module and the runtime. Calls in flight are
// interrupted (they fail with Unavailable) and the instances being made in
// the background too; Close waits for both, until ctx is done, before it
// closes the runtime under them. If ctx ends first, it returns an error and
// leaves the runtime open: closing it under a running call would race.
func (r *Runtime) Close(ctx context.Context) error {
	r.mu.Lock()
	mods := slices.Clone(r.modules)
	r.closed = true
	r.mu.Unlock()
	for _, m := range mods {
		m.retire()
	}
	r.bgCancel()
	r.bg.Wait()
	r.mu.Lock()
	var drained chan struct{}
	if r.pools > 0 {
		drained = make(chan struct{})
		r.drained = drained
	}
	r.mu.Unlock()
	if drained != nil {
		select {
		case <-drained:
		case <-ctx.Done():
			return fmt.Errorf("edge: closing the runtime: calls still running: %w", ctx.Err())
		}
	}
	err := r.rt.Close(ctx)
	if r.cache != nil {
		err = errors.Join(err, r.cache.Close(ctx))
	}
	return err
}

// background runs f in the background, counted in r.bg, unless the runtime
// is closing.
func (r *Runtime) background(f func(ctx context.Context)) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return false
	}
	r.bg.Add(1)
	go func() {
		defer r.bg.Done()
		f(r.bgCtx)
	}()
	return true
}

// HoldFills holds back the background fill of the pools of modules loaded
// from now on (each beyond its first instance) until release is called,
// so that a host's start gets the CPU first: its modules load, it listens,
// and then the pools fill. Calls meanwhile queue for the first instances.
// Release is idempotent; Close ends the wait (the fills stop).
func (r *Runtime) HoldFills() (release func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.gate == nil {
		r.gate = make(chan struct{})
	}
	g := r.gate
	return sync.OnceFunc(func() {
		r.mu.Lock()
		if r.gate == g {
			r.gate = nil
		}
		r.mu.Unlock()
		close(g)
	})
}

// fillGate returns the channel a background fill waits on, or nil.
func (r *Runtime) fillGate() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.gate
}

// releaseMemory returns the memory of instances a pool closed to the OS,
// a second later, when their linear memory was Go heap (off Linux, or where
// the mapping failed; see linearMemory; a mapping is unmapped at close).
// Without this, a host idle enough to close instances keeps that memory
// until its next garbage collection (while idle, the forced one every two
// minutes) and returns it only gradually after. Pools that shrink together
// share one collection.
func (r *Runtime) releaseMemory() {
	if r.freeing.Swap(true) {
		return
	}
	time.AfterFunc(time.Second, func() {
		r.freeing.Store(false)
		debug.FreeOSMemory()
	})
}

func (r *Runtime) isClosed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.closed
}

func (r *Runtime) register(m *Module) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return errors.New("edge: runtime is closed")
	}
	for _, x := range r.modules {
		if x.id == m.id {
			return m.errorf("app %s is already loaded in this runtime", m.id)
		}
	}
	r.modules = append(r.modules, m)
	return nil
}

func (r *Runtime) unregister(m *Module) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.modules = slices.DeleteFunc(r.modules, func(x *Module) bool { return x == m })
}

// compile compiles wasm (or loads it from the cache) and checks that it is
// a Roam module of this ABI before anything of it runs.
func (r *Runtime) compile(ctx context.Context, wasm []byte) (wasmrt.CompiledModule, error) {
	// The runtime's decoder allocates what a module declares before it
	// reads it: a few bytes can ask for gigabytes.
	if err := wasmopt.CheckLimits(wasm); err != nil {
		return nil, fmt.Errorf("not a valid wasm module: %w", err)
	}
	// A guest grows a table with no maximum as far as the runtime allows.
	wasm, _, err := wasmopt.CapTables(wasm)
	if err != nil {
		return nil, fmt.Errorf("not a valid wasm module: %w", err)
	}
	// Refuse a module of another ABI before paying for its compilation
	// (seconds for a Go module); checkABI below is the complete check.
	if err := checkImportModules(wasm); err != nil {
		return nil, err
	}
	code, merr := wasm, error(nil)
	if r.meter {
		// A module that cannot be metered is compiled as it is, so that
		// the compiler and checkABI can say what is wrong with it first.
		if metered, err := wasmopt.Meter(wasm, wasmopt.DefaultFuel); err != nil {
			merr = err
		} else {
			code = metered
		}
	}
	cm, err := compileModule(ctx, r.rt, code)
	if err != nil {
		return nil, fmt.Errorf("not a valid wasm module: %w", err)
	}
	if err := checkABI(cm); err != nil {
		cm.Close(ctx)
		return nil, err
	}
	if merr != nil {
		cm.Close(ctx)
		return nil, fmt.Errorf("the host cannot meter this module to stop it at its deadlines: %w", merr)
	}
	return cm, nil
}

// compileModule is the runtime's CompileModule, with a panic in it
// returned as an error: wazero v1.12's validation indexed a function's type
// before it had checked it (wasmopt.CheckLimits now checks it first), and a
// corrupted file must not take the host down with it.
func compileModule(ctx context.Context, rt wasmrt.Runtime, wasm []byte) (cm wasmrt.CompiledModule, err error) {
	defer func() {
		if v := recover(); v != nil {
			cm, err = nil, fmt.Errorf("the runtime failed: %v", v)
		}
	}()
	return rt.CompileModule(ctx, wasm)
}

const buildHint = "build it with roam build --target wasm"

// checkImport checks the module name of one import.
func checkImport(mod, name string) error {
	switch {
	case mod == abi.ImportModule, mod == wasmrt.WASIModuleName:
		return nil
	case strings.HasPrefix(mod, abi.ImportModulePrefix):
		v := strings.TrimPrefix(mod, abi.ImportModulePrefix)
		if _, err := strconv.Atoi(v); err != nil {
			return fmt.Errorf("module imports %s.%s: %s is not a Roam ABI this host knows; %s", mod, name, mod, buildHint)
		}
		return fmt.Errorf("module built for Roam ABI v%s; this host speaks v%d — rebuild it with this roam version", v, abi.VersionMajor)
	}
	return fmt.Errorf("not a Roam module: it imports %s.%s, which no Roam host provides (%s)", mod, name, buildHint)
}

// checkImportModules reads the import section of a binary, without
// compiling it, and checks each import's module name. Anything it does not
// understand it leaves to the compiler and checkABI.
func checkImportModules(wasm []byte) error {
	imports, _ := wasmopt.Imports(wasm) // what it cannot read, the compiler reports
	for _, im := range imports {
		if err := checkImport(im.Module, im.Name); err != nil {
			return err
		}
	}
	return nil
}

// checkABI checks a compiled module's imports and exports against ABI v1.
func checkABI(cm wasmrt.CompiledModule) error {
	for _, f := range cm.ImportedFunctions() {
		mod, name, _ := f.Import()
		if err := checkImport(mod, name); err != nil {
			return err
		}
		if mod == abi.ImportModule {
			params, results, ok := importSignature(name)
			if !ok {
				return fmt.Errorf("module imports %s.%s, which this host does not provide: it was built for a newer Roam ABI v%d.x than this host's v%d.%d; upgrade roam or rebuild the module with this roam version",
					mod, name, abi.VersionMajor, abi.VersionMajor, abi.VersionMinor)
			}
			if !slices.Equal(f.ParamTypes(), params) || !slices.Equal(f.ResultTypes(), results) {
				return fmt.Errorf("module imports %s.%s with the wrong signature %s; %s", mod, name, signature(f.ParamTypes(), f.ResultTypes()), buildHint)
			}
		}
	}
	for _, m := range cm.ImportedMemories() {
		mod, name, _ := m.Import()
		return fmt.Errorf("not a Roam module: it imports its memory (%s.%s) instead of exporting one (%s)", mod, name, buildHint)
	}
	exports := cm.ExportedFunctions()
	for _, e := range []struct {
		name            string
		params, results []wasmrt.ValueType
	}{
		{"_initialize", nil, nil},
		{abi.ExportABIVersion, nil, []wasmrt.ValueType{wasmrt.ValueTypeI32}},
		{abi.ExportAlloc, []wasmrt.ValueType{wasmrt.ValueTypeI32}, []wasmrt.ValueType{wasmrt.ValueTypeI32}},
		{abi.ExportInit, nil, []wasmrt.ValueType{wasmrt.ValueTypeI64}},
		{abi.ExportHandle, []wasmrt.ValueType{wasmrt.ValueTypeI32, wasmrt.ValueTypeI32}, []wasmrt.ValueType{wasmrt.ValueTypeI64}},
	} {
		f, ok := exports[e.name]
		if !ok {
			if e.name == "_initialize" {
				if _, cmd := exports["_start"]; cmd {
					return fmt.Errorf("not a Roam module: it is a wasip1 command (it exports _start, not _initialize); %s", buildHint)
				}
			}
			return fmt.Errorf("not a Roam module: missing export %s (%s)", e.name, buildHint)
		}
		if !slices.Equal(f.ParamTypes(), e.params) || !slices.Equal(f.ResultTypes(), e.results) {
			return fmt.Errorf("not a Roam module: export %s has the signature %s, want %s (%s)", e.name,
				signature(f.ParamTypes(), f.ResultTypes()), signature(e.params, e.results), buildHint)
		}
	}
	if _, ok := cm.ExportedMemories()["memory"]; !ok {
		return fmt.Errorf("not a Roam module: it exports no memory named \"memory\" (%s)", buildHint)
	}
	return nil
}

func signature(params, results []wasmrt.ValueType) string {
	name := func(ts []wasmrt.ValueType) string {
		s := make([]string, len(ts))
		for i, t := range ts {
			s[i] = wasmrt.ValueTypeName(t)
		}
		return strings.Join(s, ", ")
	}
	return "(" + name(params) + ") -> (" + name(results) + ")"
}

// collector exports the edge metrics of every module of a runtime.
type collector struct{ r *Runtime }

var (
	descIdle           = prometheus.NewDesc("roam_edge_instances_idle", "Wasm instances ready for a call, by app.", []string{"app"}, nil)
	descBusy           = prometheus.NewDesc("roam_edge_instances_busy", "Wasm instances running a call, by app.", []string{"app"}, nil)
	descQueued         = prometheus.NewDesc("roam_edge_calls_queued", "Calls waiting for a free instance, by app.", []string{"app"}, nil)
	descPoolSize       = prometheus.NewDesc("roam_edge_pool_size", "Instances a module's pool holds now, re-entrant ones aside: its base size, more while calls queue, by app.", []string{"app"}, nil)
	descPoolMax        = prometheus.NewDesc("roam_edge_pool_max", "Instances a module's pool may grow to while calls queue, by app.", []string{"app"}, nil)
	descPoolMemory     = prometheus.NewDesc("roam_edge_pool_memory_bytes", "Linear memory of a module's pooled instances, each as of its last call; the pool stops growing at its memory budget, by app.", []string{"app"}, nil)
	descGrown          = prometheus.NewDesc("roam_edge_pool_grown_total", "Instances added to a module's pool because calls queued, by app.", []string{"app"}, nil)
	descShrunk         = prometheus.NewDesc("roam_edge_pool_shrunk_total", "Instances above a module's base pool size closed after staying idle, by app.", []string{"app"}, nil)
	descInstantiations = prometheus.NewDesc("roam_edge_instantiations_total", "Wasm instances created (pre-warm, growth, replacement, reload, re-entrant overflow), by app.", []string{"app"}, nil)
	descTraps          = prometheus.NewDesc("roam_edge_traps_total", "Calls whose instance trapped or exited and was discarded, by app.", []string{"app"}, nil)
	descTimeouts       = prometheus.NewDesc("roam_edge_timeouts_total", "Calls interrupted at their deadline, whose instance was discarded, by app.", []string{"app"}, nil)
	descRejected       = prometheus.NewDesc("roam_edge_rejected_total", "Calls refused with Unavailable because every instance was busy and the queue full, by app.", []string{"app"}, nil)
	descRecycled       = prometheus.NewDesc("roam_edge_recycled_total", "Healthy instances replaced because their memory grew past the recycle threshold, by app.", []string{"app"}, nil)
	descReloads        = prometheus.NewDesc("roam_edge_reloads_total", "Hot reloads of a module, by app and result.", []string{"app", "result"}, nil)
)

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descIdle, descBusy, descQueued, descPoolSize, descPoolMax, descPoolMemory, descGrown, descShrunk,
		descInstantiations, descTraps, descTimeouts, descRejected, descRecycled, descReloads} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	c.r.mu.Lock()
	mods := slices.Clone(c.r.modules)
	c.r.mu.Unlock()
	for _, m := range mods {
		s := m.Stats()
		id := m.ID()
		ch <- prometheus.MustNewConstMetric(descIdle, prometheus.GaugeValue, float64(s.Idle), id)
		ch <- prometheus.MustNewConstMetric(descBusy, prometheus.GaugeValue, float64(s.Busy), id)
		ch <- prometheus.MustNewConstMetric(descQueued, prometheus.GaugeValue, float64(s.Queued), id)
		ch <- prometheus.MustNewConstMetric(descPoolSize, prometheus.GaugeValue, float64(s.PoolSize), id)
		ch <- prometheus.MustNewConstMetric(descPoolMax, prometheus.GaugeValue, float64(s.MaxPoolSize), id)
		ch <- prometheus.MustNewConstMetric(descPoolMemory, prometheus.GaugeValue, float64(s.MemoryBytes), id)
		ch <- prometheus.MustNewConstMetric(descGrown, prometheus.CounterValue, float64(s.Grown), id)
		ch <- prometheus.MustNewConstMetric(descShrunk, prometheus.CounterValue, float64(s.Shrunk), id)
		ch <- prometheus.MustNewConstMetric(descInstantiations, prometheus.CounterValue, float64(s.Instantiations), id)
		ch <- prometheus.MustNewConstMetric(descTraps, prometheus.CounterValue, float64(s.Traps), id)
		ch <- prometheus.MustNewConstMetric(descTimeouts, prometheus.CounterValue, float64(s.Timeouts), id)
		ch <- prometheus.MustNewConstMetric(descRejected, prometheus.CounterValue, float64(s.Rejected), id)
		ch <- prometheus.MustNewConstMetric(descRecycled, prometheus.CounterValue, float64(s.Recycled), id)
		ch <- prometheus.MustNewConstMetric(descReloads, prometheus.CounterValue, float64(s.Reloads), id, "ok")
		ch <- prometheus.MustNewConstMetric(descReloads, prometheus.CounterValue, float64(s.ReloadFailures), id, "failed")
	}
}
