package edge

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
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/roam-dev/roam/abi"
	"github.com/roam-dev/roam/backend/embedded"
	"github.com/roam-dev/roam/conformance/tracecheck"
	"github.com/roam-dev/roam/examples/shop/inventory"
	"github.com/roam-dev/roam/examples/shop/orders"
	"github.com/roam-dev/roam/host"
	"github.com/roam-dev/roam/host/native"
	"github.com/roam-dev/roam/host/telemetry"
	_ "github.com/roam-dev/roam/host/telemetry/otlpgrpc"
	"github.com/roam-dev/roam/internal/build"
	"github.com/roam-dev/roam/internal/otlptest"
	"github.com/roam-dev/roam/internal/tracectx"
	"github.com/roam-dev/roam/sdk"
)

func tracing(t testing.TB, getenv func(string) string) host.Tracer {
	t.Helper()
	tr, err := telemetry.FromEnv(context.Background(), getenv, nil)
	if err != nil {
		t.Fatal(err)
	}
	if tr == nil {
		t.Fatal("tracing is off")
	}
	t.Cleanup(func() { tr.Shutdown(context.Background()) })
	return tr
}

// flushUntil flushes tr until r holds spans for which cond holds.
func flushUntil(t *testing.T, tr host.Tracer, r *otlptest.Receiver, what string, cond func([]otlptest.Span) bool) []otlptest.Span {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		tr.Flush(context.Background())
		if ss := r.Spans(); cond(ss) {
			return ss
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s after 20s:\n%s", what, otlptest.Tree(r.Spans()))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

var postH = tracecheck.Post

const (
	clientTrace = tracecheck.ClientTrace
	clientSpan  = tracecheck.ClientSpan
)

// TestTraceShopWasm: orders and inventory both run as wasm guests, and
// orders.Create is still one trace: the HTTP ingress, the guest handler,
// its state calls, the invocation out of the guest and into the other
// guest, and that guest's state calls; a Cancel's event continues the
// trace in inventory's consumer span. Spans go out over OTLP/gRPC.
func TestTraceShopWasm(t *testing.T) {
	r := otlptest.Start(t)
	tr := tracing(t, r.Env("grpc"))
	es := newEdgeServer(t, ModuleOptions{PoolSize: 2}, host.Options{Tracing: tr}, ordersWasm, inventoryWasm)
	if st, body := postH(t, es.url, "inventory", "Restock", `{"sku":"pear","quantity":10}`); st != 200 {
		t.Fatal(st, body)
	}
	r.Reset()
	st, body := postH(t, es.url, "orders", "Create", `{"customer":"ada","sku":"pear","quantity":3}`,
		"traceparent", "00-"+clientTrace+"-"+clientSpan+"-01")
	if st != 200 {
		t.Fatal(st, body)
	}
	tr.Flush(context.Background())
	tracecheck.OrdersCreate(t, r.Spans(), clientTrace, clientSpan)

	var reply struct{ Order struct{ ID string } }
	json.Unmarshal([]byte(body), &reply)
	r.Reset()
	if st, body := postH(t, es.url, "orders", "Cancel", fmt.Sprintf(`{"id":%q}`, reply.Order.ID)); st != 200 {
		t.Fatal(st, body)
	}
	spans := flushUntil(t, tr, r, "the consumer span of order.cancelled", func(ss []otlptest.Span) bool {
		return len(otlptest.Find(ss, "inventory", "process order.cancelled")) > 0
	})
	producers := otlptest.Find(spans, "orders", "publish order.cancelled")
	if len(producers) != 1 {
		t.Fatalf("%d producer spans:\n%s", len(producers), otlptest.Tree(spans))
	}
	consumer := tracecheck.Event(t, spans, producers[0], "inventory", "order.cancelled")
	// The guest's handler of the event ran under the consumer span: its
	// state calls are the consumer's children.
	children := 0
	for _, s := range spans {
		if s.ParentID == consumer.SpanID && strings.HasPrefix(s.Name, "state.") {
			children++
		}
	}
	if children == 0 {
		t.Fatalf("no state span under the consumer span:\n%s", otlptest.Tree(spans))
	}
}

var traceWasm []byte

func buildTraceApp(t *testing.T) []byte {
	t.Helper()
	if traceWasm != nil {
		return traceWasm
	}
	out := filepath.Join(t.TempDir(), "traceapp.wasm")
	if _, err := build.Wasm(context.Background(), build.Options{Dir: "../..", Patterns: []string{"./host/edge/testdata/traceapp"}, Out: out, Release: true}); err != nil {
		t.Fatal(err)
	}
	w, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	traceWasm = w
	return w
}

// TestTraceFromGuestGoroutine: a guest publishes from a goroutine that an
// earlier call (Spawn) started and a later call (Release) let run, on the
// same instance. The producer span's parent is Spawn's handler, whose
// context the goroutine holds and the guest sends with the publish (ABI
// v1.1), not Release's, the call in progress.
func TestTraceFromGuestGoroutine(t *testing.T) {
	r := otlptest.Start(t)
	tr := tracing(t, r.Env("http/protobuf"))
	es := newEdgeServer(t, ModuleOptions{PoolSize: 1}, host.Options{Tracing: tr}, buildTraceApp(t))
	for _, m := range []string{"Spawn", "Release"} {
		if st, body := postH(t, es.url, "traceapp", m, ``); st != 200 {
			t.Fatal(m, st, body)
		}
	}
	tr.Flush(context.Background())
	spans := r.Spans()
	spawn := otlptest.Find(spans, "traceapp", "traceapp.Spawn")
	rel := otlptest.Find(spans, "traceapp", "traceapp.Release")
	pub := otlptest.Find(spans, "traceapp", "publish spawned")
	if len(spawn) != 1 || len(rel) != 1 || len(pub) != 1 {
		t.Fatalf("want one Spawn, one Release and one publish span:\n%s", otlptest.Tree(spans))
	}
	if pub[0].ParentID != spawn[0].SpanID || pub[0].TraceID != spawn[0].TraceID {
		t.Fatalf("the goroutine's publish is parented to %s (trace %s); want Spawn's handler %s (Release's is %s)\n%s",
			pub[0].ParentID, pub[0].TraceID, spawn[0].SpanID, rel[0].SpanID, otlptest.Tree(spans))
	}
}

// TestTraceContextToGuest: a guest reads its handler span's trace context
// (sdk.Trace); a guest of ABI v1.0 is sent none (it would refuse the
// trailing fields), and nor is any guest when tracing is off.
func TestTraceContextToGuest(t *testing.T) {
	r := otlptest.Start(t)
	w := buildTraceApp(t)
	for _, tc := range []struct {
		name   string
		tr     host.Tracer
		minor  uint32
		traced bool
	}{
		{"v1.1", tracing(t, r.Env("http/protobuf")), abi.VersionMinor, true},
		{"v1.0", tracing(t, r.Env("http/protobuf")), 0, false},
		{"off", nil, abi.VersionMinor, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			es := newEdgeServer(t, ModuleOptions{PoolSize: 1}, host.Options{Tracing: tc.tr}, w)
			es.mods["traceapp"].cur.Load().minor = tc.minor
			st, body := postH(t, es.url, "traceapp", "Trace", ``, "traceparent", "00-"+clientTrace+"-"+clientSpan+"-01", "tracestate", "k=v")
			var got sdk.TraceContext
			if err := json.Unmarshal([]byte(body), &got); st != 200 || err != nil {
				t.Fatal(st, body)
			}
			if !tc.traced {
				if got != (sdk.TraceContext{}) {
					t.Fatalf("guest saw %+v, want nothing", got)
				}
				return
			}
			sc, ok := tracectx.Parse(got.TraceParent, got.TraceState)
			if !ok || sc.TraceID().String() != clientTrace || sc.SpanID().String() == clientSpan || got.TraceState != "k=v" {
				t.Fatalf("guest saw %+v; want its handler span in trace %s, with the caller's tracestate", got, clientTrace)
			}
		})
	}
}

// TestImportTraceContext: the invoke and publish imports take the trace
// context a guest appends (ABI v1.1) as the parent of what they do; one
// that does not parse leaves the call's own; a request of v1.0 (without
// it) is what it was.
func TestImportTraceContext(t *testing.T) {
	callTP := "00-11111111111111111111111111111111-2222222222222222-01"
	guestTP := "00-" + clientTrace + "-" + clientSpan + "-01"
	var seen []sdk.TraceContext
	inv := invokerFunc(func(ctx context.Context, app, method string, data []byte) ([]byte, error) {
		seen = append(seen, sdk.Trace(ctx))
		return data, nil
	})
	pub := publisherFunc(func(ctx context.Context, m sdk.Message) error {
		seen = append(seen, sdk.Trace(ctx))
		return nil
	})
	c := &caps{id: "app", inv: inv, pub: pub, log: testLogger(t)}
	st := &callState{ctx: sdk.WithTrace(context.Background(), sdk.TraceContext{TraceParent: callTP}), caps: c}
	invoke := abi.AppendBytes(abi.AppendString(abi.AppendString(nil, "other"), "M"), []byte(`{}`))
	publish := abi.AppendUvarint(abi.AppendString(abi.AppendString(abi.AppendBytes(abi.AppendString(abi.AppendString(nil, "pubsub"), "t"), []byte(`{}`)), ""), ""), 0)
	for _, tc := range []struct {
		name string
		tail []byte
		want sdk.TraceContext // the parent
	}{
		{"v1.0", nil, sdk.TraceContext{TraceParent: callTP}},
		{"traced", abi.AppendTrace(nil, guestTP, "k=v"), sdk.TraceContext{TraceParent: guestTP, TraceState: "k=v"}},
		{"malformed", abi.AppendTrace(nil, "00-nonsense", ""), sdk.TraceContext{TraceParent: callTP}},
	} {
		seen = nil
		if _, err := opInvoke(st, append(append([]byte(nil), invoke...), tc.tail...)); err != nil {
			t.Fatal(tc.name, err)
		}
		if _, err := opPublish(st, append(append([]byte(nil), publish...), tc.tail...)); err != nil {
			t.Fatal(tc.name, err)
		}
		if len(seen) != 2 {
			t.Fatalf("%s: %d calls", tc.name, len(seen))
		}
		for _, got := range seen {
			if got != tc.want {
				t.Errorf("%s: parent %+v, want %+v", tc.name, got, tc.want)
			}
		}
	}
	// A trace context cut short is a malformed request.
	if _, err := opInvoke(st, abi.AppendString(append([]byte(nil), invoke...), guestTP)); !sdk.IsCode(err, sdk.InvalidArgument) {
		t.Errorf("truncated trace context: %v", err)
	}
}

type invokerFunc func(ctx context.Context, app, method string, data []byte) ([]byte, error)

func (f invokerFunc) Invoke(ctx context.Context, app, method string, data []byte) ([]byte, error) {
	return f(ctx, app, method, data)
}

type publisherFunc func(ctx context.Context, m sdk.Message) error

func (f publisherFunc) Publish(ctx context.Context, m sdk.Message) error { return f(ctx, m) }

// TestMetricsSameOnBothHosts: a native host and an edge host serving the
// shop, after the same calls and events, expose the same roam_* metric
// families (outside the edge pool's roam_edge_*), with the same types and
// label names.
func TestMetricsSameOnBothHosts(t *testing.T) {
	workload := func(t *testing.T, url string) {
		t.Helper()
		postH(t, url, "inventory", "Restock", `{"sku":"m","quantity":10}`)
		_, body := postH(t, url, "orders", "Create", `{"customer":"ada","sku":"m","quantity":3}`)
		postH(t, url, "orders", "Create", `{"customer":"ada","sku":"m","quantity":300}`) // FailedPrecondition
		var reply struct{ Order struct{ ID string } }
		json.Unmarshal([]byte(body), &reply)
		postH(t, url, "orders", "Cancel", fmt.Sprintf(`{"id":%q}`, reply.Order.ID))
		waitFor(t, "the stock released", 20*time.Second, func() bool {
			_, b := postH(t, url, "inventory", "Stock", `{"sku":"m"}`)
			return strings.Contains(b, `"available":10`)
		})
		// The backend reports the delivery once it has acknowledged it,
		// just after the handler returned.
		waitFor(t, "the delivery reported", 20*time.Second, func() bool {
			return strings.Contains(scrapeText(t, url), `roam_pubsub_retries_pending{app="inventory"`)
		})
	}
	// Native.
	metrics := host.NewMetrics(nil)
	b, err := embedded.Open(embedded.Options{Dir: t.TempDir(), Retry: fastRetry, OnDeliver: metrics.OnDeliver})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := native.NewServer(b, []*sdk.App{orders.App, inventory.App}, host.Options{Metrics: metrics})
	if err != nil {
		t.Fatal(err)
	}
	ns := newHTTPServer(t, srv, b)
	workload(t, ns)
	// Edge.
	es := newEdgeServer(t, ModuleOptions{PoolSize: 1}, host.Options{}, ordersWasm, inventoryWasm)
	workload(t, es.url)

	nf, ef := families(t, scrapeText(t, ns)), families(t, scrapeText(t, es.url))
	for _, want := range []string{"roam_requests_total", "roam_request_duration_seconds", "roam_pubsub_deliveries_total",
		"roam_pubsub_deliveries_in_flight", "roam_pubsub_retries_pending"} {
		if _, ok := nf[want]; !ok {
			t.Errorf("native host: no %s", want)
		}
	}
	for name, n := range nf {
		if e, ok := ef[name]; !ok {
			t.Errorf("%s: on the native host (%s), not on the edge host", name, n)
		} else if e != n {
			t.Errorf("%s: native %s, edge %s", name, n, e)
		}
	}
	for name, e := range ef {
		if _, ok := nf[name]; !ok && !strings.HasPrefix(name, "roam_edge_") {
			t.Errorf("%s: on the edge host (%s), not on the native host", name, e)
		}
	}
	for _, want := range []string{"roam_edge_instances_idle", "roam_edge_instances_busy", "roam_edge_calls_queued", "roam_edge_pool_size"} {
		if _, ok := ef[want]; !ok {
			t.Errorf("edge host: no %s", want)
		}
	}
}

func scrapeText(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// families maps each roam_* family of a scrape to its type and label
// names, e.g. "COUNTER app,code,method".
func families(t *testing.T, text string) map[string]string {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for name, f := range fams {
		if !strings.HasPrefix(name, "roam_") {
			continue
		}
		labels := map[string]bool{}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = true
			}
		}
		var ls []string
		for l := range labels {
			ls = append(ls, l)
		}
		sort.Strings(ls)
		out[name] = f.GetType().String() + " " + strings.Join(ls, ",")
	}
	return out
}

// newHTTPServer serves srv over HTTP until the test ends, then closes b.
func newHTTPServer(t *testing.T, srv *host.Server, b interface{ Close() error }) string {
	t.Helper()
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(func() {
		ts.Close()
		b.Close()
	})
	return ts.URL
}
