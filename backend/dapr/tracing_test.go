package dapr_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/roam-dev/roam/conformance/tracecheck"
	"github.com/roam-dev/roam/examples/shop/contract"
	"github.com/roam-dev/roam/examples/shop/inventory"
	"github.com/roam-dev/roam/examples/shop/orders"
	"github.com/roam-dev/roam/host/telemetry"
	"github.com/roam-dev/roam/internal/daprtest"
	"github.com/roam-dev/roam/internal/otlptest"
)

// TestTraceShopOnDapr: orders and inventory in hosts of their own, each
// beside its own daprd, both sidecars tracing to the same OTLP receiver as
// the hosts. orders.Create is one trace, in which the sidecars' spans sit
// between the hosts' (the invocation crosses both sidecars, the state calls
// reach the sidecar's API); a Cancel's event reaches inventory's consumer
// span through Redis and both sidecars, in the same trace.
func TestTraceShopOnDapr(t *testing.T) {
	for _, proto := range []string{"http", "grpc"} {
		t.Run("inventory-"+proto, func(t *testing.T) {
			rcv := otlptest.Start(t)
			r := daprtest.StartRedis(t)
			res := daprtest.WriteResources(t, r, daprtest.ResourceOptions{MaxAttempts: 4, OTLPEndpoint: rcv.GRPCAddr})
			tr, err := telemetry.FromEnv(context.Background(), rcv.Env("http/protobuf"), nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { tr.Shutdown(context.Background()) })
			inv := startHost(t, hostOptions{appID: "inventory", appProtocol: proto, res: res, tracing: tr}, inventory.App)
			ord := startHost(t, hostOptions{appID: "orders", res: res, tracing: tr}, orders.App)
			d := appDriver{"inventory": inv.URL, "orders": ord.URL}
			mustCall(t, d, "inventory", "Restock", contract.Restock{SKU: "plum", Quantity: 10}, http.StatusOK)

			const parentTrace, parentSpan = "5bf92f3577b34da6a3ce929d0e0e4737", "10f067aa0ba902b8"
			req, _ := http.NewRequest(http.MethodPost, ord.URL+"/v1/apps/orders/methods/Create",
				strings.NewReader(`{"customer":"ada","sku":"plum","quantity":3}`))
			req.Header.Set("traceparent", "00-"+parentTrace+"-"+parentSpan+"-01")
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			var reply struct{ Order struct{ ID string } }
			json.NewDecoder(resp.Body).Decode(&reply)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("Create: %s", resp.Status)
			}

			// The sidecars export on their own schedule: wait for a
			// complete trace, with the sidecars' invocation spans in it.
			tr.Flush(context.Background())
			spans := rcv.Wait(t, "orders.Create's trace with the sidecars' spans", 60*time.Second, func(ss []otlptest.Span) bool {
				reserve := false
				local := map[string]bool{}
				for _, s := range ss {
					reserve = reserve || (s.TraceID == parentTrace && s.Name == "inventory.Reserve")
					if s.TraceID == parentTrace && s.Scope != telemetry.TracerScope && strings.HasPrefix(s.Name, "CallLocal/") {
						local[s.Service] = true
					}
				}
				return reserve && local["orders"] && local["inventory"]
			})
			c := tracecheck.OrdersCreate(t, spans, parentTrace, parentSpan)
			// Both sidecars' spans of the invocation descend from the host's
			// client span.
			var sidecar []string
			for _, s := range c.Trace {
				if s.Scope == telemetry.TracerScope || !strings.HasPrefix(s.Name, "CallLocal/") {
					continue
				}
				descends := false
				for _, a := range otlptest.Ancestors(c.Trace, s)[1:] {
					descends = descends || a.SpanID == c.Reserve.SpanID
				}
				if !descends {
					t.Errorf("sidecar span %s does not descend from the client span %s", s, c.Reserve.SpanID)
				}
				sidecar = append(sidecar, s.Service+": "+s.Name)
			}
			if len(sidecar) < 2 {
				t.Fatalf("want the invocation's spans of both sidecars, got %q:\n%s", sidecar, otlptest.Tree(c.Trace))
			}
			// Over HTTP the callee's sidecar calls its app under its own
			// span: inventory's ingress is that span's child. Over gRPC,
			// Dapr 1.16 passes the caller's trace context through (in
			// grpc-trace-bin), so the ingress is the client span's child.
			between := false
			for _, a := range otlptest.Ancestors(c.Trace, c.InventoryIngress)[1:] {
				if a.SpanID == c.Reserve.SpanID {
					break
				}
				between = between || a.Scope != telemetry.TracerScope
			}
			if between != (proto == "http") {
				t.Errorf("app channel %s: a sidecar span between the client span and inventory's ingress: %v\n%s", proto, between, otlptest.Tree(c.Trace))
			}
			t.Logf("sidecar spans of the invocation: %s", strings.Join(sidecar, "; "))
			// The orders sidecar's state API spans are children of the
			// host's state spans.
			stateParents := map[string]bool{}
			for _, s := range c.State {
				stateParents[s.SpanID] = true
			}
			n := 0
			for _, s := range c.Trace {
				if s.Scope != telemetry.TracerScope && stateParents[s.ParentID] {
					n++
				}
			}
			if n == 0 {
				t.Errorf("no sidecar span under the host's state spans:\n%s", otlptest.Tree(c.Trace))
			}

			// The event of a Cancel, through Redis and both sidecars.
			rcv.Reset()
			mustCall(t, d, "orders", "Cancel", contract.OrderRef{ID: reply.Order.ID}, http.StatusOK)
			var producer otlptest.Span
			spans = rcv.Wait(t, "the consumer span of order.cancelled and the sidecar's delivery span", 60*time.Second, func(ss []otlptest.Span) bool {
				tr.Flush(context.Background())
				ps := otlptest.Find(ss, "orders", "publish order.cancelled")
				if len(ps) != 1 {
					return false
				}
				producer = ps[0]
				consumer, delivery := false, false
				for _, s := range otlptest.Trace(ss, producer.TraceID) {
					consumer = consumer || (s.Service == "inventory" && s.Name == "process order.cancelled")
					delivery = delivery || (s.Service == "inventory" && s.Scope != telemetry.TracerScope && s.Name == "pubsub/order.cancelled")
				}
				return consumer && delivery
			})
			consumer := tracecheck.Event(t, spans, producer, "inventory", "order.cancelled")
			// Over HTTP the sidecar delivers under its own span, which is
			// the consumer's parent; over gRPC, Dapr 1.16 sends no trace
			// context with the event, and the consumer is parented by the
			// event's traceparent (the producer span), the sidecar's
			// delivery span being its sibling.
			if via := !hasDaprd(otlptest.Ancestors(spans, consumer)[1:2]); via == (proto == "http") {
				t.Errorf("app channel %s: the consumer's parent is a sidecar span: %v", proto, !via)
			}
			t.Logf("event path: %s", describe(otlptest.Ancestors(spans, consumer)))
		})
	}
}

// hasDaprd reports whether a chain of spans holds one of a sidecar's.
func hasDaprd(chain []otlptest.Span) bool {
	for _, s := range chain {
		if s.Scope != telemetry.TracerScope {
			return true
		}
	}
	return false
}

func describe(chain []otlptest.Span) string {
	var parts []string
	for _, s := range chain {
		parts = append(parts, fmt.Sprintf("%s (%s, scope %q)", s.Name, s.Service, s.Scope))
	}
	return strings.Join(parts, " <- ")
}
