package e2e_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestBadInput sends the real binary the requests a careless or hostile
// client would: each gets the right status and a JSON {code, message}
// body, and the host keeps serving.
func TestBadInput(t *testing.T) {
	t.Parallel()
	h := startHost(t, t.TempDir(), shopAndConformance)
	// 10 MB of valid JSON: refused for its size alone.
	big := append(append([]byte(`{"pad":"`), bytes.Repeat([]byte("x"), 10<<20)...), `"}`...)

	cases := []struct {
		name   string
		verb   string
		path   string
		body   any // nil: no body
		status int
		code   string
		msg    string // substring of the message, when set
	}{
		{"malformed JSON", "POST", "/v1/apps/conformance/methods/Echo", `{"unterminated": `, 400, "InvalidArgument", "not valid JSON"},
		{"trailing garbage", "POST", "/v1/apps/orders/methods/Create", `{"customer":"c","sku":"s","quantity":1} x`, 400, "InvalidArgument", "not valid JSON"},
		{"wrong type", "POST", "/v1/apps/orders/methods/Create", `{"customer": 42, "sku": "s", "quantity": 1}`, 400, "InvalidArgument", "customer"},
		{"wrong shape", "POST", "/v1/apps/orders/methods/Create", `[1, 2, 3]`, 400, "InvalidArgument", ""},
		{"missing field", "POST", "/v1/apps/orders/methods/Create", `{"sku": "s", "quantity": 1}`, 400, "InvalidArgument", "customer is required"},
		{"unknown app", "POST", "/v1/apps/nosuchapp/methods/Get", `{}`, 404, "NotFound", "orders"},
		{"unknown method", "POST", "/v1/apps/orders/methods/NoSuchMethod", `{}`, 404, "NotFound", "Create"},
		{"10 MB body", "POST", "/v1/apps/conformance/methods/Echo", big, 413, "InvalidArgument", "exceeds"},
		{"10 MB body, chunked", "POST", "/v1/apps/conformance/methods/Echo", io.MultiReader(bytes.NewReader(big)), 413, "InvalidArgument", "exceeds"},
		{"empty body", "POST", "/v1/apps/orders/methods/Create", nil, 400, "InvalidArgument", "customer is required"},
		{"empty body, empty key", "POST", "/v1/apps/conformance/methods/Get", "", 400, "InvalidArgument", "key"},
		{"GET instead of POST", "GET", "/v1/apps/orders/methods/Create", nil, 405, "InvalidArgument", "POST"},
		{"DELETE instead of POST", "DELETE", "/v1/apps/orders/methods/Create", nil, 405, "InvalidArgument", "POST"},
		{"unknown route", "POST", "/v2/whatever/else", `{}`, 404, "NotFound", "/v1/apps/"},
		{"not a method path", "POST", "/v1/apps/orders", `{}`, 404, "NotFound", ""},
	}
	for _, c := range cases {
		t.Run(strings.ReplaceAll(c.name, " ", "_"), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			status, body, hdr, err := post(ctx, h.URL, c.verb, c.path, c.body)
			if err != nil {
				t.Fatalf("%s %s: %v", c.verb, c.path, err)
			}
			if status != c.status {
				t.Fatalf("%s %s: status %d, want %d; body %s", c.verb, c.path, status, c.status, body)
			}
			if ct := hdr.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q, want application/json", ct)
			}
			var e errorBody
			dec := json.NewDecoder(bytes.NewReader(body))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&e); err != nil {
				t.Fatalf("body %q is not a JSON {code, message}: %v", body, err)
			}
			if e.Code != c.code || e.Message == "" {
				t.Fatalf("error %+v, want code %s and a message", e, c.code)
			}
			if !strings.Contains(e.Message, c.msg) {
				t.Errorf("message %q does not mention %q", e.Message, c.msg)
			}
			if status == http.StatusMethodNotAllowed && !strings.Contains(hdr.Get("Allow"), "POST") {
				t.Errorf("405 without an Allow header naming POST: %q", hdr.Get("Allow"))
			}
		})
	}

	// Still healthy, still serving.
	if s, b := h.get(t, "/healthz"); s != http.StatusOK {
		t.Fatalf("/healthz after bad input: %d %s", s, b)
	}
	if s, b := h.call(t, "conformance", "Echo", `{"still":"serving"}`); s != http.StatusOK || !jsonEqual(b, []byte(`{"still":"serving"}`)) {
		t.Fatalf("echo after bad input: %d %s", s, b)
	}
}
