package host

// Tracing: the host's spans. The host decides which spans exist, their
// names, kinds, attributes and parents; a Tracer (package host/telemetry,
// on OpenTelemetry) records and exports them. Package host itself imports
// nothing of OpenTelemetry, so a binary that does not link tracing carries
// none of it (see RegisterTracing), and with no Tracer (nil: the default)
// no span, no decorator and no trace-context parsing exists on any path.
//
// The spans of one call to orders.Create, whichever host runs it:
//
//	orders/Create             server    ingress (HTTP, or Server.Call)
//	  orders.Create           internal  the handler (native code or the wasm guest)
//	    state.Get statestore  client    each state operation
//	    inventory/Reserve     client    the invocation
//	      inventory/Reserve   server    the callee's ingress (in-process, or its host's HTTP)
//	        inventory.Reserve internal
//	    publish order.created producer  the event carries this span as its traceparent
//
// and, for the event, "process order.created" (consumer) in the subscriber's
// app, parented to the transport's span when the backend delivers with one
// (Dapr), else to the event's traceparent, and linked to the latter always.
//
// The current span travels in the context as its W3C trace context
// (sdk.Trace): that is what backends put in headers and events, what the
// edge host hands a guest, and what a guest hands back with its calls.

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/roam-dev/roam/abi"
	"github.com/roam-dev/roam/backend"
	"github.com/roam-dev/roam/sdk"
)

// SpanKind is a span's kind, numbered as OpenTelemetry and OTLP number them.
type SpanKind int

// The kinds.
const (
	SpanInternal SpanKind = 1
	SpanServer   SpanKind = 2
	SpanClient   SpanKind = 3
	SpanProducer SpanKind = 4
	SpanConsumer SpanKind = 5
)

// Attr is a span attribute: a string, or an integer when IsInt.
type Attr struct {
	Key   string
	Value string
	Int   int64
	IsInt bool
}

// Str and Int make attributes.
func Str(k, v string) Attr { return Attr{Key: k, Value: v} }

// Int makes an integer attribute.
func Int(k string, v int) Attr { return Attr{Key: k, Int: int64(v), IsInt: true} }

// SpanStart describes a span to start.
type SpanStart struct {
	Name string
	Kind SpanKind
	// Attrs may be shared between spans: a Tracer must not modify them.
	Attrs []Attr
	// Link, when its traceparent is valid, is linked from the span.
	Link sdk.TraceContext
}

// Tracer records a host's spans. Implementations: package host/telemetry.
type Tracer interface {
	// Start starts a span of app's. Its parent is the trace context ctx
	// carries (sdk.Trace), when it is valid: the span that started ctx, or
	// a remote parent the host put there; otherwise the span is a root.
	// The returned context carries the new span's trace context (and, for
	// code of the app's own, the implementation's span).
	Start(ctx context.Context, app string, s SpanStart) (context.Context, Span)
	// Flush exports the spans ended so far; Shutdown flushes and stops.
	Flush(ctx context.Context) error
	Shutdown(ctx context.Context) error
}

// Span is a started span.
type Span interface {
	SetAttrs(attrs ...Attr)
	// SetError marks the span as failed.
	SetError(msg string)
	End()
}

// ---- linking and configuration ----

// TracingProvider makes a host's Tracer from the environment: nil when the
// environment asks for none.
type TracingProvider func(ctx context.Context, getenv func(string) string, log *slog.Logger) (Tracer, error)

var tracingProvider struct {
	sync.Mutex
	f TracingProvider
}

// RegisterTracing makes f the provider of TracingFromEnv. Package
// host/telemetry calls it from init, so that importing it links tracing.
// The OpenTelemetry SDK and an OTLP exporter would take a lean binary past
// its 12 MB idle-RSS budget, so `roam build` links them only when asked
// (--backends …,otlp, or …,dapr, which links gRPC anyway); roam run links
// them when the environment asks for tracing, and roam dist always does.
func RegisterTracing(f TracingProvider) {
	tracingProvider.Lock()
	defer tracingProvider.Unlock()
	tracingProvider.f = f
}

// TracingRequested reports whether the OTEL_* environment turns tracing on:
// OTEL_TRACES_EXPORTER names an exporter other than "none", or it is unset
// and an OTLP endpoint is set; OTEL_SDK_DISABLED=true turns it off. Tracing
// is off by default.
func TracingRequested(getenv func(string) string) bool {
	if getenv == nil {
		getenv = os.Getenv
	}
	get := func(k string) string { return strings.TrimSpace(getenv(k)) }
	if strings.EqualFold(get("OTEL_SDK_DISABLED"), "true") {
		return false
	}
	switch get("OTEL_TRACES_EXPORTER") {
	case "none":
		return false
	case "":
		return get("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != ""
	}
	return true
}

// TracingFromEnv returns the host's Tracer as the OTEL_* environment
// configures it (package host/telemetry documents the variables), or nil
// when it configures none. getenv nil means os.Getenv. A binary built
// without tracing fails here when the environment asks for it, naming the
// flag that links it.
func TracingFromEnv(ctx context.Context, getenv func(string) string, log *slog.Logger) (Tracer, error) {
	tracingProvider.Lock()
	f := tracingProvider.f
	tracingProvider.Unlock()
	if f == nil {
		if TracingRequested(getenv) {
			return nil, fmt.Errorf("the OTEL_* environment asks for tracing, but this binary was built without it, to keep it lean: rebuild it with `roam build --backends embedded,otlp` (roam run links tracing when OTEL_* asks for it, roam dist always does), or unset OTEL_TRACES_EXPORTER and OTEL_EXPORTER_OTLP_ENDPOINT")
		}
		return nil, nil
	}
	return f(ctx, getenv, log)
}

// FlushTracing exports the spans t still buffers, for at most five seconds,
// when a host exits; a collector that is down costs a warning, not a hang.
// A nil t (tracing off) does nothing.
func FlushTracing(t Tracer, log *slog.Logger) {
	if t == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := t.Shutdown(ctx); err != nil {
		log.Warn("tracing: spans still buffered at exit were not exported", "err", err)
	}
}

// ---- propagation ----

// InjectHTTP writes the trace context ctx carries (sdk.Trace) into h as
// traceparent and tracestate, for backends that call another process over
// HTTP. It does nothing when ctx carries none, which is always the case when
// tracing is off.
func InjectHTTP(ctx context.Context, h http.Header) {
	tc := sdk.Trace(ctx)
	if tc.TraceParent == "" {
		return
	}
	h.Set("traceparent", tc.TraceParent)
	if tc.TraceState != "" {
		h.Set("tracestate", tc.TraceState)
	}
}

// TraceLogAttrs returns the trace_id and span_id of ctx's trace context
// (sdk.Trace), for a log record of the call to name its trace, or nil when
// ctx carries none (tracing off) or it is malformed.
func TraceLogAttrs(ctx context.Context) []slog.Attr {
	tp := sdk.Trace(ctx).TraceParent
	// version "-" trace-id (32 hex) "-" parent-id (16 hex) "-" flags
	if len(tp) < 55 || tp[2] != '-' || tp[35] != '-' || tp[52] != '-' {
		return nil
	}
	return []slog.Attr{slog.String("trace_id", tp[3:35]), slog.String("span_id", tp[36:52])}
}

// HTTPTrace returns the trace context of h (W3C traceparent and
// tracestate), unchecked: a Tracer ignores one that does not parse.
func HTTPTrace(h http.Header) sdk.TraceContext {
	tp := h.Get("traceparent")
	if tp == "" {
		return sdk.TraceContext{}
	}
	return sdk.TraceContext{TraceParent: tp, TraceState: strings.Join(h.Values("tracestate"), ",")}
}

// ---- the spans ----

// How a span's error sets its status. A client sees every error as its
// call failing; a server, a handler or a store marks only its own faults,
// not a caller's bad request or an absent key.
const (
	anyError = iota
	faultsOnly
)

func end(span Span, err error, mode int) {
	if err != nil {
		c := sdk.CodeOf(err)
		span.SetAttrs(Str("roam.code", c.String()))
		if mode == anyError || c == abi.Internal || c == abi.Unavailable || c == abi.DeadlineExceeded {
			span.SetError(err.Error())
		}
	}
	span.End()
}

func rpcAttrs(app, method string, more ...Attr) []Attr {
	return append([]Attr{Str("rpc.system", "roam"), Str("rpc.service", app), Str("rpc.method", method)}, more...)
}

// methodSpans are the names and attributes of one method's spans, made
// once when the app is added.
type methodSpans struct {
	server, handler   string // "orders/Create", "orders.Create"
	rpc, handlerAttrs []Attr
}

func newMethodSpans(app, method string) methodSpans {
	return methodSpans{server: app + "/" + method, handler: app + "." + method, rpc: rpcAttrs(app, method),
		handlerAttrs: []Attr{Str("roam.app", app), Str("roam.method", method)}}
}

// startIngress starts the server span of an HTTP call, child of the
// request's traceparent when it has a valid one, a new root otherwise (the
// Tracer ignores one that does not parse).
func startIngress(t Tracer, r *http.Request, app string, m *methodSpans) (context.Context, Span) {
	ctx := r.Context()
	if tc := HTTPTrace(r.Header); tc.TraceParent != "" {
		ctx = sdk.WithTrace(ctx, tc)
	}
	attrs := append(m.rpc[:len(m.rpc):len(m.rpc)], Str("http.request.method", r.Method), Str("http.route", r.Pattern), Str("url.path", r.URL.Path))
	return t.Start(ctx, app, SpanStart{Name: m.server, Kind: SpanServer, Attrs: attrs})
}

func endIngress(span Span, status int, err error) {
	span.SetAttrs(Int("http.response.status_code", status))
	if err != nil {
		span.SetAttrs(Str("roam.code", sdk.CodeOf(err).String()))
		if status >= 500 {
			span.SetError(err.Error())
		}
	}
	span.End()
}

// startServer starts the server span of a call that arrived without a
// transport: an in-process invocation, or Server.Call.
func startServer(ctx context.Context, t Tracer, app string, m *methodSpans) (context.Context, Span) {
	return t.Start(ctx, app, SpanStart{Name: m.server, Kind: SpanServer, Attrs: m.rpc})
}

// startHandler starts the span of the app's handler. Its trace context in
// the returned context is what the app (and, on the edge host, the guest)
// sees as sdk.Trace.
func startHandler(ctx context.Context, t Tracer, app string, m *methodSpans) (context.Context, Span) {
	return t.Start(ctx, app, SpanStart{Name: m.handler, Kind: SpanInternal, Attrs: m.handlerAttrs})
}

// startClient starts the client span of caller's invocation of app.method.
func startClient(ctx context.Context, t Tracer, caller, app, method string) (context.Context, Span) {
	return t.Start(ctx, caller, SpanStart{Name: app + "/" + method, Kind: SpanClient, Attrs: rpcAttrs(app, method, Str("roam.app", caller))})
}

// startConsumer starts the span of one event delivery. Its parent is the
// span the backend delivered under when there is one (a sidecar's, in
// ctx), else the event's traceparent (the CloudEvents distributed-tracing
// extension); it links to the latter in both cases.
func startConsumer(ctx context.Context, t Tracer, sub backend.Subscription, ev *sdk.Event) (context.Context, Span) {
	evtc := sdk.TraceContext{TraceParent: ev.TraceParent, TraceState: ev.TraceState}
	if sdk.Trace(ctx).TraceParent == "" {
		ctx = sdk.WithTrace(ctx, evtc)
	}
	return t.Start(ctx, sub.AppID, SpanStart{Name: "process " + sub.Topic, Kind: SpanConsumer, Link: evtc, Attrs: []Attr{
		Str("roam.app", sub.AppID), Str("roam.pubsub", sub.PubSub),
		Str("messaging.system", "roam"), Str("messaging.operation.type", "process"),
		Str("messaging.destination.name", sub.Topic), Str("messaging.message.id", ev.ID),
	}})
}

// ---- capability decorators ----

// TracedState returns s with a client span around each operation, or s
// itself when t is nil. system names the backend ("embedded", "dapr", ...).
func TracedState(t Tracer, app, store, system string, s sdk.State) sdk.State {
	if t == nil || s == nil {
		return s
	}
	ts := &tracedState{next: s, t: t, app: app,
		attrs: []Attr{Str("roam.app", app), Str("roam.state.store", store), Str("db.system.name", system)}}
	for i, op := range stateOps {
		ts.names[i] = "state." + op + " " + store
	}
	return ts
}

var stateOps = [...]string{"Get", "BulkGet", "Set", "Delete", "Transact"}

const (
	opGet = iota
	opBulkGet
	opSet
	opDelete
	opTransact
)

type tracedState struct {
	next  sdk.State
	t     Tracer
	app   string
	attrs []Attr
	names [len(stateOps)]string
}

func (s *tracedState) start(ctx context.Context, op int, more ...Attr) (context.Context, Span) {
	attrs := s.attrs
	if len(more) > 0 {
		attrs = append(append([]Attr(nil), s.attrs...), more...)
	}
	return s.t.Start(ctx, s.app, SpanStart{Name: s.names[op], Kind: SpanClient, Attrs: attrs})
}

func (s *tracedState) Get(ctx context.Context, key string) (sdk.Item, error) {
	ctx, span := s.start(ctx, opGet)
	it, err := s.next.Get(ctx, key)
	end(span, err, faultsOnly)
	return it, err
}

func (s *tracedState) BulkGet(ctx context.Context, keys []string) ([]sdk.Item, error) {
	ctx, span := s.start(ctx, opBulkGet, Int("roam.state.keys", len(keys)))
	items, err := s.next.BulkGet(ctx, keys)
	end(span, err, faultsOnly)
	return items, err
}

func (s *tracedState) Set(ctx context.Context, key string, value []byte, o sdk.WriteOptions) error {
	ctx, span := s.start(ctx, opSet)
	err := s.next.Set(ctx, key, value, o)
	end(span, err, faultsOnly)
	return err
}

func (s *tracedState) Delete(ctx context.Context, key string, o sdk.WriteOptions) error {
	ctx, span := s.start(ctx, opDelete)
	err := s.next.Delete(ctx, key, o)
	end(span, err, faultsOnly)
	return err
}

func (s *tracedState) Transact(ctx context.Context, ops []sdk.Op) error {
	ctx, span := s.start(ctx, opTransact, Int("roam.state.ops", len(ops)))
	err := s.next.Transact(ctx, ops)
	end(span, err, faultsOnly)
	return err
}

// TracedPublisher returns p with a producer span around each publication,
// or p itself when t is nil. Backends put the producer span's trace context
// (sdk.Trace of the context they are given) in the event: the CloudEvents
// traceparent extension.
func TracedPublisher(t Tracer, app string, p sdk.Publisher) sdk.Publisher {
	if t == nil || p == nil {
		return p
	}
	return &tracedPublisher{next: p, t: t, app: app}
}

type tracedPublisher struct {
	next sdk.Publisher
	t    Tracer
	app  string
}

func (p *tracedPublisher) Publish(ctx context.Context, m sdk.Message) error {
	ctx, span := p.t.Start(ctx, p.app, SpanStart{Name: "publish " + m.Topic, Kind: SpanProducer, Attrs: []Attr{
		Str("roam.app", p.app), Str("roam.pubsub", m.PubSub),
		Str("messaging.system", "roam"), Str("messaging.operation.type", "send"),
		Str("messaging.destination.name", m.Topic),
	}})
	err := p.next.Publish(ctx, m)
	end(span, err, anyError)
	return err
}
