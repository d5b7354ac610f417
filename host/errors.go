package host

import (
	"encoding/json"
	"net/http"

	"github.com/roam-dev/roam/abi"
	"github.com/roam-dev/roam/sdk"
)

// HTTPStatus maps a portable code to an HTTP status. This is the one place
// the HTTP transport does so; StatusCode is its inverse for callers.
func HTTPStatus(c sdk.Code) int {
	switch c {
	case sdk.OK:
		return http.StatusOK
	case sdk.InvalidArgument, sdk.FailedPrecondition:
		return http.StatusBadRequest
	case sdk.NotFound:
		return http.StatusNotFound
	case sdk.Conflict:
		return http.StatusConflict
	case sdk.Unavailable:
		return http.StatusServiceUnavailable
	case sdk.DeadlineExceeded:
		return http.StatusGatewayTimeout
	}
	return http.StatusInternalServerError
}

// StatusCode maps an HTTP status to a portable code, for replies that carry
// no JSON error body (a proxy's 502, say).
func StatusCode(status int) sdk.Code {
	switch {
	case status < 300:
		return sdk.OK
	case status == http.StatusNotFound:
		return sdk.NotFound
	case status == http.StatusConflict:
		return sdk.Conflict
	case status == http.StatusPreconditionFailed:
		return sdk.FailedPrecondition
	case status == http.StatusBadGateway, status == http.StatusServiceUnavailable, status == http.StatusTooManyRequests:
		return sdk.Unavailable
	case status == http.StatusGatewayTimeout, status == http.StatusRequestTimeout:
		return sdk.DeadlineExceeded
	case status < 500:
		return sdk.InvalidArgument
	}
	return sdk.Internal
}

// ErrorBody is the JSON body of every error reply.
type ErrorBody struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// EncodeError renders err as its JSON error body.
func EncodeError(err error) []byte {
	b, _ := json.Marshal(ErrorBody{Code: sdk.CodeOf(err).String(), Message: err.Error()})
	return b
}

// DecodeError turns an error reply back into an *sdk.Error, so that a code
// survives an HTTP hop unchanged.
func DecodeError(status int, body []byte) error {
	var eb ErrorBody
	if json.Unmarshal(body, &eb) == nil && eb.Code != "" {
		c, ok := abi.ParseCode(eb.Code)
		if !ok {
			c = sdk.Internal
		}
		return &sdk.Error{Code: c, Message: eb.Message}
	}
	msg := http.StatusText(status)
	if len(body) > 0 && len(body) < 512 {
		msg += ": " + string(body)
	}
	return &sdk.Error{Code: StatusCode(status), Message: msg}
}

func writeError(w http.ResponseWriter, status int, err error) {
	h := w.Header()
	h["Content-Type"] = jsonContentType
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	w.Write(EncodeError(err))
}
