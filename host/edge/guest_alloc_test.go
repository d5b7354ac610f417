package edge

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/roam-dev/roam/backend/memory"
	"github.com/roam-dev/roam/sdk"
)

// TestGuestAllocs pins the allocations a typed call makes inside the guest:
// orders.Get's path (internal/jsonbench/app's Get). Each costs microseconds
// under wazero's interruption checks, so the count is the noise-free measure
// of the guest's per-call cost. Before the SDK decoded into reused scratch,
// encoded into the frame buffer and built its requests in a reused buffer,
// this path made 18 (16 without a request id).
func TestGuestAllocs(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a module")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	be := memory.New(memory.Options{})
	defer be.Close()
	m, err := newRuntime(t, nil).Load(ctx, jsonbenchWasm(t), ModuleOptions{PoolSize: 1}, Binding{Backend: be})
	if err != nil {
		t.Fatal(err)
	}
	st := be.State("jsonbench", "statestore")
	if err := st.Set(ctx, "order/8c1d", []byte(`{"id":"8c1d","customer":"bench","sku":"bench","quantity":1,"status":"created"}`), sdk.WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	mallocs := func() int {
		out, err := m.Call(ctx, "Mallocs", nil)
		if err != nil {
			t.Fatal(err)
		}
		n, err := strconv.Atoi(string(out))
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	const calls = 50
	for _, c := range []struct {
		requestID string
		max       int
	}{{"", 5}, {"req-0123456789", 6}} {
		cctx := ctx
		if c.requestID != "" {
			cctx = sdk.WithRequestID(ctx, c.requestID)
		}
		if _, err := m.Call(cctx, "Get", []byte(`{"id":"8c1d"}`)); err != nil {
			t.Fatal(err)
		}
		m0 := mallocs()
		overhead := mallocs() - m0 // of a Mallocs call
		m1 := mallocs()
		for i := 0; i < calls; i++ {
			if _, err := m.Call(cctx, "Get", []byte(`{"id":"8c1d"}`)); err != nil {
				t.Fatal(err)
			}
		}
		per := float64(mallocs()-m1-overhead) / calls
		t.Logf("request id %q: %.1f allocations per call in the guest", c.requestID, per)
		if per > float64(c.max) {
			t.Errorf("request id %q: %.1f allocations per call in the guest, want at most %d", c.requestID, per, c.max)
		}
	}
}
