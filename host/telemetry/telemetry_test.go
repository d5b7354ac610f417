package telemetry_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/roam-dev/roam/backend/memory"
	"github.com/roam-dev/roam/conformance/testapp"
	"github.com/roam-dev/roam/host"
	"github.com/roam-dev/roam/host/native"
	"github.com/roam-dev/roam/host/telemetry"
	_ "github.com/roam-dev/roam/host/telemetry/otlpgrpc"
	"github.com/roam-dev/roam/internal/otlptest"
	"github.com/roam-dev/roam/sdk"
)

func env(kv ...string) func(string) string {
	m := map[string]string{}
	for _, s := range kv {
		k, v, _ := strings.Cut(s, "=")
		m[k] = v
	}
	return func(k string) string { return m[k] }
}

// TestOffByDefault: no variable, "none", or the SDK disabled: tracing is
// off, and FromEnv returns nil (no provider, no exporter).
func TestOffByDefault(t *testing.T) {
	for _, e := range [][]string{
		nil,
		{"OTEL_SERVICE_NAME=shop"},
		{"OTEL_TRACES_EXPORTER=none", "OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:1"},
		{"OTEL_SDK_DISABLED=true", "OTEL_TRACES_EXPORTER=otlp"},
	} {
		tr, err := telemetry.FromEnv(context.Background(), env(e...), nil)
		if err != nil || tr != nil {
			t.Errorf("%v: tracing %v, err %v; want off", e, tr, err)
		}
	}
}

func TestConfigFromEnv(t *testing.T) {
	c, on, err := telemetry.ConfigFromEnv(env("OTEL_EXPORTER_OTLP_ENDPOINT=http://collector:4318/",
		"OTEL_EXPORTER_OTLP_HEADERS=api-key=a%20b, x=1", "OTEL_EXPORTER_OTLP_TIMEOUT=2500",
		"OTEL_EXPORTER_OTLP_COMPRESSION=gzip", "OTEL_RESOURCE_ATTRIBUTES=service.name=shop,deployment.environment=test"))
	if err != nil || !on {
		t.Fatalf("on %v, err %v", on, err)
	}
	if c.Protocol != telemetry.HTTPProtobuf || c.Endpoint != "http://collector:4318/v1/traces" || c.Headers["api-key"] != "a b" ||
		c.Headers["x"] != "1" || c.Timeout != 2500*time.Millisecond || c.Compression != "gzip" || c.ServiceName != "shop" ||
		len(c.Resource) != 1 || c.Resource[0] != attribute.String("deployment.environment", "test") {
		t.Fatalf("config %+v", c)
	}
	c, _, _ = telemetry.ConfigFromEnv(env("OTEL_TRACES_EXPORTER=otlp", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=https://c/custom",
		"OTEL_EXPORTER_OTLP_ENDPOINT=http://ignored", "OTEL_SERVICE_NAME=svc", "OTEL_RESOURCE_ATTRIBUTES=service.name=other"))
	if c.Endpoint != "https://c/custom" || c.ServiceName != "svc" {
		t.Fatalf("the _TRACES_ endpoint or OTEL_SERVICE_NAME lost: %+v", c)
	}
	c, _, _ = telemetry.ConfigFromEnv(env("OTEL_TRACES_EXPORTER=otlp", "OTEL_EXPORTER_OTLP_PROTOCOL=grpc"))
	if c.Endpoint != "http://localhost:4317" {
		t.Fatalf("grpc default endpoint %q", c.Endpoint)
	}
	c, _, _ = telemetry.ConfigFromEnv(env("OTEL_TRACES_EXPORTER=otlp"))
	if c.Endpoint != "http://localhost:4318/v1/traces" || c.ServiceName != "" {
		t.Fatalf("defaults %+v", c)
	}
	for _, e := range [][]string{
		{"OTEL_TRACES_EXPORTER=console"},
		{"OTEL_TRACES_EXPORTER=otlp", "OTEL_EXPORTER_OTLP_PROTOCOL=http/json"},
		{"OTEL_TRACES_EXPORTER=otlp", "OTEL_EXPORTER_OTLP_ENDPOINT=collector:4318"},
		{"OTEL_TRACES_EXPORTER=otlp", "OTEL_EXPORTER_OTLP_TIMEOUT=soon"},
		{"OTEL_TRACES_EXPORTER=otlp", "OTEL_EXPORTER_OTLP_COMPRESSION=zstd"},
		{"OTEL_TRACES_EXPORTER=otlp", "OTEL_EXPORTER_OTLP_HEADERS=novalue"},
		{"OTEL_TRACES_EXPORTER=otlp", "OTEL_TRACES_SAMPLER=jaeger_remote"},
		{"OTEL_TRACES_EXPORTER=otlp", "OTEL_TRACES_SAMPLER=traceidratio", "OTEL_TRACES_SAMPLER_ARG=2"},
	} {
		if _, _, err := telemetry.ConfigFromEnv(env(e...)); err == nil {
			t.Errorf("%v: no error", e)
		}
	}
}

// TestSampler: OTEL_TRACES_SAMPLER reaches the provider.
func TestSampler(t *testing.T) {
	r := otlptest.Start(t)
	tr, err := telemetry.FromEnv(context.Background(), r.Env("http/protobuf", "OTEL_TRACES_SAMPLER=always_off"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Shutdown(context.Background())
	state := host.TracedState(tr, "orders", "statestore", "test", nopState{})
	state.Get(context.Background(), "k")
	if err := tr.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := len(r.Spans()); n != 0 {
		t.Fatalf("always_off exported %d spans", n)
	}
}

// TestExport: spans of every shape reach the receiver intact over both
// protocols, gzipped or not; the receiver decodes with the official types.
func TestExport(t *testing.T) {
	for _, tc := range []struct{ name, protocol, compression string }{
		{"http", "http/protobuf", "none"},
		{"http-gzip", "http/protobuf", "gzip"},
		{"grpc", "grpc", "none"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := otlptest.Start(t)
			c, on, err := telemetry.ConfigFromEnv(r.Env(tc.protocol, "OTEL_EXPORTER_OTLP_COMPRESSION="+tc.compression,
				"OTEL_RESOURCE_ATTRIBUTES=deployment.environment=test"))
			if err != nil || !on {
				t.Fatal(on, err)
			}
			tr, err := telemetry.New(context.Background(), c)
			if err != nil {
				t.Fatal(err)
			}
			exportShapes(t, tr)
			spans := r.Spans()
			if len(spans) != 3 {
				t.Fatalf("%d spans:\n%s", len(spans), otlptest.Tree(spans))
			}
			byName := map[string]otlptest.Span{}
			for _, s := range spans {
				byName[s.Name] = s
			}
			root, child, other := byName["root"], byName["child"], byName["other-app"]
			if root.Service != "orders" || other.Service != "inventory" || root.Resource["deployment.environment"] != "test" ||
				root.Resource["roam.app"] != "orders" || root.Scope != telemetry.TracerScope {
				t.Fatalf("resources: %+v / %+v", root, other)
			}
			if child.ParentID != root.SpanID || child.TraceID != root.TraceID || root.ParentID != "" || root.Kind != tracepb.Span_SPAN_KIND_SERVER ||
				child.Kind != tracepb.Span_SPAN_KIND_CLIENT {
				t.Fatalf("parentage or kinds:\n%s", otlptest.Tree(spans))
			}
			want := map[string]string{"s": "v", "i": "-42", "f": "1.5", "b": "true", "ss": "[a,b]", "is": "[1,2]", "fs": "[0.5]", "bs": "[true,false]"}
			for k, v := range want {
				if got := child.Attrs[k]; got != v {
					t.Errorf("attribute %s = %q, want %q", k, got, v)
				}
			}
			if child.Status != tracepb.Status_STATUS_CODE_ERROR || child.Message != "boom" {
				t.Errorf("status %v %q", child.Status, child.Message)
			}
			if len(other.Links) != 1 || other.Links[0].SpanID != root.SpanID || other.Links[0].TraceID != root.TraceID {
				t.Errorf("links %+v, want one to %s", other.Links, root.SpanID)
			}
			if root.Flags&0xff != 1 {
				t.Errorf("flags %#x: not sampled", root.Flags)
			}
		})
	}
}

// exportShapes starts three spans: a server root, a client child with
// attributes of every type, an event and an error status, and a span of
// another app linked to the root.
func exportShapes(t *testing.T, tr *telemetry.Tracer) {
	t.Helper()
	ctx := context.Background()
	tracerOf := tr.Tracer
	ctx, root := tracerOf("orders").Start(ctx, "root", trace.WithSpanKind(trace.SpanKindServer))
	_, child := tracerOf("orders").Start(ctx, "child", trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(
		attribute.String("s", "v"), attribute.Int("i", -42), attribute.Float64("f", 1.5), attribute.Bool("b", true),
		attribute.StringSlice("ss", []string{"a", "b"}), attribute.IntSlice("is", []int{1, 2}),
		attribute.Float64Slice("fs", []float64{0.5}), attribute.BoolSlice("bs", []bool{true, false})))
	child.AddEvent("happened", trace.WithAttributes(attribute.String("k", "v")))
	child.SetStatus(codes.Error, "boom")
	child.End()
	_, other := tracerOf("inventory").Start(context.Background(), "other-app", trace.WithLinks(trace.Link{SpanContext: root.SpanContext()}))
	other.End()
	root.End()
	if err := tr.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := tr.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestExportFailureIsQuiet: a collector that is down costs the spans, not
// the host: flushing returns, and shutting down too.
func TestExportFailureIsQuiet(t *testing.T) {
	c, _, err := telemetry.ConfigFromEnv(env("OTEL_TRACES_EXPORTER=otlp", "OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:1",
		"OTEL_EXPORTER_OTLP_TIMEOUT=300"))
	if err != nil {
		t.Fatal(err)
	}
	tr, err := telemetry.New(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	_, s := tr.Tracer("orders").Start(context.Background(), "lost")
	s.End()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := tr.Shutdown(ctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		t.Fatal(err)
	}
}

// nopState answers every operation with NotFound.
type nopState struct{}

func (nopState) Get(context.Context, string) (sdk.Item, error) {
	return sdk.Item{}, sdk.NewError(sdk.NotFound, "no")
}
func (nopState) BulkGet(context.Context, []string) ([]sdk.Item, error) {
	return nil, sdk.NewError(sdk.NotFound, "no")
}
func (nopState) Set(context.Context, string, []byte, sdk.WriteOptions) error {
	return sdk.NewError(sdk.NotFound, "no")
}
func (nopState) Delete(context.Context, string, sdk.WriteOptions) error {
	return sdk.NewError(sdk.NotFound, "no")
}
func (nopState) Transact(context.Context, []sdk.Op) error { return sdk.NewError(sdk.NotFound, "no") }

type discardExporter struct{}

func (discardExporter) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return nil }
func (discardExporter) Shutdown(context.Context) error                             { return nil }

// FuzzIngressTrace: whatever traceparent and tracestate a caller sends, a
// traced host answers the call as it would untraced, and never panics; a
// malformed traceparent starts a new root.
//
//	go test ./host/telemetry -run='^$' -fuzz=FuzzIngressTrace -fuzztime=20s
func FuzzIngressTrace(f *testing.F) {
	telemetry.RegisterExporter("discard", func(context.Context, telemetry.Config) (sdktrace.SpanExporter, error) {
		return discardExporter{}, nil
	})
	tr, err := telemetry.New(context.Background(), telemetry.Config{Protocol: "discard"})
	if err != nil {
		f.Fatal(err)
	}
	b := memory.New(memory.Options{})
	f.Cleanup(func() { b.Close(); tr.Shutdown(context.Background()) })
	srv, err := native.NewServer(b, []*sdk.App{testapp.App}, host.Options{Tracing: tr})
	if err != nil {
		f.Fatal(err)
	}
	h := srv.Handler()
	f.Add("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "a=b")
	f.Add("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", strings.Repeat("k=v,", 100))
	f.Add("ff-00000000000000000000000000000000-0000000000000000-ff", "=,=")
	f.Add("garbage", "")
	f.Fuzz(func(t *testing.T, tp, ts string) {
		req := httptest.NewRequest(http.MethodPost, "/v1/apps/conformance/methods/Echo", strings.NewReader(`{"a":1}`))
		req.Header["Traceparent"] = []string{tp}
		req.Header["Tracestate"] = []string{ts}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK || rec.Body.String() != `{"a":1}` {
			t.Fatalf("traceparent %q, tracestate %q: %d %s", tp, ts, rec.Code, rec.Body)
		}
	})
}
