package dapr_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	daprc "github.com/dapr/go-sdk/client"

	"github.com/roam-dev/roam/backend"
	"github.com/roam-dev/roam/backend/embedded"
	"github.com/roam-dev/roam/conformance"
	"github.com/roam-dev/roam/conformance/testapp"
	"github.com/roam-dev/roam/examples/shop/contract"
	"github.com/roam-dev/roam/examples/shop/inventory"
	"github.com/roam-dev/roam/examples/shop/orders"
	"github.com/roam-dev/roam/host"
	"github.com/roam-dev/roam/host/native"
	"github.com/roam-dev/roam/internal/daprtest"
	"github.com/roam-dev/roam/sdk"
)

// BenchmarkOrdersGet compares orders.Get served by the Roam native host on
// the Dapr backend with a bare Go service that makes the same state call
// through go-sdk to the same sidecar and replies the same JSON, both
// behind net/http, driven by the same client. "sdk" is the go-sdk call
// alone. Each reports p50 and p99 latency.
//
//	go test ./backend/dapr -run '^$' -bench OrdersGet -benchtime 20x
func BenchmarkOrdersGet(b *testing.B) {
	r := daprtest.StartRedis(b)
	res := daprtest.WriteResources(b, r, daprtest.ResourceOptions{})
	h := startHost(b, hostOptions{appID: "orders", res: res}, orders.App, inventory.App)
	ctx := context.Background()
	body := mustJSON(contract.Restock{SKU: "bench", Quantity: 1000})
	call(ctx, h.URL, "inventory", "Restock", body)
	st, reply, err := call(ctx, h.URL, "orders", "Create", mustJSON(contract.CreateOrder{Customer: "bench", SKU: "bench", Quantity: 1}))
	if err != nil || st != 200 {
		b.Fatalf("Create: %d %s %v", st, reply, err)
	}
	var created contract.OrderReply
	json.Unmarshal(reply, &created)
	get := mustJSON(contract.OrderRef{ID: created.Order.ID})

	conn, err := daprc.NewClientWithAddress(h.Sidecar.GRPCAddr())
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	bareSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var ref contract.OrderRef
		if err := json.NewDecoder(r.Body).Decode(&ref); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		it, err := conn.GetState(r.Context(), "statestore", "order/"+ref.ID, nil)
		if err != nil {
			http.Error(w, err.Error(), 503)
			return
		}
		var o contract.Order
		if err := json.Unmarshal(it.Value, &o); err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		out, _ := json.Marshal(contract.OrderReply{Order: o, ETag: it.Etag})
		w.Header().Set("Content-Type", "application/json")
		w.Write(out)
	}))
	defer bareSrv.Close()

	viaHTTP := func(base string) func() error {
		return func() error {
			st, b, err := call(ctx, base, "orders", "Get", get)
			if err != nil || st != 200 {
				return fmt.Errorf("Get: %d %s %v", st, b, err)
			}
			return nil
		}
	}
	sdkGet := func() error { _, err := conn.GetState(ctx, "statestore", "order/"+created.Order.ID, nil); return err }
	// Rounds of 500 calls alternate between the two services, so that drift
	// in the machine's load (daprd and Redis share its cores) hits both.
	for _, conc := range []int{1, 8} {
		b.Run(fmt.Sprintf("c%d", conc), func(b *testing.B) {
			var roam, bare, sdk []time.Duration
			var added50, added99 []float64 // per pair of adjacent rounds
			for i := 0; i < b.N; i++ {
				var r, br []time.Duration
				if i%2 == 0 {
					r = measure(b, 500, conc, viaHTTP(h.URL))
					br = measure(b, 500, conc, viaHTTP(bareSrv.URL))
				} else {
					br = measure(b, 500, conc, viaHTTP(bareSrv.URL))
					r = measure(b, 500, conc, viaHTTP(h.URL))
				}
				roam, bare = append(roam, r...), append(bare, br...)
				added50 = append(added50, 100*(pct(r, 50)-pct(br, 50))/pct(br, 50))
				added99 = append(added99, 100*(pct(r, 99)-pct(br, 99))/pct(br, 99))
				sdk = append(sdk, measure(b, 100, conc, sdkGet)...)
			}
			// The pooled percentiles mix in the machine's drift over the
			// run; the median over adjacent pairs of rounds cancels it.
			b.ReportMetric(median(added50), "p50-added-paired-%")
			b.ReportMetric(median(added99), "p99-added-paired-%")
			r50, r99, b50, b99 := pct(roam, 50), pct(roam, 99), pct(bare, 50), pct(bare, 99)
			b.ReportMetric(r50, "roam-p50-µs")
			b.ReportMetric(b50, "bare-p50-µs")
			b.ReportMetric(r99, "roam-p99-µs")
			b.ReportMetric(b99, "bare-p99-µs")
			b.ReportMetric(100*(r50-b50)/b50, "p50-added-%")
			b.ReportMetric(100*(r99-b99)/b99, "p99-added-%")
			b.ReportMetric(pct(sdk, 50), "sdk-p50-µs")
		})
	}
}

// BenchmarkVectors runs the vectors that do not wait on time (no TTL
// expiry, no event delivery) on the native host with the embedded backend
// and with the Dapr backend; the ratio of their ns/op is Dapr's cost.
//
//	go test ./backend/dapr -run '^$' -bench Vectors -benchtime 20x
func BenchmarkVectors(b *testing.B) {
	vs, err := conformance.LoadVectors()
	if err != nil {
		b.Fatal(err)
	}
	var pick []conformance.Vector
	for _, v := range vs {
		switch v.Name {
		case "counter", "errors", "state-basics", "state-bulk-tx", "state-etag":
			pick = append(pick, v)
		}
	}
	apps := []*sdk.App{orders.App, inventory.App, testapp.App}
	runAll := func(b *testing.B, base string) {
		d := conformance.HTTPDriver{BaseURL: base, Client: client}
		t := &testing.T{}
		for _, v := range pick {
			b.Run(v.Name, func(b *testing.B) {
				for i := 0; i < b.N; i++ {
					conformance.RunVector(t, d, v)
				}
			})
		}
	}
	b.Run("embedded", func(b *testing.B) {
		eb, err := embedded.Open(embedded.Options{Dir: b.TempDir(), Retry: backend.RetryPolicy{MaxAttempts: 4, InitialBackoff: 20 * time.Millisecond, MaxBackoff: 100 * time.Millisecond}})
		if err != nil {
			b.Fatal(err)
		}
		defer eb.Close()
		srv, err := native.NewServer(eb, apps, host.Options{})
		if err != nil {
			b.Fatal(err)
		}
		ln, _ := net.Listen("tcp", "127.0.0.1:0")
		go srv.Serve(ln)
		defer srv.Shutdown(context.Background())
		runAll(b, "http://"+ln.Addr().String())
	})
	b.Run("dapr", func(b *testing.B) {
		r := daprtest.StartRedis(b)
		res := daprtest.WriteResources(b, r, daprtest.ResourceOptions{MaxAttempts: 4})
		h := startHost(b, hostOptions{appID: "conformance", res: res}, apps...)
		runAll(b, h.URL)
	})
}

// measure calls op n times from conc goroutines and returns the
// latencies.
func measure(b *testing.B, n, conc int, op func() error) []time.Duration {
	var mu sync.Mutex
	var all []time.Duration
	var wg sync.WaitGroup
	next := make(chan struct{}, n)
	for i := 0; i < n; i++ {
		next <- struct{}{}
	}
	close(next)
	for g := 0; g < conc; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var lat []time.Duration
			for range next {
				start := time.Now()
				if err := op(); err != nil {
					b.Error(err)
					return
				}
				lat = append(lat, time.Since(start))
			}
			mu.Lock()
			all = append(all, lat...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	return all
}
func median(v []float64) float64 {
	slices.Sort(v)
	return v[len(v)/2]
}

func pct(d []time.Duration, p int) float64 {
	slices.Sort(d)
	return float64(d[len(d)*p/100].Nanoseconds()) / 1e3
}

// BenchmarkStateGet isolates the backend: a state Get through the Dapr
// backend (Roam's checks, ETag, error mapping) against the same go-sdk call,
// in alternating rounds, with no HTTP in front.
//
//	go test ./backend/dapr -run '^$' -bench StateGet -benchtime 20x
func BenchmarkStateGet(b *testing.B) {
	r := daprtest.StartRedis(b)
	res := daprtest.WriteResources(b, r, daprtest.ResourceOptions{})
	sc := daprtest.StartSidecar(b, daprtest.SidecarOptions{AppID: "bench", Resources: res})
	bk := open(b, sc)
	defer bk.Close()
	ctx := context.Background()
	st := bk.State("bench", "statestore")
	if err := st.Set(ctx, "k", mustJSON(contract.Order{ID: "1", Customer: "c", SKU: "s", Quantity: 1, Status: "created"}), sdk.WriteOptions{}); err != nil {
		b.Fatal(err)
	}
	conn, err := daprc.NewClientWithAddress(sc.GRPCAddr())
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	roamGet := func() error { _, err := st.Get(ctx, "k"); return err }
	sdkGet := func() error { _, err := conn.GetState(ctx, "statestore", "k", nil); return err }
	for _, conc := range []int{1, 8} {
		b.Run(fmt.Sprintf("c%d", conc), func(b *testing.B) {
			var roam, bare []time.Duration
			for i := 0; i < b.N; i++ {
				roam = append(roam, measure(b, 500, conc, roamGet)...)
				bare = append(bare, measure(b, 500, conc, sdkGet)...)
			}
			r50, b50 := pct(roam, 50), pct(bare, 50)
			b.ReportMetric(r50, "roam-p50-µs")
			b.ReportMetric(b50, "sdk-p50-µs")
			b.ReportMetric(100*(r50-b50)/b50, "p50-added-%")
			b.ReportMetric(100*(pct(roam, 99)-pct(bare, 99))/pct(bare, 99), "p99-added-%")
		})
	}
}
