package host_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/roam-dev/roam/backend"
	"github.com/roam-dev/roam/backend/memory"
	"github.com/roam-dev/roam/conformance/testapp"
	"github.com/roam-dev/roam/host"
	"github.com/roam-dev/roam/host/native"
	"github.com/roam-dev/roam/sdk"
)

func getenv(kv ...string) func(string) string {
	m := map[string]string{}
	for _, s := range kv {
		k, v, _ := strings.Cut(s, "=")
		m[k] = v
	}
	return func(k string) string { return m[k] }
}

func TestTracingRequested(t *testing.T) {
	for _, tc := range []struct {
		env  []string
		want bool
	}{
		{nil, false},
		{[]string{"OTEL_SERVICE_NAME=x"}, false},
		{[]string{"OTEL_TRACES_EXPORTER=otlp"}, true},
		{[]string{"OTEL_EXPORTER_OTLP_ENDPOINT=http://c:4318"}, true},
		{[]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=http://c:4318/v1/traces"}, true},
		{[]string{"OTEL_TRACES_EXPORTER=none", "OTEL_EXPORTER_OTLP_ENDPOINT=http://c:4318"}, false},
		{[]string{"OTEL_SDK_DISABLED=true", "OTEL_TRACES_EXPORTER=otlp"}, false},
	} {
		if got := host.TracingRequested(getenv(tc.env...)); got != tc.want {
			t.Errorf("%v: %v, want %v", tc.env, got, tc.want)
		}
	}
}

// TestTracingNotLinked: this test binary links no tracing (package
// host/telemetry): asked for none, TracingFromEnv returns nil; asked for
// some, it fails with the flag that links it.
func TestTracingNotLinked(t *testing.T) {
	tr, err := host.TracingFromEnv(context.Background(), getenv(), nil)
	if tr != nil || err != nil {
		t.Fatalf("no request: %v, %v", tr, err)
	}
	_, err = host.TracingFromEnv(context.Background(), getenv("OTEL_TRACES_EXPORTER=otlp"), nil)
	if err == nil || !strings.Contains(err.Error(), "--backends embedded,otlp") {
		t.Fatalf("request without tracing linked: %v", err)
	}
}

// fakeTracer records the spans the host starts, with their parent: the
// trace context of the context they were started in.
type fakeTracer struct {
	mu    sync.Mutex
	spans []fakeSpan
}

type fakeSpan struct {
	app, name, parent, link string
	kind                    host.SpanKind
	attrs                   map[string]string
	err                     string
	ended                   bool
	id                      string
	t                       *fakeTracer
}

func (f *fakeTracer) Start(ctx context.Context, app string, s host.SpanStart) (context.Context, host.Span) {
	f.mu.Lock()
	defer f.mu.Unlock()
	id := fmt.Sprintf("00-0123456789abcdef0123456789abcdef-%016x-01", len(f.spans)+1)
	sp := fakeSpan{app: app, name: s.Name, kind: s.Kind, parent: sdk.Trace(ctx).TraceParent, link: s.Link.TraceParent,
		attrs: map[string]string{}, id: id, t: f}
	for _, a := range s.Attrs {
		sp.attrs[a.Key] = a.Value
	}
	f.spans = append(f.spans, sp)
	return sdk.WithTrace(ctx, sdk.TraceContext{TraceParent: id}), &fakeHandle{f, len(f.spans) - 1}
}
func (f *fakeTracer) Flush(context.Context) error    { return nil }
func (f *fakeTracer) Shutdown(context.Context) error { return nil }

type fakeHandle struct {
	f *fakeTracer
	i int
}

func (h *fakeHandle) SetAttrs(as ...host.Attr) {
	h.f.mu.Lock()
	defer h.f.mu.Unlock()
	for _, a := range as {
		h.f.spans[h.i].attrs[a.Key] = a.Value
	}
}
func (h *fakeHandle) SetError(msg string) { h.f.mu.Lock(); h.f.spans[h.i].err = msg; h.f.mu.Unlock() }
func (h *fakeHandle) End()                { h.f.mu.Lock(); h.f.spans[h.i].ended = true; h.f.mu.Unlock() }

func (f *fakeTracer) byName(name string) []fakeSpan {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []fakeSpan
	for _, s := range f.spans {
		if s.name == name {
			out = append(out, s)
		}
	}
	return out
}

// TestSpanPolicy: which spans the host starts, and their parents, with a
// Tracer of its own: the ingress under the caller's traceparent (a
// malformed one passed on for the Tracer to ignore), the handler under the
// ingress, the state and invocation spans under the handler, the callee's
// server span under the client span, and a consumer span under the
// producer's traceparent, linked to it.
func TestSpanPolicy(t *testing.T) {
	f := &fakeTracer{}
	b := memory.New(memory.Options{Retry: backend.RetryPolicy{MaxAttempts: 1}})
	defer b.Close()
	srv, err := native.NewServer(b, []*sdk.App{testapp.App}, host.Options{Tracing: f})
	if err != nil {
		t.Fatal(err)
	}
	h := srv.Handler()
	call := func(method, body, tp string) int {
		req := httptest.NewRequest(http.MethodPost, "/v1/apps/conformance/methods/"+method, strings.NewReader(body))
		if tp != "" {
			req.Header.Set("traceparent", tp)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code
	}
	const caller = "00-11111111111111111111111111111111-2222222222222222-01"
	if st := call("Invoke", `{"app":"conformance","method":"Put","body":{"key":"k","value":1}}`, caller); st != 200 {
		t.Fatal(st)
	}
	one := func(name string) fakeSpan {
		t.Helper()
		ss := f.byName(name)
		if len(ss) != 1 || !ss[0].ended {
			t.Fatalf("%d spans %q (or not ended): %+v", len(ss), name, f.spans)
		}
		return ss[0]
	}
	ingress := one("conformance/Invoke")
	if ingress.parent != caller || ingress.kind != host.SpanServer || ingress.attrs["http.route"] != "/v1/apps/{app}/methods/{method}" {
		t.Errorf("ingress %+v", ingress)
	}
	handler := one("conformance.Invoke")
	if handler.parent != ingress.id || handler.kind != host.SpanInternal {
		t.Errorf("handler %+v, ingress %s", handler, ingress.id)
	}
	var cl, sv fakeSpan
	for _, s := range f.byName("conformance/Put") {
		if s.kind == host.SpanClient {
			cl = s
		} else {
			sv = s
		}
	}
	if cl.parent != handler.id || sv.parent != cl.id || sv.kind != host.SpanServer {
		t.Errorf("client %+v, server %+v", cl, sv)
	}
	put := one("conformance.Put")
	state := one("state.Set statestore")
	if put.parent != sv.id || state.parent != put.id || state.kind != host.SpanClient || state.attrs["db.system.name"] != "memory" {
		t.Errorf("handler %+v, state %+v", put, state)
	}

	// Malformed traceparent: passed to the Tracer as the parent, which
	// ignores it (the fake keeps it).
	if st := call("Echo", `{}`, "garbage"); st != 200 {
		t.Fatal(st)
	}
	if e := one("conformance/Echo"); e.parent != "garbage" {
		t.Errorf("echo ingress %+v", e)
	}

	// Events: producer under the handler; consumer under and linked to it.
	if st := call("Publish", `{"topic":"conf.events","data":{"x":1}}`, ""); st != 200 {
		t.Fatal(st)
	}
	// The delivery is asynchronous: wait for its span to end.
	deadline := time.Now().Add(10 * time.Second)
	for ss := f.byName("process conf.events"); len(ss) == 0 || !ss[0].ended; ss = f.byName("process conf.events") {
		if time.Now().After(deadline) {
			t.Fatal("no consumer span after 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	prod := one("publish conf.events")
	cons := one("process conf.events")
	if prod.parent != one("conformance.Publish").id || prod.kind != host.SpanProducer {
		t.Errorf("producer %+v", prod)
	}
	if cons.parent != prod.id || cons.link != prod.id || cons.kind != host.SpanConsumer || cons.app != "conformance" {
		t.Errorf("consumer %+v, producer %s", cons, prod.id)
	}

	// Errors: a handler's own fault marks its span; a caller's bad request
	// does not.
	call("Fail", `{"code":"Internal","message":"boom"}`, "")
	call("Fail", `{"code":"NotFound","message":"nope"}`, "")
	for _, s := range f.byName("conformance.Fail") {
		if (s.err != "") != (s.attrs["roam.code"] == "Internal") {
			t.Errorf("span %+v", s)
		}
	}
}

// TestNoDecoratorsWhenOff: with tracing off, capabilities are the backend's
// own, undecorated.
func TestNoDecoratorsWhenOff(t *testing.T) {
	b := memory.New(memory.Options{})
	defer b.Close()
	s := b.State("app", "statestore")
	if host.TracedState(nil, "app", "statestore", "memory", s) != s {
		t.Error("TracedState(nil) decorated")
	}
	p := b.Publisher("app")
	if host.TracedPublisher(nil, "app", p) != p {
		t.Error("TracedPublisher(nil) decorated")
	}
}

// TestSyncPublishTraced: an event forwarded through the state sync API's
// publish (as the browser host forwards what a page's call published) gets
// a producer span under the request's traceparent, and its consumer span
// follows from it, as for an app's own publish.
func TestSyncPublishTraced(t *testing.T) {
	f := &fakeTracer{}
	b := memory.New(memory.Options{Retry: backend.RetryPolicy{MaxAttempts: 1}})
	defer b.Close()
	srv, err := native.NewServer(b, []*sdk.App{testapp.App}, host.Options{Tracing: f, StateAPI: true})
	if err != nil {
		t.Fatal(err)
	}
	const caller = "00-11111111111111111111111111111111-3333333333333333-01"
	req := httptest.NewRequest(http.MethodPost, "/v1/apps/conformance/publish/pubsub/conf.events", strings.NewReader(`{"data_base64":"eyJ4IjoxfQ==","datacontenttype":"application/json"}`))
	req.Header.Set("traceparent", caller)
	rec := httptest.NewRecorder()
	srv.Handler().ServeHTTP(rec, req)
	if rec.Code != http.StatusNoContent {
		t.Fatalf("publish: %d %s", rec.Code, rec.Body)
	}
	deadline := time.Now().Add(10 * time.Second)
	for ss := f.byName("process conf.events"); len(ss) == 0 || !ss[0].ended; ss = f.byName("process conf.events") {
		if time.Now().After(deadline) {
			t.Fatal("no consumer span after 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	prod, cons := f.byName("publish conf.events"), f.byName("process conf.events")
	if len(prod) != 1 || prod[0].parent != caller || prod[0].kind != host.SpanProducer || prod[0].app != "conformance" {
		t.Fatalf("producer spans %+v, want one under %s", prod, caller)
	}
	if cons[0].parent != prod[0].id || cons[0].link != prod[0].id {
		t.Errorf("consumer %+v, producer %s", cons[0], prod[0].id)
	}
}
