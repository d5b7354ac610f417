package e2e_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/roam-dev/roam/examples/shop/contract"
)

// TestCrossProcessInvoke runs inventory and orders as two processes on one
// data directory: orders.Create reaches inventory.Reserve in the other
// process through the local registry, and once inventory is killed, orders
// says so promptly with 503 Unavailable.
func TestCrossProcessInvoke(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	inv := startHost(t, dir, []string{"./examples/shop/inventory"})
	ord := startHost(t, dir, []string{"./examples/shop/orders"})
	if inv.URL == ord.URL {
		t.Fatalf("both hosts on %s", inv.URL)
	}
	// Each process serves its own app only.
	for _, c := range []struct {
		h         *host
		own, away string
	}{{inv, "inventory", "orders"}, {ord, "orders", "inventory"}} {
		var apps struct {
			Apps []struct{ ID string }
		}
		s, b := c.h.get(t, "/v1/apps")
		if err := json.Unmarshal([]byte(b), &apps); s != http.StatusOK || err != nil || len(apps.Apps) != 1 || apps.Apps[0].ID != c.own {
			t.Fatalf("%s host /v1/apps: %d %s", c.own, s, b)
		}
		wantError(t, c.h, c.away, "Get", `{}`, http.StatusNotFound, "NotFound")
	}

	id := runID(t)
	sku, cust := "sku-"+id, "cust-"+id
	mustCall[contract.StockLevel](t, inv, "inventory", "Restock", contract.Restock{SKU: sku, Quantity: 5}, http.StatusOK)
	o := mustCall[contract.OrderReply](t, ord, "orders", "Create", contract.CreateOrder{Customer: cust, SKU: sku, Quantity: 2}, http.StatusOK)
	if o.Order.Status != contract.StatusCreated || o.Order.Quantity != 2 {
		t.Fatalf("create across processes: %+v", o)
	}
	if l := mustCall[contract.StockLevel](t, inv, "inventory", "Stock", contract.SKURef{SKU: sku}, http.StatusOK); l.Available != 3 {
		t.Fatalf("stock after a cross-process order of 2 of 5: %d, want 3", l.Available)
	}
	// The callee's error code survives the hop: FailedPrecondition, not a
	// generic transport error.
	msg := wantError(t, ord, "orders", "Create", contract.CreateOrder{Customer: cust, SKU: sku, Quantity: 4}, http.StatusBadRequest, "FailedPrecondition")
	if !strings.Contains(msg, "3 available") {
		t.Errorf("oversell message across processes: %q", msg)
	}
	// The order is in the orders process's state, not inventory's.
	if got := mustCall[contract.OrderReply](t, ord, "orders", "Get", contract.OrderRef{ID: o.Order.ID}, http.StatusOK); got.Order != o.Order {
		t.Fatalf("get: %+v, want %+v", got.Order, o.Order)
	}

	// A second host of an app already served on this data directory fails
	// at start, instead of reporting ready and failing every call on the
	// file lock; the registry keeps pointing at the live one.
	p, _ := startRoam(t, "run", "./examples/shop/inventory", "--port", "0", "--data-dir", dir)
	if code := p.exitedWithin(readyTimeout); code == 0 || !strings.Contains(p.out.String(), "locked by another process") || strings.Contains(p.out.String(), "ready on") {
		t.Fatalf("second inventory host on one data dir: exit %d, output:\n%s", code, p.out)
	}
	mustCall[contract.OrderReply](t, ord, "orders", "Create", contract.CreateOrder{Customer: cust, SKU: sku, Quantity: 1}, http.StatusOK)
	if l := mustCall[contract.StockLevel](t, inv, "inventory", "Stock", contract.SKURef{SKU: sku}, http.StatusOK); l.Available != 2 {
		t.Fatalf("stock after a second cross-process order: %d, want 2", l.Available)
	}

	// Kill inventory. orders must fail fast and say why.
	inv.signal(syscall.SIGKILL)
	inv.exitedWithin(10 * time.Second)
	start := time.Now()
	msg = wantError(t, ord, "orders", "Create", contract.CreateOrder{Customer: cust, SKU: sku, Quantity: 1}, http.StatusServiceUnavailable, "Unavailable")
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("orders.Create took %v to report inventory gone", d)
	}
	if !strings.Contains(msg, "inventory") || !(strings.Contains(msg, "not running") || strings.Contains(msg, "unreachable")) {
		t.Errorf("unclear message when inventory is down: %q", msg)
	}
	t.Logf("with inventory killed, orders.Create says: %s", msg)
	// orders itself is fine, and serves what it holds.
	if s, _ := ord.get(t, "/healthz"); s != http.StatusOK {
		t.Fatalf("orders /healthz: %d", s)
	}
	mustCall[contract.OrderReply](t, ord, "orders", "Get", contract.OrderRef{ID: o.Order.ID}, http.StatusOK)

	// Bring inventory back on the same data: orders reaches it again, and
	// the stock it kept is intact.
	inv2 := startHost(t, dir, []string{"./examples/shop/inventory"})
	mustCall[contract.OrderReply](t, ord, "orders", "Create", contract.CreateOrder{Customer: cust, SKU: sku, Quantity: 2}, http.StatusOK)
	if l := mustCall[contract.StockLevel](t, inv2, "inventory", "Stock", contract.SKURef{SKU: sku}, http.StatusOK); l.Available != 0 {
		t.Fatalf("stock after restart and an order of the last 2: %d, want 0", l.Available)
	}
}
