package host_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/roam-dev/roam/abi"
	"github.com/roam-dev/roam/backend"
	"github.com/roam-dev/roam/backend/memory"
	"github.com/roam-dev/roam/conformance/testapp"
	"github.com/roam-dev/roam/host"
	"github.com/roam-dev/roam/host/native"
	"github.com/roam-dev/roam/sdk"
)

// fuzzVerbs are the HTTP methods the fuzzer picks from.
var fuzzVerbs = []string{http.MethodPost, http.MethodPut, http.MethodGet, http.MethodDelete, http.MethodPatch, http.MethodHead, http.MethodOptions, http.MethodConnect}

// fuzzStatuses are the only statuses a call may answer.
var fuzzStatuses = map[int]bool{
	http.StatusOK: true, http.StatusNoContent: true,
	http.StatusBadRequest: true, http.StatusNotFound: true, http.StatusMethodNotAllowed: true,
	http.StatusConflict: true, http.StatusRequestEntityTooLarge: true,
	http.StatusInternalServerError: true, http.StatusServiceUnavailable: true, http.StatusGatewayTimeout: true,
}

// FuzzServeCall feeds the HTTP transport arbitrary calls of the conformance
// app (method name, body bytes, HTTP verb) and checks that it never panics,
// answers only the statuses of the HTTP mapping, and that every error reply
// is a JSON {code, message} with a known code and a message.
func FuzzServeCall(f *testing.F) {
	b := memory.New(memory.Options{Retry: backend.RetryPolicy{MaxAttempts: 2, InitialBackoff: time.Millisecond, MaxBackoff: time.Millisecond}})
	f.Cleanup(func() { b.Close() })
	srv, err := native.NewServer(b, []*sdk.App{testapp.App}, host.Options{
		// Small limits, so that the fuzzer reaches 413 and 504 cheaply.
		MaxBodyBytes:   4 << 10,
		RequestTimeout: 50 * time.Millisecond,
	})
	if err != nil {
		f.Fatal(err)
	}
	h := srv.Handler()

	seeds := []struct {
		method string
		body   string
		verb   byte
	}{
		{"Echo", `{"a":1}`, 0},
		{"Echo", ``, 0},
		{"Put", `{"key":"k","value":{"v":1}}`, 0},
		{"Put", `{"key":"k","value":"x","etag":"1"}`, 1},
		{"Put", `{"key":42}`, 0},
		{"Put", `[1,2]`, 0},
		{"Get", `{"key":"k"}`, 0},
		{"Get", ``, 0},
		{"Delete", `{"key":"k","etag":"nope"}`, 0},
		{"BulkGet", `{"keys":["k","missing"]}`, 0},
		{"Transact", `{"ops":[{"op":"set","key":"a","value":1},{"op":"delete","key":"b"}]}`, 0},
		{"Transact", `{"ops":[{"op":"frob"}]}`, 0},
		{"Increment", `{"key":"c"}`, 0},
		{"Publish", `{"topic":"conf.events","data":{"x":1}}`, 0},
		{"Publish", `{"topic":"","data":1}`, 0},
		{"Received", `{"topic":"conf.events"}`, 0},
		{"Invoke", `{"app":"conformance","method":"Echo","body":{"via":"invoke"}}`, 0},
		{"Invoke", `{"app":"elsewhere","method":"Echo"}`, 0},
		{"Config", `{"key":"nope"}`, 0},
		{"Secret", `{"store":"s","key":"k"}`, 0},
		{"Fail", `{"code":"Conflict","message":"m"}`, 0},
		{"Fail", `{"code":"Bogus"}`, 0},
		{"Panic", `{"message":"boom"}`, 0},
		{"Sleep", `{"ms":1000}`, 0},
		{"Spin", `{}`, 0}, // wasm-only: refused natively
		{"Exit", `{}`, 0}, // wasm-only: refused natively
		{"NoSuchMethod", `{}`, 0},
		{"", `{}`, 0},
		{"Echo/../Get", `{}`, 0},
		{"Echo", `{"unterminated": `, 0},
		{"Echo", "\xff\xfe", 0},
		{"Echo", `"` + strings.Repeat("x", 5000) + `"`, 0},
		{"Echo", `{}`, 2},
		{"Get", `{"key":"k"}`, 5},
		{"Put", `{}`, 6},
		{"Get", `{"key":"k"}`, 7},
		{"..", `{}`, 7},
	}
	for _, s := range seeds {
		f.Add(s.method, []byte(s.body), s.verb)
	}

	f.Fuzz(func(t *testing.T, method string, body []byte, verb byte) {
		v := fuzzVerbs[int(verb)%len(fuzzVerbs)]
		target := "/v1/apps/" + testapp.ID + "/methods/" + url.PathEscape(method)
		req := httptest.NewRequest(v, target, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req) // a panic here fails the fuzz run

		status := rec.Code
		if (method == "." || method == "..") && v != http.MethodConnect {
			// A dot segment: net/http's ServeMux redirects to the cleaned
			// path before any handler of ours runs (a CONNECT is refused
			// before the mux, as every path is).
			if (status != http.StatusTemporaryRedirect && status != http.StatusMovedPermanently) || rec.Header().Get("Location") == "" {
				t.Fatalf("%s %s: status %d, want the mux's redirect to the clean path", v, target, status)
			}
			return
		}
		if !fuzzStatuses[status] {
			t.Fatalf("%s %s %q: status %d is outside the HTTP mapping; body %q", v, target, body, status, rec.Body.Bytes())
		}
		if status < 300 {
			return
		}
		if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
			t.Fatalf("%s %s %q: %d with Content-Type %q", v, target, body, status, ct)
		}
		var e host.ErrorBody
		if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil {
			t.Fatalf("%s %s %q: %d with a body that is not JSON: %q", v, target, body, status, rec.Body.Bytes())
		}
		code, known := abi.ParseCode(e.Code)
		if e.Code == "" || e.Message == "" || !known || code == abi.OK {
			t.Fatalf("%s %s %q: %d with error body %q: want a known code and a message", v, target, body, status, rec.Body.Bytes())
		}
		// The status is the code's, except for the transport's own 405/413.
		if status != http.StatusMethodNotAllowed && status != http.StatusRequestEntityTooLarge && host.HTTPStatus(code) != status {
			t.Fatalf("%s %s %q: status %d but code %s maps to %d", v, target, body, status, e.Code, host.HTTPStatus(code))
		}
	})
}
