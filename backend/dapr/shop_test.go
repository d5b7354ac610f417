package dapr_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/roam-dev/roam/conformance"
	"github.com/roam-dev/roam/examples/shop/contract"
	"github.com/roam-dev/roam/examples/shop/inventory"
	"github.com/roam-dev/roam/examples/shop/orders"
	"github.com/roam-dev/roam/internal/daprtest"
	"github.com/roam-dev/roam/sdk"
)

// The shop as Dapr runs it: orders and inventory in hosts of their own,
// each beside its own sidecar, both in namespace "shop". Orders reads
// inventory's address ("inventory.shop") from the configuration store and
// invokes it through the two sidecars; order.cancelled travels through Redis
// streams to inventory's sidecar. Inventory's app channel is HTTP, then
// gRPC.
func TestShopTwoSidecars(t *testing.T) {
	r := daprtest.StartRedis(t)
	if _, err := r.Do("SET", "inventory-app-id", "inventory.shop||1"); err != nil {
		t.Fatal(err)
	}
	vs, err := conformance.LoadVectors()
	if err != nil {
		t.Fatal(err)
	}
	var shop conformance.Vector
	for _, v := range vs {
		if v.Name == "shop" {
			shop = v
		}
	}
	for _, proto := range []string{"http", "grpc"} {
		t.Run("inventory-"+proto, func(t *testing.T) {
			res := daprtest.WriteResources(t, r, daprtest.ResourceOptions{MaxAttempts: 4})
			ns := []string{"NAMESPACE=shop"}
			inv := startHost(t, hostOptions{appID: "inventory", appProtocol: proto, res: res, sidecarEnv: ns}, inventory.App)
			ord := startHost(t, hostOptions{appID: "orders", res: res, sidecarEnv: ns}, orders.App)
			d := appDriver{"inventory": inv.URL, "orders": ord.URL}

			t.Run("vector", func(t *testing.T) { conformance.RunVector(t, d, shop) })

			t.Run("namespaced invoke", func(t *testing.T) {
				ctx := ctxT(t)
				out, err := ord.Backend.Invoker("orders").Invoke(ctx, "inventory.shop", "Stock", []byte(`{"sku":"never-stocked"}`))
				if !sdk.IsCode(err, sdk.NotFound) {
					t.Fatalf("Stock of an unknown sku through inventory.shop: %s, %v (code %v), want NotFound", out, err, sdk.CodeOf(err))
				}
				if _, err := ord.Backend.Invoker("orders").Invoke(ctx, "nosuchapp", "Stock", nil); !sdk.IsCode(err, sdk.Unavailable) {
					t.Fatalf("invoke of an app no sidecar runs: %v (code %v), want Unavailable", err, sdk.CodeOf(err))
				}
			})

			t.Run("64 reserves on stock 10 sell 10", func(t *testing.T) {
				ctx := ctxT(t)
				sku := fmt.Sprintf("hot-%s-%d", proto, time.Now().UnixNano())
				mustCall(t, d, "inventory", "Restock", contract.Restock{SKU: sku, Quantity: 10}, http.StatusOK)
				codes := concurrently(64, func(i int) (int, []byte) {
					st, b, err := d.Call(ctx, "orders", "Create", mustJSON(contract.CreateOrder{Customer: fmt.Sprint("c", i), SKU: sku, Quantity: 1}))
					if err != nil {
						t.Error(err)
					}
					return st, b
				})
				if codes[http.StatusOK] != 10 || codes[http.StatusBadRequest] != 54 {
					t.Fatalf("64 orders of 1 on stock 10: statuses %v, want 10×200 and 54×400", codes)
				}
				var lv contract.StockLevel
				json.Unmarshal(mustCall(t, d, "inventory", "Stock", contract.SKURef{SKU: sku}, http.StatusOK), &lv)
				if lv.Available != 0 {
					t.Fatalf("stock after selling out: %d, want 0", lv.Available)
				}
			})

			t.Run("64 concurrent restocks are exact", func(t *testing.T) {
				sku := fmt.Sprintf("count-%s-%d", proto, time.Now().UnixNano())
				codes := concurrently(64, func(i int) (int, []byte) {
					st, b, _ := d.Call(ctxT(t), "inventory", "Restock", mustJSON(contract.Restock{SKU: sku, Quantity: 1}))
					return st, b
				})
				if codes[http.StatusOK] != 64 {
					t.Fatalf("restocks: %v", codes)
				}
				var lv contract.StockLevel
				json.Unmarshal(mustCall(t, d, "inventory", "Stock", contract.SKURef{SKU: sku}, http.StatusOK), &lv)
				if lv.Available != 64 {
					t.Fatalf("stock after 64 concurrent restocks of 1: %d, want 64", lv.Available)
				}
			})
		})
	}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

func mustCall(t *testing.T, d conformance.Driver, app, method string, req any, want int) []byte {
	t.Helper()
	st, b, err := d.Call(ctxT(t), app, method, mustJSON(req))
	if err != nil || st != want {
		t.Fatalf("%s.%s: %d %s %v, want %d", app, method, st, b, err, want)
	}
	return b
}

// concurrently runs f n times at once and counts the statuses.
func concurrently(n int, f func(i int) (int, []byte)) map[int]int {
	var mu sync.Mutex
	out := map[int]int{}
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			st, _ := f(i)
			mu.Lock()
			out[st]++
			mu.Unlock()
		}()
	}
	close(start)
	wg.Wait()
	return out
}
