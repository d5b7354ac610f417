package edge

import (
	"bytes"
	"context"
	"errors"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/roam-dev/roam/backend/memory"
	"github.com/roam-dev/roam/conformance/testapp"
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
//
// Close comes only once the guest is seen where the case means it to be (in
// the loop, in the sleep), not after a guess of how long that takes: a
// Close before the guest ran would fail the call with Unavailable too,
// without covering either path.
func TestCloseDuringCall(t *testing.T) {
	for _, c := range []struct {
		method, req string
		inside      func(t *testing.T, in *instance)
	}{
		{"Spin", "{}", waitSpinning},
		// Far longer than the wait for the call to end below: only Close
		// ends it in time, however late it comes.
		{"Sleep", `{"ms":600000}`, waitAsleep},
	} {
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
			in := onlyInstance(t, m)
			done := make(chan error, 1)
			go func() {
				_, err := m.Call(ctx, c.method, []byte(c.req))
				done <- err
			}()
			c.inside(t, in)
			// Compiled wasm cannot be preempted; the collector's
			// stop-the-world still gets through a guest in its loop, at the
			// module's metering exits (wasmopt.Meter) or wazy's checks.
			// Without them this would wait for the call, here for ever.
			runtime.GC()
			if s := m.Stats(); s.Busy != 1 {
				t.Fatalf("the call is not running: %+v", s)
			}
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

// onlyInstance returns the one instance of m, a pool of one, idle.
func onlyInstance(t *testing.T, m *Module) *instance {
	t.Helper()
	p := m.cur.Load()
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.free) != 1 || p.busy != 0 {
		t.Fatalf("want a pool of one idle instance: %d idle, %d busy", len(p.free), p.busy)
	}
	return p.free[0]
}

// waitSpinning waits until in's guest has written testapp.SpinLine to
// stderr, just before Spin's loop. (A guest descheduled in the
// microseconds between that write and the loop looks the same; Close then
// interrupts roam_handle's compiled code a little earlier: still a running
// guest, never one that has not started.)
func waitSpinning(t *testing.T, in *instance) {
	t.Helper()
	waitFor(t, "the guest to reach Spin's loop", 30*time.Second, func() bool { return in.stderr.summary(1) == testapp.SpinLine })
}

// waitAsleep waits until the goroutine that runs the call is in the
// instance's WASI sleep (instance.nanosleep, under wazero's poll_oneoff):
// the guest is asleep in a host function. The goroutine is told by its
// creator, this test.
func waitAsleep(t *testing.T, _ *instance) {
	t.Helper()
	buf := make([]byte, 1<<20)
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		n := runtime.Stack(buf, true)
		if n == len(buf) {
			buf = make([]byte, 2*len(buf))
			continue
		}
		for g := range strings.SplitSeq(string(buf[:n]), "\n\n") {
			if strings.Contains(g, "edge.(*instance).nanosleep(") && strings.Contains(g, "created by github.com/roam-dev/roam/host/edge.TestCloseDuringCall.") {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the guest did not fall asleep in the host within 30s")
		}
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
	// The control: the same module on a runtime that holds nothing fills
	// its pool meanwhile, so the held one has had the time to fill too.
	free, err := newRuntime(t, nil).Load(ctx, confWasm, ModuleOptions{PoolSize: 3}, Binding{Backend: be})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the pool not held to fill", 10*time.Second, func() bool { return free.Stats().Idle == 3 })
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
