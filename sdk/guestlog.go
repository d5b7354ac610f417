package sdk

import (
	"log/slog"
	"strconv"

	"github.com/roam-dev/roam/abi"
)

// appendLogRecord encodes r as the ABI's log request (level, message, then
// key/value pairs: the request id, the handler's attributes, the record's),
// the values as slog.Value.String writes them. It writes straight into b,
// without the intermediate strings and slices of a general slog handler:
// in a wasm guest every allocation costs microseconds. It is portable so
// that its output and its allocations are tested natively.
func appendLogRecord(b []byte, requestID, group string, attrs []slog.Attr, r slog.Record) []byte {
	lv := int64(r.Level)
	b = abi.AppendUvarint(b, uint64(lv<<1^lv>>63))
	b = abi.AppendString(b, r.Message)
	n := len(attrs) + r.NumAttrs()
	if requestID != "" {
		n++
	}
	b = abi.AppendUvarint(b, uint64(n))
	if requestID != "" {
		b = abi.AppendString(abi.AppendString(b, "request_id"), requestID)
	}
	for _, a := range attrs {
		b = appendLogAttr(b, group, a)
	}
	r.Attrs(func(a slog.Attr) bool {
		b = appendLogAttr(b, group, a)
		return true
	})
	return b
}

func appendLogAttr(b []byte, group string, a slog.Attr) []byte {
	if group != "" {
		b = abi.AppendUvarint(b, uint64(len(group)+1+len(a.Key)))
		b = append(append(append(b, group...), '.'), a.Key...)
	} else {
		b = abi.AppendString(b, a.Key)
	}
	v := a.Value.Resolve()
	var num [24]byte
	switch v.Kind() {
	case slog.KindString:
		return abi.AppendString(b, v.String())
	case slog.KindInt64:
		return abi.AppendBytes(b, strconv.AppendInt(num[:0], v.Int64(), 10))
	case slog.KindUint64:
		return abi.AppendBytes(b, strconv.AppendUint(num[:0], v.Uint64(), 10))
	case slog.KindBool:
		return abi.AppendString(b, strconv.FormatBool(v.Bool()))
	}
	return abi.AppendString(b, v.String())
}
