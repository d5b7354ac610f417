package edge

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/roam-dev/roam/backend/memory"
	"github.com/roam-dev/roam/host"
	"github.com/roam-dev/roam/sdk"
)

// TestPoolFillsInBackground: Load returns with the first instance ready
// and the rest of the pool arrives in the background; calls made meanwhile
// queue and succeed; closing the module while the pool fills leaves no
// instance behind.
func TestPoolFillsInBackground(t *testing.T) {
	ctx := context.Background()
	be := memory.New(memory.Options{})
	defer be.Close()
	rt := newRuntime(t, nil)
	m, err := rt.Load(ctx, confWasm, ModuleOptions{PoolSize: 4}, Binding{Backend: be})
	if err != nil {
		t.Fatal(err)
	}
	// Calls right away, more of them than instances may be ready.
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if out, err := m.Call(ctx, "Echo", []byte(`"x"`)); err != nil || string(out) != `"x"` {
				t.Errorf("Echo = %q, %v", out, err)
			}
		}()
	}
	wg.Wait()
	waitFilled(t, m)
	// The pool does not grow while it fills, and may once it has, for the
	// calls still queued then.
	if s := m.Stats(); s.Idle != s.PoolSize || s.PoolSize != 4+int(s.Grown) || s.Instantiations != 4+s.Grown {
		t.Errorf("filled pool: %+v, want 4 idle instances and those grown, 4 instantiations and those grown", s)
	}

	// Closed while filling: the fill stops, and the pool closes once it has.
	m2, err := newRuntime(t, nil).Load(ctx, confWasm, ModuleOptions{PoolSize: 12}, Binding{Backend: be})
	if err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := m2.Close(cctx); err != nil {
		t.Fatal(err)
	}
	if n := m2.Stats().Instantiations; n >= 12 {
		t.Logf("the pool filled before Close (%d instances): nothing stopped early", n)
	}
}

// sleepers calls Sleep n times at once on m and waits for them all; every
// call must succeed.
func sleepers(t *testing.T, m *Module, n, ms int) {
	t.Helper()
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := m.Call(context.Background(), "Sleep", []byte(fmt.Sprintf(`{"ms":%d}`, ms))); err != nil {
				t.Errorf("Sleep: %v", err)
			}
		}()
	}
	wg.Wait()
}

// waitSettled waits until no instance is being made for the pool.
func waitSettled(t *testing.T, m *Module) {
	t.Helper()
	waitFor(t, "the pool to settle", 30*time.Second, func() bool {
		p := m.cur.Load()
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.n == p.live && p.growing == 0
	})
}

// watchPool samples the pool until stop is called and returns the most
// instances it saw held or being made (p.n), which must never pass the
// ceiling.
func watchPool(m *Module) (stop func() int) {
	done := make(chan struct{})
	most := make(chan int)
	go func() {
		high := 0
		for {
			if p := m.cur.Load(); p != nil {
				p.mu.Lock()
				high = max(high, p.n, p.live)
				p.mu.Unlock()
			}
			select {
			case <-done:
				most <- high
				return
			case <-time.After(200 * time.Microsecond):
			}
		}
	}()
	return func() int {
		close(done)
		return <-most
	}
}

// TestPoolGrowsWhileCallsQueue: calls that find every instance busy make the
// pool grow, never beyond MaxPoolSize; the figures and gauges say so.
func TestPoolGrowsWhileCallsQueue(t *testing.T) {
	es := newEdgeServer(t, ModuleOptions{PoolSize: 2, MaxPoolSize: 4, IdleTimeout: time.Minute}, host.Options{}, confWasm)
	m := es.mods["conformance"]
	waitFilled(t, m)
	stop := watchPool(m)
	done := make(chan struct{})
	go func() {
		defer close(done)
		sleepers(t, m, 8, 400)
	}()
	// Four run, four wait: the pool has grown to its ceiling.
	waitFor(t, "the pool to grow to 4 with 4 calls queued", 10*time.Second, func() bool {
		s := m.Stats()
		return s.PoolSize == 4 && s.Busy == 4 && s.Queued == 4
	})
	metrics := scrape(t, es.url)
	for _, want := range []string{
		`roam_edge_pool_size{app="conformance"} 4`, `roam_edge_pool_max{app="conformance"} 4`,
		`roam_edge_pool_grown_total{app="conformance"} 2`, `roam_edge_calls_queued{app="conformance"} 4`,
		`roam_edge_instances_busy{app="conformance"} 4`, `roam_edge_pool_shrunk_total{app="conformance"} 0`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	<-done
	waitSettled(t, m)
	if high := stop(); high > 4 {
		t.Errorf("the pool held or was making %d instances; its ceiling is 4", high)
	}
	s := m.Stats()
	if s.PoolSize != 4 || s.BasePoolSize != 2 || s.MaxPoolSize != 4 || s.Idle != 4 || s.Grown != 2 || s.Instantiations != 4 || s.Shrunk != 0 {
		t.Errorf("stats %+v: want 4 idle instances of at most 4, 2 of them grown", s)
	}
	if s.MemoryBytes < 4*(1<<20) || s.MemoryBytes > 4*DefaultRecycleBytes {
		t.Errorf("stats %+v: the memory of 4 instances is not %d bytes", s, s.MemoryBytes)
	}
}

// TestPoolMemoryBudget: growth stops at the memory budget; the base pool is
// made whatever the budget.
func TestPoolMemoryBudget(t *testing.T) {
	ctx := context.Background()
	be := memory.New(memory.Options{})
	defer be.Close()

	// A budget below one instance: the base pool, and no growth.
	m, err := newRuntime(t, nil).Load(ctx, confWasm, ModuleOptions{PoolSize: 2, MaxPoolSize: 8, PoolMemoryBytes: 1 << 20}, Binding{Backend: be})
	if err != nil {
		t.Fatal(err)
	}
	waitFilled(t, m)
	fresh := m.Stats().MemoryBytes / 2
	sleepers(t, m, 6, 100)
	waitSettled(t, m)
	if s := m.Stats(); s.PoolSize != 2 || s.Grown != 0 || s.Instantiations != 2 {
		t.Errorf("stats %+v: a pool over its budget grew", s)
	}
	m.Close(ctx)

	// Room for one more instance, not two.
	budget := 2*fresh + fresh/2
	m, err = newRuntime(t, nil).Load(ctx, confWasm, ModuleOptions{PoolSize: 1, MaxPoolSize: 8, PoolMemoryBytes: budget}, Binding{Backend: be})
	if err != nil {
		t.Fatal(err)
	}
	waitFilled(t, m)
	sleepers(t, m, 6, 200)
	waitSettled(t, m)
	if s := m.Stats(); s.PoolSize != 2 || s.Grown != 1 || s.MemoryBytes > budget {
		t.Errorf("stats %+v: with a budget of %d bytes and instances of %d, want the pool grown by exactly one", s, budget, fresh)
	}
}

// TestPoolShrinksWhenIdle: the instances a burst added are closed after
// IdleTimeout without a call, and the pool goes back to its base size.
func TestPoolShrinksWhenIdle(t *testing.T) {
	es := newEdgeServer(t, ModuleOptions{PoolSize: 2, MaxPoolSize: 6, IdleTimeout: 200 * time.Millisecond}, host.Options{}, confWasm)
	m := es.mods["conformance"]
	waitFilled(t, m)
	base := m.Stats().MemoryBytes
	sleepers(t, m, 12, 300)
	waitSettled(t, m)
	if s := m.Stats(); s.Grown == 0 {
		t.Fatalf("stats %+v: 12 calls of 300 ms on 2 instances did not make the pool grow", s)
	}
	waitFor(t, "the pool to shrink back to 2", 10*time.Second, func() bool { return m.Stats().PoolSize == 2 })
	s := m.Stats()
	if s.Idle != 2 || s.Shrunk != s.Grown || s.Instantiations != 2+s.Grown {
		t.Errorf("stats %+v: want the 2 base instances idle and every grown one closed", s)
	}
	if s.MemoryBytes > 2*base {
		t.Errorf("memory %d after shrinking, %d before the burst", s.MemoryBytes, base)
	}
	if !strings.Contains(scrape(t, es.url), fmt.Sprintf(`roam_edge_pool_shrunk_total{app="conformance"} %d`, s.Shrunk)) {
		t.Error("/metrics does not count the closed instances")
	}
	// It serves, and grows, again.
	sleepers(t, m, 6, 200)
	if s2 := m.Stats(); s2.Grown == s.Grown {
		t.Errorf("stats %+v: the pool did not grow again", s2)
	}
	waitFor(t, "the pool to shrink back to 2 again", 10*time.Second, func() bool { return m.Stats().PoolSize == 2 })
}

// TestFixedPool: MaxPoolSize equal to PoolSize (or FixedPool) keeps the
// pool at its size: calls queue as they always did.
func TestFixedPool(t *testing.T) {
	for _, ceiling := range []int{2, FixedPool} {
		rt := newRuntime(t, nil)
		m, err := rt.Load(context.Background(), confWasm, ModuleOptions{PoolSize: 2, MaxPoolSize: ceiling}, Binding{})
		if err != nil {
			t.Fatal(err)
		}
		waitFilled(t, m)
		done := make(chan struct{})
		go func() {
			defer close(done)
			sleepers(t, m, 6, 300)
		}()
		waitFor(t, "4 queued calls", 10*time.Second, func() bool { return m.Stats().Queued == 4 })
		<-done
		waitSettled(t, m)
		if s := m.Stats(); s.PoolSize != 2 || s.MaxPoolSize != 2 || s.Grown != 0 || s.Instantiations != 2 {
			t.Errorf("MaxPoolSize %d: stats %+v, want a fixed pool of 2", ceiling, s)
		}
	}
}

// TestGrownInstanceNotReplaced: an instance the pool grew by that traps is
// closed and not replaced; one of the base pool is.
func TestGrownInstanceNotReplaced(t *testing.T) {
	m, err := newRuntime(t, nil).Load(context.Background(), confWasm, ModuleOptions{PoolSize: 1, MaxPoolSize: 3, IdleTimeout: time.Minute}, Binding{})
	if err != nil {
		t.Fatal(err)
	}
	sleepers(t, m, 6, 200)
	waitSettled(t, m)
	s := m.Stats()
	if s.PoolSize < 2 {
		t.Fatalf("stats %+v: the pool did not grow", s)
	}
	for n := s.PoolSize; n > 1; n-- {
		if _, err := m.Call(context.Background(), "Exit", []byte("{}")); sdk.CodeOf(err) != sdk.Internal {
			t.Fatalf("Exit: %v", err)
		}
		if got := m.Stats(); got.PoolSize != n-1 || got.Instantiations != s.Instantiations {
			t.Fatalf("stats %+v after a grown instance trapped: want %d instances and no replacement", got, n-1)
		}
	}
	// The last is the base pool's: replaced.
	if _, err := m.Call(context.Background(), "Exit", []byte("{}")); sdk.CodeOf(err) != sdk.Internal {
		t.Fatalf("Exit: %v", err)
	}
	waitFor(t, "the replacement", 10*time.Second, func() bool { return m.Stats().Idle == 1 })
	if got := m.Stats(); got.PoolSize != 1 || got.Instantiations != s.Instantiations+1 || got.Traps != uint64(s.PoolSize) {
		t.Errorf("stats %+v: want the base instance replaced", got)
	}
	if out, err := m.Call(context.Background(), "Echo", []byte(`1`)); err != nil || string(out) != "1" {
		t.Fatalf("Echo: %q %v", out, err)
	}
}

// TestHotReloadGrownPool: reloading while a grown pool serves drops no
// request; the old version's instances, grown ones included, all close.
func TestHotReloadGrownPool(t *testing.T) {
	es := newEdgeServer(t, ModuleOptions{PoolSize: 2, MaxPoolSize: 6, IdleTimeout: time.Minute}, host.Options{}, confWasm)
	m := es.mods["conformance"]
	l := startLoad(es.url, 10, func(w, n int) (string, string, string) {
		if n%2 == 0 {
			return "Sleep", `{"ms":20}`, "{}"
		}
		body := fmt.Sprintf(`{"w":%d,"n":%d}`, w, n)
		return "Echo", body, body
	})
	var olds []*pool
	for i := 0; i < 3; i++ {
		waitFor(t, "the pool to grow", 10*time.Second, func() bool { return m.Stats().PoolSize > 2 })
		olds = append(olds, m.cur.Load())
		if err := m.Reload(context.Background(), confWasm); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the new version to grow", 10*time.Second, func() bool { return m.Stats().PoolSize > 2 })
	l.stop(t)
	if s := m.Stats(); s.Reloads != 3 || s.Traps != 0 || s.Rejected != 0 || s.PoolSize > 6 {
		t.Errorf("stats %+v", s)
	}
	for i, p := range olds {
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			t.Errorf("version %d's pool did not close", i+1)
		}
		if p.live != 0 || len(p.free) != 0 {
			t.Errorf("version %d's pool closed with %d instances", i+1, p.live)
		}
	}
	t.Logf("%d requests served across 3 reloads", l.ok.Load())
}

// TestModuleOptionsDefaults: the ceiling defaults to 4 × the pool size (at
// most 64, never below the pool size), and a ceiling below the default pool
// size lowers it.
func TestModuleOptionsDefaults(t *testing.T) {
	for _, c := range []struct {
		in        ModuleOptions
		pool, max int
		budget    uint64
		idle      time.Duration
	}{
		{ModuleOptions{PoolSize: 2}, 2, 8, DefaultPoolMemoryBytes, DefaultIdleTimeout},
		{ModuleOptions{PoolSize: 32}, 32, 64, DefaultPoolMemoryBytes, DefaultIdleTimeout},
		{ModuleOptions{PoolSize: 100}, 100, 100, DefaultPoolMemoryBytes, DefaultIdleTimeout},
		{ModuleOptions{PoolSize: 4, MaxPoolSize: 2}, 4, 4, DefaultPoolMemoryBytes, DefaultIdleTimeout},
		{ModuleOptions{PoolSize: 4, MaxPoolSize: FixedPool}, 4, 4, DefaultPoolMemoryBytes, DefaultIdleTimeout},
		{ModuleOptions{MaxPoolSize: 1}, 1, 1, DefaultPoolMemoryBytes, DefaultIdleTimeout},
		{ModuleOptions{PoolSize: 3, PoolMemoryBytes: 1 << 20, IdleTimeout: time.Second}, 3, 12, 1 << 20, time.Second},
	} {
		o := c.in.withDefaults()
		if o.PoolSize != c.pool || o.MaxPoolSize != c.max || o.PoolMemoryBytes != c.budget || o.IdleTimeout != c.idle {
			t.Errorf("%+v: pool %d, max %d, budget %d, idle %s; want %d, %d, %d, %s", c.in, o.PoolSize, o.MaxPoolSize, o.PoolMemoryBytes, o.IdleTimeout, c.pool, c.max, c.budget, c.idle)
		}
	}
	if o := (ModuleOptions{}).withDefaults(); o.PoolSize != DefaultPoolSize() || o.MaxPoolSize != DefaultMaxPoolSize(DefaultPoolSize()) {
		t.Errorf("defaults: pool %d, max %d", o.PoolSize, o.MaxPoolSize)
	}
}
