package edge

import (
	"bytes"
	"context"
	"errors"
	"runtime"
	"testing"
	"time"

	"github.com/roam-dev/roam/backend/memory"
	"github.com/roam-dev/roam/internal/wasmopt"
	"github.com/roam-dev/roam/sdk"
)

// TestLinearMemory: growing keeps what was written and gives zeroed pages,
// the limit refuses, and Free during a call waits for the call's exit.
func TestLinearMemory(t *testing.T) {
	const page = 64 << 10
	m := newLinearMemory(4 * page)
	b := m.Reallocate(page)
	if len(b) != page {
		t.Fatalf("Reallocate(page): %d bytes", len(b))
	}
	copy(b, "kept")
	b = m.Reallocate(3 * page)
	if len(b) != 3*page || !bytes.HasPrefix(b, []byte("kept")) {
		t.Fatalf("after growing: %d bytes, prefix %q", len(b), b[:4])
	}
	if !bytes.Equal(b[page:], make([]byte, 2*page)) {
		t.Fatal("fresh pages are not zero")
	}
	b[len(b)-1] = 1 // writable to the end
	if m.Reallocate(5*page) != nil {
		t.Fatal("grew past the limit")
	}
	if runtime.GOOS == "linux" && (m.heap || m.res == nil) {
		t.Fatal("on Linux the memory is not a mapping of its own")
	}

	// The set-up is still in flight (newLinearMemory counts it): Free is
	// deferred, the memory stays usable until exit.
	m.Free()
	b[0] = 'K'
	if m.buf == nil {
		t.Fatal("Free released the memory during a call")
	}
	m.exit()
	if m.buf != nil || m.res != nil {
		t.Fatal("the memory outlived the call that deferred its Free")
	}

	// Outside a call, Free releases at once.
	m = newLinearMemory(page)
	m.Reallocate(page)
	m.exit()
	m.Free()
	if m.buf != nil || m.res != nil {
		t.Fatal("Free outside a call kept the memory")
	}
}

// TestCloseDuringCall: closing the runtime while a call runs (a guest
// spinning, a guest asleep in a host function that writes its memory on
// waking) interrupts the call, which fails with Unavailable, and waits for
// it before closing the runtime: the host neither hangs, nor races, nor
// faults on freed memory.
func TestCloseDuringCall(t *testing.T) {
	for _, c := range []struct{ method, req string }{{"Spin", "{}"}, {"Sleep", `{"ms":500}`}} {
		t.Run(c.method, func(t *testing.T) {
			ctx := context.Background()
			rt, err := NewRuntime(ctx, RuntimeOptions{CacheDir: cacheDir, Logger: testLogger(t)})
			if err != nil {
				t.Fatal(err)
			}
			be := memory.New(memory.Options{})
			defer be.Close()
			m, err := rt.Load(ctx, confWasm, ModuleOptions{PoolSize: 1, MaxPoolSize: FixedPool, Timeout: time.Minute}, Binding{Backend: be})
			if err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() {
				_, err := m.Call(ctx, c.method, []byte(c.req))
				done <- err
			}()
			waitFor(t, "the call to start", 5*time.Second, func() bool { return m.Stats().Busy == 1 })
			time.Sleep(50 * time.Millisecond) // into the loop, or the sleep
			closed := make(chan error, 1)
			go func() { closed <- rt.Close(ctx) }()
			select {
			case err := <-done:
				var se *sdk.Error
				if !errors.As(err, &se) || se.Code != sdk.Unavailable {
					t.Fatalf("%s after Close: %v, want Unavailable (the host is shutting down)", c.method, err)
				}
			case <-time.After(30 * time.Second):
				t.Fatal("the call did not end after Close")
			}
			select {
			case <-closed:
			case <-time.After(30 * time.Second):
				t.Fatal("Close did not return")
			}
		})
	}
}

// TestHoldFills: while fills are held a module serves with its first
// instance and its pool stays at one; released, the pool fills.
func TestHoldFills(t *testing.T) {
	ctx := context.Background()
	rt := newRuntime(t, nil)
	be := memory.New(memory.Options{})
	defer be.Close()
	release := rt.HoldFills()
	m, err := rt.Load(ctx, confWasm, ModuleOptions{PoolSize: 3}, Binding{Backend: be})
	if err != nil {
		t.Fatal(err)
	}
	if out, err := m.Call(ctx, "Echo", []byte(`"held"`)); err != nil || string(out) != `"held"` {
		t.Fatalf("Echo while held: %q %v", out, err)
	}
	time.Sleep(200 * time.Millisecond)
	if s := m.Stats(); s.Idle+s.Busy != 1 || s.Instantiations != 1 {
		t.Fatalf("while held: %+v, want the first instance only", s)
	}
	release()
	release() // idempotent
	waitFor(t, "the pool to fill", 10*time.Second, func() bool { return m.Stats().Idle == 3 })
}

// TestModulesDataMerged: roam build joins the data segments Go's linker
// writes (tens of thousands per module; see package wasmopt), and the
// modules the suite runs are those.
func TestModulesDataMerged(t *testing.T) {
	for name, wasm := range map[string][]byte{"conformance": confWasm, "orders": ordersWasm, "inventory": inventoryWasm} {
		n, err := wasmopt.DataSegments(wasm)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if n == 0 || n > 64 {
			t.Errorf("%s has %d data segments; want the linker's tens of thousands merged to at most 64", name, n)
		}
	}
}
