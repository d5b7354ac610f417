package sdk

// Allocation counts of the SDK's per-call paths. In a wasm guest each
// allocation costs microseconds, far more than the code around it, so these
// pin the counts: a change that adds one fails here rather than showing up
// as noise in a benchmark.

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strconv"
	"testing"
	"time"

	"github.com/roam-dev/roam/abi"
)

// allocReq and allocResp have codec hooks that allocate nothing, as the
// generated ones do for types without strings.
type allocReq struct{ N int64 }

func (r *allocReq) DecodeJSON(b []byte) error {
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return errors.New("not a number")
		}
		n = 10*n + int64(c-'0')
	}
	r.N = n
	return nil
}

type allocResp struct {
	N    int64
	Note [4]string // makes the reply too large to box without allocating
}

func (r allocResp) AppendJSON(b []byte) ([]byte, error) {
	return strconv.AppendInt(b, r.N, 10), nil
}

func allocRouter(t *testing.T) *Router {
	t.Helper()
	r := &Router{app: "alloc", methods: map[string]Handler{}}
	Handle(r, "Double", func(ctx context.Context, req allocReq) (allocResp, error) {
		return allocResp{N: 2 * req.N}, nil
	})
	return r
}

func TestHandleAllocs(t *testing.T) {
	r := allocRouter(t)
	ctx := context.Background()
	body := []byte("21")

	// The guest's form: decoded into a reused scratch, encoded into the
	// caller's buffer. Before the scratch, the request escaped, the reply
	// was boxed and the buffer was new: three allocations.
	a := r.appenders["Double"]
	dst := make([]byte, 1, 64)
	out, err := a(ctx, dst, body)
	if err != nil || string(out[1:]) != "42" || &out[0] != &dst[0] {
		t.Fatalf("append form = %q, %v; want 42 after the caller's prefix, in its buffer", out, err)
	}
	if n := testing.AllocsPerRun(100, func() { a(ctx, dst, body) }); n != 0 {
		t.Errorf("append form: %v allocations per call, want 0", n)
	}

	// The native form returns a buffer of its own: that one allocation.
	h, _ := r.Method("Double")
	if out, err := h(ctx, body); err != nil || string(out) != "42" {
		t.Fatalf("handler = %q, %v", out, err)
	}
	if n := testing.AllocsPerRun(100, func() { h(ctx, body) }); n != 1 {
		t.Errorf("handler: %v allocations per call, want 1 (the reply)", n)
	}

	// A body that does not decode, and the zero request of an empty body.
	if _, err := h(ctx, []byte("x")); CodeOf(err) != InvalidArgument {
		t.Errorf("bad body: %v, want InvalidArgument", err)
	}
	if out, err := h(ctx, nil); err != nil || string(out) != "0" {
		t.Errorf("empty body = %q, %v, want 0", out, err)
	}
}

// TestHandleScratchReuse checks that a reused scratch carries nothing from
// one call into the next, with encoding/json on both sides.
func TestHandleScratchReuse(t *testing.T) {
	type req struct {
		A string   `json:"a,omitempty"`
		L []string `json:"l,omitempty"`
	}
	r := &Router{app: "alloc", methods: map[string]Handler{}}
	Handle(r, "Echo", func(ctx context.Context, q req) (req, error) { return q, nil })
	h, _ := r.Method("Echo")
	for _, c := range []struct{ in, want string }{
		{`{"a":"x","l":["1"]}`, `{"a":"x","l":["1"]}`},
		{`{}`, `{}`},
		{`{"l":["2"]}`, `{"l":["2"]}`},
	} {
		out, err := h(context.Background(), []byte(c.in))
		if err != nil || string(out) != c.want {
			t.Errorf("%s: %s, %v; want %s", c.in, out, err, c.want)
		}
	}
	// The append form with encoding/json appends after the prefix too.
	out, err := r.appenders["Echo"](context.Background(), []byte{0}, []byte(`{"a":"y"}`))
	if err != nil || string(out) != "\x00{\"a\":\"y\"}" {
		t.Errorf("append form: %q, %v", out, err)
	}
}

// TestCallContext checks that a guest call's one-allocation context reads
// as the layered contexts it replaces.
func TestCallContext(t *testing.T) {
	tc := TraceContext{TraceParent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", TraceState: "k=v"}
	d := time.Now().Add(time.Hour).Truncate(time.Millisecond)
	c := newCallContext("req-1", tc, d)
	defer c.stop()
	var ctx context.Context = c
	if RequestID(ctx) != "req-1" || Trace(ctx) != tc {
		t.Errorf("RequestID, Trace = %q, %v", RequestID(ctx), Trace(ctx))
	}
	type key struct{}
	derived := context.WithValue(ctx, key{}, 1)
	if RequestID(derived) != "req-1" || Trace(derived) != tc {
		t.Errorf("through a derived context: %q, %v", RequestID(derived), Trace(derived))
	}
	if got, ok := ctx.Deadline(); !ok || !got.Equal(d) {
		t.Errorf("Deadline() = %v, %v", got, ok)
	}
	if ctx.Err() != nil {
		t.Errorf("Err() = %v", ctx.Err())
	}

	none := newCallContext("", TraceContext{}, time.Time{})
	if _, ok := none.Deadline(); ok || none.Done() != nil || none.Err() != nil {
		t.Error("a call without a deadline has one")
	}
	if RequestID(context.WithValue(none, key{}, 1)) != "" || Trace(context.WithValue(none, key{}, 1)) != (TraceContext{}) {
		t.Error("empty request id or trace context reads as set")
	}
	none.stop()

	if n := testing.AllocsPerRun(100, func() {
		c := newCallContext("req-1", tc, d)
		_ = RequestID(c)
		_ = Trace(c)
		c.stop()
	}); n != 1 {
		t.Errorf("newCallContext and reads: %v allocations, want 1", n)
	}
}

// oldAppendLog is the guest's log encoding before appendLogRecord, through
// slog.Value.String: the reference for its bytes.
func oldAppendLog(requestID, group string, attrs []slog.Attr, r slog.Record) []byte {
	var kv []string
	if requestID != "" {
		kv = append(kv, "request_id", requestID)
	}
	add := func(a slog.Attr) bool {
		k := a.Key
		if group != "" {
			k = group + "." + k
		}
		kv = append(kv, k, a.Value.Resolve().String())
		return true
	}
	for _, a := range attrs {
		add(a)
	}
	r.Attrs(add)
	lv := int64(r.Level)
	b := abi.AppendUvarint(nil, uint64(lv<<1^lv>>63))
	b = abi.AppendString(b, r.Message)
	b = abi.AppendUvarint(b, uint64(len(kv)/2))
	for _, s := range kv {
		b = abi.AppendString(b, s)
	}
	return b
}

type logValuer struct{}

func (logValuer) LogValue() slog.Value { return slog.StringValue("resolved") }

func TestAppendLogRecord(t *testing.T) {
	r := slog.NewRecord(time.Now(), slog.LevelWarn-1, "order created", 0)
	r.AddAttrs(slog.String("order", "8c1d"), slog.Int("quantity", -3), slog.Uint64("u", 7),
		slog.Bool("ok", true), slog.Float64("f", 1.5), slog.Duration("d", time.Second),
		slog.Any("v", logValuer{}), slog.Any("e", errors.New("boom")), slog.Group("g", slog.Int("x", 1)))
	for _, c := range []struct {
		id, group string
		attrs     []slog.Attr
	}{
		{"", "", nil},
		{"req-1", "", []slog.Attr{slog.String("app", "orders")}},
		{"req-1", "svc.sub", []slog.Attr{slog.Int("n", 1)}},
	} {
		got := appendLogRecord(nil, c.id, c.group, c.attrs, r)
		if want := oldAppendLog(c.id, c.group, c.attrs, r); !bytes.Equal(got, want) {
			t.Errorf("%+v:\n got %q\nwant %q", c, got, want)
		}
	}

	r = slog.NewRecord(time.Now(), slog.LevelInfo, "order created", 0)
	r.AddAttrs(slog.String("order", "8c1d"), slog.String("customer", "c"), slog.String("sku", "s"), slog.Int("quantity", 1))
	buf := make([]byte, 0, 256)
	if n := testing.AllocsPerRun(100, func() { appendLogRecord(buf, "req-1", "", nil, r) }); n != 0 {
		t.Errorf("appendLogRecord: %v allocations, want 0", n)
	}
}
