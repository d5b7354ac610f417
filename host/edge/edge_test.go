package edge

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/roam-dev/roam/abi"
	"github.com/roam-dev/roam/backend/embedded"
	"github.com/roam-dev/roam/backend/memory"
	"github.com/roam-dev/roam/conformance"
	"github.com/roam-dev/roam/conformance/testapp"
	"github.com/roam-dev/roam/examples/shop/inventory"
	"github.com/roam-dev/roam/examples/shop/orders"
	"github.com/roam-dev/roam/host"
	"github.com/roam-dev/roam/host/native"
	"github.com/roam-dev/roam/internal/wasmopt"
	"github.com/roam-dev/roam/internal/wasmrt"
	"github.com/roam-dev/roam/sdk"
)

// TestVectorsMatchNative runs the conformance vectors against the edge
// host, then against the native host with the same apps, and requires the
// two transcripts to be identical byte for byte.
func TestVectorsMatchNative(t *testing.T) {
	var edgeTr, nativeTr map[string]conformance.Transcript
	t.Run("edge", func(t *testing.T) {
		es := newEdgeServer(t, ModuleOptions{}, host.Options{}, confWasm, ordersWasm, inventoryWasm)
		edgeTr = conformance.RunVectors(t, conformance.HTTPDriver{BaseURL: es.url})
		// orders' setup reads config, and roam_app_id let its first
		// instance be set up with the app's own capabilities: no discovery
		// instance was made (TestAppIDBeforeSetup has the fallback).
		if s := es.mods["orders"].Stats(); s.Instantiations != uint64(s.BasePoolSize)+s.Grown {
			t.Errorf("orders: %d instantiations for a pool of %d grown by %d, want the pool alone", s.Instantiations, s.BasePoolSize, s.Grown)
		}
		for id, m := range es.mods {
			if s := m.Stats(); s.Traps != 0 || s.Timeouts != 0 || s.Rejected != 0 {
				t.Errorf("%s: %+v: the vectors should not trap, time out or be refused", id, s)
			}
		}
	})
	t.Run("native", func(t *testing.T) {
		b, err := embedded.Open(embedded.Options{Dir: t.TempDir(), Retry: fastRetry})
		if err != nil {
			t.Fatal(err)
		}
		srv, err := native.NewServer(b, []*sdk.App{orders.App, inventory.App, testapp.App}, host.Options{})
		if err != nil {
			t.Fatal(err)
		}
		ts := httptest.NewServer(srv.Handler())
		t.Cleanup(func() {
			ts.Close()
			b.Close()
		})
		nativeTr = conformance.RunVectors(t, conformance.HTTPDriver{BaseURL: ts.URL})
	})
	if t.Failed() {
		return
	}
	var names []string
	for n := range nativeTr {
		names = append(names, n)
	}
	for n := range edgeTr {
		if _, ok := nativeTr[n]; !ok {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	for _, n := range names {
		e, nat := edgeTr[n], nativeTr[n]
		if slices.Equal(e, nat) {
			continue
		}
		var diff strings.Builder
		for i := 0; i < max(len(e), len(nat)); i++ {
			var a, b string
			if i < len(e) {
				a = e[i]
			}
			if i < len(nat) {
				b = nat[i]
			}
			if a != b {
				fmt.Fprintf(&diff, "  step %d:\n    edge:   %s\n    native: %s\n", i, a, b)
			}
		}
		t.Errorf("vector %s: edge and native transcripts differ:\n%s", n, diff.String())
	}
}

// TestCounterExact: 64 concurrent ETag increments through the edge host
// count exactly 64.
func TestCounterExact(t *testing.T) {
	es := newEdgeServer(t, ModuleOptions{}, host.Options{}, confWasm)
	var wg sync.WaitGroup
	var bad atomic.Int32
	for i := 0; i < 64; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if status, body := post(t, es.url, "conformance", "Increment", `{"key":"c"}`); status != 200 {
				bad.Add(1)
				t.Errorf("Increment: %d %s", status, body)
			}
		}()
	}
	wg.Wait()
	if bad.Load() > 0 {
		return
	}
	status, body := post(t, es.url, "conformance", "Get", `{"key":"c"}`)
	var v struct {
		Value struct{ N int } `json:"value"`
	}
	if status != 200 || json.Unmarshal([]byte(body), &v) != nil || v.Value.N != 64 {
		t.Fatalf("counter: %d %s, want n = 64", status, body)
	}
}

// TestAppIDBeforeSetup: a module that names its app before its setup runs
// (roam_app_id, ABI v1.2) is set up once, with the app's own capabilities.
// One without the export (a v1.1 guest) is set up first with discovery
// capabilities and, since orders' setup reads config, again with its own.
// Both read the app's config in setup and serve.
func TestAppIDBeforeSetup(t *testing.T) {
	old := withoutExport(t, ordersWasm, abi.ExportAppID)
	for _, tc := range []struct {
		name           string
		wasm           []byte
		instantiations uint64
	}{{"v1.2", ordersWasm, 1}, {"without roam_app_id", old, 2}} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			be := memory.New(memory.Options{Config: map[string]string{"inventory-app-id": "stock"}})
			defer be.Close()
			var invoked atomic.Value
			bind := Binding{Backend: be, Invoker: func(caller string) sdk.Invoker {
				return invokerFunc(func(ctx context.Context, app, method string, data []byte) ([]byte, error) {
					invoked.Store(caller + "->" + app)
					return nil, sdk.NewError(sdk.Unavailable, "no inventory here")
				})
			}}
			m, err := newRuntime(t, nil).Load(ctx, tc.wasm, ModuleOptions{PoolSize: 1}, bind)
			if err != nil {
				t.Fatal(err)
			}
			if s := m.Stats(); m.ID() != "orders" || s.Instantiations != tc.instantiations {
				t.Errorf("app %q, %d instantiations; want orders, %d", m.ID(), s.Instantiations, tc.instantiations)
			}
			// The config read in setup was the app's: Create reserves
			// stock at the app it names.
			_, err = m.Call(ctx, "Create", []byte(`{"customer":"c","sku":"s","quantity":1}`))
			if sdk.CodeOf(err) != sdk.Unavailable || invoked.Load() != "orders->stock" {
				t.Errorf("Create: %v, invoked %v; want Unavailable from orders->stock", err, invoked.Load())
			}
		})
	}
}

// withoutExport returns a copy of wasm whose export name is renamed, as a
// module built before the export existed would lack it.
func withoutExport(t *testing.T, wasm []byte, name string) []byte {
	t.Helper()
	out, err := wasmopt.RenameExport(wasm, name, name[:len(name)-1]+"X")
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestSpinInterruptedAtDeadline: a guest that loops without yielding is
// stopped at its deadline (504), its instance is discarded and replaced,
// and the next call is served.
func TestSpinInterruptedAtDeadline(t *testing.T) {
	const timeout = 300 * time.Millisecond
	es := newEdgeServer(t, ModuleOptions{PoolSize: 2}, host.Options{RequestTimeout: timeout}, confWasm)
	m := es.mods["conformance"]
	start := time.Now()
	status, body := post(t, es.url, "conformance", "Spin", "{}")
	took := time.Since(start)
	if status != http.StatusGatewayTimeout || !strings.Contains(body, `"DeadlineExceeded"`) {
		t.Fatalf("Spin: %d %s, want 504 DeadlineExceeded", status, body)
	}
	if took < timeout || took > timeout+time.Second {
		t.Errorf("Spin answered after %s; want just after the %s deadline", took, timeout)
	}
	if s := m.Stats(); s.Timeouts != 1 || s.Traps != 0 {
		t.Errorf("stats %+v: want 1 timeout, no trap", s)
	}
	if status, body := post(t, es.url, "conformance", "Echo", `{"after":"spin"}`); status != 200 || body != `{"after":"spin"}` {
		t.Fatalf("Echo after Spin: %d %s", status, body)
	}
	waitFor(t, "the replacement instance", 5*time.Second, func() bool { return m.Stats().Idle == 2 })
	if s := m.Stats(); s.Instantiations != 3 {
		t.Errorf("stats %+v: want 3 instantiations (2 + 1 replacement)", s)
	}
	if !strings.Contains(scrape(t, es.url), `roam_edge_timeouts_total{app="conformance"} 1`) {
		t.Error("/metrics does not count the timeout")
	}
}

// TestTrapDiscardsInstance: a guest that exits (proc_exit) fails only its
// call with a 500 that says so; a panic the SDK recovers is an ordinary
// 500 and keeps the instance.
func TestTrapDiscardsInstance(t *testing.T) {
	es := newEdgeServer(t, ModuleOptions{PoolSize: 2}, host.Options{}, confWasm)
	m := es.mods["conformance"]
	status, body := post(t, es.url, "conformance", "Exit", "{}")
	if status != 500 || !strings.Contains(body, `"Internal"`) || !strings.Contains(body, "exited with code 3") {
		t.Fatalf("Exit: %d %s, want 500 naming exit code 3", status, body)
	}
	if s := m.Stats(); s.Traps != 1 {
		t.Errorf("stats %+v: want 1 trap", s)
	}
	if status, body := post(t, es.url, "conformance", "Echo", `{"still":"serving"}`); status != 200 || body != `{"still":"serving"}` {
		t.Fatalf("Echo after Exit: %d %s", status, body)
	}
	status, body = post(t, es.url, "conformance", "Panic", `{"message":"boom"}`)
	if status != 500 || body != `{"code":"Internal","message":"conformance Panic panicked: boom"}` {
		t.Fatalf("Panic: %d %s", status, body)
	}
	waitFor(t, "the replacement instance", 5*time.Second, func() bool { return m.Stats().Idle == 2 })
	if s := m.Stats(); s.Traps != 1 || s.Instantiations != 3 {
		t.Errorf("stats %+v: want 1 trap and 3 instantiations: a recovered panic keeps its instance", s)
	}
	if !strings.Contains(scrape(t, es.url), `roam_edge_traps_total{app="conformance"} 1`) {
		t.Error("/metrics does not count the trap")
	}
}

// TestPoolExhausted: with one instance busy and no queue, a call is refused
// with 503 at once; with a queue it waits its turn.
func TestPoolExhausted(t *testing.T) {
	es := newEdgeServer(t, ModuleOptions{PoolSize: 1, MaxQueue: NoQueue}, host.Options{}, confWasm)
	m := es.mods["conformance"]
	done := make(chan string)
	go func() {
		status, body := post(t, es.url, "conformance", "Sleep", `{"ms":500}`)
		done <- fmt.Sprint(status, " ", body)
	}()
	waitFor(t, "the Sleep call to hold the instance", 5*time.Second, func() bool { return m.Stats().Busy == 1 })
	status, body := post(t, es.url, "conformance", "Echo", "{}")
	if status != 503 || !strings.Contains(body, `"Unavailable"`) || !strings.Contains(body, "at capacity") {
		t.Fatalf("Echo on a full pool: %d %s, want 503 Unavailable", status, body)
	}
	if got := <-done; got != "200 {}" {
		t.Fatalf("Sleep: %s", got)
	}
	if s := m.Stats(); s.Rejected != 1 {
		t.Errorf("stats %+v: want 1 rejected", s)
	}
	if !strings.Contains(scrape(t, es.url), `roam_edge_rejected_total{app="conformance"} 1`) {
		t.Error("/metrics does not count the rejection")
	}

	// A fixed pool: one that may grow would serve the queued call on a
	// new instance.
	q := newEdgeServer(t, ModuleOptions{PoolSize: 1, MaxPoolSize: FixedPool, MaxQueue: 1}, host.Options{}, confWasm)
	qm := q.mods["conformance"]
	go func() {
		status, body := post(t, q.url, "conformance", "Sleep", `{"ms":300}`)
		done <- fmt.Sprint(status, " ", body)
	}()
	waitFor(t, "the Sleep call to hold the instance", 5*time.Second, func() bool { return qm.Stats().Busy == 1 })
	go func() {
		status, body := post(t, q.url, "conformance", "Echo", `{"queued":true}`)
		done <- fmt.Sprint(status, " ", body)
	}()
	waitFor(t, "the queued call", 5*time.Second, func() bool { return qm.Stats().Queued == 1 })
	if status, body := post(t, q.url, "conformance", "Echo", "{}"); status != 503 {
		t.Errorf("a call beyond the queue: %d %s, want 503", status, body)
	}
	got := []string{<-done, <-done}
	slices.Sort(got)
	if want := []string{`200 {"queued":true}`, "200 {}"}; !slices.Equal(got, want) {
		t.Errorf("queued calls: %q, want %q", got, want)
	}
}

// TestReentrantInvoke: an app invoking itself while its only instance is
// busy (with that very call) gets a temporary instance, not a deadlock.
func TestReentrantInvoke(t *testing.T) {
	es := newEdgeServer(t, ModuleOptions{PoolSize: 1}, host.Options{RequestTimeout: 5 * time.Second}, confWasm)
	start := time.Now()
	status, body := post(t, es.url, "conformance", "Invoke", `{"app":"conformance","method":"Echo","body":{"via":"self"}}`)
	if status != 200 || body != `{"via":"self"}` {
		t.Fatalf("self-invoke: %d %s", status, body)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("self-invoke took %s: it waited for its own instance", took)
	}
}

// TestMemoryLimit: a guest that needs more memory than its cap fails its
// call (the Go runtime exits out of memory) and the host keeps serving.
func TestMemoryLimit(t *testing.T) {
	es := newEdgeServer(t, ModuleOptions{PoolSize: 1, MemoryLimitPages: 128}, host.Options{MaxBodyBytes: 16 << 20}, confWasm)
	m := es.mods["conformance"]
	huge := `"` + strings.Repeat("x", 6<<20) + `"`
	status, body := post(t, es.url, "conformance", "Echo", huge)
	if status != 500 || !strings.Contains(body, "out of memory") {
		t.Fatalf("Echo of 6 MiB in an 8 MiB instance: %d %.300s, want 500 out of memory", status, body)
	}
	if s := m.Stats(); s.Traps != 1 {
		t.Errorf("stats %+v: want 1 trap", s)
	}
	if status, body := post(t, es.url, "conformance", "Echo", `{"small":1}`); status != 200 {
		t.Fatalf("Echo after: %d %s", status, body)
	}
}

// TestRecycle: an instance whose memory grew past the recycle threshold
// (linear memory never shrinks) is replaced after its call, not reused.
func TestRecycle(t *testing.T) {
	es := newEdgeServer(t, ModuleOptions{PoolSize: 1, RecycleBytes: 8 << 20}, host.Options{}, confWasm)
	m := es.mods["conformance"]
	big := `"` + strings.Repeat("y", 3<<20) + `"`
	if status, body := post(t, es.url, "conformance", "Echo", big); status != 200 || body != big {
		t.Fatalf("Echo of 3 MiB: %d %.100s", status, body)
	}
	if s := m.Stats(); s.Recycled != 1 || s.Traps != 0 {
		t.Errorf("stats %+v: want the instance that grew past 8 MiB recycled", s)
	}
	for i := 0; i < 3; i++ {
		if status, body := post(t, es.url, "conformance", "Echo", `{"small":1}`); status != 200 {
			t.Fatalf("Echo after: %d %s", status, body)
		}
	}
	if s := m.Stats(); s.Recycled != 1 || s.Instantiations != 2 {
		t.Errorf("stats %+v: want one recycling and one replacement", s)
	}
}

// TestRequestLimits: bodies and replies beyond the module's limits are
// refused without reaching, or trusting, the guest.
func TestRequestLimits(t *testing.T) {
	rt := newRuntime(t, nil)
	m, err := rt.Load(context.Background(), confWasm, ModuleOptions{PoolSize: 1, MaxRequestBytes: 1000, MaxResponseBytes: 500}, Binding{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := m.Call(ctx, "Echo", bytes.Repeat([]byte("1"), 1001)); sdk.CodeOf(err) != sdk.InvalidArgument {
		t.Errorf("1001-byte request: %v, want InvalidArgument", err)
	}
	if _, err := m.Call(ctx, "Echo", bytes.Repeat([]byte("1"), 600)); sdk.CodeOf(err) != sdk.Internal || !strings.Contains(err.Error(), "exceeds") {
		t.Errorf("600-byte reply: %v, want Internal", err)
	}
	if out, err := m.Call(ctx, "Echo", []byte("42")); err != nil || string(out) != "42" {
		t.Errorf("Echo: %q %v", out, err)
	}
}

// TestABIChecks: modules of another ABI, foreign modules and garbage are
// refused with a message that says what to do, and nothing crashes.
func TestABIChecks(t *testing.T) {
	rt := newRuntime(t, nil)
	ctx := context.Background()
	load := func(wasm []byte) error {
		m, err := rt.Load(ctx, wasm, ModuleOptions{PoolSize: 1, Name: "x.wasm"}, Binding{})
		if err == nil {
			m.Close(ctx)
		}
		return err
	}
	v2 := bytes.ReplaceAll(confWasm, []byte(`roam_v1`), []byte(`roam_v2`))
	for _, c := range []struct {
		name string
		wasm []byte
		want string
	}{
		{"abi v2", v2, "module built for Roam ABI v2; this host speaks v1 — rebuild it with this roam version"},
		{"reactor without roam exports", wasmModule(nil, "_initialize"), "not a Roam module: missing export roam_abi_version (build it with roam build --target wasm)"},
		{"wrong signature", wasmModule(nil, "_initialize", "roam_abi_version"), "not a Roam module: export roam_abi_version has the signature"},
		{"wasip1 command", wasmModule(nil, "_start"), "not a Roam module: it is a wasip1 command"},
		{"foreign import", wasmModule([]string{"env", "foo"}, "_initialize"), "not a Roam module: it imports env.foo"},
		{"newer minor", wasmModule([]string{"roam_v1", "state_watch"}, "_initialize"), "module imports roam_v1.state_watch, which this host does not provide"},
		{"garbage", []byte("definitely not wasm"), "not a valid wasm module"},
		{"empty", nil, "not a valid wasm module"},
		{"truncated", confWasm[:len(confWasm)/2], "not a valid wasm module"},
		{"bad version", append([]byte("\x00asm\x02\x00\x00\x00"), confWasm[8:]...), "not a valid wasm module"},
		// Invalid, and on wazero's compiler it would reach the metering's
		// global once metered (see wasmopt.TestMeterRefusesWhatIsInvalid).
		// A few bytes that ask the runtime's decoder for 16 GB, and for
		// 1 GB per instance (see wasmopt.TestCheckLimits).
		{"4 billion functions", []byte("\x00asm\x01\x00\x00\x00\x03\x06\xff\xff\xff\xff\x0f\x00"), "not a valid wasm module: malformed module: section 3: 4294967295 functions in 1 bytes"},
		// wazero's validation panicked on it (see wasmopt.TestCheckLimits).
		{"a function of a type out of range", []byte("\x00asm\x01\x00\x00\x00\x01\x04\x01\x60\x00\x00\x03\x03\x02\x00\x30\x0a\x09\x02\x04\x00\x10\x01\x0b\x02\x00\x0b"), "not a valid wasm module: malformed module: section 3: a function of type 48, of 1"},
		{"a table of 2^27", []byte("\x00asm\x01\x00\x00\x00\x04\x07\x01\x70\x00\x80\x80\x80\x40"), "not a valid wasm module: malformed module: section 4: a table of 134217728 elements"},
		{"sets a global it lacks", roamShaped(false, 0x41, 1, 0x24, 0), "not a valid wasm module: invalid function[0] export[\"_initialize\"]: invalid global index"},
	} {
		err := load(c.wasm)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error containing %q", c.name, err, c.want)
		}
		if err != nil && !strings.HasPrefix(err.Error(), "x.wasm: ") {
			t.Errorf("%s: %v does not name the module", c.name, err)
		}
	}
	// The runtime still works.
	m, err := rt.Load(ctx, confWasm, ModuleOptions{PoolSize: 1}, Binding{})
	if err != nil {
		t.Fatal(err)
	}
	if out, err := m.Call(ctx, "Echo", []byte(`{"ok":true}`)); err != nil || string(out) != `{"ok":true}` {
		t.Fatalf("Echo: %q %v", out, err)
	}
}

// TestLoopingStartFunction: a module's start function runs as it is
// instantiated, before the host has the instance (and on wazero's compiler,
// before it can reach the metering's stop flag). One that loops must still
// fail the load at its InitTimeout, and leave the runtime serving.
func TestLoopingStartFunction(t *testing.T) {
	rt := newRuntime(t, nil)
	ctx := context.Background()
	const timeout = 300 * time.Millisecond
	start := time.Now()
	done := make(chan error, 1)
	go func() {
		m, err := rt.Load(ctx, roamShaped(true), ModuleOptions{PoolSize: 1, Name: "x.wasm", InitTimeout: timeout}, Binding{})
		if err == nil {
			m.Close(ctx)
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "x.wasm: instantiating") {
			t.Fatalf("load: %v, want an error instantiating x.wasm", err)
		}
		if took := time.Since(start); took > timeout+5*time.Second {
			t.Errorf("the load failed after %s; want soon after its %s InitTimeout", took, timeout)
		}
	case <-time.After(time.Minute):
		t.Fatal("the load of a module whose start function loops did not end within a minute")
	}
	m, err := rt.Load(ctx, confWasm, ModuleOptions{PoolSize: 1}, Binding{})
	if err != nil {
		t.Fatal(err)
	}
	if out, err := m.Call(ctx, "Echo", []byte(`{"ok":true}`)); err != nil || string(out) != `{"ok":true}` {
		t.Fatalf("Echo: %q %v", out, err)
	}
}

// TestMemoryMinAboveLimit: a module whose memory starts above its limit is
// refused at load with the limit named. wazero builds an instance's memory
// at its minimum before anything can refuse it, and indexed what the
// allocator could not give: the load panicked, and the runtime's Close
// then hung.
func TestMemoryMinAboveLimit(t *testing.T) {
	rt := newRuntime(t, nil)
	ctx := context.Background()
	wasm := roamShaped(false)
	// The memory section, one memory of one page, becomes one of 1025.
	i := bytes.Index(wasm, []byte{5, 3, 1, 0, 1})
	wasm = append(wasm[:i:i], append([]byte{5, 4, 1, 0, 0x81, 0x08}, wasm[i+5:]...)...)
	_, err := rt.Load(ctx, wasm, ModuleOptions{PoolSize: 1, Name: "x.wasm"}, Binding{})
	if want := "x.wasm: the module starts with 65600 KiB of linear memory, above its limit of 65536 KiB"; err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("load: %v, want an error containing %q", err, want)
	}
	// At the limit, it loads (and fails later, being an empty module).
	_, err = rt.Load(ctx, wasm, ModuleOptions{PoolSize: 1, Name: "x.wasm", MemoryLimitPages: 1025}, Binding{})
	if err == nil || strings.Contains(err.Error(), "limit") {
		t.Fatalf("load at the limit: %v, want roam_init's failure", err)
	}
	m, err := rt.Load(ctx, confWasm, ModuleOptions{PoolSize: 1}, Binding{})
	if err != nil {
		t.Fatal(err)
	}
	if out, err := m.Call(ctx, "Echo", []byte(`{"ok":true}`)); err != nil || string(out) != `{"ok":true}` {
		t.Fatalf("Echo: %q %v", out, err)
	}
}

// TestTableGrowthCapped: a guest's table.grow by 2^31 - 1 elements fails
// (-1) instead of making the runtime allocate 16 GB of the host's memory:
// the host caps tables that declare no maximum, as Go's linker writes them
// (wasmopt.CapTables).
func TestTableGrowthCapped(t *testing.T) {
	rt := newRuntime(t, nil)
	// _initialize: table.grow 0 (ref.null func, 2^31 - 1); i32.const -1;
	// i32.ne; if unreachable: it traps unless the growth failed.
	wasm := roamShaped(false, 0xd0, 0x70, 0x41, 0xff, 0xff, 0xff, 0xff, 0x07, 0xfc, 0x0f, 0x00,
		0x41, 0x7f, 0x47, 0x04, 0x40, 0x00, 0x0b)
	i := bytes.Index(wasm, []byte{5, 3, 1, 0, 1}) // a table with no maximum, before the memory
	wasm = append(wasm[:i:i], append([]byte{4, 4, 1, 0x70, 0, 1}, wasm[i:]...)...)
	_, err := rt.Load(context.Background(), wasm, ModuleOptions{PoolSize: 1, Name: "x.wasm"}, Binding{})
	// _initialize returned; the empty roam_init then fails the load.
	if err == nil || !strings.Contains(err.Error(), "roam_init") {
		t.Fatalf("load: %v, want roam_init's failure after _initialize's growth failed", err)
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	if ms.Sys > 4<<30 {
		t.Errorf("the process holds %d MiB", ms.Sys>>20)
	}
	// roam build caps the table itself, so that a load need not copy a
	// module to do it.
	if _, changed, err := wasmopt.CapTables(ordersWasm); err != nil || changed {
		t.Errorf("orders.wasm as roam build writes it: CapTables %v, %v; want it capped already", changed, err)
	}
}

// panickingRuntime is a runtime whose InstantiateModule panics, as
// wazero's does when an allocator cannot provide a memory's minimum.
type panickingRuntime struct{ wasmrt.Runtime }

func (panickingRuntime) InstantiateModule(context.Context, wasmrt.CompiledModule, wasmrt.ModuleConfig) (wasmrt.Module, error) {
	var b []byte
	_ = b[:65536]
	return nil, nil
}

func (panickingRuntime) CompileModule(context.Context, []byte) (wasmrt.CompiledModule, error) {
	var types []int
	_ = types[48]
	return nil, nil
}

// TestRuntimePanicIsAnError: a panic in the runtime's instantiation or
// compilation fails that instantiation or load, not the host.
func TestRuntimePanicIsAnError(t *testing.T) {
	mod, err := instantiateModule(context.Background(), panickingRuntime{}, nil, nil)
	if mod != nil || err == nil || !strings.Contains(err.Error(), "the runtime failed: runtime error: slice bounds out of range") {
		t.Fatalf("instantiateModule: %v, %v; want the panic as an error", mod, err)
	}
	cm, err := compileModule(context.Background(), panickingRuntime{}, nil)
	if cm != nil || err == nil || !strings.Contains(err.Error(), "the runtime failed: runtime error: index out of range [48]") {
		t.Fatalf("compileModule: %v, %v; want the panic as an error", cm, err)
	}
}

// roamShaped builds a module with the exports checkABI wants, doing
// nothing but init in _initialize, and with a start function that loops
// for ever if start.
func roamShaped(start bool, init ...byte) []byte {
	sec := func(id byte, payload ...byte) []byte { return append([]byte{id, byte(len(payload))}, payload...) }
	const i32, i64 = 0x7f, 0x7e
	out := []byte("\x00asm\x01\x00\x00\x00")
	out = append(out, sec(1, 5,
		0x60, 0, 0, // () -> ()
		0x60, 0, 1, i32, // () -> i32
		0x60, 1, i32, 1, i32, // (i32) -> i32
		0x60, 0, 1, i64, // () -> i64
		0x60, 2, i32, i32, 1, i64)...) // (i32, i32) -> i64
	out = append(out, sec(3, 6, 0, 1, 2, 3, 4, 0)...)
	out = append(out, sec(5, 1, 0, 1)...)
	ex := []byte{6}
	for i, name := range []string{"_initialize", "roam_abi_version", "roam_alloc", "roam_init", "roam_handle"} {
		ex = append(append(append(ex, byte(len(name))), name...), 0, byte(i))
	}
	ex = append(append(ex, 6), "memory\x02\x00"...)
	out = append(out, sec(7, ex...)...)
	if start {
		out = append(out, sec(8, 5)...)
	}
	code := append(append([]byte{6, byte(len(init) + 2), 0}, init...), 0x0b) // _initialize
	return append(out, sec(10, append(code,
		4, 0, 0x41, 1, 0x0b, // roam_abi_version: 1
		4, 0, 0x41, 0, 0x0b, // roam_alloc: 0
		4, 0, 0x42, 0, 0x0b, // roam_init: 0
		4, 0, 0x42, 0, 0x0b, // roam_handle: 0
		7, 0, 0x03, 0x40, 0x0c, 0, 0x0b, 0x0b)...)...) // spin: loop br 0 end
}

// wasmModule builds a minimal valid module: optional imported function
// (module, name) and exported functions of type () -> (), doing nothing.
func wasmModule(imp []string, exports ...string) []byte {
	uleb := func(b []byte, v int) []byte {
		for {
			c := byte(v & 0x7f)
			v >>= 7
			if v == 0 {
				return append(b, c)
			}
			b = append(b, c|0x80)
		}
	}
	name := func(b []byte, s string) []byte { return append(uleb(b, len(s)), s...) }
	section := func(out []byte, id byte, body []byte) []byte {
		return append(uleb(append(out, id), len(body)), body...)
	}
	out := []byte("\x00asm\x01\x00\x00\x00")
	out = section(out, 1, []byte{1, 0x60, 0, 0}) // one type: () -> ()
	nimp := 0
	if imp != nil {
		nimp = 1
		out = section(out, 2, append(name(name([]byte{1}, imp[0]), imp[1]), 0, 0))
	}
	funcs := uleb(nil, len(exports))
	for range exports {
		funcs = append(funcs, 0)
	}
	out = section(out, 3, funcs)
	ex := uleb(nil, len(exports))
	for i, e := range exports {
		ex = uleb(append(name(ex, e), 0), nimp+i)
	}
	out = section(out, 7, ex)
	code := uleb(nil, len(exports))
	for range exports {
		code = append(code, 2, 0, 0x0b)
	}
	return section(out, 10, code)
}

// TestHotReloadUnderLoad: reloading a module while clients hammer it drops
// no request, and the old instances are closed once their calls finish.
func TestHotReloadUnderLoad(t *testing.T) {
	es := newEdgeServer(t, ModuleOptions{PoolSize: 2}, host.Options{}, confWasm, inventoryWasm)
	m := es.mods["conformance"]
	l := startLoad(es.url, 6, func(_, n int) (string, string, string) {
		body := fmt.Sprintf(`{"n":%d}`, n)
		return "Echo", body, body
	})
	waitFor(t, "load", 5*time.Second, func() bool { return l.ok.Load() > 50 })
	var olds []*pool
	for i := 0; i < 3; i++ {
		olds = append(olds, m.cur.Load())
		if err := m.Reload(context.Background(), confWasm); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// A reload to another app is refused; the running version keeps serving.
	if err := m.Reload(context.Background(), inventoryWasm); err == nil || !strings.Contains(err.Error(), `holds app "inventory", not "conformance"`) {
		t.Errorf("reload to another app: %v", err)
	}
	time.Sleep(100 * time.Millisecond)
	l.stop(t)
	if v := m.Version(); v != 4 {
		t.Errorf("version %d after 3 reloads, want 4", v)
	}
	if s := m.Stats(); s.Reloads != 3 || s.ReloadFailures != 1 || s.Traps != 0 {
		t.Errorf("stats %+v", s)
	}
	for i, p := range olds {
		select {
		case <-p.done:
		case <-time.After(5 * time.Second):
			t.Errorf("version %d's pool did not close", i+1)
		}
	}
	t.Logf("%d requests served across 3 reloads", l.ok.Load())
}

// TestWatcherReloads: the CLI's watcher reloads a module whose file changes.
func TestWatcherReloads(t *testing.T) {
	rt := newRuntime(t, nil)
	ctx := context.Background()
	file := filepath.Join(t.TempDir(), "conf.wasm")
	if err := os.WriteFile(file, confWasm, 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := rt.Load(ctx, confWasm, ModuleOptions{PoolSize: 1}, Binding{})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	var mu sync.Mutex
	w := &Watcher{Interval: 20 * time.Millisecond, Stdout: syncWriter{&mu, &out}}
	w.Add(file, m)
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	go w.Run(wctx)
	// A broken file is reported and leaves the module alone.
	if err := os.WriteFile(file, []byte("not wasm"), 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the failed reload", 5*time.Second, func() bool { return m.Stats().ReloadFailures == 1 })
	if err := os.WriteFile(file, confWasm, 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the reload", 10*time.Second, func() bool { return m.Version() == 2 })
	if out, err := m.Call(ctx, "Echo", []byte(`1`)); err != nil || string(out) != "1" {
		t.Fatalf("Echo after reload: %q %v", out, err)
	}
	// The watcher reports the reload once Reload has returned, which is
	// after the version changes.
	output := func() string {
		mu.Lock()
		defer mu.Unlock()
		return out.String()
	}
	waitFor(t, "the watcher's report", 5*time.Second, func() bool { return strings.Contains(output(), "reloaded conf.wasm") })
	if s := output(); !strings.Contains(s, "reload of conf.wasm failed") || !strings.Contains(s, "reloaded conf.wasm (app conformance, version 2)") {
		t.Errorf("watcher output:\n%s", s)
	}
}

type syncWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (w syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w.Write(p)
}

// TestCompilationCacheReused: a second runtime on the same cache directory
// loads the module from the cache: the directory is populated by the first
// load and left untouched by the second. (wazero does not report cache hits;
// the timings are in the benchmarks.)
func TestCompilationCacheReused(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	load := func() (map[string]time.Time, time.Duration) {
		rt, err := NewRuntime(ctx, RuntimeOptions{CacheDir: dir})
		if err != nil {
			t.Fatal(err)
		}
		defer rt.Close(ctx)
		if !strings.HasPrefix(filepath.Base(rt.CacheDir()), RuntimeName()+"-") {
			t.Errorf("cache dir %s is not keyed by the wazero version", rt.CacheDir())
		}
		start := time.Now()
		if raceEnabled {
			// A tiny module: compiling a Go module from scratch under the
			// race detector takes most of a minute.
			cm, err := rt.rt.CompileModule(ctx, wasmModule(nil, "_initialize"))
			if err != nil {
				t.Fatal(err)
			}
			cm.Close(ctx)
		} else {
			m, err := rt.Load(ctx, confWasm, ModuleOptions{PoolSize: 1}, Binding{})
			if err != nil {
				t.Fatal(err)
			}
			if out, err := m.Call(ctx, "Echo", []byte(`1`)); err != nil || string(out) != "1" {
				t.Fatalf("Echo: %q %v", out, err)
			}
		}
		took := time.Since(start)
		files := map[string]time.Time{}
		filepath.Walk(rt.CacheDir(), func(p string, fi os.FileInfo, err error) error {
			if err == nil && !fi.IsDir() {
				files[p] = fi.ModTime()
			}
			return nil
		})
		return files, took
	}
	first, cold := load()
	if len(first) == 0 {
		t.Fatal("the compilation cache is empty after a load")
	}
	second, warm := load()
	if len(second) != len(first) {
		t.Errorf("the second load added cache entries (%d, then %d): it recompiled", len(first), len(second))
	}
	for p, mt := range first {
		if !second[p].Equal(mt) {
			t.Errorf("cache entry %s was rewritten by the second load", p)
		}
	}
	t.Logf("load with pool 1: cold %s, from cache %s", cold, warm)
}

// TestDeliverEvent: Module.Deliver hands the CloudEvent to the guest's
// subscription, and an unknown topic is NotFound.
func TestDeliverEvent(t *testing.T) {
	rt := newRuntime(t, nil)
	ctx := context.Background()
	b := memory.New(memory.Options{})
	m, err := rt.Load(ctx, confWasm, ModuleOptions{PoolSize: 1}, Binding{Backend: b})
	if err != nil {
		t.Fatal(err)
	}
	e := &sdk.Event{SpecVersion: "1.0", ID: "e1", Source: "test", Type: "t", PubSub: testapp.PubSub, Topic: testapp.TopicEvent,
		DataContentType: "application/json", Data: []byte(`{"hello":"edge"}`)}
	if err := m.Deliver(ctx, e); err != nil {
		t.Fatal(err)
	}
	out, err := m.Call(ctx, "Received", []byte(`{"topic":"`+testapp.TopicEvent+`"}`))
	if err != nil || string(out) != `{"events":[{"hello":"edge"}]}` {
		t.Fatalf("Received: %s %v", out, err)
	}
	e.Topic = "nope"
	if err := m.Deliver(ctx, e); sdk.CodeOf(err) != sdk.NotFound {
		t.Fatalf("unknown topic: %v", err)
	}
	e.Topic = testapp.TopicPoison
	if err := m.Deliver(ctx, e); sdk.CodeOf(err) != sdk.InvalidArgument {
		t.Fatalf("poison: %v", err)
	}
	subs := m.Subscriptions()
	if len(subs) != 4 || subs[0].AppID != "conformance" || subs[1].DeadLetterTopic != testapp.TopicDead {
		t.Errorf("subscriptions: %+v", subs)
	}
}

// TestCloseWaitsForCalls: Close lets a call in flight finish, then refuses.
func TestCloseWaitsForCalls(t *testing.T) {
	rt := newRuntime(t, nil)
	ctx := context.Background()
	m, err := rt.Load(ctx, confWasm, ModuleOptions{PoolSize: 1}, Binding{})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error)
	go func() {
		_, err := m.Call(ctx, "Sleep", []byte(`{"ms":200}`))
		done <- err
	}()
	waitFor(t, "the call", 5*time.Second, func() bool { return m.Stats().Busy == 1 })
	if err := m.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("the call in flight: %v", err)
	}
	if _, err := m.Call(ctx, "Echo", nil); sdk.CodeOf(err) != sdk.Unavailable {
		t.Fatalf("after Close: %v, want Unavailable", err)
	}
}

func scrape(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, name := range []string{"roam_edge_instances_idle", "roam_edge_instances_busy", "roam_edge_instantiations_total",
		"roam_edge_traps_total", "roam_edge_timeouts_total", "roam_edge_rejected_total"} {
		if !bytes.Contains(b, []byte(name+"{")) {
			t.Errorf("/metrics lacks %s", name)
		}
	}
	return string(b)
}

// TestCacheBounded: the cache directory is trimmed to its bound, oldest
// entries first.
func TestCacheBounded(t *testing.T) {
	dir := t.TempDir()
	sub := filepath.Join(dir, RuntimeName()+"-"+RuntimeVersion(), "entries")
	if err := os.MkdirAll(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		p := filepath.Join(sub, fmt.Sprint("e", i))
		os.WriteFile(p, make([]byte, 1000), 0o644)
		mt := time.Now().Add(time.Duration(i-10) * time.Hour)
		os.Chtimes(p, mt, mt)
	}
	rt, err := NewRuntime(context.Background(), RuntimeOptions{CacheDir: dir, CacheMaxBytes: 2500})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close(context.Background())
	left, _ := filepath.Glob(filepath.Join(sub, "e*"))
	if want := []string{filepath.Join(sub, "e3"), filepath.Join(sub, "e4")}; !slices.Equal(left, want) {
		t.Errorf("left %v, want the two newest", left)
	}
}
