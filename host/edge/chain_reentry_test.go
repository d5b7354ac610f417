package edge

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/roam-dev/roam/abi"
	"github.com/roam-dev/roam/host"
	"github.com/roam-dev/roam/sdk"
)

// Tests of re-entrant calls through other apps (A invokes B, whose call
// invokes A again) on fixed and grown pools: the inner call gets an extra
// instance of A instead of waiting for one that only its own chain can
// free, within bounds that end a runaway recursion with a clear error.

// forwardGuest is a hand-assembled app (guestApp) whose Call invokes
// app.method with body and answers what the invocation answered: its code,
// and its reply or error message (take_result).
func forwardGuest(app, method, body string) guest {
	req := abi.AppendString(nil, app)
	req = abi.AppendString(req, method)
	req = abi.AppendBytes(req, []byte(body))
	const (
		at     = 8192  // the invoke request
		result = 4000  // the invoke's i64 result
		frame  = 16384 // the reply: the status byte, then the payload
	)
	i64Store := []byte{0x37, 0x03, 0x00}
	i64Load := []byte{0x29, 0x03, 0x00}
	return guest{
		imports:    []string{abi.ImportInvoke},
		takeResult: true, // function 1
		memPages:   2,
		handle: concat(
			// mem[result] = invoke(req)
			i32Const(result), i32Const(at), i32Const(int32(len(req))), []byte{0x10, 0}, i64Store,
			// mem[frame] = its code
			i32Const(frame), i32Const(result), i64Load, i64Const(32), []byte{0x88, 0xa7, 0x3a, 0x00, 0x00},
			// take_result(frame+1)
			i32Const(frame+1), []byte{0x10, 1},
			// frame (frame, 1 + its length)
			i32Const(result), i64Load, i64Const(0xffffffff), []byte{0x83}, i64Const(1), []byte{0x7c},
			i64Const(int64(abi.PackFrame(frame, 0))), []byte{0x84},
		),
		data: map[int32][]byte{at: req},
	}
}

// settled waits until no call holds an instance of the modules and no
// extra instance is counted.
func settled(t *testing.T, es *edgeServer) {
	t.Helper()
	for id, m := range es.mods {
		waitFor(t, id+"'s pool to settle", 10*time.Second, func() bool {
			s := m.Stats()
			return s.Busy == 0 && s.Queued == 0 && m.cur.Load().overflow.Load() == 0
		})
	}
}

// TestReentryFixedPoolsABA: with a fixed pool of 1 for each module,
// conformance invokes the guest, whose call invokes conformance again: the
// inner call gets an extra instance of conformance (its one instance is
// held by the same chain) and the whole chain answers 200 at once, not a
// 504 at the deadline. (This held before the change too: the chain was
// already recognised. See TestReentryConcurrentChains for what did not.)
func TestReentryFixedPoolsABA(t *testing.T) {
	g := forwardGuest("conformance", "Echo", `{"back":true}`)
	es := newEdgeServer(t, ModuleOptions{PoolSize: 1, MaxPoolSize: FixedPool}, host.Options{RequestTimeout: 20 * time.Second}, confWasm, g.wasm())
	for i := range 3 {
		start := time.Now()
		code, body := post(t, es.url, "conformance", "Invoke", `{"app":"guest","method":"Call"}`)
		if code != 200 || body != `{"back":true}` {
			t.Fatalf("call %d: conformance -> guest -> conformance: %d %.300s, want 200 {\"back\":true}", i, code, body)
		}
		if took := time.Since(start); took > 5*time.Second {
			t.Errorf("call %d took %s: it waited for an instance its own chain held", i, took)
		}
	}
	settled(t, es)
	for id, m := range es.mods {
		if s := m.Stats(); s.PoolSize != 1 || s.Idle != 1 {
			t.Errorf("%s: %+v, want its one instance idle", id, s)
		}
	}
}

// TestReentryConcurrentChains: 4 chains conformance -> guest ->
// conformance at once, through pools that grow from 1 to 4. Each chain
// holds an instance of conformance, and each inner call needs one more.
// The extras were bounded by the base pool size for the whole pool (1
// here), so 3 of the 4 chains were refused with Unavailable; now each chain
// gets its own, within the pool's ceiling and memory budget.
func TestReentryConcurrentChains(t *testing.T) {
	g := forwardGuest("conformance", "Sleep", `{"ms":300}`)
	es := newEdgeServer(t, ModuleOptions{PoolSize: 1, MaxPoolSize: 4}, host.Options{RequestTimeout: 20 * time.Second}, confWasm, g.wasm())
	const n = 4
	var wg sync.WaitGroup
	errs := make(chan string, n)
	start := time.Now()
	for range n {
		wg.Go(func() {
			code, body := post(t, es.url, "conformance", "Invoke", `{"app":"guest","method":"Call"}`)
			if code != 200 || body != "{}" {
				errs <- fmt.Sprintf("%d %.300s", code, body)
			}
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Errorf("a chain: %s, want 200 {}", e)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("the chains took %s", took)
	}
	settled(t, es)
	if s := es.mods["conformance"].Stats(); s.PoolSize > 4 {
		t.Errorf("conformance: %+v, want at most 4 pooled instances", s)
	}
}

// TestReentryRunawayBounded: conformance and the guest invoking each other
// for ever, on fixed pools of 1, end at once with a 503 that says why,
// after one extra instance of each (a chain holds at most as many extras
// of a module as its base pool), and leave both pools whole.
func TestReentryRunawayBounded(t *testing.T) {
	g := forwardGuest("conformance", "Invoke", `{"app":"guest","method":"Call"}`)
	es := newEdgeServer(t, ModuleOptions{PoolSize: 1, MaxPoolSize: FixedPool}, host.Options{RequestTimeout: 30 * time.Second}, confWasm, g.wasm())
	before := map[string]uint64{}
	for id, m := range es.mods {
		before[id] = m.Stats().Instantiations
	}
	for _, entry := range []string{"conformance", "guest"} {
		method, body := "Invoke", `{"app":"guest","method":"Call"}`
		if entry == "guest" {
			method, body = "Call", "{}"
		}
		start := time.Now()
		code, reply := post(t, es.url, entry, method, body)
		if code != 503 || !strings.Contains(reply, "too many re-entrant calls") || !strings.Contains(reply, "this call chain already holds 1 extra instances") {
			t.Fatalf("runaway recursion from %s: %d %.400s, want 503 naming re-entrant calls", entry, code, reply)
		}
		if took := time.Since(start); took > 10*time.Second {
			t.Errorf("runaway recursion from %s failed after %s: it waited", entry, took)
		}
		settled(t, es)
	}
	for id, m := range es.mods {
		// One extra instance per module and runaway, two runaways.
		if made := m.Stats().Instantiations - before[id]; made > 2 {
			t.Errorf("%s: %d instances made for 2 runaway recursions, want at most 2", id, made)
		}
		if s := m.Stats(); s.PoolSize != 1 || s.Idle != 1 {
			t.Errorf("%s: %+v, want its one instance idle", id, s)
		}
	}
}

// TestReentryBounds: the extra instances of re-entrant calls, asked of
// the pool directly as chains would. Up to the base size they are always
// made; beyond it, up to the ceiling, only within the memory budget; and
// one chain holds at most the base size of them.
func TestReentryBounds(t *testing.T) {
	rt := newRuntime(t, nil)
	for _, tc := range []struct {
		name   string
		budget uint64
		// extras is how many chains get one; refusal is what the next is
		// told.
		extras  int
		refusal string
	}{
		{"within budget", 1 << 30, 4, "all 1 instances are busy, and 4 extra ones"},
		{"over budget", 1, 1, "--pool-memory-mb"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := rt.Load(context.Background(), confWasm, ModuleOptions{PoolSize: 1, MaxPoolSize: 4, PoolMemoryBytes: tc.budget}, Binding{Backend: nil})
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close(context.Background())
			p := m.pool()
			defer p.unref()
			ctx := context.Background()
			base, err := p.acquire(ctx, "base")
			if err != nil {
				t.Fatal(err)
			}
			held := []*instance{base}
			defer func() {
				for _, in := range held {
					p.release(in, true)
				}
				if n := p.overflow.Load(); n != 0 {
					t.Errorf("%d extra instances still counted", n)
				}
			}()
			for i := range tc.extras {
				in, err := p.acquire(withCaller(ctx, m, false), "chain")
				if err != nil {
					t.Fatalf("chain %d: %v", i, err)
				}
				if !in.overflow {
					t.Fatalf("chain %d: got a pooled instance", i)
				}
				held = append(held, in)
			}
			_, err = p.acquire(withCaller(ctx, m, false), "one more")
			if sdk.CodeOf(err) != sdk.Unavailable || !strings.Contains(err.Error(), tc.refusal) {
				t.Errorf("one chain more: %v, want Unavailable naming %q", err, tc.refusal)
			}
			// A chain that already holds an extra instance gets no second.
			_, err = p.acquire(withCaller(ctx, m, true), "deeper")
			if sdk.CodeOf(err) != sdk.Unavailable || !strings.Contains(err.Error(), "this call chain already holds 1 extra") {
				t.Errorf("a second extra for one chain: %v", err)
			}
			if n := int(p.overflow.Load()); n != tc.extras {
				t.Errorf("%d extra instances counted, want %d", n, tc.extras)
			}
		})
	}
}
