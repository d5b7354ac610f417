package sdk

import "context"

type requestIDKey struct{}

// WithRequestID returns ctx carrying a request id. Hosts call it for every
// request and delivery; apps read it with RequestID.
func WithRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, requestIDKey{}, id)
}

// RequestID returns the id of the request ctx belongs to, or "".
func RequestID(ctx context.Context) string {
	if c, ok := ctx.(*callContext); ok {
		return c.requestID // without boxing it
	}
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

// TraceContext is the W3C trace context of a request: the traceparent and
// tracestate of the span its handler runs in. Hosts that trace (see the
// OTEL_* variables in the host docs) set it on every handler's context, and
// the SDK hands it back to the host with the app's invocations and
// publications, so that their spans have the right parent wherever the app
// runs: natively, in a wasm guest, or in a goroutine the handler started.
// The zero value means the request is not traced.
type TraceContext struct {
	TraceParent string
	TraceState  string
}

type traceKey struct{}

// WithTrace returns ctx carrying tc. Hosts call it; an app may use it to
// continue a trace it received some other way.
func WithTrace(ctx context.Context, tc TraceContext) context.Context {
	return context.WithValue(ctx, traceKey{}, tc)
}

// Trace returns the trace context ctx carries, or the zero TraceContext.
// Apps use it to put trace ids in their own records; spans are the host's.
func Trace(ctx context.Context) TraceContext {
	if c, ok := ctx.(*callContext); ok {
		return c.trace
	}
	tc, _ := ctx.Value(traceKey{}).(TraceContext)
	return tc
}
