package sdk

import (
	"encoding/json"
)

// The SDK's codec is JSON. Types may bypass encoding/json's reflection, which
// is the dominant cost of a wasm guest, by implementing these two methods;
// reflection remains the fallback, so plain structs just work.
//
// AppendJSON appends the value's JSON encoding to b. DecodeJSON replaces the
// receiver's contents with the decoding of data; like json.Unmarshaler, it
// must copy what it keeps of data, which a wasm guest reuses after the call.
type (
	jsonAppender interface {
		AppendJSON(b []byte) ([]byte, error)
	}
	jsonDecoder interface {
		DecodeJSON(data []byte) error
	}
)

func marshal(v any) ([]byte, error) {
	if a, ok := v.(jsonAppender); ok {
		return a.AppendJSON(make([]byte, 0, 128))
	}
	return json.Marshal(v)
}

// unmarshal decodes data into v. Empty data decodes as the zero value, so a
// request with no body reaches the handler as its zero request.
func unmarshal(data []byte, v any) error {
	if len(data) == 0 {
		return nil
	}
	if d, ok := v.(jsonDecoder); ok {
		return d.DecodeJSON(data)
	}
	return json.Unmarshal(data, v)
}

// Marshal encodes v as the SDK does on the wire: through AppendJSON when v
// has it, through encoding/json otherwise.
func Marshal(v any) ([]byte, error) { return marshal(v) }

// Unmarshal decodes data as the SDK does on the wire. Empty data leaves v
// untouched.
func Unmarshal(data []byte, v any) error { return unmarshal(data, v) }
