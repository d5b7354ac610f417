// Package tracecheck checks the traces of the shop's calls as an OTLP
// receiver (internal/otlptest) collected them. Every host and backend that
// traces calls it from its own test, so that "one trace, parent and child"
// means the same thing on the native host, on the edge host and on Dapr.
package tracecheck

import (
	"io"
	"net/http"
	"strings"
	"testing"

	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/roam-dev/roam/internal/otlptest"
)

// The trace context the tests send as the caller's (traceparent).
const (
	ClientTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
	ClientSpan  = "00f067aa0ba902b7"
)

// Post calls app.method on the host at url with body and the given header
// name/value pairs, and returns the reply's status and body.
func Post(t testing.TB, url, app, method, body string, hdr ...string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url+"/v1/apps/"+app+"/methods/"+method, strings.NewReader(body))
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// Create holds the spans of one orders.Create.
type Create struct {
	Ingress, Handler, Reserve, InventoryIngress, InventoryHandler, Publish otlptest.Span
	// State are the orders handler's state spans; InventoryState the
	// inventory handler's.
	State, InventoryState []otlptest.Span
	// Trace is every span of the trace.
	Trace []otlptest.Span
}

func find(spans []otlptest.Span, service, name string, kind tracepb.Span_SpanKind, parent string) []otlptest.Span {
	var out []otlptest.Span
	for _, s := range spans {
		if s.Service == service && s.Name == name && s.Kind == kind && (parent == "" || s.ParentID == parent) {
			out = append(out, s)
		}
	}
	return out
}

func isState(s otlptest.Span) bool {
	return len(s.Name) > 6 && s.Name[:6] == "state." && s.Kind == tracepb.Span_SPAN_KIND_CLIENT
}

// OrdersCreate finds the trace of the one orders.Create whose HTTP ingress
// span is in spans and checks that it is one tree:
//
//	orders/Create (server, HTTP ingress; child of parent when parent is set)
//	  orders.Create (the handler)
//	    state.* statestore (at least one)
//	    inventory/Reserve (client)
//	      … inventory/Reserve (server: a child of the client, or a descendant
//	         when sidecars sit between them)
//	          inventory.Reserve (the handler)
//	            state.* statestore (at least one)
//	    publish order.created (producer)
//
// parent is the traceparent's "traceid/spanid" the client sent, or "".
func OrdersCreate(t testing.TB, spans []otlptest.Span, parentTrace, parentSpan string) Create {
	t.Helper()
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("orders.Create trace: "+format+"\nspans received:\n%s", append(args, otlptest.Tree(spans))...)
	}
	var c Create
	var ingress []otlptest.Span
	for _, s := range find(spans, "orders", "orders/Create", tracepb.Span_SPAN_KIND_SERVER, "") {
		if s.Attr("http.route") != "" && (parentTrace == "" || s.TraceID == parentTrace) {
			ingress = append(ingress, s)
		}
	}
	if len(ingress) != 1 {
		fail("%d HTTP ingress spans orders/Create (server) in the trace, want 1", len(ingress))
	}
	c.Ingress = ingress[0]
	if parentSpan != "" && c.Ingress.ParentID != parentSpan {
		fail("the ingress span's parent is %q, want the caller's traceparent span %s", c.Ingress.ParentID, parentSpan)
	}
	if parentSpan == "" && c.Ingress.ParentID != "" {
		fail("the ingress span has parent %s, want a root", c.Ingress.ParentID)
	}
	c.Trace = otlptest.Trace(spans, c.Ingress.TraceID)
	one := func(ss []otlptest.Span, what string) otlptest.Span {
		t.Helper()
		if len(ss) != 1 {
			fail("%d spans %s, want 1", len(ss), what)
		}
		return ss[0]
	}
	c.Handler = one(find(c.Trace, "orders", "orders.Create", tracepb.Span_SPAN_KIND_INTERNAL, c.Ingress.SpanID), "orders.Create (handler) under the ingress")
	for _, s := range c.Trace {
		if s.Service == "orders" && isState(s) && s.ParentID == c.Handler.SpanID {
			c.State = append(c.State, s)
		}
	}
	if len(c.State) == 0 {
		fail("no state span under the orders.Create handler")
	}
	c.Reserve = one(find(c.Trace, "orders", "inventory/Reserve", tracepb.Span_SPAN_KIND_CLIENT, c.Handler.SpanID), "inventory/Reserve (client) under the handler")
	c.InventoryIngress = one(find(c.Trace, "inventory", "inventory/Reserve", tracepb.Span_SPAN_KIND_SERVER, ""), "inventory/Reserve (server) in the trace")
	descends := false
	for _, a := range otlptest.Ancestors(c.Trace, c.InventoryIngress)[1:] {
		if a.SpanID == c.Reserve.SpanID {
			descends = true
		}
	}
	if !descends {
		fail("inventory/Reserve (server) %s does not descend from the client span %s", c.InventoryIngress.SpanID, c.Reserve.SpanID)
	}
	c.InventoryHandler = one(find(c.Trace, "inventory", "inventory.Reserve", tracepb.Span_SPAN_KIND_INTERNAL, c.InventoryIngress.SpanID), "inventory.Reserve (handler) under its ingress")
	for _, s := range c.Trace {
		if s.Service == "inventory" && isState(s) && s.ParentID == c.InventoryHandler.SpanID {
			c.InventoryState = append(c.InventoryState, s)
		}
	}
	if len(c.InventoryState) == 0 {
		fail("no state span under the inventory.Reserve handler")
	}
	c.Publish = one(find(c.Trace, "orders", "publish order.created", tracepb.Span_SPAN_KIND_PRODUCER, c.Handler.SpanID), "publish order.created (producer) under the handler")
	for _, s := range c.Trace {
		if s.Status == tracepb.Status_STATUS_CODE_ERROR {
			fail("span %s is an error: %s", s.Name, s.Message)
		}
	}
	return c
}

// Event checks the delivery of one event on topic to subscriber: its
// consumer span ("process <topic>") is in the producer's trace, a descendant
// of the producer span (its child when no sidecar sits between them), and
// linked to it, the producer span being what the event's CloudEvents
// traceparent named. It returns the consumer span.
func Event(t testing.TB, spans []otlptest.Span, producer otlptest.Span, subscriber, topic string) otlptest.Span {
	t.Helper()
	trace := otlptest.Trace(spans, producer.TraceID)
	var consumers []otlptest.Span
	for _, s := range find(trace, subscriber, "process "+topic, tracepb.Span_SPAN_KIND_CONSUMER, "") {
		for _, l := range s.Links {
			if l.SpanID == producer.SpanID && l.TraceID == producer.TraceID {
				consumers = append(consumers, s)
			}
		}
	}
	if len(consumers) != 1 {
		t.Fatalf("%d consumer spans %q of %s in the producer's trace linked to the producer span %s, want 1\nspans received:\n%s",
			len(consumers), "process "+topic, subscriber, producer.SpanID, otlptest.Tree(spans))
	}
	c := consumers[0]
	for _, a := range otlptest.Ancestors(trace, c)[1:] {
		if a.SpanID == producer.SpanID {
			return c
		}
	}
	t.Fatalf("consumer span %s does not descend from the producer span %s\nspans received:\n%s", c.SpanID, producer.SpanID, otlptest.Tree(spans))
	return c
}
