package native_test

// The cost of tracing on orders.Get, through the whole HTTP path (ingress,
// handler, one state read) served in-process on the memory backend:
//
//	go test ./host/native -run='^$' -bench=BenchmarkTracing -benchmem -count=5
//
// "off" is the default (no Tracer); "on" exports every span (three per call:
// ingress, handler, state read) over OTLP/HTTP to an in-process receiver,
// which decodes them (so its figures include the export's and the
// receiver's work, on the same CPUs); "on-discard" records the same spans
// and drops them in the exporter, the host's own cost; "on-unsampled" has
// tracing on with OTEL_TRACES_SAMPLER=always_off, the cost of propagating
// the trace context alone.

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/roam-dev/roam/backend/memory"
	"github.com/roam-dev/roam/examples/shop/inventory"
	"github.com/roam-dev/roam/examples/shop/orders"
	"github.com/roam-dev/roam/host"
	"github.com/roam-dev/roam/host/native"
	"github.com/roam-dev/roam/host/telemetry"
	"github.com/roam-dev/roam/internal/otlptest"
	"github.com/roam-dev/roam/sdk"
)

func BenchmarkTracingOrdersGet(b *testing.B) {
	r := otlptest.Start(b)
	for _, tc := range []struct {
		name   string
		getenv func(string) string
	}{
		{"off", func(string) string { return "" }},
		{"on", r.Env("http/protobuf")},
		{"on-unsampled", r.Env("http/protobuf", "OTEL_TRACES_SAMPLER=always_off")},
	} {
		b.Run(tc.name, func(b *testing.B) {
			tr, err := telemetry.FromEnv(context.Background(), tc.getenv, nil)
			if err != nil {
				b.Fatal(err)
			}
			benchOrdersGet(b, host.Options{Tracing: tr})
			if tr != nil {
				tr.Shutdown(context.Background())
			}
		})
	}
	b.Run("on-discard", func(b *testing.B) {
		telemetry.RegisterExporter("discard", func(context.Context, telemetry.Config) (sdktrace.SpanExporter, error) {
			return discard{}, nil
		})
		tr, err := telemetry.New(context.Background(), telemetry.Config{Protocol: "discard"})
		if err != nil {
			b.Fatal(err)
		}
		defer tr.Shutdown(context.Background())
		benchOrdersGet(b, host.Options{Tracing: tr})
	})
}

type discard struct{}

func (discard) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return nil }
func (discard) Shutdown(context.Context) error                             { return nil }

// benchOrdersGet creates an order, then measures orders.Get of it through
// the server's HTTP handler.
func benchOrdersGet(b *testing.B, o host.Options) {
	be := memory.New(memory.Options{})
	defer be.Close()
	srv, err := native.NewServer(be, []*sdk.App{orders.App, inventory.App}, o)
	if err != nil {
		b.Fatal(err)
	}
	h := srv.Handler()
	call := func(method, body string) []byte {
		req := httptest.NewRequest(http.MethodPost, "/v1/apps/"+strings.Split(method, ".")[0]+"/methods/"+strings.Split(method, ".")[1], strings.NewReader(body))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatalf("%s: %d %s", method, rec.Code, rec.Body)
		}
		return rec.Body.Bytes()
	}
	call("inventory.Restock", `{"sku":"bench","quantity":10}`)
	var created struct{ Order struct{ ID string } }
	json.Unmarshal(call("orders.Create", `{"customer":"bench","sku":"bench","quantity":1}`), &created)
	get := `{"id":"` + created.Order.ID + `"}`
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		call("orders.Get", get)
	}
}
