package edge

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/roam-dev/roam/backend/embedded"
	"github.com/roam-dev/roam/conformance"
	"github.com/roam-dev/roam/examples/shop/inventory"
	"github.com/roam-dev/roam/host"
	"github.com/roam-dev/roam/host/native"
)

// TestShopOrdersWasmInventoryNative: orders runs as a wasm module and
// inventory as native code in the same host. Invocation (wasm → native),
// events (wasm publishes, native consumes) and the stock arithmetic behave as
// in the foundation's end-to-end test, and the shop vector passes unchanged.
func TestShopOrdersWasmInventoryNative(t *testing.T) {
	b, err := embedded.Open(embedded.Options{Dir: t.TempDir(), Retry: fastRetry, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	metrics := host.NewMetrics(nil)
	srv := host.NewServer(b, host.Options{Logger: testLogger(t), Metrics: metrics})
	inv, err := native.Setup(inventory.App, b, srv, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Add(inv); err != nil {
		t.Fatal(err)
	}
	rt := newRuntime(t, metrics)
	orders, err := rt.Load(context.Background(), ordersWasm, ModuleOptions{PoolSize: 2}, Binding{Backend: b, Invoker: srv.Invoker, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Add(orders); err != nil {
		t.Fatal(err)
	}
	if err := srv.StartDeliveries(); err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(func() {
		ts.Close()
		b.Close()
	})

	vs, err := conformance.LoadVectors()
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range vs {
		if v.Name == "shop" {
			conformance.RunVector(t, conformance.HTTPDriver{BaseURL: ts.URL}, v)
		}
	}

	// Explicit arithmetic: 10 in, 3 + 4 ordered, the 3 cancelled → 6.
	expect := func(app, method, body string, status int) map[string]any {
		t.Helper()
		st, reply := post(t, ts.URL, app, method, body)
		if st != status {
			t.Fatalf("%s.%s %s: %d %s, want %d", app, method, body, st, reply, status)
		}
		var m map[string]any
		json.Unmarshal([]byte(reply), &m)
		return m
	}
	expect("inventory", "Restock", `{"sku":"mixed","quantity":10}`, 200)
	o1 := expect("orders", "Create", `{"customer":"ada","sku":"mixed","quantity":3}`, 200)["order"].(map[string]any)["id"].(string)
	expect("orders", "Create", `{"customer":"ada","sku":"mixed","quantity":4}`, 200)
	if got := expect("inventory", "Stock", `{"sku":"mixed"}`, 200)["available"]; got != 3.0 {
		t.Fatalf("stock after two orders: %v, want 3", got)
	}
	expect("orders", "Create", `{"customer":"ada","sku":"mixed","quantity":4}`, 400) // only 3 left
	expect("orders", "Cancel", fmt.Sprintf(`{"id":%q}`, o1), 200)
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := expect("inventory", "Stock", `{"sku":"mixed"}`, 200)["available"]
		if got == 6.0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("stock after the cancel: %v, want 6 (order.cancelled not consumed)", got)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestNoCrossedResponses: 64 concurrent calls through a pool of 4 that may
// grow to 8: every reply is its own request's.
func TestNoCrossedResponses(t *testing.T) {
	es := newEdgeServer(t, ModuleOptions{PoolSize: 4, MaxPoolSize: 8, MaxQueue: 64, IdleTimeout: time.Minute}, host.Options{}, confWasm)
	var wg sync.WaitGroup
	errs := make(chan string, 64*10)
	for g := 0; g < 64; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 10; i++ {
				body := fmt.Sprintf(`{"caller":%d,"seq":%d,"pad":"%0*d"}`, g, i, g*7+i, 0)
				st, reply := post(t, es.url, "conformance", "Echo", body)
				if st != 200 || reply != body {
					errs <- fmt.Sprintf("sent %s, got %d %s", body, st, reply)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	waitSettled(t, es.mods["conformance"])
	if s := es.mods["conformance"].Stats(); s.PoolSize < 4 || s.PoolSize > 8 || s.PoolSize != 4+int(s.Grown) || s.Traps != 0 {
		t.Errorf("stats %+v: want a pool of 4 to 8 instances, those above 4 grown", s)
	}
}
