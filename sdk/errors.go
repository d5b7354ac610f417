package sdk

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"unicode/utf8"

	"github.com/roam-dev/roam/abi"
)

// Code is a portable error code. It survives every boundary: guest↔host,
// HTTP, Dapr and JS each map it in exactly one place.
type Code = abi.Code

// The error codes an app or a capability may return.
const (
	OK                 = abi.OK
	InvalidArgument    = abi.InvalidArgument
	NotFound           = abi.NotFound
	Conflict           = abi.Conflict
	FailedPrecondition = abi.FailedPrecondition
	Unavailable        = abi.Unavailable
	DeadlineExceeded   = abi.DeadlineExceeded
	Internal           = abi.Internal
)

// Error is an error with a portable code. Handlers return it (usually through
// Errorf) to choose the status a caller sees; capabilities return it so that
// apps can branch on CodeOf(err).
type Error struct {
	Code    Code
	Message string
}

// Error returns the message alone, so that wrapped chains read naturally
// ("reserve: out of stock"); the code travels beside it, never inside it.
//
// An empty message reads as the code's name, so that no transport ever
// carries an error that says nothing.
func (e *Error) Error() string {
	if e.Message == "" {
		return e.Code.String()
	}
	return e.Message
}

// Is lets errors.Is(err, &sdk.Error{Code: sdk.Conflict}) match on code alone.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Message == "" && t.Code == e.Code
}

// Errorf returns an *Error with the given code and a formatted message.
func Errorf(code Code, format string, args ...any) error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// NewError returns an *Error without formatting; cheaper on hot paths.
func NewError(code Code, msg string) error { return &Error{Code: code, Message: msg} }

// CodeOf returns the code of err: OK for nil, the code of the first *Error in
// its chain, DeadlineExceeded for context deadlines, Unavailable for
// cancellation, and Internal for anything else.
func CodeOf(err error) Code {
	if err == nil {
		return OK
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return DeadlineExceeded
	case errors.Is(err, context.Canceled):
		return Unavailable
	}
	return Internal
}

// IsCode reports whether err carries code c.
func IsCode(err error, c Code) bool { return err != nil && CodeOf(err) == c }

// maxNameInMessage bounds the bytes of a name from a request that an error
// message repeats (QuoteName). An app id is at most 63 bytes, so any id of
// a real app is repeated whole.
const maxNameInMessage = 64

// maxKeyInMessage bounds the bytes of a state key that an error message
// repeats (QuoteKey). A key may be 16 KiB, and a message may name a few.
const maxKeyInMessage = 128

// QuoteName is %q of a name an error message repeats from a request (an
// app id, a method), cut to its first 64 bytes and followed by "…(N bytes)"
// when it is longer: the name may be as long as the request that carried
// it. The cut falls between characters: a character cut in two would print
// as \x escapes, and the browser host, which holds names as JavaScript
// strings, could not print the same bytes. An invalid byte counts as one
// character, as %q prints it. It is for hosts, and for the SDK's own
// messages, so that every host words them alike.
func QuoteName(s string) string { return quoteCut(s, maxNameInMessage) }

// QuoteKey is QuoteName for a state key, cut to its first 128 bytes: %q
// of any key up to 128 bytes, so that a message naming one reads as it
// always did. Every message that names a state key quotes it so, on every
// host: the browser host's copies of the backends' messages use quoteKey
// (web/src/wire.js), which prints the same bytes.
func QuoteKey(s string) string { return quoteCut(s, maxKeyInMessage) }

// quoteCut is %q of s, or of its first limit bytes cut between characters
// and followed by "…(N bytes)".
func quoteCut(s string, limit int) string {
	if len(s) <= limit {
		return strconv.Quote(s)
	}
	n := 0
	for n < len(s) {
		_, size := utf8.DecodeRuneInString(s[n:])
		if n+size > limit {
			break
		}
		n += size
	}
	return strconv.Quote(s[:n]) + "…(" + strconv.Itoa(len(s)) + " bytes)"
}
