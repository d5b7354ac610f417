package abi_test

import (
	"math"
	"reflect"
	"testing"
	"time"

	"github.com/roam-dev/roam/abi"
)

const traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

func TestCallRoundTrip(t *testing.T) {
	for _, c := range []abi.Call{
		{Kind: abi.KindMethod, Name: "Create", RequestID: "r1", DeadlineMs: 1234567, Body: []byte(`{"a":1}`)},
		{Kind: abi.KindEvent, Name: "pubsub/t", RequestID: "r2", Body: []byte(`{}`), TraceParent: traceparent, TraceState: "roam=1"},
		{Kind: abi.KindMethod, Name: "Get", Body: []byte(`{}`), TraceParent: traceparent},
	} {
		got, err := abi.ReadCall(abi.AppendCall(nil, c))
		if err != nil || !reflect.DeepEqual(got, c) {
			t.Fatalf("got %+v, %v; want %+v", got, err, c)
		}
	}
}

// TestCallV10: a call without a trace context encodes exactly as in v1.0
// (what a v1.0 guest decodes), and a v1.0 encoding decodes.
func TestCallV10(t *testing.T) {
	v10 := func(c abi.Call) []byte { // the v1.0 encoder
		b := abi.AppendUvarint(nil, c.Kind)
		b = abi.AppendString(abi.AppendString(b, c.Name), c.RequestID)
		return abi.AppendBytes(abi.AppendUvarint(b, c.DeadlineMs), c.Body)
	}
	c := abi.Call{Kind: abi.KindMethod, Name: "Create", RequestID: "r1", DeadlineMs: 99, Body: []byte(`{}`)}
	if got, want := abi.AppendCall(nil, c), v10(c); !reflect.DeepEqual(got, want) {
		t.Fatalf("untraced call encodes as %x, v1.0 as %x", got, want)
	}
	if got, err := abi.ReadCall(v10(c)); err != nil || !reflect.DeepEqual(got, c) {
		t.Fatalf("v1.0 call decodes as %+v, %v", got, err)
	}
	// A trace context cut short is malformed, not silently dropped.
	b := abi.AppendString(v10(c), traceparent)
	if _, err := abi.ReadCall(b); err == nil {
		t.Fatal("a traceparent without its tracestate decoded")
	}
}

func TestManifestRoundTrip(t *testing.T) {
	m := abi.Manifest{AppID: "orders", Methods: []string{"Create", "Get"},
		Subscriptions: []abi.ManifestSub{{PubSub: "pubsub", Topic: "t", DeadLetterTopic: "dl"}}}
	got, err := abi.ReadManifest(abi.AppendManifest(nil, m))
	if err != nil || !reflect.DeepEqual(got, m) {
		t.Fatalf("got %+v, %v", got, err)
	}
}

func TestCodes(t *testing.T) {
	for c := abi.OK; c <= abi.Internal; c++ {
		back, ok := abi.ParseCode(c.String())
		if !ok || back != c {
			t.Errorf("%d: %q parses to %d %v", c, c.String(), back, ok)
		}
	}
	if _, ok := abi.ParseCode("Nope"); ok {
		t.Error("unknown name parsed")
	}
	if abi.Code(99).String() != "Internal" {
		t.Error("unknown code should render as Internal")
	}
}

// FuzzReader checks that no input makes the decoder panic or read past its
// input, whatever lengths and counts it claims.
func FuzzReader(f *testing.F) {
	f.Add(abi.AppendCall(nil, abi.Call{Kind: 1, Name: "x", Body: []byte("{}")}))
	f.Add(abi.AppendCall(nil, abi.Call{Kind: 2, Name: "p/t", Body: []byte("{}"), TraceParent: traceparent, TraceState: "a=b"}))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Add([]byte{5, 'a'})
	f.Fuzz(func(t *testing.T, b []byte) {
		if c, err := abi.ReadCall(b); err == nil {
			if again, err := abi.ReadCall(abi.AppendCall(nil, c)); err != nil || !reflect.DeepEqual(again, c) {
				t.Fatalf("re-encoding changed the call: %+v vs %+v (%v)", again, c, err)
			}
		}
		abi.ReadManifest(b)
	})
}

// TestTTLMillis: whole milliseconds rounded up, so that a TTL under one
// still expires; a negative TTL as the two's complement of its int64, for
// the host to refuse as the backend does natively.
func TestTTLMillis(t *testing.T) {
	for _, tc := range []struct {
		ttl  time.Duration
		want uint64
	}{
		{0, 0},
		{time.Microsecond, 1},
		{time.Millisecond, 1},
		{1500 * time.Microsecond, 2},
		{time.Hour, 3_600_000},
		{-5 * time.Millisecond, 1<<64 - 5},
		{math.MaxInt64, math.MaxInt64 / uint64(time.Millisecond)}, // not rounded past the largest Duration
	} {
		if got := abi.TTLMillis(tc.ttl); got != tc.want {
			t.Errorf("TTLMillis(%v) = %d, want %d", tc.ttl, got, tc.want)
		}
	}
}
