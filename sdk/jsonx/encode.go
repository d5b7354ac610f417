package jsonx

import (
	"encoding/base64"
	"math"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"
)

const hexDigits = "0123456789abcdef"

// MaxInt and MaxUint are the largest int and uint, for generated code.
const (
	MaxInt  = math.MaxInt
	MaxUint = math.MaxUint
)

// AppendString appends s as a JSON string, escaped exactly as encoding/json
// escapes it: HTML characters and U+2028/U+2029 as \u escapes, invalid UTF-8
// as \ufffd.
func AppendString(b []byte, s string) []byte {
	// Check the string eight bytes at a time, the last (partial) word
	// overlapping the one before, or padded when s is short.
	var m uint64
	n := len(s)
	if n >= 8 {
		for i := 0; i+8 < n && m == 0; i += 8 {
			m = encodeMask(load64s(s, i))
		}
		m |= encodeMask(load64s(s, n-8))
	} else {
		w := [8]byte{'a', 'a', 'a', 'a', 'a', 'a', 'a', 'a'}
		copy(w[:], s)
		m = encodeMask(load64(w[:], 0))
	}
	if m != 0 {
		return appendStringSlow(append(b, '"'), s, 0)
	}
	l := len(b)
	if cap(b)-l < n+2 {
		b = grow(b, n+2)
	}
	b = b[:l+n+2]
	b[l] = '"'
	copy(b[l+1:], s)
	b[l+n+1] = '"'
	return b
}

// appendStringSlow is encoding/json's appendString from i on, where s[:i]
// needs no escaping.
func appendStringSlow(dst []byte, src string, i int) []byte {
	start := 0
	for i < len(src) {
		if b := src[i]; b < utf8.RuneSelf {
			if b >= 0x20 && b != '"' && b != '\\' && b != '<' && b != '>' && b != '&' {
				i++
				if i+8 <= len(src) && encodeMask(load64s(src, i)) == 0 {
					i += 8
				}
				continue
			}
			dst = append(dst, src[start:i]...)
			switch b {
			case '\\', '"':
				dst = append(dst, '\\', b)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[b>>4], hexDigits[b&0xF])
			}
			i++
			start = i
			continue
		}
		c, size := utf8.DecodeRuneInString(src[i:])
		if c == utf8.RuneError && size == 1 {
			dst = append(dst, src[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if c == '\u2028' || c == '\u2029' {
			dst = append(dst, src[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[c&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, src[start:]...)
	return append(dst, '"')
}

// AppendStringField appends key (a member's key and colon, and the comma
// before it if any) and s as AppendString does: one call per member for
// generated code.
func AppendStringField(b []byte, key, s string) []byte {
	var m uint64
	n := len(s)
	if n >= 8 {
		for i := 0; i+8 < n && m == 0; i += 8 {
			m = encodeMask(load64s(s, i))
		}
		m |= encodeMask(load64s(s, n-8))
	} else {
		w := [8]byte{'a', 'a', 'a', 'a', 'a', 'a', 'a', 'a'}
		copy(w[:], s)
		m = encodeMask(load64(w[:], 0))
	}
	if m != 0 {
		return appendStringSlow(append(append(b, key...), '"'), s, 0)
	}
	l, k := len(b), len(key)
	if cap(b)-l < k+n+2 {
		b = grow(b, k+n+2)
	}
	b = b[:l+k+n+2]
	copy(b[l:], key)
	b[l+k] = '"'
	copy(b[l+k+1:], s)
	b[l+k+n+1] = '"'
	return b
}

// AppendIntField appends key and v.
func AppendIntField(b []byte, key string, v int64) []byte {
	if 0 <= v && v < 10 {
		l, k := len(b), len(key)
		if cap(b)-l < k+1 {
			b = grow(b, k+1)
		}
		b = b[:l+k+1]
		copy(b[l:], key)
		b[l+k] = byte('0' + v)
		return b
	}
	return strconv.AppendInt(append(b, key...), v, 10)
}

// AppendUintField appends key and v.
func AppendUintField(b []byte, key string, v uint64) []byte {
	if v < 10 {
		return AppendIntField(b, key, int64(v))
	}
	return strconv.AppendUint(append(b, key...), v, 10)
}

// AppendBoolField appends key and v.
func AppendBoolField(b []byte, key string, v bool) []byte {
	lit := "false"
	if v {
		lit = "true"
	}
	l, k := len(b), len(key)
	if cap(b)-l < k+5 {
		b = grow(b, k+5)
	}
	b = b[:l+k+len(lit)]
	copy(b[l:], key)
	copy(b[l+k:], lit)
	return b
}

// grow returns b with room for n more bytes.
func grow(b []byte, n int) []byte {
	return append(b, make([]byte, n)...)[:len(b)]
}

// AppendBool appends true or false.
func AppendBool(b []byte, v bool) []byte {
	if v {
		return append(b, "true"...)
	}
	return append(b, "false"...)
}

// AppendInt appends v in decimal.
func AppendInt(b []byte, v int64) []byte {
	if 0 <= v && v < 10 {
		return append(b, byte('0'+v))
	}
	return strconv.AppendInt(b, v, 10)
}

// AppendUint appends v in decimal.
func AppendUint(b []byte, v uint64) []byte {
	if v < 10 {
		return append(b, byte('0'+v))
	}
	return strconv.AppendUint(b, v, 10)
}

// AppendFloat appends f as encoding/json formats a float of the given size
// (32 or 64). NaN and infinities are an *UnsupportedValueError.
func AppendFloat(b []byte, f float64, bits int) ([]byte, error) {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return b, &UnsupportedValueError{Str: strconv.FormatFloat(f, 'g', -1, bits)}
	}
	abs := math.Abs(f)
	format := byte('f')
	if abs != 0 {
		if bits == 64 && (abs < 1e-6 || abs >= 1e21) || bits == 32 && (float32(abs) < 1e-6 || float32(abs) >= 1e21) {
			format = 'e'
		}
	}
	b = strconv.AppendFloat(b, f, format, -1, bits)
	if format == 'e' {
		// clean up e-09 to e-9
		n := len(b)
		if n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b, nil
}

// AppendBytes appends v as a base64 JSON string, or null when v is nil.
func AppendBytes(b []byte, v []byte) []byte {
	if v == nil {
		return append(b, "null"...)
	}
	b = append(b, '"')
	b = base64.StdEncoding.AppendEncode(b, v)
	return append(b, '"')
}

// AppendRaw appends a json.RawMessage as encoding/json does: null when nil,
// otherwise validated and compacted, with HTML characters escaped.
func AppendRaw(b []byte, raw []byte) ([]byte, error) {
	if raw == nil {
		return append(b, "null"...), nil
	}
	out, err := AppendCompact(b, raw)
	if err != nil {
		return b, &MarshalerError{Type: "json.RawMessage", Err: err}
	}
	return out, nil
}

// Marshaler is encoding/json's Marshaler.
type Marshaler interface {
	MarshalJSON() ([]byte, error)
}

// Unmarshaler is encoding/json's Unmarshaler.
type Unmarshaler interface {
	UnmarshalJSON([]byte) error
}

// AppendMarshaler appends the output of m.MarshalJSON, validated and
// compacted as encoding/json does. typ names m's type in errors.
func AppendMarshaler(b []byte, m Marshaler, typ string) ([]byte, error) {
	out, err := m.MarshalJSON()
	if err == nil {
		var r []byte
		if r, err = AppendCompact(b, out); err == nil {
			return r, nil
		}
	}
	return b, &MarshalerError{Type: typ, Err: err}
}

// AppendTime appends t as time.Time's MarshalJSON writes it (RFC 3339 with
// nanoseconds), failing as it does for years outside [0,9999] and zone
// offsets of 24 hours or more.
func AppendTime(b []byte, t time.Time) ([]byte, error) {
	n0 := len(b)
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	s := b[n0+1:]
	bad := len(s) < 5 || s[4] != '-'
	if !bad && s[len(s)-1] != 'Z' {
		z := s[len(s)-6:]
		bad = '0' <= z[0] && z[0] <= '9' || 10*(z[1]-'0')+(z[2]-'0') >= 24
	}
	if bad {
		_, err := t.MarshalJSON()
		return b[:n0], &MarshalerError{Type: "time.Time", Err: err}
	}
	return append(b, '"'), nil
}

// SortedKeys returns the keys of m in the order encoding/json writes them.
func SortedKeys[K ~string, V any](m map[K]V) []K {
	keys := make([]K, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// IntKey is an integer map key with its JSON text.
type IntKey[K any] struct {
	Key  K
	Text string
}

// SortedIntKeys returns the keys of m in the order encoding/json writes them:
// sorted by their decimal text.
func SortedIntKeys[K ~int | ~int8 | ~int16 | ~int32 | ~int64, V any](m map[K]V) []IntKey[K] {
	keys := make([]IntKey[K], 0, len(m))
	for k := range m {
		keys = append(keys, IntKey[K]{k, strconv.FormatInt(int64(k), 10)})
	}
	slices.SortFunc(keys, func(a, b IntKey[K]) int { return compareStrings(a.Text, b.Text) })
	return keys
}

// SortedUintKeys is SortedIntKeys for unsigned keys.
func SortedUintKeys[K ~uint | ~uint8 | ~uint16 | ~uint32 | ~uint64 | ~uintptr, V any](m map[K]V) []IntKey[K] {
	keys := make([]IntKey[K], 0, len(m))
	for k := range m {
		keys = append(keys, IntKey[K]{k, strconv.FormatUint(uint64(k), 10)})
	}
	slices.SortFunc(keys, func(a, b IntKey[K]) int { return compareStrings(a.Text, b.Text) })
	return keys
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
