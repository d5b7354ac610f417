package edge

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/roam-dev/roam/abi"
)

// records is a slog.Handler that keeps what it is given.
type records struct {
	mu    sync.Mutex
	attrs []slog.Attr
	recs  []slog.Record
}

func (h *records) Enabled(context.Context, slog.Level) bool { return true }
func (h *records) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	r.AddAttrs(h.attrs...)
	h.recs = append(h.recs, r)
	return nil
}
func (h *records) WithAttrs(as []slog.Attr) slog.Handler {
	return &recordsView{h, as}
}
func (h *records) WithGroup(string) slog.Handler { return h }

type recordsView struct {
	h  *records
	as []slog.Attr
}

func (v *recordsView) Enabled(context.Context, slog.Level) bool { return true }
func (v *recordsView) Handle(ctx context.Context, r slog.Record) error {
	r.AddAttrs(v.as...)
	return v.h.Handle(ctx, r)
}
func (v *recordsView) WithAttrs(as []slog.Attr) slog.Handler {
	return &recordsView{v.h, append(append([]slog.Attr(nil), v.as...), as...)}
}
func (v *recordsView) WithGroup(string) slog.Handler { return v }

func attrsOf(r slog.Record) map[string]string {
	m := map[string]string{}
	r.Attrs(func(a slog.Attr) bool {
		m[a.Key] = a.Value.String()
		return true
	})
	return m
}

// TestGuestOutputBounded: a guest's output becomes log lines, cut and
// counted past the bounds, and an error message gets its first lines.
func TestGuestOutputBounded(t *testing.T) {
	h := &records{}
	log := slog.New(h)
	o := newOutput("stderr", slog.LevelWarn, func() *slog.Logger { return log })
	o.Write([]byte("panic: boom\n\ngoroutine 1 [running]:\nmain.f()\n"))
	if got := o.summary(2); got != "panic: boom; goroutine 1 [running]:; …" {
		t.Errorf("summary: %q", got)
	}
	o.Write([]byte(strings.Repeat("x", 5000) + "\n"))
	for i := 0; i < 200; i++ {
		o.Write([]byte("line\n"))
	}
	o.Write([]byte("partial"))
	o.reset()
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.recs) != maxOutputLines+1 {
		t.Fatalf("%d records, want %d lines and a drop count", len(h.recs), maxOutputLines+1)
	}
	if l := attrsOf(h.recs[4])["line"]; len(l) != maxOutputLine {
		t.Errorf("a 5000-byte line logged as %d bytes", len(l))
	}
	last := h.recs[len(h.recs)-1]
	if last.Message != "guest stderr lines dropped" || attrsOf(last)["dropped"] != "106" {
		t.Errorf("last record: %s %v", last.Message, attrsOf(last))
	}
	if len(o.head) != 0 || o.summary(3) != "" {
		t.Error("reset kept the head")
	}
}

// TestLogImport: the log import writes a record with the app id, the
// level, the message and the attributes the guest sent.
func TestLogImport(t *testing.T) {
	h := &records{}
	c := Binding{Logger: slog.New(h)}.bind("app1")
	st := &callState{ctx: context.Background(), caps: c}
	lv := int64(slog.LevelWarn)
	req := abi.AppendUvarint(nil, uint64(lv<<1^lv>>63))
	req = abi.AppendString(req, "low stock")
	req = abi.AppendUvarint(req, 2)
	for _, s := range []string{"request_id", "r1", "sku", "apple"} {
		req = abi.AppendString(req, s)
	}
	if _, err := opLog(st, req); err != nil {
		t.Fatal(err)
	}
	lv = int64(slog.LevelDebug) // negative: zigzag matters
	req2 := abi.AppendUvarint(nil, uint64(lv<<1^lv>>63))
	req2 = abi.AppendUvarint(abi.AppendString(req2, "debug"), 0)
	if _, err := opLog(st, req2); err != nil {
		t.Fatal(err)
	}
	if _, err := opLog(st, req[:len(req)-1]); err == nil {
		t.Error("a truncated record was accepted")
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.recs) != 2 {
		t.Fatalf("%d records", len(h.recs))
	}
	r := h.recs[0]
	a := attrsOf(r)
	if r.Level != slog.LevelWarn || r.Message != "low stock" || a["app"] != "app1" || a["request_id"] != "r1" || a["sku"] != "apple" {
		t.Errorf("record: %v %q %v", r.Level, r.Message, a)
	}
	if h.recs[1].Level != slog.LevelDebug {
		t.Errorf("level %v, want debug", h.recs[1].Level)
	}
}
