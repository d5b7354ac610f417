package webtest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/roam-dev/roam/backend/memory"
	"github.com/roam-dev/roam/examples/shop/inventory"
	"github.com/roam-dev/roam/examples/shop/orders"
	"github.com/roam-dev/roam/host"
	"github.com/roam-dev/roam/host/edge"
	"github.com/roam-dev/roam/host/native"
	"github.com/roam-dev/roam/sdk"
)

// benchPage loads the modules of ?modules= in parallel, then answers one
// orders.Get, and records when (ms since navigation start).
const benchPage = `<!doctype html>
<meta charset="utf-8">
<title>roam bench</title>
<script type="module">
import { Host } from './roam.js';
const q = new URLSearchParams(location.search);
const host = new Host({ db: 'bench' });
await host.ready;
document.body.dataset.ready = String(performance.now());
await Promise.all(q.get('modules').split(',').map((m) => host.load('./modules/' + m + '.wasm')));
const r = await host.callRaw('orders', 'Get', '{"id":"none"}');
document.body.dataset.status = String(r.status);
document.body.dataset.first = String(performance.now());
window.host = host;
</script>
`

// benchServer serves the bench page, the bundles and the modules through
// the host's own static handler (gzip, ETags), as roam run and the edge
// host serve them.
func benchServer(t *testing.T) *httptest.Server {
	mods := map[string][]byte{}
	for id := range apps {
		mods[id] = readAsset(t, "modules/"+id+".wasm")
	}
	srv := host.NewServer(memory.New(memory.Options{}), host.Options{Web: &host.WebAssets{
		Page: fstest.MapFS{
			"bench.html":     {Data: []byte(benchPage)},
			"roam.js":        {Data: readAsset(t, "roam.js")},
			"roam-worker.js": {Data: readAsset(t, "roam-worker.js")},
		},
		Modules: mods,
	}})
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	return ts
}

func median(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s) == 0 {
		return 0
	}
	return s[len(s)/2]
}

// TestBenchmarks measures the browser host and writes the figures to
// web/test-results/bench.json. It runs with ROAM_BENCH=1 (and ROAM_BROWSER=1):
//
//	ROAM_BROWSER=1 ROAM_BENCH=1 go test ./web/webtest -run TestBenchmarks -v
func TestBenchmarks(t *testing.T) {
	needBrowser(t)
	if os.Getenv("ROAM_BENCH") != "1" {
		t.Skip("set ROAM_BENCH=1")
	}
	ts := benchServer(t)
	res := map[string]any{}

	// Transfer sizes, as the host serves them.
	sizes := map[string][2]int{}
	for _, f := range []string{"modules/orders.wasm", "modules/inventory.wasm", "modules/conformance.wasm", "roam.js", "roam-worker.js"} {
		raw, gz := fetchSize(t, ts.URL+"/web/"+f, false), fetchSize(t, ts.URL+"/web/"+f, true)
		sizes[f] = [2]int{raw, gz}
		t.Logf("%-26s %8d bytes, %8d gzip (%.0f%%)", f, raw, gz, 100*float64(gz)/float64(raw))
	}
	res["sizes_raw_gzip"] = sizes

	// Page load to first call answered.
	const runs = 5
	for _, mods := range []string{"orders", "orders,inventory"} {
		u := ts.URL + "/web/bench.html?modules=" + mods
		var cold, warm []float64
		for i := 0; i < runs; i++ {
			b := startBrowser(t) // a fresh profile: nothing cached
			cold = append(cold, b.firstCall(u))
			for j := 0; j < runs; j++ {
				warm = append(warm, b.firstCall(u))
			}
		}
		t.Logf("page load → first call answered, modules %-16s cold median %6.0f ms (%v), warm median %6.0f ms (%v)",
			mods, median(cold), round(cold), median(warm), round(warm))
		res["first_call_ms_"+mods] = map[string]any{"cold": cold, "warm": warm, "cold_median": median(cold), "warm_median": median(warm)}
	}

	// Steady state: orders.Get of a stored order, inside the worker and
	// through the page's promise API.
	b := startBrowser(t)
	b.firstCall(ts.URL + "/web/bench.html?modules=orders,inventory")
	var id string
	b.eval(`async () => {
		await window.host.call('inventory', 'Restock', { sku: 'bench', quantity: 10 });
		return (await window.host.call('orders', 'Create', { customer: 'bench', sku: 'bench', quantity: 1 })).order.id;
	}`, nil, &id)
	// Five runs of 2000 calls inside the worker; the median run's mean.
	var inWorker []float64
	b.eval(`async (id) => {
		await window.host.bench('orders', 'Get', { id }, 500);
		const out = [];
		for (let i = 0; i < 5; i++) out.push(await window.host.bench('orders', 'Get', { id }, 2000));
		return out;
	}`, id, &inWorker)
	var viaPage float64
	b.eval(`async (id) => {
		for (let i = 0; i < 200; i++) await window.host.call('orders', 'Get', { id });
		const t0 = performance.now();
		for (let i = 0; i < 2000; i++) await window.host.call('orders', 'Get', { id });
		return (performance.now() - t0) / 2000;
	}`, id, &viaPage)
	edgeUS, nativeUS := edgeGet(t), nativeGet(t)
	browserUS := 1000 * median(inWorker)
	t.Logf("orders.Get steady state: browser (in the worker) %.1f µs (runs %v µs), browser page→worker→page %.1f µs, edge (wazero) %.1f µs, native %.1f µs; browser/edge %.2fx",
		browserUS, round(scale(inWorker, 1000)), 1000*viaPage, edgeUS, nativeUS, browserUS/edgeUS)
	res["orders_get_us"] = map[string]any{
		"browser_worker": browserUS, "browser_worker_runs": scale(inWorker, 1000),
		"browser_page_roundtrip": 1000 * viaPage, "edge": edgeUS, "native": nativeUS, "browser_over_edge": browserUS / edgeUS,
	}
	out, _ := json.MarshalIndent(res, "", "  ")
	dir := filepath.Join(repoRoot, "web", "test-results")
	os.MkdirAll(dir, 0o755)
	os.WriteFile(filepath.Join(dir, "bench.json"), out, 0o644)
}

func scale(xs []float64, k float64) []float64 {
	out := make([]float64, len(xs))
	for i, x := range xs {
		out[i] = x * k
	}
	return out
}

func round(xs []float64) []int {
	out := make([]int, len(xs))
	for i, x := range xs {
		out[i] = int(x + 0.5)
	}
	return out
}

// firstCall navigates to u and returns the ms from navigation start to the
// first call's answer.
func (b *browser) firstCall(u string) float64 {
	b.t.Helper()
	b.must(map[string]any{"op": "goto", "url": u})
	b.waitFor(`() => document.body?.dataset.first`, nil)
	var r struct {
		First  string
		Status string
	}
	b.eval(`() => ({ first: document.body.dataset.first, status: document.body.dataset.status })`, nil, &r)
	if os.Getenv("ROAM_BENCH_DETAIL") != "" {
		var d string
		b.eval(`() => JSON.stringify({ready: document.body.dataset.ready, nav: performance.getEntriesByType('navigation')[0].responseEnd, res: performance.getEntriesByType('resource').map(e => [e.name.split('/').pop(), Math.round(e.startTime), Math.round(e.responseEnd), e.transferSize])})`, nil, &d)
		b.t.Logf("first %s: %s", r.First, d)
	}
	if r.Status != "404" { // orders.Get of an unknown id: NotFound
		b.t.Fatalf("first call answered %s", r.Status)
	}
	var ms float64
	fmt.Sscan(r.First, &ms)
	return ms
}

func fetchSize(t *testing.T, u string, gz bool) int {
	req, _ := http.NewRequest("GET", u, nil)
	if gz {
		req.Header.Set("Accept-Encoding", "gzip")
	}
	resp, err := (&http.Transport{DisableCompression: true}).RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	n, _ := io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != 200 || (gz && !strings.Contains(resp.Header.Get("Content-Encoding"), "gzip")) {
		t.Fatalf("%s: %d %v", u, resp.StatusCode, resp.Header)
	}
	return int(n)
}

const benchOrder = `{"id":"bench","customer":"bench","sku":"bench","quantity":1,"status":"created"}`

// timeCalls returns the median µs of n sequential calls, after a warm-up.
func timeCalls(t *testing.T, n int, call func() error) float64 {
	for i := 0; i < n/10; i++ {
		if err := call(); err != nil {
			t.Fatal(err)
		}
	}
	xs := make([]float64, n)
	for i := range xs {
		t0 := time.Now()
		if err := call(); err != nil {
			t.Fatal(err)
		}
		xs[i] = float64(time.Since(t0).Nanoseconds()) / 1000
	}
	return median(xs)
}

// edgeGet times orders.Get on the edge host's runtime (wazero), called
// in-process like the browser bench, on the memory backend.
func edgeGet(t *testing.T) float64 {
	ctx := context.Background()
	rt, err := edge.NewRuntime(ctx, edge.RuntimeOptions{CacheDir: filepath.Join(os.TempDir(), "roam-webtest-wazero")})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close(ctx)
	b := memory.New(memory.Options{})
	defer b.Close()
	if err := b.State("orders", "statestore").Set(ctx, "order/bench", []byte(benchOrder), sdk.WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	m, err := rt.Load(ctx, readAsset(t, "modules/orders.wasm"), edge.ModuleOptions{Name: "orders.wasm", AppID: "orders", PoolSize: 1}, edge.Binding{Backend: b})
	if err != nil {
		t.Fatal(err)
	}
	return timeCalls(t, 5000, func() error {
		_, err := m.Call(ctx, "Get", []byte(`{"id":"bench"}`))
		return err
	})
}

// nativeGet times orders.Get compiled into the host, for reference.
func nativeGet(t *testing.T) float64 {
	ctx := context.Background()
	b := memory.New(memory.Options{})
	defer b.Close()
	b.State("orders", "statestore").Set(ctx, "order/bench", []byte(benchOrder), sdk.WriteOptions{})
	srv, err := native.NewServer(b, []*sdk.App{orders.App, inventory.App}, host.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return timeCalls(t, 20000, func() error {
		_, err := srv.Call(ctx, "orders", "Get", []byte(`{"id":"bench"}`))
		return err
	})
}
