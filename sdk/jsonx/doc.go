// Package jsonx is the runtime of the SDK's generated JSON codecs: an
// appender API and a decoder over []byte that encode and decode exactly as
// encoding/json does (same bytes out, same values in, same error messages),
// without reflection.
//
// It is meant to be called by code that cmd/roam-jsongen writes (zz_json.go
// files with AppendJSON and DecodeJSON methods, which the SDK's codec picks
// up), not by hand, though nothing stops that. It imports only the standard
// library and none of reflect, fmt or encoding/json, so that it stays small
// and cheap inside a wasm guest, where every loop back-edge and most calls
// cost a check for interruption.
//
// # Compatibility with encoding/json
//
// Encoding: strings are escaped as encoding/json escapes them, HTML
// characters (<, >, &) and U+2028/U+2029 included, with invalid UTF-8
// replaced by U+FFFD; floats use encoding/json's ES6-style format; []byte is
// standard base64 (nil is null); json.RawMessage is validated and compacted
// (with HTML escaping) as encoding/json does with a Marshaler's output; map
// keys are sorted; NaN and infinities fail with the same message.
//
// Decoding: the input is checked as encoding/json checks it, with the same
// syntax error messages ("invalid character 'x' after object key", "unexpected
// end of JSON input", ...), and a syntax error anywhere wins over any other
// error, as it does in encoding/json, which validates before decoding. Type
// mismatches are reported with encoding/json's message ("json: cannot
// unmarshal string into Go struct field Order.quantity of type int"), the
// first one wins and decoding carries on past it, as encoding/json does.
// Field names match exactly first, then case-insensitively (Unicode simple
// folding, first field in declaration order wins); unknown fields are
// skipped; null leaves non-nullable values untouched and sets pointers,
// slices and maps to nil; strings are unescaped with surrogate pairs combined
// and invalid UTF-8 or lone surrogates replaced by U+FFFD; numbers parse into
// each integer and float size with encoding/json's range checks.
//
// What differs: the Offset fields of the error types are not guaranteed to
// equal encoding/json's, and errors are this package's types (with the same
// messages), not encoding/json's.
package jsonx
