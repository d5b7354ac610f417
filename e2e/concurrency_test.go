package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/roam-dev/roam/examples/shop/contract"
)

type result struct {
	status int
	body   []byte
	err    error
}

// concurrently runs n calls at once, released together, and returns their
// results in call order.
func concurrently(t *testing.T, h *host, n int, app, method string, body func(i int) any) []result {
	t.Helper()
	out := make([]result, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			s, b, _, err := post(ctx, h.URL, http.MethodPost, "/v1/apps/"+app+"/methods/"+method, body(i))
			out[i] = result{s, b, err}
		})
	}
	close(start)
	wg.Wait()
	for i, r := range out {
		if r.err != nil {
			t.Fatalf("%s.%s call %d: %v; host output:\n%s", app, method, i, r.err, h.out)
		}
	}
	return out
}

// TestConcurrentReserve: 64 orders race for 10 units. Exactly 10 win, the
// other 54 are told there is no stock, and nothing is oversold.
func TestConcurrentReserve(t *testing.T) {
	t.Parallel()
	h := startHost(t, t.TempDir(), shopAndConformance)
	id := runID(t)
	sku := "sku-" + id
	mustCall[contract.StockLevel](t, h, "inventory", "Restock", contract.Restock{SKU: sku, Quantity: 10}, http.StatusOK)

	const n = 64
	res := concurrently(t, h, n, "inventory", "Reserve", func(i int) any {
		return contract.Reserve{OrderID: fmt.Sprintf("%s-order-%d", id, i), SKU: sku, Quantity: 1}
	})
	var levels []int
	failed := 0
	for i, r := range res {
		switch r.status {
		case http.StatusOK:
			var l contract.StockLevel
			if err := json.Unmarshal(r.body, &l); err != nil || l.SKU != sku {
				t.Fatalf("reserve %d: reply %s", i, r.body)
			}
			levels = append(levels, l.Available)
		case http.StatusBadRequest:
			var e errorBody
			if err := json.Unmarshal(r.body, &e); err != nil || e.Code != "FailedPrecondition" || e.Message == "" {
				t.Fatalf("reserve %d: 400 with body %s, want FailedPrecondition", i, r.body)
			}
			failed++
		default:
			t.Fatalf("reserve %d: status %d, body %s", i, r.status, r.body)
		}
	}
	if len(levels) != 10 || failed != n-10 {
		t.Fatalf("%d reservations succeeded and %d failed, want 10 and %d", len(levels), failed, n-10)
	}
	// Each winner took exactly one unit: the levels they saw are 9..0.
	sort.Ints(levels)
	for i, l := range levels {
		if l != i {
			t.Fatalf("levels seen by the winners: %v, want 0..9 once each", levels)
		}
	}
	if got := mustCall[contract.StockLevel](t, h, "inventory", "Stock", contract.SKURef{SKU: sku}, http.StatusOK); got.Available != 0 {
		t.Fatalf("stock after the race: %d, want 0", got.Available)
	}

	// Reserve is idempotent per order: replaying a winner takes nothing
	// more, replaying a loser still finds no stock.
	mustCall[contract.StockLevel](t, h, "inventory", "Restock", contract.Restock{SKU: sku, Quantity: 1}, http.StatusOK)
	var winner int
	for i, r := range res {
		if r.status == http.StatusOK {
			winner = i
			break
		}
	}
	l := mustCall[contract.StockLevel](t, h, "inventory", "Reserve", contract.Reserve{OrderID: fmt.Sprintf("%s-order-%d", id, winner), SKU: sku, Quantity: 1}, http.StatusOK)
	if l.Available != 1 {
		t.Fatalf("replayed reservation changed stock: %d available, want 1", l.Available)
	}
}

// TestConcurrentIncrement: 64 concurrent increments of one counter leave it
// at exactly 64, and each increment saw a distinct value.
func TestConcurrentIncrement(t *testing.T) {
	t.Parallel()
	h := startHost(t, t.TempDir(), shopAndConformance)
	key := "counter-" + runID(t)
	const n = 64
	res := concurrently(t, h, n, "conformance", "Increment", func(int) any { return map[string]string{"key": key} })
	seen := map[int]bool{}
	for i, r := range res {
		var c struct{ N int }
		if r.status != http.StatusOK || json.Unmarshal(r.body, &c) != nil {
			t.Fatalf("increment %d: %d %s", i, r.status, r.body)
		}
		if seen[c.N] || c.N < 1 || c.N > n {
			t.Fatalf("increment %d returned %d: duplicate or out of 1..%d", i, c.N, n)
		}
		seen[c.N] = true
	}
	v := mustCall[storedValue](t, h, "conformance", "Get", map[string]string{"key": key}, http.StatusOK)
	var c struct {
		N int `json:"n"`
	}
	if err := json.Unmarshal(v.Value, &c); err != nil || !v.Found || c.N != n {
		t.Fatalf("counter after %d increments: %s (found %v), want {\"n\":%d}", n, v.Value, v.Found, n)
	}
}
