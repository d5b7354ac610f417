// Package tracectx converts between OpenTelemetry span contexts and the W3C
// trace-context strings that cross Roam's boundaries where no header
// carrier exists: the wasm ABI (abi.Call, the invoke and publish imports)
// and the CloudEvents traceparent extension of queued events.
//
// It is the one strict parser of traceparent in Roam. Whatever the input, it
// never panics: a malformed traceparent reports false, and callers then
// start a new root (or keep the parent they had); a malformed (or oversized)
// tracestate is dropped and the traceparent kept.
package tracectx

import (
	"context"

	"go.opentelemetry.io/otel/trace"
)

const (
	// Len is the length of a version-00 traceparent.
	Len = 55
	// maxTraceState bounds a tracestate worth parsing: W3C asks vendors to
	// propagate at least 512 characters, and a longer one from a guest or
	// an event is dropped rather than parsed.
	maxTraceState = 1024
	hex           = "0123456789abcdef"
)

// Format returns sc as a version-00 traceparent, or "" when sc is invalid.
func Format(sc trace.SpanContext) string {
	if !sc.IsValid() {
		return ""
	}
	var b [Len]byte
	b[0], b[1], b[2] = '0', '0', '-'
	tid, sid := sc.TraceID(), sc.SpanID()
	for i, x := range tid {
		b[3+2*i], b[4+2*i] = hex[x>>4], hex[x&15]
	}
	b[35] = '-'
	for i, x := range sid {
		b[36+2*i], b[37+2*i] = hex[x>>4], hex[x&15]
	}
	f := byte(sc.TraceFlags() & trace.FlagsSampled)
	b[52], b[53], b[54] = '-', hex[f>>4], hex[f&15]
	return string(b[:])
}

// FromContext returns the traceparent of the span in ctx, or "" when ctx
// carries none. It allocates only when there is one.
func FromContext(ctx context.Context) string {
	return Format(trace.SpanContextFromContext(ctx))
}

// Parse decodes a traceparent and an optional tracestate into a span
// context marked remote. It follows W3C Trace Context and accepts exactly
// what OpenTelemetry's propagator accepts: lowercase hex, no all-zero ids,
// version ff refused, version 00 with no flag but sampled and random, and a
// future version when its first four fields parse (what follows is
// ignored).
func Parse(traceparent, tracestate string) (trace.SpanContext, bool) {
	tid, sid, flags, ok := parse(traceparent)
	if !ok {
		return trace.SpanContext{}, false
	}
	cfg := trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.TraceFlags(flags) & trace.FlagsSampled, Remote: true}
	if tracestate != "" && len(tracestate) <= maxTraceState {
		if ts, err := trace.ParseTraceState(tracestate); err == nil {
			cfg.TraceState = ts
		}
	}
	return trace.NewSpanContext(cfg), true
}

// Valid reports whether Parse accepts traceparent.
func Valid(traceparent string) bool {
	_, _, _, ok := parse(traceparent)
	return ok
}

func parse(s string) (tid [16]byte, sid [8]byte, flags byte, ok bool) {
	if len(s) < Len || s[2] != '-' || s[35] != '-' || s[52] != '-' {
		return tid, sid, 0, false
	}
	ver, ok := hexByte(s[0], s[1])
	if !ok || ver == 0xff || (ver == 0 && len(s) != Len) || (len(s) > Len && s[Len] != '-') {
		return tid, sid, 0, false
	}
	if !decode(tid[:], s[3:35]) || !decode(sid[:], s[36:52]) || tid == [16]byte{} || sid == [8]byte{} {
		return tid, sid, 0, false
	}
	flags, ok = hexByte(s[53], s[54])
	if !ok || (ver == 0 && flags > 2) {
		// Version 00 defines the sampled bit (and, in level 2, random);
		// like OpenTelemetry's propagator, refuse others.
		return tid, sid, 0, false
	}
	return tid, sid, flags, true
}

// Context returns ctx with the span context of traceparent and tracestate as
// its remote parent, or ctx unchanged when traceparent does not parse.
func Context(ctx context.Context, traceparent, tracestate string) context.Context {
	if traceparent == "" {
		return ctx
	}
	if sc, ok := Parse(traceparent, tracestate); ok {
		return trace.ContextWithRemoteSpanContext(ctx, sc)
	}
	return ctx
}

func decode(dst []byte, s string) bool {
	for i := range dst {
		v, ok := hexByte(s[2*i], s[2*i+1])
		if !ok {
			return false
		}
		dst[i] = v
	}
	return true
}

func hexByte(hi, lo byte) (byte, bool) {
	h, ok1 := nibble(hi)
	l, ok2 := nibble(lo)
	return h<<4 | l, ok1 && ok2
}

func nibble(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}

// FromBinary decodes the binary trace context of gRPC's grpc-trace-bin
// metadata (OpenCensus's format, which Dapr's sidecar sends its app):
// version 0, then field 0 with the trace id, field 1 with the span id and
// field 2 with the flags. It accepts what Dapr's decoder accepts, and also
// requires valid ids.
func FromBinary(b []byte) (trace.SpanContext, bool) {
	var c trace.SpanContextConfig
	if len(b) < 1+17+9 || b[0] != 0 || b[1] != 0 || b[18] != 1 {
		return trace.SpanContext{}, false
	}
	copy(c.TraceID[:], b[2:18])
	copy(c.SpanID[:], b[19:27])
	if rest := b[27:]; len(rest) >= 2 && rest[0] == 2 {
		c.TraceFlags = trace.TraceFlags(rest[1]) & trace.FlagsSampled
	}
	c.Remote = true
	sc := trace.NewSpanContext(c)
	return sc, sc.IsValid()
}

// Names reports whether traceparent names the span sc: the same trace and
// span ids. It allocates nothing.
func Names(traceparent string, sc trace.SpanContext) bool {
	tid, sid, _, ok := parse(traceparent)
	return ok && tid == sc.TraceID() && sid == sc.SpanID()
}
