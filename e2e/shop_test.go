package e2e_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/roam-dev/roam/examples/shop/contract"
)

// TestShopWalkthrough is a user's session with the shop: stock arithmetic,
// orders, cancellation releasing stock through order.cancelled, the error
// statuses, and the metrics that record it all.
func TestShopWalkthrough(t *testing.T) {
	t.Parallel()
	h := startHost(t, t.TempDir(), shopAndConformance)
	id := runID(t)
	sku, cust := "sku-"+id, "cust-"+id

	stock := func() int {
		t.Helper()
		return mustCall[contract.StockLevel](t, h, "inventory", "Stock", contract.SKURef{SKU: sku}, http.StatusOK).Available
	}
	// An unknown SKU is NotFound for Stock and FailedPrecondition for an
	// order, which cannot be met until someone restocks.
	wantError(t, h, "inventory", "Stock", contract.SKURef{SKU: sku}, http.StatusNotFound, "NotFound")
	wantError(t, h, "orders", "Create", contract.CreateOrder{Customer: cust, SKU: sku, Quantity: 1}, http.StatusBadRequest, "FailedPrecondition")

	lvl := mustCall[contract.StockLevel](t, h, "inventory", "Restock", contract.Restock{SKU: sku, Quantity: 6}, http.StatusOK)
	if lvl != (contract.StockLevel{SKU: sku, Available: 6}) {
		t.Fatalf("restock 6: %+v", lvl)
	}
	lvl = mustCall[contract.StockLevel](t, h, "inventory", "Restock", contract.Restock{SKU: sku, Quantity: 4}, http.StatusOK)
	if lvl.Available != 10 {
		t.Fatalf("restock 6 then 4: available %d, want 10", lvl.Available)
	}

	o1 := mustCall[contract.OrderReply](t, h, "orders", "Create", contract.CreateOrder{Customer: cust, SKU: sku, Quantity: 3}, http.StatusOK)
	if o1.Order.ID == "" || o1.ETag == "" || o1.Order.Status != contract.StatusCreated || o1.Order.Quantity != 3 || o1.Order.SKU != sku || o1.Order.Customer != cust {
		t.Fatalf("create 3: %+v", o1)
	}
	if got := stock(); got != 7 {
		t.Fatalf("after ordering 3 of 10: available %d, want 7", got)
	}
	o2 := mustCall[contract.OrderReply](t, h, "orders", "Create", contract.CreateOrder{Customer: cust, SKU: sku, Quantity: 5}, http.StatusOK)
	if o2.Order.ID == o1.Order.ID {
		t.Fatalf("two orders share id %s", o2.Order.ID)
	}
	if got := stock(); got != 2 {
		t.Fatalf("after ordering 3+5 of 10: available %d, want 2", got)
	}
	// Overselling fails, and takes nothing.
	msg := wantError(t, h, "orders", "Create", contract.CreateOrder{Customer: cust, SKU: sku, Quantity: 3}, http.StatusBadRequest, "FailedPrecondition")
	if !strings.Contains(msg, "2 available") {
		t.Errorf("oversell message %q does not say what is available", msg)
	}
	if got := stock(); got != 2 {
		t.Fatalf("after a refused order: available %d, want 2", got)
	}

	// Bad requests: each a 4xx with a code, none of them touching stock.
	wantError(t, h, "orders", "Create", contract.CreateOrder{Customer: cust, SKU: sku, Quantity: 0}, http.StatusBadRequest, "InvalidArgument")
	wantError(t, h, "orders", "Get", contract.OrderRef{ID: "no-such-order-" + id}, http.StatusNotFound, "NotFound")
	wantError(t, h, "orders", "Get", contract.OrderRef{}, http.StatusBadRequest, "InvalidArgument")
	wantError(t, h, "inventory", "Restock", contract.Restock{SKU: sku, Quantity: -1}, http.StatusBadRequest, "InvalidArgument")
	wantError(t, h, "orders", "Cancel", contract.OrderRef{ID: o1.Order.ID, ETag: "stale"}, http.StatusConflict, "Conflict")
	if got := stock(); got != 2 {
		t.Fatalf("after bad requests: available %d, want 2", got)
	}

	got := mustCall[contract.OrderReply](t, h, "orders", "Get", contract.OrderRef{ID: o1.Order.ID}, http.StatusOK)
	if got != o1 {
		t.Fatalf("get %s: %+v, want %+v", o1.Order.ID, got, o1)
	}
	list := mustCall[contract.OrderList](t, h, "orders", "ListByCustomer", contract.CustomerRef{Customer: cust}, http.StatusOK)
	if len(list.Orders) != 2 || list.Orders[0] != o1.Order || list.Orders[1] != o2.Order {
		t.Fatalf("list: %+v, want [%+v %+v]", list.Orders, o1.Order, o2.Order)
	}

	// Cancel with the current ETag: the order is cancelled at once, and the
	// stock comes back once inventory has handled order.cancelled.
	c1 := mustCall[contract.OrderReply](t, h, "orders", "Cancel", contract.OrderRef{ID: o1.Order.ID, ETag: o1.ETag}, http.StatusOK)
	if c1.Order.Status != contract.StatusCancelled || c1.ETag == o1.ETag {
		t.Fatalf("cancel: %+v", c1)
	}
	waitStock(t, h, sku, 5)
	// The old ETag is now stale.
	wantError(t, h, "orders", "Cancel", contract.OrderRef{ID: o1.Order.ID, ETag: o1.ETag}, http.StatusConflict, "Conflict")
	// Cancelling again succeeds and publishes again, but releases nothing
	// twice. Events are delivered in order, so once o2's release shows, the
	// duplicate before it has been handled: 5 + 5, not 5 + 3 + 5.
	mustCall[contract.OrderReply](t, h, "orders", "Cancel", contract.OrderRef{ID: o1.Order.ID}, http.StatusOK)
	mustCall[contract.OrderReply](t, h, "orders", "Cancel", contract.OrderRef{ID: o2.Order.ID}, http.StatusOK)
	waitStock(t, h, sku, 10)
	list = mustCall[contract.OrderList](t, h, "orders", "ListByCustomer", contract.CustomerRef{Customer: cust}, http.StatusOK)
	for _, o := range list.Orders {
		if o.Status != contract.StatusCancelled {
			t.Errorf("order %s: status %s after cancel", o.ID, o.Status)
		}
	}
	// The stock is whole again: all 10 can be ordered, and no more.
	mustCall[contract.OrderReply](t, h, "orders", "Create", contract.CreateOrder{Customer: cust, SKU: sku, Quantity: 10}, http.StatusOK)
	if got := stock(); got != 0 {
		t.Fatalf("after ordering all 10: available %d", got)
	}
	wantError(t, h, "orders", "Create", contract.CreateOrder{Customer: cust, SKU: sku, Quantity: 1}, http.StatusBadRequest, "FailedPrecondition")

	// /metrics counts every Create by result code, and the deliveries.
	want := map[string]float64{"OK": 3, "FailedPrecondition": 3, "InvalidArgument": 1, "NotFound": 0}
	eventually(t, 10*time.Second, "metrics", func() string {
		status, body := h.get(t, "/metrics")
		if status != http.StatusOK {
			return fmt.Sprintf("GET /metrics: %d", status)
		}
		for code, n := range want {
			if got := metric(body, "roam_requests_total", "app=orders", "method=Create", "code="+code); got != n {
				return fmt.Sprintf("roam_requests_total{app=orders,method=Create,code=%s} = %v, want %v", code, got, n)
			}
		}
		if got := metric(body, "roam_requests_total", "app=inventory", "method=Reserve", "code=OK"); got != 3 {
			return fmt.Sprintf("inventory Reserve OK = %v, want 3 (one per created order, invoked in-process)", got)
		}
		if got := metric(body, "roam_pubsub_deliveries_total", "app=inventory", "topic=order.cancelled", "outcome=ok"); got < 3 {
			return fmt.Sprintf("order.cancelled deliveries ok = %v, want >= 3", got)
		}
		if got := metric(body, "roam_request_duration_seconds_count", "app=orders", "method=Create"); got != 7 {
			return fmt.Sprintf("orders Create latency count = %v, want 7", got)
		}
		return ""
	})
	if s, _ := h.get(t, "/readyz"); s != http.StatusOK {
		t.Errorf("/readyz: %d", s)
	}
}

// waitStock polls inventory.Stock until sku has want available.
func waitStock(t *testing.T, h *host, sku string, want int) {
	t.Helper()
	eventually(t, 20*time.Second, fmt.Sprintf("stock of %s reaches %d", sku, want), func() string {
		l := mustCall[contract.StockLevel](t, h, "inventory", "Stock", contract.SKURef{SKU: sku}, http.StatusOK)
		if l.Available != want {
			return fmt.Sprintf("available %d", l.Available)
		}
		return ""
	})
}
