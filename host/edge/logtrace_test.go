package edge

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"testing"

	"github.com/roam-dev/roam/abi"
	"github.com/roam-dev/roam/sdk"
)

// TestLogNamesTrace: a guest's log record names the trace and span of the
// call it was made in, when the host traces; without a trace context it
// carries neither.
func TestLogNamesTrace(t *testing.T) {
	tp := "00-" + clientTrace + "-" + clientSpan + "-01"
	req := abi.AppendUvarint(nil, 0) // slog.LevelInfo, zigzag
	req = abi.AppendString(req, "hello")
	req = abi.AppendUvarint(req, 1)
	req = abi.AppendString(abi.AppendString(req, "request_id"), "r1")
	for _, tc := range []struct {
		ctx         context.Context
		trace, span string
	}{
		{sdk.WithTrace(context.Background(), sdk.TraceContext{TraceParent: tp, TraceState: "k=v"}), clientTrace, clientSpan},
		{context.Background(), "", ""},
		{sdk.WithTrace(context.Background(), sdk.TraceContext{TraceParent: "garbage"}), "", ""},
	} {
		var buf bytes.Buffer
		st := &callState{ctx: tc.ctx, caps: &caps{log: slog.New(slog.NewJSONHandler(&buf, nil))}}
		if _, err := opLog(st, req); err != nil {
			t.Fatal(err)
		}
		var rec map[string]string
		json.Unmarshal(buf.Bytes(), &rec)
		if rec["msg"] != "hello" || rec["request_id"] != "r1" || rec["trace_id"] != tc.trace || rec["span_id"] != tc.span {
			t.Errorf("record %s; want trace %q span %q", buf.String(), tc.trace, tc.span)
		}
	}
}
