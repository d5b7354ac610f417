package tracectx

import (
	"context"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

const valid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

func TestRoundTrip(t *testing.T) {
	sc, ok := Parse(valid, "roam=1,other=x")
	if !ok {
		t.Fatal("valid traceparent refused")
	}
	if got := Format(sc); got != valid {
		t.Fatalf("Format(Parse(%q)) = %q", valid, got)
	}
	if !sc.IsRemote() || !sc.IsSampled() || sc.TraceState().String() != "roam=1,other=x" {
		t.Fatalf("span context %+v", sc)
	}
	if got := FromContext(trace.ContextWithSpanContext(context.Background(), sc)); got != valid {
		t.Fatalf("FromContext = %q", got)
	}
	if got := FromContext(context.Background()); got != "" {
		t.Fatalf("FromContext of an empty context = %q", got)
	}
}

// TestMalformed: every malformed traceparent is refused (the caller starts
// a new root); a malformed tracestate alone is dropped.
func TestMalformed(t *testing.T) {
	for _, s := range []string{
		"",
		"garbage",
		strings.ToUpper(valid),
		"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		"00-00000000000000000000000000000000-00f067aa0ba902b7-01",
		"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
		"00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g",
		"00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
	} {
		if sc, ok := Parse(s, ""); ok || sc.IsValid() {
			t.Errorf("Parse(%q) accepted", s)
		}
		if ctx := Context(context.Background(), s, ""); trace.SpanContextFromContext(ctx).IsValid() {
			t.Errorf("Context(%q) set a parent", s)
		}
	}
	// A future version with more fields is read for its first four.
	if _, ok := Parse("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-ever", ""); !ok {
		t.Error("a future version with extra fields was refused")
	}
	sc, ok := Parse(valid, "not a tracestate,,=")
	if !ok || sc.TraceState().Len() != 0 {
		t.Errorf("a bad tracestate: ok %v, state %q", ok, sc.TraceState().String())
	}
}

// FuzzParse: no input panics, and Parse agrees with OpenTelemetry's own
// propagator on what it accepts and what it reads.
func FuzzParse(f *testing.F) {
	f.Add(valid, "a=b")
	f.Add("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03-x", "")
	f.Add("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "")
	f.Fuzz(func(t *testing.T, tp, ts string) {
		sc, ok := Parse(tp, ts)
		if !ok {
			return
		}
		theirs := trace.SpanContextFromContext(propagation.TraceContext{}.Extract(context.Background(),
			propagation.MapCarrier{"traceparent": tp}))
		if !theirs.IsValid() || theirs.TraceID() != sc.TraceID() || theirs.SpanID() != sc.SpanID() || theirs.TraceFlags() != sc.TraceFlags() {
			t.Fatalf("Parse(%q) = %v, OpenTelemetry reads %v", tp, sc, theirs)
		}
		again, ok := Parse(Format(sc), "")
		if !ok || again.TraceID() != sc.TraceID() || again.SpanID() != sc.SpanID() {
			t.Fatalf("Format does not round-trip %q", tp)
		}
	})
}

func TestFromBinary(t *testing.T) {
	want, _ := Parse(valid, "")
	var b [29]byte // Dapr's BinaryFromSpanContext
	tid, sid := want.TraceID(), want.SpanID()
	copy(b[2:18], tid[:])
	b[18] = 1
	copy(b[19:27], sid[:])
	b[27], b[28] = 2, 1
	got, ok := FromBinary(b[:])
	if !ok || Format(got) != valid {
		t.Fatalf("FromBinary = %v, %v; want %s", got, ok, valid)
	}
	for _, bad := range [][]byte{nil, b[:20], append([]byte{1}, b[1:]...), make([]byte, 29)} {
		if sc, ok := FromBinary(bad); ok || sc.IsValid() {
			t.Errorf("FromBinary(%x) accepted", bad)
		}
	}
}
