package e2e_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/roam-dev/roam/conformance/tracecheck"
	"github.com/roam-dev/roam/examples/shop/contract"
	"github.com/roam-dev/roam/internal/otlptest"
)

// TestRunTraced: `roam run` with an OTLP endpoint in its environment links
// tracing into the host it builds (a lean build would not have it) and
// exports the shop's spans there: orders.Create is one trace, down to
// inventory's state operations.
func TestRunTraced(t *testing.T) {
	t.Parallel()
	rcv := otlptest.Start(t)
	h := startHostEnv(t, []string{"OTEL_EXPORTER_OTLP_ENDPOINT=" + rcv.URL, "OTEL_BSP_SCHEDULE_DELAY=50"},
		t.TempDir(), []string{"./examples/shop"})
	id := runID(t)
	sku := "sku-" + id
	mustCall[contract.StockLevel](t, h, "inventory", "Restock", contract.Restock{SKU: sku, Quantity: 5}, http.StatusOK)
	mustCall[contract.OrderReply](t, h, "orders", "Create", contract.CreateOrder{Customer: "c-" + id, SKU: sku, Quantity: 2}, http.StatusOK)
	spans := rcv.Wait(t, "the spans of orders.Create", 60*time.Second, func(ss []otlptest.Span) bool {
		return len(otlptest.Find(ss, "inventory", "inventory.Reserve")) > 0 && len(otlptest.Find(ss, "orders", "publish order.created")) > 0 &&
			len(otlptest.Find(ss, "orders", "orders/Create")) > 0 && len(otlptest.Find(ss, "inventory", "state.Transact statestore")) > 0
	})
	tracecheck.OrdersCreate(t, spans, "", "")
}
