// Package abi is the leaf wire contract shared by every Roam guest and host.
//
// It holds only what both sides of a boundary must agree on byte for byte:
// the error codes that survive every hop (guest↔host, HTTP, Dapr, JS), and,
// as the edge target lands, the wasm import/export names and their framing.
// It imports nothing outside the standard library and nothing of Roam's, so
// the SDK (built for wasip1 and js) and every host can depend on it.
package abi

// Code is a portable error code. Its numeric values are part of the wire
// contract: they cross the wasm boundary as integers, so never renumber them.
type Code uint32

// The codes. OK is the absence of an error and is never carried by an error value.
const (
	OK                 Code = 0
	InvalidArgument    Code = 1
	NotFound           Code = 2
	Conflict           Code = 3
	FailedPrecondition Code = 4
	Unavailable        Code = 5
	DeadlineExceeded   Code = 6
	Internal           Code = 7
)

var codeNames = [...]string{
	OK:                 "OK",
	InvalidArgument:    "InvalidArgument",
	NotFound:           "NotFound",
	Conflict:           "Conflict",
	FailedPrecondition: "FailedPrecondition",
	Unavailable:        "Unavailable",
	DeadlineExceeded:   "DeadlineExceeded",
	Internal:           "Internal",
}

// String returns the code's name as it appears in JSON error bodies.
func (c Code) String() string {
	if int(c) < len(codeNames) {
		return codeNames[c]
	}
	return "Internal"
}

// ParseCode maps a name produced by String back to its Code. Unknown names
// report false; callers treat them as Internal.
func ParseCode(s string) (Code, bool) {
	for i, n := range codeNames {
		if n == s {
			return Code(i), true
		}
	}
	return Internal, false
}

// Valid reports whether c is one of the defined codes.
func (c Code) Valid() bool { return int(c) < len(codeNames) }
