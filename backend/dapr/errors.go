package dapr

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"unicode/utf8"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/roam-dev/roam/abi"
	"github.com/roam-dev/roam/host"
	"github.com/roam-dev/roam/sdk"
)

// Every error that crosses the sidecar is mapped onto the SDK's codes here,
// and only here: gRPC statuses from the sidecar's API, HTTP statuses and
// bodies from its HTTP API and from invoked apps, and the status replies of
// the app channel.

// grpcCode is the gRPC code an app-channel error is sent with, so that a
// caller going through the sidecar's HTTP API (which turns a gRPC app's
// status into {"code": <int>, "message"}) gets the original code back. The
// mapping is one-to-one on the SDK's codes.
func grpcCode(c sdk.Code) codes.Code {
	switch c {
	case sdk.OK:
		return codes.OK
	case sdk.InvalidArgument:
		return codes.InvalidArgument
	case sdk.NotFound:
		return codes.NotFound
	case sdk.Conflict:
		return codes.Aborted
	case sdk.FailedPrecondition:
		return codes.FailedPrecondition
	case sdk.Unavailable:
		return codes.Unavailable
	case sdk.DeadlineExceeded:
		return codes.DeadlineExceeded
	}
	return codes.Internal
}

// codeOfGRPC is the inverse of grpcCode, extended to every gRPC code.
func codeOfGRPC(c codes.Code) sdk.Code {
	switch c {
	case codes.OK:
		return sdk.OK
	case codes.InvalidArgument, codes.OutOfRange:
		return sdk.InvalidArgument
	case codes.NotFound:
		return sdk.NotFound
	case codes.Aborted, codes.AlreadyExists:
		return sdk.Conflict
	case codes.FailedPrecondition, codes.PermissionDenied, codes.Unauthenticated, codes.Unimplemented:
		return sdk.FailedPrecondition
	case codes.Unavailable, codes.Canceled, codes.ResourceExhausted:
		return sdk.Unavailable
	case codes.DeadlineExceeded:
		return sdk.DeadlineExceeded
	}
	return sdk.Internal
}

// unreachable reports whether a sidecar error message says that the engine
// behind it (Redis, say) could not be reached. Dapr reports those as
// internal errors with the driver's message; Roam reports them as
// Unavailable, as it does for the sidecar itself.
func unreachable(msg string) bool {
	m := strings.ToLower(msg)
	for _, s := range []string{"connection refused", "connect: ", "dial tcp", "i/o timeout", "connection reset",
		"broken pipe", "no route to host", "connection pool timeout", "closed network connection", "loading dataset"} {
		if strings.Contains(m, s) {
			return true
		}
	}
	return hasWord(m, "eof") // as a word: a key such as "geofence" is in the message
}

// maxBody bounds what the backend reads of a body from the sidecar: an
// event it delivers, a reply it relays.
const maxBody = 64 << 20

var errTooBig = errors.New("exceeds 64 MiB")

// readBody reads all of r, refusing more than maxBody bytes rather than
// cutting them off (a cut reply would pass for a whole one, a cut event for
// malformed JSON).
func readBody(r io.Reader) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, maxBody+1))
	if err == nil && len(b) > maxBody {
		return nil, errTooBig
	}
	return b, err
}

// hasWord reports whether w occurs in s between non-alphanumeric bytes.
func hasWord(s, w string) bool {
	for i := 0; ; {
		j := strings.Index(s[i:], w)
		if j < 0 {
			return false
		}
		start, end := i+j, i+j+len(w)
		if (start == 0 || !alnum(s[start-1])) && (end == len(s) || !alnum(s[end])) {
			return true
		}
		i = start + 1
	}
}

func alnum(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' }

// etagMismatch reports whether a sidecar error message is a failed
// concurrency check: an ETag mismatch of a single write, or the failed
// write of a Redis transaction (which Dapr reports as a plain error).
func etagMismatch(msg string) bool {
	m := strings.ToLower(msg)
	return strings.Contains(m, "etag mismatch") || strings.Contains(m, "failed to set key") ||
		strings.Contains(m, "failed to delete") || strings.Contains(m, "etag") && strings.Contains(m, "mismatch")
}

// apiErr maps an error from the sidecar's gRPC API. what names the
// operation for the message ("state get statestore/k").
func (b *Backend) grpcErr(ctx context.Context, what string, err error) error {
	if err == nil {
		return nil
	}
	if cerr := ctx.Err(); cerr != nil {
		return ctxErr(what, b.grpcAddr, cerr)
	}
	var se *sdk.Error
	if errors.As(err, &se) {
		return err
	}
	st, ok := status.FromError(err)
	if !ok {
		return sdk.Errorf(sdk.Unavailable, "dapr %s: sidecar at %s is unreachable: %v", what, b.grpcAddr, err)
	}
	msg := st.Message()
	switch st.Code() {
	case codes.Unavailable:
		return sdk.Errorf(sdk.Unavailable, "dapr %s: sidecar at %s is unavailable: %s", what, b.grpcAddr, clipMsg(msg))
	case codes.Canceled:
		return sdk.Errorf(sdk.Unavailable, "dapr %s: cancelled: %s", what, clipMsg(msg))
	case codes.Unauthenticated:
		return sdk.Errorf(sdk.FailedPrecondition, "dapr %s: the sidecar rejected the API token (DAPR_API_TOKEN): %s", what, clipMsg(msg))
	}
	return b.classify(what, codeOfGRPC(st.Code()), msg)
}

// classify refines a code from the sidecar with what its message says.
// An unreachable store is told apart first: Dapr's Redis store words every
// failed write as a concurrency failure ("failed to set key k: dial tcp
// ...: connection refused", and Aborted "possible etag mismatch. error
// from state store: ..." for any failed delete), which would otherwise be
// a Conflict, and an IfAbsent write's "key already exists". It reads the
// whole message and repeats it cut (clipMsg): the part that tells may come
// after a long key.
func (b *Backend) classify(what string, c sdk.Code, msg string) error {
	switch {
	case unreachable(msg) && (c == sdk.Internal || c == sdk.Unavailable || c == sdk.Conflict):
		return sdk.Errorf(sdk.Unavailable, "dapr %s: the component behind the sidecar is unreachable: %s", what, clipMsg(msg))
	case etagMismatch(msg) && (c == sdk.Conflict || c == sdk.Internal || c == sdk.InvalidArgument):
		return sdk.Errorf(sdk.Conflict, "dapr %s: %s", what, clipMsg(msg))
	}
	return sdk.Errorf(c, "dapr %s: %s", what, clipMsg(msg))
}

// maxSidecarMsg bounds the bytes of a sidecar's message that an error
// repeats: the sidecar's messages name keys ("failed to set key k: ..."),
// and a key may be 16 KiB.
const maxSidecarMsg = 512

// clipMsg is msg cut to its first maxSidecarMsg bytes, between characters,
// and "..." when it is longer.
func clipMsg(msg string) string {
	if len(msg) <= maxSidecarMsg {
		return msg
	}
	n := maxSidecarMsg
	for n > 0 && !utf8.RuneStart(msg[n]) {
		n--
	}
	return msg[:n] + "..."
}

// keyInMessage is a Dapr key as the backend's own messages name it ("state
// get statestore/k"): as it is, as it always was, up to the 128 bytes that
// sdk.QuoteKey repeats whole, and QuoteKey's cut of it beyond.
func keyInMessage(k string) string {
	if len(k) <= 128 {
		return k
	}
	return sdk.QuoteKey(k)
}

// daprErrorBody is the body of an error reply from the sidecar's HTTP API.
type daprErrorBody struct {
	ErrorCode string `json:"errorCode"`
	Message   string `json:"message"`
}

// httpAPIErr maps an error reply from the sidecar's HTTP API.
func (b *Backend) httpAPIErr(what string, statusCode int, body []byte) error {
	var eb daprErrorBody
	msg := strings.TrimSpace(string(body))
	if json.Unmarshal(body, &eb) == nil && eb.Message != "" {
		msg = eb.Message
		if eb.ErrorCode != "" {
			msg = eb.ErrorCode + ": " + eb.Message
		}
	}
	switch statusCode {
	case http.StatusUnauthorized:
		return sdk.Errorf(sdk.FailedPrecondition, "dapr %s: the sidecar rejected the API token (DAPR_API_TOKEN): %s", what, clipMsg(msg))
	case http.StatusConflict:
		return sdk.Errorf(sdk.Conflict, "dapr %s: %s", what, clipMsg(msg))
	}
	return b.classify(what, codeOfHTTP(statusCode), msg)
}

// ctxErr is the error of a call to the sidecar at addr whose context ended
// first. A deadline names the sidecar: a hung one (stopped, starved) is
// seen only this way, and "context deadline exceeded" alone does not say
// what did not answer. (The deadline may also have passed before the call:
// the sidecar had no time to answer either way.)
func ctxErr(what, addr string, cerr error) error {
	if errors.Is(cerr, context.DeadlineExceeded) {
		return sdk.Errorf(sdk.DeadlineExceeded, "dapr %s: the call's deadline passed before the sidecar at %s answered: %v", what, addr, cerr)
	}
	return sdk.Errorf(sdk.CodeOf(cerr), "dapr %s: cancelled before the sidecar at %s answered: %v", what, addr, cerr)
}

// transportErr maps a failure to reach the sidecar over HTTP.
func (b *Backend) transportErr(ctx context.Context, what string, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		return ctxErr(what, b.httpBase, cerr)
	}
	// The client's error names the request's URL, whose path holds the
	// key, escaped: up to three times its 16 KiB.
	var ue *url.Error
	if errors.As(err, &ue) && len(ue.URL) > maxSidecarMsg {
		err = &url.Error{Op: ue.Op, URL: clipMsg(ue.URL), Err: ue.Err}
	}
	return sdk.Errorf(sdk.Unavailable, "dapr %s: sidecar at %s is unreachable: %v", what, b.httpBase, err)
}

// codeOfHTTP maps an HTTP status to a code as the host's transport does
// (host.StatusCode), except that the sidecar's 401 and 403 mean a missing or
// wrong API token: a precondition of the deployment, not a bad argument.
func codeOfHTTP(status int) sdk.Code {
	if status == http.StatusUnauthorized || status == http.StatusForbidden {
		return sdk.FailedPrecondition
	}
	return host.StatusCode(status)
}

// invokeReplyErr turns the error reply of an invocation through the
// sidecar's HTTP API back into the callee's error:
//
//   - Roam's own {"code": "Conflict", "message"}, which an HTTP app (a Roam
//     host) replies with and the sidecar passes through unchanged;
//   - the sidecar's rendering of a gRPC app's status, {"code": 10,
//     "message"}, whose gRPC code maps back one-to-one (grpcCode);
//   - the sidecar's own errors ({"errorCode": "ERR_DIRECT_INVOKE"}), which
//     mean the callee could not be reached: Unavailable;
//   - anything else by HTTP status.
func invokeReplyErr(target, method string, statusCode int, body []byte) error {
	var roam struct {
		Code    json.RawMessage `json:"code"`
		Message string          `json:"message"`
	}
	if json.Unmarshal(body, &roam) == nil && len(roam.Code) > 0 {
		var name string
		var num int
		switch {
		case json.Unmarshal(roam.Code, &name) == nil:
			c, ok := abi.ParseCode(name)
			if !ok || c == abi.OK {
				c = abi.Internal
			}
			return &sdk.Error{Code: c, Message: roam.Message}
		case json.Unmarshal(roam.Code, &num) == nil && num > 0 && num <= int(codes.Unauthenticated):
			return &sdk.Error{Code: codeOfGRPC(codes.Code(num)), Message: roam.Message}
		}
	}
	var eb daprErrorBody
	if json.Unmarshal(body, &eb) == nil && eb.ErrorCode != "" {
		c := sdk.Unavailable
		switch {
		case statusCode == http.StatusUnauthorized || statusCode == http.StatusForbidden:
			c = sdk.FailedPrecondition
		case statusCode == http.StatusGatewayTimeout || strings.Contains(strings.ToLower(eb.Message), "deadline exceeded"):
			c = sdk.DeadlineExceeded
		}
		return sdk.Errorf(c, "invoke %s.%s through dapr: %s: %s", target, method, eb.ErrorCode, eb.Message)
	}
	msg := strings.TrimSpace(string(body))
	if len(msg) > 200 {
		msg = msg[:200] + "..."
	}
	if msg == "" {
		msg = http.StatusText(statusCode)
	}
	return sdk.Errorf(codeOfHTTP(statusCode), "invoke %s.%s through dapr: HTTP %d: %s", target, method, statusCode, msg)
}

// statusErr renders err as the gRPC status an app-channel call fails with.
func statusErr(err error) error {
	return status.Error(grpcCode(sdk.CodeOf(err)), err.Error())
}

func errorf(c sdk.Code, format string, args ...any) error {
	return &sdk.Error{Code: c, Message: fmt.Sprintf(format, args...)}
}
