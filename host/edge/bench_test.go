package edge

// Benchmarks of the edge host against the native one.
//
//	go test ./host/edge -run='^$' -bench=. -benchtime=2s
//
// BenchmarkCall runs one method in-process (Module.Call, no HTTP) on the
// edge host and on the native host (the app's handler through native.App),
// on the memory backend, so that the figures are the call cycle and the
// guest's work, not storage. The "edge-uninterruptible" variants run on a
// runtime without interruption at deadlines, to show what that guarantee
// costs in wazero v1.12; production never runs that way. The
// "edge-interpreter" variants run on wazero's interpreter.

import (
	"context"
	"encoding/json"
	"github.com/roam-dev/roam/internal/wasmopt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/roam-dev/roam/backend/memory"
	"github.com/roam-dev/roam/conformance/testapp"
	"github.com/roam-dev/roam/examples/shop/inventory"
	"github.com/roam-dev/roam/examples/shop/orders"
	"github.com/roam-dev/roam/host"
	"github.com/roam-dev/roam/host/native"
	"github.com/roam-dev/roam/internal/wasmrt"
	"github.com/roam-dev/roam/sdk"
)

func BenchmarkCall(b *testing.B) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	be := memory.New(memory.Options{})
	defer be.Close()
	srv := host.NewServer(be, host.Options{})
	nat := map[string]host.App{}
	for _, a := range []*sdk.App{testapp.App, orders.App, inventory.App} {
		app, err := native.Setup(a, be, srv, slog.New(slog.DiscardHandler))
		if err != nil {
			b.Fatal(err)
		}
		if err := srv.Add(app); err != nil {
			b.Fatal(err)
		}
		nat[a.ID()] = app
	}
	// An order to read, created natively on the shared backend: the edge
	// orders module reads the same state.
	if _, err := srv.Call(ctx, "inventory", "Restock", []byte(`{"sku":"bench","quantity":1000}`)); err != nil {
		b.Fatal(err)
	}
	out, err := srv.Call(ctx, "orders", "Create", []byte(`{"customer":"bench","sku":"bench","quantity":1}`))
	if err != nil {
		b.Fatal(err)
	}
	var created struct {
		Order struct{ ID string } `json:"order"`
	}
	if err := json.Unmarshal(out, &created); err != nil {
		b.Fatal(err)
	}
	getReq := []byte(`{"id":"` + created.Order.ID + `"}`)
	echoReq := []byte(`{"customer":"bench","sku":"bench","quantity":1,"note":"an echo of a small JSON body"}`)

	load := func(b *testing.B, rt *Runtime, wasm []byte) *Module {
		// A fixed pool: no growth during a measurement.
		m, err := rt.Load(ctx, wasm, ModuleOptions{PoolSize: 2, MaxPoolSize: FixedPool}, Binding{Backend: be, Invoker: srv.Invoker})
		if err != nil {
			b.Fatal(err)
		}
		waitFilled(b, m)
		return m
	}
	run := func(b *testing.B, app host.App, method string, req []byte) {
		if _, err := app.Call(ctx, method, req); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if _, err := app.Call(ctx, method, req); err != nil {
				b.Fatal(err)
			}
		}
	}

	rt := newRuntime(b, nil)
	conf, ord := load(b, rt, confWasm), load(b, rt, ordersWasm)
	b.Run("Echo/native", func(b *testing.B) { run(b, nat["conformance"], "Echo", echoReq) })
	b.Run("Echo/edge", func(b *testing.B) { run(b, conf, "Echo", echoReq) })
	b.Run("Echo/edge-parallel", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := conf.Call(ctx, "Echo", echoReq); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	b.Run("OrdersGet/native", func(b *testing.B) { run(b, nat["orders"], "Get", getReq) })
	b.Run("OrdersGet/edge", func(b *testing.B) { run(b, ord, "Get", getReq) })
	// orders.Create, with inventory native in both: one new customer per
	// order, so that no customer index grows with b.N.
	create := func(app host.App, sku string) func(b *testing.B) {
		return func(b *testing.B) {
			if _, err := srv.Call(ctx, "inventory", "Restock", []byte(`{"sku":"`+sku+`","quantity":1000000}`)); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				req := []byte(`{"customer":"c` + strconv.Itoa(i) + `","sku":"` + sku + `","quantity":1}`)
				if _, err := app.Call(ctx, "Create", req); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
	b.Run("OrdersCreate/native", create(nat["orders"], "bench-native"))
	b.Run("OrdersCreate/edge", create(ord, "bench-edge"))

	// Without interruption: a runtime compiled without the loop checks
	// (its own cache entries; the first run compiles). wazy always checks.
	if !wasmrt.AlwaysInterruptible {
		uninterruptible = true
		rtu := newRuntime(b, nil)
		uninterruptible = false
		confU, ordU := load(b, rtu, confWasm), load(b, rtu, ordersWasm)
		b.Run("Echo/edge-uninterruptible", func(b *testing.B) { run(b, confU, "Echo", echoReq) })
		b.Run("OrdersGet/edge-uninterruptible", func(b *testing.B) { run(b, ordU, "Get", getReq) })
		b.Run("OrdersCreate/edge-uninterruptible", create(ordU, "bench-edge-u"))
	}

	// The interpreter, for the record of why the compiler.
	interpreter = true
	rti := newRuntime(b, nil)
	interpreter = false
	confI, ordI := load(b, rti, confWasm), load(b, rti, ordersWasm)
	b.Run("Echo/edge-interpreter", func(b *testing.B) { run(b, confI, "Echo", echoReq) })
	b.Run("OrdersGet/edge-interpreter", func(b *testing.B) { run(b, ordI, "Get", getReq) })
}

// BenchmarkCompile compiles the conformance module (about 4 MB): from
// scratch, and from the on-disk compilation cache in a new runtime (a
// restart).
func BenchmarkCompile(b *testing.B) {
	ctx := context.Background()
	b.Run("cold", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			dir := b.TempDir()
			rt, err := NewRuntime(ctx, RuntimeOptions{CacheDir: dir})
			if err != nil {
				b.Fatal(err)
			}
			cm, err := rt.compile(ctx, confWasm)
			if err != nil {
				b.Fatal(err)
			}
			cm.Close(ctx)
			rt.Close(ctx)
			os.RemoveAll(filepath.Join(dir))
		}
	})
	b.Run("cached", func(b *testing.B) {
		warm := newRuntime(b, nil)
		if _, err := warm.compile(ctx, confWasm); err != nil {
			b.Fatal(err)
		}
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			rt, err := NewRuntime(ctx, RuntimeOptions{CacheDir: cacheDir})
			if err != nil {
				b.Fatal(err)
			}
			cm, err := rt.compile(ctx, confWasm)
			if err != nil {
				b.Fatal(err)
			}
			cm.Close(ctx)
			rt.Close(ctx)
		}
	})
}

// BenchmarkMeter meters the shop's orders module (wasmopt.Meter), as every
// load on wazero's compiler does before its compilation or cache lookup.
func BenchmarkMeter(b *testing.B) {
	b.SetBytes(int64(len(ordersWasm)))
	for b.Loop() {
		if _, err := wasmopt.Meter(ordersWasm, wasmopt.DefaultFuel); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCheckLimits checks the shop's orders module's declared sizes
// (wasmopt.CheckLimits), as every load does before the runtime decodes it.
func BenchmarkCheckLimits(b *testing.B) {
	b.SetBytes(int64(len(ordersWasm)))
	for b.Loop() {
		if err := wasmopt.CheckLimits(ordersWasm); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkInstantiate creates one instance: _initialize (the Go runtime and
// package initialisation) and roam_init (the app's setup), then closes it.
// BenchmarkLoad is a whole Load from the cache with the default pool: the
// cache load and the first instance (the others are made in the
// background, see Runtime.Load).
func BenchmarkInstantiate(b *testing.B) {
	ctx := context.Background()
	rt := newRuntime(b, nil)
	be := memory.New(memory.Options{})
	defer be.Close()
	for _, c := range []struct {
		name string
		wasm []byte
	}{{"conformance", confWasm}, {"orders", ordersWasm}} {
		m, err := rt.Load(ctx, c.wasm, ModuleOptions{PoolSize: 1}, Binding{Backend: be})
		if err != nil {
			b.Fatal(err)
		}
		p := m.cur.Load()
		b.Run(c.name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				in, err := p.instantiate(ctx, m.caps)
				if err != nil {
					b.Fatal(err)
				}
				in.close()
			}
		})
	}
}

func BenchmarkLoad(b *testing.B) {
	ctx := context.Background()
	be := memory.New(memory.Options{})
	defer be.Close()
	warm := newRuntime(b, nil)
	if _, err := warm.compile(ctx, confWasm); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		rt, err := NewRuntime(ctx, RuntimeOptions{CacheDir: cacheDir})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := rt.Load(ctx, confWasm, ModuleOptions{}, Binding{Backend: be}); err != nil {
			b.Fatal(err)
		}
		rt.Close(ctx)
	}
	b.ReportMetric(float64(DefaultPoolSize()), "instances")
}

// waitFilled waits for the pool's background fill (see Runtime.Load), so
// that no instantiation runs during a measurement. No call may be in
// flight.
func waitFilled(tb testing.TB, m *Module) {
	for deadline := time.Now().Add(time.Minute); m.Stats().Idle < m.Stats().BasePoolSize; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			tb.Fatalf("the pool of %s never filled: %+v", m.ID(), m.Stats())
		}
	}
}
