package telemetry

import (
	"context"
	"sync"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/roam-dev/roam/host"
	"github.com/roam-dev/roam/internal/tracectx"
	roamsdk "github.com/roam-dev/roam/sdk"
)

// TracerScope is the instrumentation scope of the host's spans.
const TracerScope = "github.com/roam-dev/roam/host"

// Tracer is host.Tracer on the OpenTelemetry SDK.
type Tracer struct {
	tracerFor       func(app string) trace.Tracer
	tracers         sync.Map // app id → trace.Tracer
	flush, shutdown func(context.Context) error
}

var _ host.Tracer = (*Tracer)(nil)

// Tracer returns the OpenTelemetry tracer of app's spans.
func (t *Tracer) Tracer(app string) trace.Tracer {
	if tr, ok := t.tracers.Load(app); ok {
		return tr.(trace.Tracer)
	}
	tr, _ := t.tracers.LoadOrStore(app, t.tracerFor(app))
	return tr.(trace.Tracer)
}

// Flush exports the spans ended so far.
func (t *Tracer) Flush(ctx context.Context) error { return t.flush(ctx) }

// Shutdown flushes and stops the exporter.
func (t *Tracer) Shutdown(ctx context.Context) error { return t.shutdown(ctx) }

// Start starts a span whose parent is the trace context ctx carries
// (sdk.Trace): the OpenTelemetry span in ctx when it is that one (a local
// parent), else the trace context parsed as a remote parent; a new root
// when ctx carries none, or one that does not parse. The returned context
// carries the span both ways: as OpenTelemetry's current span, so that an
// app's own instrumentation nests under it, and as sdk.Trace.
func (t *Tracer) Start(ctx context.Context, app string, s host.SpanStart) (context.Context, host.Span) {
	opts := make([]trace.SpanStartOption, 0, 3)
	if s.Kind > 0 && int(s.Kind) < len(kindOpts) {
		opts = append(opts, kindOpts[s.Kind])
	}
	tc := roamsdk.Trace(ctx)
	switch osc := trace.SpanContextFromContext(ctx); {
	case tc.TraceParent == "":
		opts = append(opts, newRoot)
	case osc.IsValid() && tracectx.Names(tc.TraceParent, osc):
		// ctx holds the parent itself.
	default:
		if sc, ok := tracectx.Parse(tc.TraceParent, tc.TraceState); ok {
			ctx = trace.ContextWithRemoteSpanContext(ctx, sc)
		} else {
			opts = append(opts, newRoot)
		}
	}
	if s.Link.TraceParent != "" {
		if sc, ok := tracectx.Parse(s.Link.TraceParent, s.Link.TraceState); ok {
			opts = append(opts, trace.WithLinks(trace.Link{SpanContext: sc}))
		}
	}
	// Attributes are set once the sampler has decided (its built-in
	// samplers do not read them), so that a span it drops costs none.
	ctx, sp := t.Tracer(app).Start(ctx, s.Name, opts...)
	if len(s.Attrs) > 0 && sp.IsRecording() {
		sp.SetAttributes(attrs(s.Attrs)...)
	}
	sc := sp.SpanContext()
	out := roamsdk.TraceContext{TraceParent: tracectx.Format(sc)}
	if sc.TraceState().Len() > 0 {
		out.TraceState = sc.TraceState().String()
	}
	return roamsdk.WithTrace(ctx, out), span{sp}
}

// The options every span shares, made once.
var (
	kindOpts = [...]trace.SpanStartOption{nil,
		trace.WithSpanKind(trace.SpanKindInternal), trace.WithSpanKind(trace.SpanKindServer), trace.WithSpanKind(trace.SpanKindClient),
		trace.WithSpanKind(trace.SpanKindProducer), trace.WithSpanKind(trace.SpanKindConsumer)}
	newRoot = trace.WithNewRoot()
)

func attrs(as []host.Attr) []attribute.KeyValue {
	kvs := make([]attribute.KeyValue, len(as))
	for i, a := range as {
		if a.IsInt {
			kvs[i] = attribute.Int64(a.Key, a.Int)
		} else {
			kvs[i] = attribute.String(a.Key, a.Value)
		}
	}
	return kvs
}

type span struct{ s trace.Span }

func (x span) SetAttrs(as ...host.Attr) {
	if x.s.IsRecording() {
		x.s.SetAttributes(attrs(as)...)
	}
}
func (x span) SetError(msg string) { x.s.SetStatus(codes.Error, msg) }
func (x span) End()                { x.s.End() }
