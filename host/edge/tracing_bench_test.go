package edge

// The cost of tracing on orders.Get as a wasm guest, through the whole HTTP
// path (ingress, the guest's handler, one state read over the ABI) served
// in-process on the memory backend:
//
//	go test ./host/edge -run='^$' -bench=BenchmarkTracing -benchmem -count=5
//
// The variants are those of host/native's BenchmarkTracingOrdersGet; "on"
// also carries the trace context into the guest (ABI v1.1).

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/roam-dev/roam/backend/memory"
	"github.com/roam-dev/roam/host"
	"github.com/roam-dev/roam/host/telemetry"
	"github.com/roam-dev/roam/internal/otlptest"
)

func BenchmarkTracingOrdersGet(b *testing.B) {
	r := otlptest.Start(b)
	telemetry.RegisterExporter("discard", func(context.Context, telemetry.Config) (sdktrace.SpanExporter, error) {
		return discard{}, nil
	})
	for _, tc := range []struct {
		name   string
		tracer func() (host.Tracer, error)
	}{
		{"off", func() (host.Tracer, error) { return nil, nil }},
		{"on", func() (host.Tracer, error) {
			return telemetry.FromEnv(context.Background(), r.Env("http/protobuf"), nil)
		}},
		{"on-discard", func() (host.Tracer, error) {
			return telemetry.New(context.Background(), telemetry.Config{Protocol: "discard"})
		}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			tr, err := tc.tracer()
			if err != nil {
				b.Fatal(err)
			}
			if tr != nil {
				defer tr.Shutdown(context.Background())
			}
			be := memory.New(memory.Options{})
			defer be.Close()
			srv := host.NewServer(be, host.Options{Tracing: tr})
			rt := newRuntime(b, nil)
			bind := Binding{Backend: be, Invoker: srv.Invoker, Tracing: tr}
			for _, w := range [][]byte{ordersWasm, inventoryWasm} {
				m, err := rt.Load(context.Background(), w, ModuleOptions{PoolSize: 2}, bind)
				if err != nil {
					b.Fatal(err)
				}
				if err := srv.Add(m); err != nil {
					b.Fatal(err)
				}
			}
			h := srv.Handler()
			call := func(app, method, body string) []byte {
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/v1/apps/"+app+"/methods/"+method, strings.NewReader(body)))
				if rec.Code != http.StatusOK {
					b.Fatalf("%s.%s: %d %s", app, method, rec.Code, rec.Body)
				}
				return rec.Body.Bytes()
			}
			call("inventory", "Restock", `{"sku":"bench","quantity":10}`)
			var created struct{ Order struct{ ID string } }
			json.Unmarshal(call("orders", "Create", `{"customer":"bench","sku":"bench","quantity":1}`), &created)
			get := `{"id":"` + created.Order.ID + `"}`
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				call("orders", "Get", get)
			}
		})
	}
}

type discard struct{}

func (discard) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return nil }
func (discard) Shutdown(context.Context) error                             { return nil }
