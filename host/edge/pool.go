package edge

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/roam-dev/roam/abi"
	"github.com/roam-dev/roam/internal/wasmopt"
	"github.com/roam-dev/roam/internal/wasmrt"
	"github.com/roam-dev/roam/sdk"
)

// Growth of a pool.
const (
	// maxGrowing bounds the instantiations for growth in flight per pool:
	// each is about 5 ms of CPU, taken from the calls being served.
	maxGrowing = 2
	// growPause is how long a pool does not grow after a growth failed.
	growPause = time.Second
)

// pool is one version of a module: its compiled code and its instances.
// A reload builds a new pool and retires the old one, which closes once the
// calls holding references to it are done.
//
// The pool keeps size instances (the base pool) and grows up to max while
// calls queue, as long as its instances' linear memory stays within budget.
// Instances beyond size that stay idle for the module's IdleTimeout are
// closed, so that the memory of a burst goes back.
type pool struct {
	m       *Module
	cm      wasmrt.CompiledModule
	man     abi.Manifest
	version int64
	// size is the base pool, made at load and kept however idle; max and
	// budget bound the growth beyond it.
	size, max int
	budget    uint64
	// minor is the ABI minor version the module reports: the host sends
	// the fields of later minors only to modules that read them.
	minor uint32

	mu sync.Mutex
	// free holds the idle instances, the most recently released last. A
	// call takes the last: under a light load the same few instances serve
	// and the others stay idle long enough to be closed.
	free []*instance
	// waiters are the queued calls, first come first served: an instance
	// that comes free is handed to the first through its channel.
	waiters []chan *instance
	// n counts the instances held or being made (re-entrant ones aside),
	// live those held; busy counts the instances lent to calls, re-entrant
	// ones included.
	n, live, busy int
	// growing counts the instantiations for growth in flight. filling is
	// set while a first load's background fill runs: it is making
	// instances already, and the pool does not grow meanwhile.
	growing int
	filling bool
	// mem is the linear memory of the live instances, each as of the end
	// of its last call; fresh is a new instance's, which growth expects to
	// add.
	mem, fresh uint64
	// linear is the linear memory of every instance of the pool now,
	// busy ones as they grow during their calls, re-entrant and
	// half-made ones included: growth stops at the budget on the larger
	// of the two. Counting only mem, a guest that grew to its memory limit
	// in every call, recycled after each, let the pool grow to MaxPoolSize
	// instances at the limit whatever its budget.
	linear atomic.Int64
	// noGrowUntil pauses growth after a failure.
	noGrowUntil time.Time
	// reaper closes the instances above size that stayed idle; reaping is
	// set while it is scheduled, and for good once the pool is closed.
	reaper  *time.Timer
	reaping bool

	// overflow counts the extra instances of re-entrant calls in use or
	// being made (overflowInstance), overflowing those being made (under
	// mu). They are not in n: they never serve another call.
	overflow    atomic.Int32
	overflowing int

	// refs counts the calls and background instantiations using the pool;
	// retire adds retiredBias, and the last reference out closes it.
	refs    atomic.Int64
	retired atomic.Bool
	done    chan struct{}
}

const retiredBias = math.MinInt64 / 2

func (p *pool) tryRef() bool {
	for {
		n := p.refs.Load()
		if n < 0 {
			return false
		}
		if p.refs.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

func (p *pool) unref() {
	if p.refs.Add(-1) == retiredBias {
		p.close()
	}
}

func (p *pool) retire() {
	if !p.retired.CompareAndSwap(false, true) {
		return
	}
	if p.refs.Add(retiredBias) == retiredBias {
		p.close()
	}
}

// close closes the idle instances and the compiled code. Every instance is
// idle by then: busy ones are held by references, and so are the
// instantiations in flight.
func (p *pool) close() {
	p.mu.Lock()
	free := p.free
	p.free, p.n, p.live, p.mem = nil, 0, 0, 0
	if p.reaper != nil {
		p.reaper.Stop()
	}
	p.reaping = true
	p.mu.Unlock()
	for _, in := range free {
		in.close()
	}
	p.cm.Close(context.Background())
	close(p.done)
	p.m.rt.poolClosed()
}

// newPool instantiates a pool of the compiled module. The first instance
// settles the app id (see Runtime.Load) and the ABI version; a reload's
// pool has its base instances set up before newPool returns, a first
// load's gets the others in the background.
//
// newPool owns cm: on error it has closed it, with any instance made.
func (m *Module) newPool(ctx context.Context, cm wasmrt.CompiledModule) (_ *pool, err error) {
	o := m.opts
	p := &pool{m: m, cm: cm, size: o.PoolSize, max: o.MaxPoolSize, budget: o.PoolMemoryBytes,
		free: make([]*instance, 0, o.PoolSize), done: make(chan struct{}), version: m.versions.Load() + 1}
	m.rt.poolOpened()
	defer func() {
		if err != nil {
			p.close()
		}
	}()

	// The runtime builds an instance's memory at its minimum before
	// anything can refuse it, and panics if the allocator does not.
	if mem := cm.ExportedMemories()["memory"]; mem != nil && mem.Min() > o.MemoryLimitPages {
		return nil, m.errorf("the module starts with %d KiB of linear memory, above its limit of %d KiB (memory_limit_mb, --memory-limit-mb)", uint64(mem.Min())*64, uint64(o.MemoryLimitPages)*64)
	}
	reload := m.caps != nil
	var first *instance
	switch {
	case m.caps != nil: // a reload
		first, err = p.instantiate(ctx, m.caps)
		if err == nil && first.man.AppID != m.id {
			first.close()
			return nil, m.errorf("the new version holds app %q, not %q: load it as a module of its own", first.man.AppID, m.id)
		}
	case m.opts.AppID != "":
		c := m.bind.bind(m.opts.AppID)
		first, err = p.instantiate(ctx, c)
		if err == nil && first.man.AppID != m.opts.AppID {
			first.close()
			return nil, m.errorf("module holds app %q, not the expected %q", first.man.AppID, m.opts.AppID)
		}
		m.caps = c
	default:
		first, err = p.instantiate(ctx, nil)
		if err != nil {
			break
		}
		if c := first.st.caps; !c.discovery {
			if first.man.AppID != c.id {
				first.close()
				return nil, m.errorf("module named app %q, then set up %q", c.id, first.man.AppID)
			}
			m.caps = c
			break
		}
		c := m.bind.bind(first.man.AppID)
		if first.st.imports > 0 { // logging aside
			// Its setup saw discovery capabilities: set it up again.
			first.close()
			first, err = p.instantiate(ctx, c)
			if err == nil && first.man.AppID != c.id {
				first.close()
				return nil, m.errorf("module reported app %q, then %q", c.id, first.man.AppID)
			}
		}
		m.caps = c
	}
	if err != nil {
		return nil, err
	}
	if m.id == "" {
		m.id = first.man.AppID // the first load, before the module is shared
	}
	p.man = first.man
	if err := first.checkVersion(ctx); err != nil {
		first.close()
		return nil, err
	}
	p.fresh = first.memBytes
	p.mu.Lock()
	p.n = p.size // the first instance and the rest of the base pool, to be made
	p.addLocked(first)
	p.filling = !reload
	p.mu.Unlock()

	if !reload {
		// A first load is ready with its first instance: the rest are made
		// in the background, one at a time, so that they take neither the
		// host's start nor the CPU another module's load needs. Calls that
		// find no idle instance meanwhile queue as for a busy pool.
		gate := p.m.rt.fillGate()
		filling := p.background(func(ctx context.Context) {
			if gate != nil {
				select {
				case <-gate:
				case <-ctx.Done():
				}
			}
			p.fill(ctx, p.size-1, 1, true)
			p.mu.Lock()
			p.filling = false
			p.growLocked(len(p.waiters)) // for calls that queued meanwhile
			p.mu.Unlock()
		})
		if !filling { // the runtime is closing: so is this pool
			p.mu.Lock()
			p.n, p.filling = p.live, false
			p.mu.Unlock()
		}
		return p, nil
	}
	// A reload swaps the new version in fully warmed: the old one serves
	// meanwhile.
	if errs := p.fill(ctx, p.size-1, maxParallel(), false); len(errs) > 0 {
		return nil, errs[0]
	}
	return p, nil
}

// fill adds n instances to the base pool with the given number of workers
// (instantiation is CPU-bound, about 5 ms each) and returns their errors.
// It stops early once the pool is retired or the runtime closed. A
// background fill logs the errors, and the pool serves with the instances
// it has.
func (p *pool) fill(ctx context.Context, n, workers int, background bool) []error {
	m := p.m
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	work := make(chan struct{}, max(n, 0))
	for i := 0; i < n; i++ {
		work <- struct{}{}
	}
	close(work)
	var made atomic.Int32
	for w := 0; w < min(n, workers); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range work {
				if p.retired.Load() || m.rt.isClosed() {
					return
				}
				in, err := p.newInstance(ctx)
				if err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
					continue
				}
				made.Add(1)
				p.mu.Lock()
				p.addLocked(in)
				p.mu.Unlock()
			}
		}()
	}
	wg.Wait()
	p.mu.Lock()
	p.n -= n - int(made.Load()) // the slots of the instances not made
	p.mu.Unlock()
	if len(errs) > 0 && background && !p.retired.Load() && !m.rt.isClosed() {
		m.log.Error("could not create every instance of the pool; serving with fewer", "app", m.id,
			"instances", p.size-len(errs), "size", p.size, "err", errs[0])
	}
	return errs
}

func maxParallel() int { return max(1, min(8, runtime.GOMAXPROCS(0))) }

// background runs f in the background (Runtime.background) with a
// reference on the pool, so that the pool cannot close under it. It
// reports false once the runtime is closing. The caller holds a reference.
func (p *pool) background(f func(ctx context.Context)) bool {
	p.refs.Add(1)
	ok := p.m.rt.background(func(ctx context.Context) {
		defer p.unref()
		f(ctx)
	})
	if !ok {
		p.unref()
	}
	return ok
}

// newInstance makes an instance of the pool with the app's capabilities.
// One whose manifest differs from the first's is refused: its setup
// depends on more than its capabilities.
func (p *pool) newInstance(ctx context.Context) (*instance, error) {
	in, err := p.instantiate(ctx, p.m.caps)
	if err == nil && !reflect.DeepEqual(in.man, p.man) {
		in.close()
		return nil, p.m.errorf("instances of app %s reported different manifests: its setup must not depend on anything but its capabilities", p.m.id)
	}
	return in, err
}

// addLocked adds a new instance to the pool.
func (p *pool) addLocked(in *instance) {
	p.live++
	p.mem += in.memBytes
	p.putLocked(in)
}

// putLocked hands an instance no call holds to the first queued call, or
// adds it to the free ones.
func (p *pool) putLocked(in *instance) {
	if len(p.waiters) > 0 {
		w := p.waiters[0]
		p.waiters[0] = nil
		p.waiters = p.waiters[1:]
		p.busy++
		w <- in // buffered: never blocks
		return
	}
	in.idleSince = time.Now()
	p.free = append(p.free, in)
}

// acquire takes a free instance, waiting in the bounded queue if there is
// none; a queued call makes the pool grow if it may (growLocked), and takes
// whichever instance comes first, a new one or one released. A call made
// from inside this very module (it invoked itself, maybe through other
// apps) gets a temporary extra instance instead of waiting: its caller
// holds an instance that would otherwise never be released.
func (p *pool) acquire(ctx context.Context, what string) (*instance, error) {
	p.mu.Lock()
	if k := len(p.free) - 1; k >= 0 {
		in := p.free[k]
		p.free[k] = nil
		p.free = p.free[:k]
		p.busy++
		p.mu.Unlock()
		return in, nil
	}
	m := p.m
	if inChain(ctx, m) {
		p.mu.Unlock()
		return p.overflowInstance(ctx, what)
	}
	if len(p.waiters) >= m.opts.MaxQueue {
		// A refused call is demand too: without a queue, the next one may
		// find the new instance.
		p.growLocked(max(len(p.waiters), 1))
		live := p.live
		p.mu.Unlock()
		m.rejected.Add(1)
		return nil, sdk.Errorf(sdk.Unavailable, "app %s is at capacity: all %d instances are busy and %d calls are queued; retry later (or raise --max-pool-size / --max-queue)",
			m.id, live, m.opts.MaxQueue)
	}
	w := make(chan *instance, 1)
	p.waiters = append(p.waiters, w)
	p.growLocked(len(p.waiters))
	p.mu.Unlock()
	start := time.Now()
	select {
	case in := <-w:
		return in, nil
	case <-ctx.Done():
	}
	p.mu.Lock()
	if i := slices.Index(p.waiters, w); i >= 0 {
		p.waiters = slices.Delete(p.waiters, i, i+1)
	} else {
		// An instance was handed over as the wait ended: pass it on.
		p.busy--
		p.putLocked(<-w)
	}
	live := p.live
	p.mu.Unlock()
	code := sdk.CodeOf(ctx.Err())
	return nil, sdk.Errorf(code, "%s %s: %v after waiting %s for a free instance (all %d busy)", m.id, what, ctx.Err(), time.Since(start).Round(time.Millisecond), live)
}

// growLocked starts instantiations for growth while more calls wait
// (demand) than instances are on their way, at most maxGrowing at a time,
// as long as the pool stays under its ceiling and, counting the instances
// on their way, within its memory budget. It waits for a first load's
// fill, and pauses after a failure. The caller holds a reference.
func (p *pool) growLocked(demand int) {
	if p.filling || p.n >= p.max || (!p.noGrowUntil.IsZero() && time.Now().Before(p.noGrowUntil)) {
		return
	}
	for {
		coming := p.n - p.live // growth, replacements
		mem := max(p.mem, uint64(max(p.linear.Load(), 0)))
		if coming >= demand || p.growing >= maxGrowing || p.n >= p.max || mem+uint64(coming+1)*p.fresh > p.budget {
			return
		}
		p.growing++
		p.n++
		if !p.background(p.grow) {
			p.growing--
			p.n--
			return
		}
	}
}

// grow makes one more instance for the calls waiting, and goes on growing
// while calls still wait.
func (p *pool) grow(ctx context.Context) {
	in, err := p.newInstance(ctx)
	p.mu.Lock()
	p.growing--
	if err != nil {
		p.n--
		p.noGrowUntil = time.Now().Add(growPause)
		p.mu.Unlock()
		if !p.retired.Load() && !p.m.rt.isClosed() {
			p.m.log.Error("could not grow the pool; serving with the instances it has", "app", p.m.id, "err", err)
		}
		return
	}
	p.m.grown.Add(1)
	p.addLocked(in)
	p.growLocked(len(p.waiters))
	p.scheduleReapLocked()
	p.mu.Unlock()
}

// scheduleReapLocked schedules reap for when the longest idle instance
// reaches the idle timeout, if the pool holds more than its base size.
func (p *pool) scheduleReapLocked() {
	if p.reaping || p.n <= p.size {
		return
	}
	d := p.m.opts.IdleTimeout
	if len(p.free) > 0 {
		d = time.Until(p.free[0].idleSince.Add(d))
	}
	d = max(d, time.Millisecond)
	p.reaping = true
	if p.reaper == nil {
		p.reaper = time.AfterFunc(d, p.reap)
	} else {
		p.reaper.Reset(d)
	}
}

// reap closes the instances that stayed idle for the idle timeout, the
// longest idle first, down to the base size.
func (p *pool) reap() {
	if !p.tryRef() {
		return // retired: it closes whole
	}
	defer p.unref()
	timeout := p.m.opts.IdleTimeout
	now := time.Now()
	p.mu.Lock()
	p.reaping = false
	k := 0
	for k < len(p.free) && p.n > p.size && now.Sub(p.free[k].idleSince) >= timeout {
		in := p.free[k]
		p.n--
		p.live--
		p.mem -= in.memBytes
		k++
	}
	idle := slices.Clone(p.free[:k])
	p.free = slices.Delete(p.free, 0, k)
	// Counted with the size they leave, so that Stats never shows the
	// pool shrunk and the instances not (closing takes a while).
	p.m.shrunk.Add(uint64(k))
	p.scheduleReapLocked()
	p.mu.Unlock()
	heap := false
	for _, in := range idle {
		in.close()
		heap = heap || in.lin.onHeap()
	}
	if heap {
		p.m.rt.releaseMemory()
	}
}

// overflowInstance makes the extra instance of a re-entrant call: one
// from inside this very module's call chain (it invoked itself, maybe
// through other apps), made when no instance is free. Every instance may be
// held by that chain, so waiting could last until the deadline; the extra
// one is closed after the call (release). It is bounded three ways, each a
// clear Unavailable rather than a wait:
//   - per chain: one chain holds at most size extra instances of a module,
//     so that a runaway recursion (A invokes B invokes A, for ever) ends
//     after a few levels, whatever else the host runs;
//   - per pool: up to size extras at once, as many as the base pool, are
//     always allowed (re-entry works on a pool whose base instances already
//     fill the memory budget, which bounds growth only);
//   - beyond size, and up to max (the ceiling), only while the pool's
//     linear memory, the extras and those being made included, stays
//     within its budget (PoolMemoryBytes, --pool-memory-mb): concurrent
//     chains through a grown pool each get theirs, and none exhausts
//     memory.
func (p *pool) overflowInstance(ctx context.Context, what string) (*instance, error) {
	m := p.m
	if held := reentries(ctx, m); held >= p.size {
		m.rejected.Add(1)
		return nil, sdk.Errorf(sdk.Unavailable, "%s %s: too many re-entrant calls into app %s (it invokes itself, maybe through other apps): this call chain already holds %d extra instances of it beyond its pool of %d",
			m.id, what, m.id, held, p.size)
	}
	p.mu.Lock()
	n := int(p.overflow.Load())
	mem := max(p.mem, uint64(max(p.linear.Load(), 0)))
	coming := p.n - p.live + p.overflowing // growth, replacements, extras being made
	overBudget := n >= p.size && mem+uint64(coming+1)*p.fresh > p.budget
	if n >= max(p.size, p.max) || overBudget {
		p.mu.Unlock()
		m.rejected.Add(1)
		if overBudget && n < p.max {
			return nil, sdk.Errorf(sdk.Unavailable, "%s %s: too many re-entrant calls into app %s (it invokes itself, maybe through other apps): %d extra instances are busy and its pool's linear memory (%d MiB) leaves no room for another within its budget of %d MiB (--pool-memory-mb)",
				m.id, what, m.id, n, mem>>20, p.budget>>20)
		}
		return nil, sdk.Errorf(sdk.Unavailable, "%s %s: too many re-entrant calls into app %s (it invokes itself, maybe through other apps) while all %d instances are busy, and %d extra ones", m.id, what, m.id, p.live, n)
	}
	p.overflow.Add(1)
	p.overflowing++
	p.mu.Unlock()
	// Its set-up is part of the call that needs it, so Runtime.Close stops
	// it as it stops the call, rather than waiting out its InitTimeout.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(m.rt.bgCtx, cancel)()
	in, err := p.instantiate(ctx, m.caps)
	p.mu.Lock()
	p.overflowing--
	if err == nil {
		p.busy++
	}
	p.mu.Unlock()
	if err != nil {
		p.overflow.Add(-1)
		if m.rt.bgCtx.Err() != nil {
			return nil, sdk.Errorf(sdk.Unavailable, "%s %s: the host is shutting down", m.id, what)
		}
		return nil, sdk.Errorf(sdk.Unavailable, "%s %s: no instance for a re-entrant call: %v", m.id, what, err)
	}
	in.overflow = true
	return in, nil
}

// release returns an instance after a call. One that trapped, timed out or
// grew too large is closed; it is replaced in the background if the pool
// is below its base size, else the pool grows again only if calls wait.
func (p *pool) release(in *instance, keep bool) {
	if in.overflow {
		in.close()
		p.overflow.Add(-1)
		p.mu.Lock()
		p.busy--
		p.mu.Unlock()
		return
	}
	var size uint64
	if keep {
		size = uint64(in.mem.Size())
	}
	p.mu.Lock()
	p.busy--
	if keep {
		p.mem = p.mem - in.memBytes + size
		in.memBytes = size
		p.putLocked(in)
		p.mu.Unlock()
		return
	}
	p.n--
	p.live--
	p.mem -= in.memBytes
	if p.n < p.size {
		p.n++
		if !p.background(p.replace) {
			p.n--
		}
	} else {
		p.growLocked(len(p.waiters))
	}
	p.mu.Unlock()
	in.close()
}

// replace makes an instance in place of a discarded one of the base pool,
// retrying until it succeeds or the pool is retired.
func (p *pool) replace(ctx context.Context) {
	backoff := 50 * time.Millisecond
	for {
		in, err := p.newInstance(ctx)
		if err == nil {
			p.mu.Lock()
			p.addLocked(in)
			p.mu.Unlock()
			return
		}
		if p.retired.Load() || ctx.Err() != nil {
			p.mu.Lock()
			p.n--
			p.mu.Unlock()
			return
		}
		p.m.log.Error("could not replace a discarded instance; retrying", "app", p.m.id, "err", err, "in", backoff)
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// instance is one instantiation of a module: its own linear memory, its own
// Go runtime. It runs one call at a time.
type instance struct {
	p      *pool
	mod    wasmrt.Module
	mem    wasmrt.Memory
	lin    *linearMemory // mem's backing, bracketed around calls
	alloc  wasmrt.Function
	handle wasmrt.Function
	man    abi.Manifest

	stack [2]uint64
	enc   []byte
	// buf and bufLen are the buffer of the last roam_alloc.
	buf, bufLen uint32
	st          callState
	stdout      *output
	stderr      *output
	// done is the current call's interruption signal, for nanosleep.
	done <-chan struct{}
	// stop is the metered module's stop flag (wasmopt.Meter), nil where
	// the runtime interrupts calls itself; stopped is set once it was set.
	stop     wasmrt.MutableGlobal
	stopped  bool
	overflow bool
	// memBytes is the size of its linear memory at the end of its last
	// call (or of its setup), and idleSince when it was last made free:
	// both are the pool's, under its lock.
	memBytes  uint64
	idleSince time.Time
}

// instantiate creates and sets up one instance: _initialize (the Go runtime
// and package initialisation), then roam_init under c.
func (p *pool) instantiate(ctx context.Context, c *caps) (*instance, error) {
	m := p.m
	ctx, cancel := context.WithTimeout(ctx, m.opts.InitTimeout)
	defer cancel()
	in := &instance{p: p, done: ctx.Done()}
	logger := func() *slog.Logger {
		if m.id != "" {
			return m.log.With("app", m.id)
		}
		return m.log
	}
	in.stdout = newOutput("stdout", slog.LevelInfo, logger)
	in.stderr = newOutput("stderr", slog.LevelWarn, logger)
	cfg := wasmrt.NewModuleConfig().
		WithName(""). // anonymous: one runtime holds any number of instances
		// _initialize is called below, as an export call the host can stop.
		WithStartFunctions().
		WithSysWalltime().WithSysNanotime().
		WithNanosleep(in.nanosleep).
		WithRandSource(rand.Reader).
		WithStdout(in.stdout).WithStderr(in.stderr)
	for k, v := range m.opts.Env {
		cfg = cfg.WithEnv(k, v)
	}
	if len(m.opts.Mounts) > 0 {
		fsc := wasmrt.NewFSConfig()
		for _, mt := range m.opts.Mounts {
			if mt.ReadOnly {
				fsc = fsc.WithReadOnlyDirMount(mt.Host, mt.Guest)
			} else {
				fsc = fsc.WithDirMount(mt.Host, mt.Guest)
			}
		}
		cfg = cfg.WithFSConfig(fsc)
	}
	in.lin = newLinearMemory(uint64(m.opts.MemoryLimitPages) << 16)
	in.lin.acct = &p.linear
	defer in.lin.exit()
	ictx := wasmrt.WithMemoryAllocator(ctx, func(capacity, maxBytes uint64) wasmrt.LinearMemory {
		in.lin.limit = min(in.lin.limit, maxBytes)
		return in.lin
	})
	mod, err := instantiateModule(ictx, m.rt.rt, p.cm, cfg)
	if err != nil {
		in.lin.discard()
		msg := firstLine(err.Error())
		if s := in.stderr.summary(3); s != "" {
			msg += " (stderr: " + s + ")"
		}
		if cause := context.Cause(ctx); cause != nil {
			// Stopped (a load cancelled by Ctrl-C, or past InitTimeout):
			// the cause stays an error callers can tell apart.
			return nil, m.errorf("instantiating: %s: %w", msg, cause)
		}
		return nil, m.errorf("instantiating: %s", msg)
	}
	m.instantiations.Add(1)
	in.mod = mod
	in.mem = mod.Memory()
	in.alloc = mod.ExportedFunction(abi.ExportAlloc)
	in.handle = mod.ExportedFunction(abi.ExportHandle)
	if m.rt.meter {
		g, ok := mod.ExportedGlobal(wasmopt.MeterStop).(wasmrt.MutableGlobal)
		if !ok {
			in.close()
			return nil, m.errorf("instantiating: the metered module has no stop flag")
		}
		in.stop = g
	}
	if f := mod.ExportedFunction(wasmopt.MeterStart); m.rt.meter && f != nil {
		// The module's start function, which Meter took out of the
		// instantiation, where nothing could stop it.
		if err := in.run(ctx, f); err != nil {
			in.close()
			return nil, m.errorf("instantiating: start function: %s", in.describe(err))
		}
	}
	if f := mod.ExportedFunction("_initialize"); f != nil {
		if err := in.run(ctx, f); err != nil {
			in.close()
			return nil, m.errorf("instantiating: %s", in.describe(err))
		}
	}

	if c == nil {
		if c, err = in.appCaps(ctx); err != nil {
			in.close()
			return nil, err
		}
	}
	in.st = callState{ctx: ctx, caps: c, module: m}
	cctx := context.WithValue(ctx, stateKey{}, &in.st)
	if err := in.run(cctx, mod.ExportedFunction(abi.ExportInit)); err != nil {
		in.close()
		return nil, m.errorf("roam_init: %s", in.describe(err))
	}
	code, payload, ok := in.frame(in.stack[0])
	if !ok {
		in.close()
		return nil, m.errorf("roam_init returned a frame outside the module's memory")
	}
	if code != abi.OK {
		in.close()
		return nil, m.errorf("app setup failed (%s): %s", code, payload)
	}
	man, err := abi.ReadManifest(payload)
	if err != nil {
		in.close()
		return nil, m.errorf("roam_init returned a malformed manifest")
	}
	if err := sdk.ValidAppID(man.AppID); err != nil {
		in.close()
		return nil, m.errorf("roam_init: %v", err)
	}
	in.man = man
	in.st.ctx = nil
	in.memBytes = uint64(in.mem.Size())
	return in, nil
}

// instantiateModule is the runtime's InstantiateModule, with a panic in
// it (wazero v1.12 indexes an instance's memory without checking that the
// allocator could provide it) returned as an error: one module must not
// take the host down.
func instantiateModule(ctx context.Context, rt wasmrt.Runtime, cm wasmrt.CompiledModule, cfg wasmrt.ModuleConfig) (mod wasmrt.Module, err error) {
	defer func() {
		if v := recover(); v != nil {
			mod, err = nil, fmt.Errorf("the runtime failed: %v", v)
		}
	}()
	return rt.InstantiateModule(ctx, cm, cfg)
}

// appCaps are the capabilities a first load sets an instance up with: the
// app's own when the module names its app before setup (roam_app_id, ABI
// v1.2), else discovery capabilities (see Module).
func (in *instance) appCaps(ctx context.Context) (*caps, error) {
	m := in.p.m
	f := in.mod.ExportedFunction(abi.ExportAppID)
	if f == nil {
		return m.bind.discoveryCaps(), nil
	}
	if err := in.run(ctx, f); err != nil {
		return nil, m.errorf("roam_app_id: %s", in.describe(err))
	}
	code, payload, ok := in.frame(in.stack[0])
	switch {
	case !ok:
		return nil, m.errorf("roam_app_id returned a frame outside the module's memory")
	case code != abi.OK:
		return nil, m.errorf("app setup failed (%s): %s", code, payload)
	}
	if err := sdk.ValidAppID(string(payload)); err != nil {
		return nil, m.errorf("roam_app_id: %v", err)
	}
	return m.bind.bind(string(payload)), nil
}

// checkVersion compares the module's reported ABI major with the host's.
// roam_abi_version is guest code like any other: it runs under the
// set-up's deadline, so that one that loops fails the load instead of
// holding it (and a CPU) for ever.
func (in *instance) checkVersion(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, in.p.m.opts.InitTimeout)
	defer cancel()
	in.done = ctx.Done()
	in.lin.enter()
	defer in.lin.exit()
	if err := in.run(ctx, in.mod.ExportedFunction(abi.ExportABIVersion)); err != nil {
		return in.p.m.errorf("roam_abi_version: %s", in.describe(err))
	}
	v := uint32(in.stack[0])
	if major := v >> 16; major != abi.VersionMajor {
		return in.p.m.errorf("module built for Roam ABI v%d.%d; this host speaks v%d — rebuild it with this roam version", major, v&0xffff, abi.VersionMajor)
	}
	in.p.minor = v & 0xffff
	return nil
}

// run calls the export f with the instance's stack. The runtime
// interrupts it when ctx ends, or, for a metered module, ctx's end sets the
// module's stop flag and the guest traps at its next check. Either way the
// error then matches ctx's, and the instance must not serve again: a
// stopped one would trap at once, even when the call itself got through.
func (in *instance) run(ctx context.Context, f wasmrt.Function) error {
	if in.stop == nil {
		return f.CallWithStack(ctx, in.stack[:])
	}
	if ctx.Err() != nil {
		in.stopped = true
		return ctx.Err()
	}
	release := context.AfterFunc(ctx, in.halt)
	err := f.CallWithStack(ctx, in.stack[:])
	if !release() {
		in.stopped = true
		if err != nil {
			err = interrupted{ctx.Err(), err}
		}
	}
	return err
}

func (in *instance) halt() { in.stop.Set(1) }

// interrupted is the error of a metered call stopped when its context
// ended: it matches the context's error, and says what the guest did.
type interrupted struct{ ctx, trap error }

func (e interrupted) Error() string { return e.ctx.Error() + ": " + e.trap.Error() }
func (e interrupted) Unwrap() error { return e.ctx }

// nanosleep is the instance's WASI sleep (poll_oneoff on a clock). It wakes
// early when the current call is interrupted, so that a sleeping guest
// cannot hold its instance past the deadline: the guest then resumes into
// wazero's termination check.
func (in *instance) nanosleep(ns int64) {
	if ns <= 0 {
		return
	}
	t := time.NewTimer(time.Duration(ns))
	defer t.Stop()
	select {
	case <-t.C:
	case <-in.done:
	}
}

func (in *instance) close() {
	if in.mod != nil {
		in.mod.Close(context.Background())
	}
}

// frame reads the frame an export returned: a status byte, then the
// payload. The payload is a view of guest memory: copy what is kept.
func (in *instance) frame(v uint64) (abi.Code, []byte, bool) {
	ptr, n := abi.UnpackFrame(v)
	if n == 0 {
		return 0, nil, false
	}
	b, ok := in.mem.Read(ptr, n)
	if !ok {
		return 0, nil, false
	}
	c := abi.Code(b[0])
	if c != abi.OK && !c.Valid() {
		c = abi.Internal
	}
	return c, b[1:], true
}

// call runs one call: roam_alloc, copy the encoded abi.Call in, roam_handle,
// copy the reply out. keep reports whether the instance may serve again.
func (in *instance) call(ctx context.Context, kind uint64, name string, body []byte) (out []byte, err error, keep bool) {
	m := in.p.m
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(m.opts.Timeout)
	}
	if time.Until(deadline) <= 0 {
		// wazero would close the instance on an expired context.
		return nil, sdk.Errorf(sdk.DeadlineExceeded, "%s %s: deadline exceeded before the call started", m.id, name), true
	}
	c := abi.Call{Kind: kind, Name: name, RequestID: sdk.RequestID(ctx), DeadlineMs: uint64(deadline.UnixMilli()), Body: body}
	if in.p.minor >= 1 { // a v1.0 guest would refuse the trailing fields
		tc := sdk.Trace(ctx) // set by the host's handler span; zero when not traced
		c.TraceParent, c.TraceState = tc.TraceParent, tc.TraceState
	}
	in.enc = abi.AppendCall(in.enc[:0], c)
	in.lin.enter()
	defer in.lin.exit()

	// The guest learns the deadline and, given the grace, usually honours
	// it itself; the host stops it otherwise (run), or when the Runtime
	// closes. The request's own cancellation (a client gone) does not
	// interrupt: the guest cannot be told, and killing it would cost a new
	// instance. Host functions take the request's values from st.ctx.
	kctx, cancel := context.WithDeadline(m.rt.bgCtx, deadline.Add(killGrace))
	defer cancel()
	if kind == abi.KindEvent {
		// A delivery has no client to go away: only its backend's Close
		// cancels it, and a guest that ignored that (a loop) kept the
		// backend, and the host's exit, waiting. Its event is not
		// acknowledged, and is delivered again at the next start.
		defer context.AfterFunc(ctx, func() {
			if errors.Is(context.Cause(ctx), context.Canceled) {
				cancel()
			}
		})()
	}
	st := &in.st
	st.ctx, st.caps, st.module, st.overflow, st.result, st.imports = ctx, m.caps, m, in.overflow, nil, 0
	defer func() {
		st.ctx, st.result = nil, nil
		if cap(st.scratch) > 64<<10 {
			st.scratch = nil
		}
		if cap(in.enc) > 64<<10 {
			in.enc = nil
		}
	}()
	kctx = context.WithValue(kctx, stateKey{}, st)
	in.done = kctx.Done()
	in.stdout.reset()
	in.stderr.reset()

	// roam_alloc's buffer stays valid until the next roam_alloc (package
	// abi), so a request that fits in the last one skips the export call:
	// with interruption on, each export call costs about a microsecond.
	if in.buf == 0 || len(in.enc) > int(in.bufLen) {
		in.stack[0] = uint64(len(in.enc))
		if err := in.run(kctx, in.alloc); err != nil {
			return nil, in.failed(name, err), false
		}
		in.buf, in.bufLen = uint32(in.stack[0]), uint32(len(in.enc))
	}
	if in.buf == 0 || !in.mem.Write(in.buf, in.enc) {
		return nil, in.broken(name, fmt.Sprintf("roam_alloc(%d) returned %#x, outside its memory", in.bufLen, in.buf)), false
	}
	in.stack[0], in.stack[1] = uint64(in.buf), uint64(len(in.enc))
	start := time.Now()
	if err := in.run(kctx, in.handle); err != nil {
		return nil, in.failed(name, err), false
	}
	if time.Since(start) >= freshStackAfter {
		// wazero runs the call on a stack it grows by doubling (up to about
		// 128 MB), and keeps it with the function for the next call,
		// outside the memory limit and the pool's budget. A stack takes
		// time to grow, so a shorter call grew it by little; after a
		// longer one the function is fetched afresh, with a 10 KB stack,
		// and the old one goes to the garbage collector.
		in.handle = in.mod.ExportedFunction(abi.ExportHandle)
	}
	_, n := abi.UnpackFrame(in.stack[0])
	if n > 0 && int(n-1) > m.opts.MaxResponseBytes {
		return nil, sdk.Errorf(sdk.Internal, "%s %s: reply of %d bytes exceeds the module's limit of %d", m.id, name, n-1, m.opts.MaxResponseBytes), in.healthy()
	}
	code, payload, ok := in.frame(in.stack[0])
	if !ok {
		return nil, in.broken(name, "roam_handle returned a frame outside its memory"), false
	}
	if code != abi.OK {
		return nil, &sdk.Error{Code: code, Message: string(payload)}, in.healthy()
	}
	if len(payload) > 0 {
		out = bytes.Clone(payload)
	}
	return out, nil, in.healthy()
}

// freshStackAfter is how long a call runs before its instance's
// roam_handle is fetched afresh, to let go of the stack it grew: a guest
// recursing 4 million calls deep (195 ms) left wazero holding 121 MB, where
// 5 ms of recursion grew about 3 MB (frames full of live locals grow it
// faster, at most as fast as the guest writes them). A call that waits on a
// backend or another app for longer pays for a new function (about 10 KB).
const freshStackAfter = 5 * time.Millisecond

// healthy reports whether the instance may serve again after a normal call:
// it may not once its memory grew past the recycle threshold, since linear
// memory never shrinks.
func (in *instance) healthy() bool {
	if in.stopped {
		return false
	}
	if uint64(in.mem.Size()) > in.p.m.opts.RecycleBytes {
		in.p.m.recycled.Add(1)
		return false
	}
	return true
}

// failed maps an error of an export call. Whatever it is, the instance is
// discarded: after a trap or an interruption its Go runtime is in an
// undefined state (a lock held, a goroutine half-run).
func (in *instance) failed(name string, err error) error {
	m := in.p.m
	// Both runtimes' interruption errors match the context's error (wazero:
	// a sys.ExitError with the matching exit code; wazy: a trap wrapping it).
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		m.timeouts.Add(1)
		m.log.Warn("call interrupted at its deadline; instance discarded", "app", m.id, "call", name)
		return sdk.Errorf(sdk.DeadlineExceeded, "%s %s: deadline exceeded: the call ran past its deadline and was stopped", m.id, name)
	case errors.Is(err, context.Canceled):
		return sdk.Errorf(sdk.Unavailable, "%s %s: canceled: the host is shutting down", m.id, name)
	}
	m.traps.Add(1)
	msg := in.describe(err)
	m.log.Error("guest trapped; instance discarded", "app", m.id, "call", name, "err", err.Error(), "stderr", in.stderr.summary(20))
	return sdk.Errorf(sdk.Internal, "%s %s: %s", m.id, name, msg)
}

// broken reports a guest that broke the protocol without trapping.
func (in *instance) broken(name, what string) error {
	m := in.p.m
	m.traps.Add(1)
	m.log.Error("guest broke the ABI; instance discarded", "app", m.id, "call", name, "err", what)
	return sdk.Errorf(sdk.Internal, "%s %s: %s", m.id, name, what)
}

// describe turns an export call's error into one line for a caller, with
// the start of what the guest wrote to stderr.
func (in *instance) describe(err error) string {
	var msg string
	var ee *wasmrt.ExitError
	var t trap
	switch {
	case errors.As(err, &t):
		msg = "the module broke the ABI: " + t.msg
	case errors.Is(err, context.DeadlineExceeded):
		msg = "interrupted at its deadline"
	case errors.Is(err, context.Canceled):
		msg = "canceled"
	case errors.As(err, &ee):
		msg = fmt.Sprintf("the module exited with code %d", ee.ExitCode())
	default:
		msg = "the module trapped: " + firstLine(err.Error())
	}
	if s := in.stderr.summary(3); s != "" {
		msg += " (stderr: " + s + ")"
	}
	return msg
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}
