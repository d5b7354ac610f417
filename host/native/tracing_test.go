package native_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/roam-dev/roam/backend/embedded"
	"github.com/roam-dev/roam/conformance"
	"github.com/roam-dev/roam/conformance/tracecheck"
	"github.com/roam-dev/roam/examples/shop/inventory"
	"github.com/roam-dev/roam/examples/shop/orders"
	"github.com/roam-dev/roam/host"
	"github.com/roam-dev/roam/host/native"
	"github.com/roam-dev/roam/host/telemetry"
	"github.com/roam-dev/roam/internal/otlptest"
	"github.com/roam-dev/roam/internal/syncbuf"
	"github.com/roam-dev/roam/sdk"
)

// traceProbe reports what a native handler and an event handler see of
// the trace context (sdk.Trace, Event.TraceParent).
var (
	traceProbe = sdk.NewApp("traceprobe", func(env sdk.Env, r *sdk.Router) error {
		sdk.Handle(r, "Trace", func(ctx context.Context, _ struct{}) (sdk.TraceContext, error) {
			return sdk.Trace(ctx), nil
		})
		sdk.Handle(r, "Publish", func(ctx context.Context, _ struct{}) (struct{}, error) {
			return struct{}{}, sdk.PublishJSON(ctx, env.Publisher(), "pubsub", "probe", struct{}{})
		})
		sdk.Handle(r, "Log", func(ctx context.Context, _ struct{}) (sdk.TraceContext, error) {
			env.Log(ctx).Info("probe log")
			return sdk.Trace(ctx), nil
		})
		sdk.Handle(r, "Seen", func(ctx context.Context, _ struct{}) ([]string, error) {
			return <-probeSeen, nil
		})
		sdk.SubscribeJSON(r, "pubsub", "probe", func(ctx context.Context, e *sdk.Event, _ struct{}) error {
			probeSeen <- []string{e.TraceParent, sdk.Trace(ctx).TraceParent, e.TraceState, sdk.Trace(ctx).TraceState}
			return nil
		})
		return nil
	})
	probeSeen = make(chan []string, 1)
)

type tracedHost struct {
	url  string
	tr   host.Tracer
	logs *syncBuffer // the host's log, as JSON lines
}

// syncBuffer captures output written from several goroutines.
type syncBuffer = syncbuf.Buffer

func serveTraced(t *testing.T, getenv func(string) string) tracedHost {
	t.Helper()
	tr, err := telemetry.FromEnv(context.Background(), getenv, nil)
	if err != nil {
		t.Fatal(err)
	}
	metrics := host.NewMetrics(nil)
	b, err := embedded.Open(embedded.Options{Dir: t.TempDir(), Retry: fastRetry, OnDeliver: metrics.OnDeliver})
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	srv, err := native.NewServer(b, []*sdk.App{orders.App, inventory.App, traceProbe}, host.Options{Tracing: tr, Metrics: metrics,
		Logger: slog.New(slog.NewJSONHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(func() {
		ts.Close()
		b.Close()
		if tr != nil {
			tr.Shutdown(context.Background())
		}
	})
	return tracedHost{ts.URL, tr, logs}
}

var post = tracecheck.Post

const (
	clientTrace = tracecheck.ClientTrace
	clientSpan  = tracecheck.ClientSpan
)

// TestTraceShop: orders.Create on the native host is one trace, from the
// caller's traceparent down to inventory's state operation; the event of a
// Cancel continues it in inventory's consumer span; a malformed traceparent
// starts a new root; and the shop's vector answers the same bytes with
// tracing on.
func TestTraceShop(t *testing.T) {
	r := otlptest.Start(t)
	h := serveTraced(t, r.Env("http/protobuf"))
	ctx := context.Background()

	if st, body := post(t, h.url, "inventory", "Restock", `{"sku":"apple","quantity":10}`); st != 200 {
		t.Fatal(st, body)
	}
	r.Reset()
	st, body := post(t, h.url, "orders", "Create", `{"customer":"ada","sku":"apple","quantity":3}`,
		"traceparent", "00-"+clientTrace+"-"+clientSpan+"-01", "tracestate", "client=1")
	if st != 200 {
		t.Fatal(st, body)
	}
	if err := h.tr.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	c := tracecheck.OrdersCreate(t, r.Spans(), clientTrace, clientSpan)
	if c.Ingress.Attr("http.response.status_code") != "200" || c.Ingress.Attr("http.route") != "/v1/apps/{app}/methods/{method}" {
		t.Errorf("ingress attributes %v", c.Ingress.Attrs)
	}

	// The event of a Cancel: producer in orders, consumer in inventory.
	var reply struct{ Order struct{ ID string } }
	json.Unmarshal([]byte(body), &reply)
	r.Reset()
	if st, body := post(t, h.url, "orders", "Cancel", fmt.Sprintf(`{"id":%q}`, reply.Order.ID)); st != 200 {
		t.Fatal(st, body)
	}
	waitStock(t, h.url, "apple", 10)
	// The consumer span ends just after the handler's writes: flush until
	// it is there.
	spans := flushUntil(t, h.tr, r, "the consumer span of order.cancelled", func(ss []otlptest.Span) bool {
		return len(otlptest.Find(ss, "inventory", "process order.cancelled")) > 0
	})
	producers := otlptest.Find(spans, "orders", "publish order.cancelled")
	if len(producers) != 1 {
		t.Fatalf("%d producer spans of order.cancelled:\n%s", len(producers), otlptest.Tree(spans))
	}
	consumer := tracecheck.Event(t, spans, producers[0], "inventory", "order.cancelled")
	if consumer.ParentID != producers[0].SpanID {
		t.Errorf("on the embedded backend the consumer's parent is the producer span; got %s", consumer.ParentID)
	}

	// A malformed traceparent is ignored: the call succeeds, as a new root.
	r.Reset()
	for _, bad := range []string{"garbage", "00-" + clientTrace + "-0000000000000000-01", "00-" + strings.ToUpper(clientTrace) + "-" + clientSpan + "-01"} {
		if st, body := post(t, h.url, "orders", "Create", `{"customer":"bob","sku":"apple","quantity":1}`, "traceparent", bad); st != 200 {
			t.Fatalf("traceparent %q: %d %s", bad, st, body)
		}
	}
	h.tr.Flush(ctx)
	ingress := 0
	for _, s := range otlptest.Find(r.Spans(), "orders", "orders/Create") {
		if s.Attr("http.route") != "" {
			ingress++
			if s.ParentID != "" || s.TraceID == clientTrace {
				t.Errorf("a malformed traceparent was used: span %+v", s)
			}
		}
	}
	if ingress != 3 {
		t.Errorf("%d ingress spans for 3 calls with bad traceparents:\n%s", ingress, otlptest.Tree(r.Spans()))
	}

	// The shop's vector, byte for byte, with tracing on.
	vs, err := conformance.LoadVectors()
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range vs {
		if v.Name == "shop" {
			conformance.RunVector(t, conformance.HTTPDriver{BaseURL: h.url}, v)
		}
	}
}

// TestTraceContextInApps: a native handler reads its span's trace context
// with sdk.Trace, and an event carries the producer span in its
// traceparent; with tracing off, both are empty and nothing is exported.
func TestTraceContextInApps(t *testing.T) {
	for _, on := range []bool{true, false} {
		t.Run(fmt.Sprint("on=", on), func(t *testing.T) {
			r := otlptest.Start(t)
			getenv := r.Env("http/protobuf")
			if !on {
				getenv = r.Env("http/protobuf", "OTEL_TRACES_EXPORTER=none")
			}
			h := serveTraced(t, getenv)
			if (h.tr != nil) != on {
				t.Fatalf("tracing %v, want on=%v", h.tr, on)
			}
			st, body := post(t, h.url, "traceprobe", "Trace", ``, "traceparent", "00-"+clientTrace+"-"+clientSpan+"-01")
			var tc sdk.TraceContext
			if err := json.Unmarshal([]byte(body), &tc); st != 200 || err != nil {
				t.Fatal(st, body)
			}
			if on != strings.HasPrefix(tc.TraceParent, "00-"+clientTrace+"-") || tc.TraceParent == "00-"+clientTrace+"-"+clientSpan+"-01" {
				t.Errorf("handler's sdk.Trace = %+v (tracing on: %v)", tc, on)
			}
			// A handler's log record names its trace and span.
			st, body = post(t, h.url, "traceprobe", "Log", ``, "traceparent", "00-"+clientTrace+"-"+clientSpan+"-01")
			if err := json.Unmarshal([]byte(body), &tc); st != 200 || err != nil {
				t.Fatal(st, body)
			}
			var rec struct {
				Msg, TraceID, SpanID string
				RequestID            string `json:"request_id"`
			}
			for _, line := range strings.Split(h.logs.String(), "\n") {
				if strings.Contains(line, `"probe log"`) {
					json.Unmarshal([]byte(strings.NewReplacer(`"trace_id"`, `"TraceID"`, `"span_id"`, `"SpanID"`).Replace(line)), &rec)
				}
			}
			wantTrace, wantSpan := "", ""
			if on {
				wantTrace, wantSpan = clientTrace, tc.TraceParent[36:52]
			}
			if rec.RequestID == "" || rec.TraceID != wantTrace || rec.SpanID != wantSpan {
				t.Errorf("log record %+v; want trace %q span %q (tracing on: %v):\n%s", rec, wantTrace, wantSpan, on, h.logs.String())
			}
			if st, body := post(t, h.url, "traceprobe", "Publish", ``, "traceparent", "00-"+clientTrace+"-"+clientSpan+"-01", "tracestate", "k=v"); st != 200 {
				t.Fatal(st, body)
			}
			_, seen := post(t, h.url, "traceprobe", "Seen", ``)
			var got []string
			json.Unmarshal([]byte(seen), &got)
			if len(got) != 4 || (got[0] != "") == !on || (got[1] != "") == !on || (on && got[0] == got[1]) {
				t.Errorf("event traceparent and handler trace context %q (tracing on: %v)", got, on)
			}
			// The caller's tracestate travels with the trace: in the event
			// and into the consumer's span.
			if wantTS := map[bool]string{true: "k=v"}[on]; len(got) == 4 && (got[2] != wantTS || got[3] != wantTS) {
				t.Errorf("event tracestate %q, consumer's %q; want %q (tracing on: %v)", got[2], got[3], wantTS, on)
			}
			if on {
				// Every span of the calls above, the consumer's included.
				flushUntil(t, h.tr, r, "the consumer span", func(ss []otlptest.Span) bool {
					return len(otlptest.Find(ss, "traceprobe", "process probe")) > 0
				})
			}
			if n := len(r.Spans()); (n > 0) != on {
				t.Errorf("%d spans exported (tracing on: %v)", n, on)
			}
		})
	}
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

func waitStock(t *testing.T, url, sku string, want float64) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, body := post(t, url, "inventory", "Stock", `{"sku":"`+sku+`"}`)
		var lv struct{ Available float64 }
		json.Unmarshal([]byte(body), &lv)
		if lv.Available == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("stock of %s: %s, want %v", sku, body, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
