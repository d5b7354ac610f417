package jsonx

import "strconv"

// SyntaxError is a JSON syntax error. Its message is encoding/json's for the
// same input.
type SyntaxError struct {
	msg    string
	Offset int64 // the error occurred after reading Offset bytes
}

func (e *SyntaxError) Error() string { return e.msg }

// UnmarshalTypeError is a JSON value that does not fit the Go type it is
// decoded into. Its message is encoding/json's.
type UnmarshalTypeError struct {
	Value  string // "string", "number", "number 1.5", "bool", "array", "object"
	Type   string // the Go type, as reflect.Type.String() prints it
	Offset int64
	Struct string // the innermost struct type holding the field, when in a field
	Field  string // the field path from the root, json names joined by "."
}

func (e *UnmarshalTypeError) Error() string {
	if e.Struct != "" || e.Field != "" {
		return "json: cannot unmarshal " + e.Value + " into Go struct field " + e.Struct + "." + e.Field + " of type " + e.Type
	}
	return "json: cannot unmarshal " + e.Value + " into Go value of type " + e.Type
}

// UnsupportedValueError is a value encoding/json refuses to encode: a NaN or
// infinite float.
type UnsupportedValueError struct {
	Str string
}

func (e *UnsupportedValueError) Error() string { return "json: unsupported value: " + e.Str }

// MarshalerError is an error from a MarshalJSON method, or from checking its
// output.
type MarshalerError struct {
	Type string
	Err  error
}

func (e *MarshalerError) Error() string {
	return "json: error calling MarshalJSON for type " + e.Type + ": " + e.Err.Error()
}

func (e *MarshalerError) Unwrap() error { return e.Err }

// quoteChar formats c as encoding/json's scanner does in its messages.
func quoteChar(c byte) string {
	if c == '\'' {
		return `'\''`
	}
	if c == '"' {
		return `'"'`
	}
	s := strconv.Quote(string(rune(c)))
	return "'" + s[1:len(s)-1] + "'"
}

func syntaxError(c byte, context string, offset int) *SyntaxError {
	return &SyntaxError{msg: "invalid character " + quoteChar(c) + " " + context, Offset: int64(offset)}
}

func eofError(n int) *SyntaxError {
	return &SyntaxError{msg: "unexpected end of JSON input", Offset: int64(n)}
}
