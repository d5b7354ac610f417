package edge

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/roam-dev/roam/abi"
	"github.com/roam-dev/roam/backend"
	"github.com/roam-dev/roam/host"
	"github.com/roam-dev/roam/sdk"
)

// Defaults of ModuleOptions.
const (
	// DefaultMemoryLimitPages caps an instance's linear memory at 64 MiB,
	// 16 times the HTTP transport's default 4 MiB body limit. A Go guest
	// holds a request several times over while it decodes it (the request
	// buffer, the decoded value, the reply) and its GC lets the heap reach
	// twice the live data: measured, a 4 MiB body grows an instance from
	// 3 MiB to 13 MiB (Echo), 16 to 20 MiB (a typed Put, a Get of the
	// value) and 28 MiB (a Put of a 4 MiB array of objects). 64 MiB leaves
	// twice that. It is a ceiling, not a reservation: an instance costs what
	// it touches.
	DefaultMemoryLimitPages = 1024
	// DefaultRecycleBytes: an instance whose memory grew past 16 MiB is
	// replaced after its call, since wasm memory never shrinks. Ordinary
	// calls keep a Go guest at about 4 MiB; only large requests cross this.
	DefaultRecycleBytes = 16 << 20
	// DefaultMaxQueue is how many calls may wait for a free instance.
	DefaultMaxQueue = 256
	// DefaultMaxRequestBytes bounds a call's body: above the HTTP
	// transport's 4 MiB so that HTTP reports its own 413 first, and a guard
	// for in-process callers (invoke, events).
	DefaultMaxRequestBytes = 8 << 20
	// DefaultMaxResponseBytes bounds a reply read back from a guest.
	DefaultMaxResponseBytes = 16 << 20
	// DefaultInstanceBudget is the memory the default pool size is derived
	// from: 5 MiB of resident memory per warm Go instance (measured with
	// linear memory on the Go heap; about 3 MiB now on Linux, see the
	// package doc) into 64 MiB gives 12, then capped by CPU.
	DefaultInstanceBudget = 64 << 20
	instanceRSS           = 5 << 20
	// DefaultPoolMemoryBytes bounds the growth of a module's pool: it does
	// not grow once its instances' linear memory adds up to 256 MiB. A Go
	// instance holds about 4 MiB after its setup and 5 to 8 MiB under load
	// (measured: the shop's orders and inventory), so a pool of 32 fits
	// with room, while one whose instances run large (up to
	// DefaultRecycleBytes each) stops at 16. On Linux resident memory
	// follows it (about 4.5 MiB of RSS per instance added under load); where
	// linear memory is Go heap it is more, since the host's GC lets the heap
	// grow past the live data (about 8 MiB per instance). A quarter of a
	// 1 GiB edge node for one busy module.
	DefaultPoolMemoryBytes = 256 << 20
	// DefaultIdleTimeout is how long an instance above the base pool size
	// stays idle before it is closed.
	DefaultIdleTimeout = 30 * time.Second
	// maxPoolCeiling caps DefaultMaxPoolSize: DefaultPoolMemoryBytes over
	// the 4 MiB of a freshly set-up Go instance.
	maxPoolCeiling = 64
	// NoQueue as ModuleOptions.MaxQueue refuses every call that finds no
	// free instance.
	NoQueue = -1
	// FixedPool as ModuleOptions.MaxPoolSize keeps the pool at PoolSize:
	// it never grows.
	FixedPool = -1
)

// killGrace is how long after a call's deadline the host interrupts the
// instance. The guest gets the deadline itself and a well-behaved handler
// returns DeadlineExceeded on its own; interrupting it a little later spares
// that instance, which an interruption destroys.
const killGrace = 20 * time.Millisecond

// DefaultPoolSize is the pool size used when ModuleOptions.PoolSize is 0:
// four instances per CPU (calls wait on state and invocations, not only on
// CPU), at least 4, and no more than DefaultInstanceBudget allows.
func DefaultPoolSize() int {
	return min(max(4*runtime.GOMAXPROCS(0), 4), DefaultInstanceBudget/instanceRSS)
}

// DefaultMaxPoolSize is the ceiling used when ModuleOptions.MaxPoolSize is
// 0: four times the pool size, at most 64 (but never below the pool size).
// A call holds its instance while it waits on state and on other apps, so
// a pool sized for the CPUs queues calls that the CPUs could serve; the
// pool grows while they queue and shrinks back when they stop.
func DefaultMaxPoolSize(poolSize int) int {
	return max(poolSize, min(4*poolSize, maxPoolCeiling))
}

// ModuleOptions configure one module. Zero values take the defaults noted.
type ModuleOptions struct {
	// Name labels the module in logs and errors (a file name, say).
	Name string
	// AppID, when set, is the app the module must hold. It lets the host
	// bind capabilities for the first roam_init directly; see Load.
	AppID string
	// PoolSize is the base number of instances, each running one call at a
	// time: made at load and kept however idle (default DefaultPoolSize(),
	// or MaxPoolSize if that is smaller).
	PoolSize int
	// MaxPoolSize is how many instances the pool may grow to while calls
	// queue (default DefaultMaxPoolSize(PoolSize)). PoolSize or less, or
	// FixedPool, keeps the pool at PoolSize.
	MaxPoolSize int
	// PoolMemoryBytes stops the pool's growth once its instances' linear
	// memory adds up to it (default DefaultPoolMemoryBytes). It bounds
	// growth only: the base pool is made whatever its size.
	PoolMemoryBytes uint64
	// IdleTimeout closes instances above PoolSize that stayed idle this
	// long (default DefaultIdleTimeout).
	IdleTimeout time.Duration
	// MaxQueue is how many calls may wait for a free instance before calls
	// are refused with Unavailable (default DefaultMaxQueue; NoQueue for
	// none).
	MaxQueue int
	// MemoryLimitPages caps each instance's linear memory, in 64 KiB pages
	// (default DefaultMemoryLimitPages).
	MemoryLimitPages uint32
	// RecycleBytes replaces an instance whose memory grew past it (default
	// DefaultRecycleBytes, capped at the memory limit).
	RecycleBytes uint64
	// MaxRequestBytes and MaxResponseBytes bound a call's body and reply.
	MaxRequestBytes, MaxResponseBytes int
	// Timeout is the deadline of a call whose context has none (default
	// 30s). Every call runs under some deadline.
	Timeout time.Duration
	// InitTimeout bounds creating one instance: the Go runtime's start-up
	// and the app's setup (default 10s).
	InitTimeout time.Duration
	// Env and Mounts are grants (see Manifest): by default a guest sees no
	// environment and no file system.
	Env    map[string]string
	Mounts []Mount
}

func (o ModuleOptions) withDefaults() ModuleOptions {
	if o.PoolSize <= 0 {
		o.PoolSize = DefaultPoolSize()
		if o.MaxPoolSize > 0 {
			o.PoolSize = min(o.PoolSize, o.MaxPoolSize)
		}
	}
	if o.MaxPoolSize == 0 {
		o.MaxPoolSize = DefaultMaxPoolSize(o.PoolSize)
	}
	o.MaxPoolSize = max(o.MaxPoolSize, o.PoolSize)
	if o.PoolMemoryBytes == 0 {
		o.PoolMemoryBytes = DefaultPoolMemoryBytes
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = DefaultIdleTimeout
	}
	switch {
	case o.MaxQueue == 0:
		o.MaxQueue = DefaultMaxQueue
	case o.MaxQueue < 0:
		o.MaxQueue = 0
	}
	if o.MemoryLimitPages == 0 {
		o.MemoryLimitPages = DefaultMemoryLimitPages
	}
	limit := uint64(o.MemoryLimitPages) << 16
	if o.RecycleBytes == 0 {
		o.RecycleBytes = DefaultRecycleBytes
	}
	o.RecycleBytes = min(o.RecycleBytes, limit)
	if o.MaxRequestBytes <= 0 {
		o.MaxRequestBytes = DefaultMaxRequestBytes
	}
	if o.MaxResponseBytes <= 0 {
		o.MaxResponseBytes = DefaultMaxResponseBytes
	}
	if o.Timeout <= 0 {
		o.Timeout = 30 * time.Second
	}
	if o.InitTimeout <= 0 {
		o.InitTimeout = 10 * time.Second
	}
	return o
}

// Module is a loaded Roam wasm module: one app, served by a pool of
// instances. It implements host.App.
type Module struct {
	rt   *Runtime
	opts ModuleOptions
	bind Binding
	log  *slog.Logger

	id   string
	caps *caps
	cur  atomic.Pointer[pool]
	man  atomic.Pointer[abi.Manifest]
	wasm atomic.Pointer[[]byte] // the current version's bytes

	reloadMu sync.Mutex
	closed   atomic.Bool
	versions atomic.Int64

	instantiations, traps, timeouts, rejected, recycled atomic.Uint64
	reloads, reloadFailures, grown, shrunk              atomic.Uint64
}

var _ host.App = (*Module)(nil)

// Load compiles wasm (or takes it from the compilation cache), checks that
// it speaks this host's ABI, and starts its pool: the first instance is
// created and set up before Load returns, so the first call pays no
// start-up, and the rest of the base pool in the background, one at a time
// (about 6 ms each), so that they do not hold up the host's start. A call
// that finds every ready instance busy meanwhile waits in the pool's queue.
//
// The app's id comes from the module itself (the manifest its roam_init
// returns), and capabilities are scoped by app id, so the very first
// roam_init runs before the host can scope them. That instance gets config,
// secrets and logging (which no backend scopes by app) and is refused
// state, publish and invoke; if its setup used any capability it is
// discarded once the id is known, and every instance that serves calls is
// set up with the app's own capabilities. ModuleOptions.AppID skips this.
func (r *Runtime) Load(ctx context.Context, wasm []byte, o ModuleOptions, b Binding) (*Module, error) {
	o = o.withDefaults()
	m := &Module{rt: r, opts: o, bind: b, log: r.log}
	if o.Name != "" {
		m.log = m.log.With("module", o.Name)
	}
	cm, err := r.compile(ctx, wasm)
	if err != nil {
		return nil, m.errorf("%w", err)
	}
	p, err := m.newPool(ctx, cm)
	if err != nil {
		return nil, err
	}
	if err := r.register(m); err != nil {
		p.retire()
		return nil, err
	}
	m.cur.Store(p)
	m.man.Store(&p.man)
	m.versions.Store(p.version)
	m.wasm.Store(&wasm)
	return m, nil
}

// Wasm returns the bytes of the module's current version, which the host
// also serves to browsers (the same module runs there).
func (m *Module) Wasm() []byte { return *m.wasm.Load() }

func (m *Module) errorf(format string, args ...any) error {
	err := fmt.Errorf(format, args...)
	if m.opts.Name != "" {
		return fmt.Errorf("%s: %w", m.opts.Name, err)
	}
	return err
}

// ID returns the app id.
func (m *Module) ID() string { return m.id }

// Methods returns the app's method names, sorted, as the current version
// reports them.
func (m *Module) Methods() []string { return slices.Clone(m.man.Load().Methods) }

// Subscriptions returns the app's subscriptions.
func (m *Module) Subscriptions() []backend.Subscription {
	var out []backend.Subscription
	for _, s := range m.man.Load().Subscriptions {
		out = append(out, backend.Subscription{AppID: m.id, PubSub: s.PubSub, Topic: s.Topic, DeadLetterTopic: s.DeadLetterTopic})
	}
	return out
}

// Version counts the module's versions: 1 after Load, one more per
// successful Reload.
func (m *Module) Version() int { return int(m.versions.Load()) }

// Call runs a method on a free instance.
func (m *Module) Call(ctx context.Context, method string, req []byte) ([]byte, error) {
	return m.call(ctx, abi.KindMethod, method, req)
}

// Deliver hands an event to the app's handler for e's pubsub and topic, as
// its CloudEvents JSON.
func (m *Module) Deliver(ctx context.Context, e *sdk.Event) error {
	body, err := json.Marshal(e)
	if err != nil {
		return sdk.Errorf(sdk.InvalidArgument, "event %s: does not encode: %v", e.ID, err)
	}
	_, err = m.call(ctx, abi.KindEvent, e.PubSub+"/"+e.Topic, body)
	return err
}

func (m *Module) call(ctx context.Context, kind uint64, name string, body []byte) ([]byte, error) {
	if len(body) > m.opts.MaxRequestBytes {
		return nil, sdk.Errorf(sdk.InvalidArgument, "%s %s: request of %d bytes exceeds the module's limit of %d", m.id, name, len(body), m.opts.MaxRequestBytes)
	}
	p := m.pool()
	if p == nil {
		return nil, sdk.Errorf(sdk.Unavailable, "app %s: module is closed", m.id)
	}
	defer p.unref()
	in, err := p.acquire(ctx, name)
	if err != nil {
		return nil, err
	}
	out, err, keep := in.call(ctx, kind, name, body)
	p.release(in, keep)
	return out, err
}

// pool returns the current pool with a reference held, or nil once the
// module is closed.
func (m *Module) pool() *pool {
	for {
		p := m.cur.Load()
		if p == nil {
			return nil
		}
		if p.tryRef() {
			return p
		}
		// p retired between the load and the reference: a reload swapped
		// in its successor first, so the next load sees that.
		runtime.Gosched()
	}
}

// Reload compiles and pre-warms a new version of the module, then swaps it
// in atomically. Calls already running (or queued) on the old version
// finish there; the old instances close once the last one returns. The new
// version must hold the same app with the same subscriptions (deliveries
// are registered at start); methods may change, though the HTTP transport
// routes only the methods the app had when it was added. On error the old
// version keeps serving.
func (m *Module) Reload(ctx context.Context, wasm []byte) error {
	m.reloadMu.Lock()
	defer m.reloadMu.Unlock()
	err := m.reload(ctx, wasm)
	if err != nil {
		m.reloadFailures.Add(1)
		return err
	}
	m.reloads.Add(1)
	return nil
}

func (m *Module) reload(ctx context.Context, wasm []byte) error {
	if m.closed.Load() {
		return m.errorf("reload: module is closed")
	}
	cm, err := m.rt.compile(ctx, wasm)
	if err != nil {
		return m.errorf("reload: %w", err)
	}
	p, err := m.newPool(ctx, cm)
	if err != nil {
		return fmt.Errorf("reload: %w", err)
	}
	old := m.man.Load()
	if !reflect.DeepEqual(old.Subscriptions, p.man.Subscriptions) {
		p.retire()
		return m.errorf("reload refused: app %s's new version changes its subscriptions, which are registered at start; restart the host to change them", m.id)
	}
	if added := missing(p.man.Methods, old.Methods); len(added) > 0 {
		m.log.Warn("reloaded version adds methods that are served only after a restart", "app", m.id, "methods", strings.Join(added, ","))
	}
	if m.closed.Load() {
		p.retire()
		return m.errorf("reload: module is closed")
	}
	m.man.Store(&p.man)
	m.versions.Store(p.version)
	m.wasm.Store(&wasm)
	prev := m.cur.Swap(p)
	if prev != nil {
		prev.retire()
	}
	m.log.Info("module reloaded", "app", m.id, "version", p.version, "instances", p.size)
	m.rt.pruneCache()
	return nil
}

// missing returns the elements of a not in b.
func missing(a, b []string) []string {
	var out []string
	for _, s := range a {
		if !slices.Contains(b, s) {
			out = append(out, s)
		}
	}
	return out
}

// Close stops the module: new calls fail with Unavailable, calls in flight
// finish, then the instances close. It waits for them until ctx is done.
func (m *Module) Close(ctx context.Context) error {
	if !m.closed.CompareAndSwap(false, true) {
		return nil
	}
	m.reloadMu.Lock()
	p := m.cur.Swap(nil)
	m.reloadMu.Unlock()
	m.rt.unregister(m)
	if p == nil {
		return nil
	}
	p.retire()
	select {
	case <-p.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// retire is Close without waiting, for Runtime.Close.
func (m *Module) retire() {
	if !m.closed.CompareAndSwap(false, true) {
		return
	}
	if p := m.cur.Swap(nil); p != nil {
		p.retire()
	}
}

// Stats are a module's pool figures and counters (the edge metrics). The
// figures are the current version's.
type Stats struct {
	// Idle and Busy count instances; Busy includes the temporary ones of
	// re-entrant calls. Queued counts the calls waiting for an instance.
	Idle, Busy, Queued int
	// PoolSize is the number of instances the pool holds now, re-entrant
	// ones aside: BasePoolSize once warm, up to MaxPoolSize while calls
	// queue.
	PoolSize, BasePoolSize, MaxPoolSize int
	// MemoryBytes is the linear memory of the pool's instances, each as of
	// the end of its last call.
	MemoryBytes uint64
	// Grown and Shrunk count the instances added beyond the base size and
	// those closed after IdleTimeout.
	Instantiations, Traps, Timeouts, Rejected, Recycled, Reloads, ReloadFailures, Grown, Shrunk uint64
}

// Stats returns the module's figures.
func (m *Module) Stats() Stats {
	var s Stats
	if p := m.cur.Load(); p != nil {
		p.mu.Lock()
		s.Idle, s.Busy, s.Queued = len(p.free), p.busy, len(p.waiters)
		s.PoolSize, s.BasePoolSize, s.MaxPoolSize, s.MemoryBytes = p.live, p.size, p.max, p.mem
		p.mu.Unlock()
	}
	// The counters after the pool: a shrink counts its instances before
	// it releases the pool's lock, so they include every change seen above.
	s.Instantiations, s.Traps, s.Timeouts = m.instantiations.Load(), m.traps.Load(), m.timeouts.Load()
	s.Rejected, s.Recycled, s.Reloads, s.ReloadFailures = m.rejected.Load(), m.recycled.Load(), m.reloads.Load(), m.reloadFailures.Load()
	s.Grown, s.Shrunk = m.grown.Load(), m.shrunk.Load()
	return s
}
