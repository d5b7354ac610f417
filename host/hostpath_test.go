package host

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/roam-dev/roam/backend"
	"github.com/roam-dev/roam/backend/memory"
	"github.com/roam-dev/roam/sdk"
)

// The request path's shortcuts (routing without the mux, the request id's
// context) against what they replace.

// echoApp answers every call with its app, method, request id and body.
type echoApp struct{ id string }

func (a echoApp) ID() string                            { return a.id }
func (a echoApp) Methods() []string                     { return []string{"Get", "a.b", "x-y_z~"} }
func (a echoApp) Subscriptions() []backend.Subscription { return nil }
func (a echoApp) Deliver(context.Context, *sdk.Event) error {
	return sdk.NewError(sdk.NotFound, "no subscriptions")
}
func (a echoApp) Call(ctx context.Context, method string, body []byte) ([]byte, error) {
	if method == "Empty" {
		return nil, nil
	}
	return json.Marshal(map[string]string{"app": a.id, "method": method, "request": sdk.RequestID(ctx), "body": string(body)})
}

// routeTracer records the http.route of ingress spans.
type routeTracer struct {
	mu     sync.Mutex
	routes []string
}

func (t *routeTracer) Start(ctx context.Context, app string, s SpanStart) (context.Context, Span) {
	if s.Kind == SpanServer {
		for _, a := range s.Attrs {
			if a.Key == "http.route" {
				t.mu.Lock()
				t.routes = append(t.routes, a.Value)
				t.mu.Unlock()
			}
		}
	}
	return ctx, nopSpan{}
}
func (t *routeTracer) Flush(context.Context) error    { return nil }
func (t *routeTracer) Shutdown(context.Context) error { return nil }

func (t *routeTracer) take() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	r := t.routes
	t.routes = nil
	return r
}

type nopSpan struct{}

func (nopSpan) SetAttrs(...Attr) {}
func (nopSpan) SetError(string)  {}
func (nopSpan) End()             {}

func newRouteServer(tb testing.TB, tr Tracer) *Server {
	tb.Helper()
	b := memory.New(memory.Options{})
	tb.Cleanup(func() { b.Close() })
	s := NewServer(b, Options{Tracing: tr, StateAPI: true, CORSOrigins: []string{"https://shop.example"}, Pprof: true})
	for _, id := range []string{"orders", "o.rders", "x-y_z~"} {
		if err := s.Add(echoApp{id}); err != nil {
			tb.Fatal(err)
		}
	}
	return s
}

// serveBoth answers one request through the server's handler and through
// the ServeMux alone (the routing before route), and fails if the replies
// differ in status, headers or body, or in the route the spans record. A
// CONNECT is the exception: route refuses it before the mux, which
// mishandles some (see refuseConnect), so it is checked for the refusal.
func serveBoth(t *testing.T, s *Server, tr *routeTracer, verb, target string, body []byte) {
	t.Helper()
	if verb == http.MethodConnect {
		checkConnectRefused(t, s, tr, target)
		return
	}
	var recs [2]*httptest.ResponseRecorder
	var routes [2][]string
	for i, h := range []http.Handler{s.Handler(), s.withCORS(s.mux)} {
		r := httptest.NewRequest(verb, target, bytes.NewReader(body))
		r.Header.Set("X-Request-Id", "fixed-id")
		r.Header.Set("Origin", "https://shop.example")
		recs[i] = httptest.NewRecorder()
		h.ServeHTTP(recs[i], r)
		if tr != nil {
			routes[i] = tr.take()
		}
	}
	got, want := recs[0], recs[1]
	if got.Code != want.Code || !bytes.Equal(got.Body.Bytes(), want.Body.Bytes()) {
		t.Fatalf("%s %q: route answered %d %q, the mux %d %q", verb, target, got.Code, got.Body, want.Code, want.Body)
	}
	gh, wh := got.Header(), want.Header()
	if len(gh) != len(wh) {
		t.Fatalf("%s %q: route's headers %v, the mux's %v", verb, target, gh, wh)
	}
	for k, v := range wh {
		if strings.Join(gh[k], "\x00") != strings.Join(v, "\x00") {
			t.Fatalf("%s %q: route's %s %q, the mux's %q", verb, target, k, gh[k], v)
		}
	}
	if strings.Join(routes[0], ",") != strings.Join(routes[1], ",") {
		t.Fatalf("%s %q: route's spans have http.route %q, the mux's %q", verb, target, routes[0], routes[1])
	}
}

// checkConnectRefused serves a CONNECT of target and fails unless it is
// refused with 400 and the JSON error body, the allowed origin's CORS
// headers, and no span (nothing was called).
func checkConnectRefused(t *testing.T, s *Server, tr *routeTracer, target string) {
	t.Helper()
	r := httptest.NewRequest(http.MethodConnect, target, strings.NewReader(`{"id":"1"}`))
	r.Header.Set("Origin", "https://shop.example")
	w := httptest.NewRecorder()
	s.Handler().ServeHTTP(w, r)
	if err := connectRefusal(w.Code, w.Header(), w.Body.Bytes()); err != nil {
		t.Fatalf("CONNECT %q: %v", target, err)
	}
	if got := w.Header().Get("Access-Control-Allow-Origin"); got != "https://shop.example" {
		t.Fatalf("CONNECT %q: Access-Control-Allow-Origin %q", target, got)
	}
	if tr != nil {
		if routes := tr.take(); len(routes) != 0 {
			t.Fatalf("CONNECT %q: spans with http.route %q", target, routes)
		}
	}
}

// connectRefusal checks a reply against refuseConnect's.
func connectRefusal(status int, h http.Header, body []byte) error {
	var e ErrorBody
	if status != http.StatusBadRequest || h.Get("Content-Type") != "application/json" ||
		json.Unmarshal(body, &e) != nil || e.Code != "InvalidArgument" || !strings.Contains(e.Message, "CONNECT not allowed") {
		return fmt.Errorf("answered %d %q %q, want 400 and the JSON error refusing CONNECT", status, h.Get("Content-Type"), body)
	}
	return nil
}

var routeTargets = []string{
	"/v1/apps/orders/methods/Get",
	"/v1/apps/orders/methods/Empty",
	"/v1/apps/orders/methods/a.b",
	"/v1/apps/orders/methods/x-y_z~",
	"/v1/apps/o.rders/methods/Get",
	"/v1/apps/x-y_z~/methods/Get",
	"/v1/apps/nope/methods/Get",
	"/v1/apps/orders/methods/Nope",
	"/v1/apps/orders/methods/Get/",
	"/v1/apps/orders/methods/Get/x",
	"/v1/apps/orders/methods/",
	"/v1/apps/orders/methods",
	"/v1/apps/orders/",
	"/v1/apps/orders",
	"/v1/apps/",
	"/v1/apps",
	"/v1/apps//methods/Get",
	"/v1/apps/orders//methods/Get",
	"/v1/apps/./methods/Get",
	"/v1/apps/../methods/Get",
	"/v1/apps/orders/methods/.",
	"/v1/apps/orders/methods/..",
	"/v1/apps/orders/methods/...",
	"/v1/apps/.../methods/Get",
	"/v1/apps/orders/methods/Get?x=1",
	"/v1/apps/orders/methods/G%65t",
	"/v1/apps/ord%65rs/methods/Get",
	"/v1/apps/orders/methods/a%2Fb",
	"/v1/apps/a%2Fb/methods/Get",
	"/v1/apps/orders/methods/a%20b",
	"/v1/apps/orders/methods/a%25b",
	"/v1/apps/orders/methods/%C3%A9",
	"/v1/%61pps/orders/methods/Get",
	"/v1/apps/orders/%6Dethods/Get",
	"/v1/apps/orders/methods/a;b",
	"/v1/apps/orders/methods/a:b",
	"/v1/apps/orders/methods/a@b",
	"/v1/apps/orders/methods/a+b",
	"/v1/apps/orders/methods/a$b",
	"/v1/apps/orders/state/statestore/bulk",
	"/v1/apps/orders/state/statestore/transact",
	"/v1/apps/orders/publish/ps/topic",
	"/v1/apps//state/statestore/bulk",
	"/v1/apps/orders/state//transact",
	"/v1/apps//publish/ps/topic",
	"/v1/apps/orders/publish//topic",
	"/v1/apps/orders/publish/ps/",
	"/V1/apps/orders/methods/Get",
	"/v1/Apps/orders/methods/Get",
	"/v1/apps/orders/Methods/Get",
	"/v2/apps/orders/methods/Get",
	"//v1/apps/orders/methods/Get",
	"/v1/apps/orders/methods/Get#frag",
	"http://other.example/v1/apps/orders/methods/Get",
	"/Get",
	"//Get",
	"/healthz",
	"/readyz",
	"/metric",
	"/",
	"/debug/pprof",
	"/web/",
}

func TestRouteMatchesMux(t *testing.T) {
	tr := new(routeTracer)
	for _, traced := range []bool{false, true} {
		var s *Server
		if traced {
			s = newRouteServer(t, tr)
		} else {
			s = newRouteServer(t, nil)
		}
		for _, target := range routeTargets {
			for _, verb := range []string{"POST", "PUT", "GET", "HEAD", "DELETE", "OPTIONS", "PATCH", "CONNECT"} {
				var t2 *routeTracer
				if traced {
					t2 = tr
				}
				serveBoth(t, s, t2, verb, target, []byte(`{"id":"1"}`))
			}
		}
	}
}

// FuzzRoute compares the handler with the ServeMux on arbitrary paths.
func FuzzRoute(f *testing.F) {
	s := newRouteServer(f, nil)
	for _, target := range routeTargets {
		f.Add(target, byte(0))
	}
	verbs := []string{"POST", "PUT", "GET", "CONNECT", "DELETE"}
	f.Fuzz(func(t *testing.T, target string, verb byte) {
		if target == "" || target[0] != '/' || strings.ContainsAny(target, " \t\r\n#?") {
			return
		}
		if _, err := http.ReadRequest(bufioReader("POST " + target + " HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
			return // not a request target net/http would hand a handler
		}
		serveBoth(t, s, nil, verbs[int(verb)%len(verbs)], target, nil)
	})
}

func bufioReader(s string) *bufio.Reader { return bufio.NewReader(strings.NewReader(s)) }

func TestRequestIDContext(t *testing.T) {
	if requestIDKey == nil {
		t.Fatal("the key of sdk.RequestID was not learnt: every call pays for sdk.WithRequestID")
	}
	type other struct{}
	parent, cancel := context.WithCancel(context.WithValue(context.Background(), other{}, "v"))
	rc := &requestCtx{id: "rid"}
	ctx := rc.with(parent)
	if got := sdk.RequestID(ctx); got != "rid" {
		t.Fatalf("sdk.RequestID = %q", got)
	}
	if got := ctx.Value(other{}); got != "v" {
		t.Fatalf("a parent's value: %v", got)
	}
	if ctx.Value(nil) != nil {
		t.Fatal("Value(nil) is not nil")
	}
	// Under a deadline and another request id, as a nested call sees it.
	dl, cancelDL := context.WithTimeout(ctx, time.Hour)
	defer cancelDL()
	if got := sdk.RequestID(dl); got != "rid" {
		t.Fatalf("sdk.RequestID under a deadline = %q", got)
	}
	if got := sdk.RequestID(sdk.WithRequestID(dl, "inner")); got != "inner" {
		t.Fatalf("sdk.RequestID of a nested id = %q", got)
	}
	// Contexts made of it register with the request's, as they would
	// through a value context: no goroutine each.
	before := runtime.NumGoroutine()
	var cancels []context.CancelFunc
	for range 100 {
		_, c := context.WithCancel(ctx)
		cancels = append(cancels, c)
	}
	if n := runtime.NumGoroutine() - before; n >= 50 {
		t.Fatalf("100 contexts made of a requestCtx started %d goroutines", n)
	}
	for _, c := range cancels {
		c()
	}
	// Cancellation reaches the children, as through a value context.
	child, cancelChild := context.WithCancel(dl)
	defer cancelChild()
	cancel()
	select {
	case <-child.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the child was not cancelled with the request")
	}
	if ctx.Err() != context.Canceled || dl.Err() != context.Canceled {
		t.Fatalf("Err: %v, %v", ctx.Err(), dl.Err())
	}
}

func TestRequestIDGenerated(t *testing.T) {
	s := newRouteServer(t, nil)
	seen := map[string]bool{}
	for range 100 {
		r := httptest.NewRequest("POST", "/v1/apps/orders/methods/Get", strings.NewReader(`{}`))
		w := httptest.NewRecorder()
		s.Handler().ServeHTTP(w, r)
		id := w.Header().Get("X-Request-Id")
		if len(id) != 16 || strings.Trim(id, "0123456789abcdef") != "" || seen[id] {
			t.Fatalf("request id %q: want 16 hex digits, new each time", id)
		}
		seen[id] = true
		var got map[string]string
		if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil || got["request"] != id {
			t.Fatalf("the app saw request id %q (%v), the reply says %q", got["request"], err, id)
		}
	}
	// A caller's id is kept up to 128 bytes, replaced beyond.
	for _, id := range []string{"abc", strings.Repeat("x", 128), strings.Repeat("y", 129)} {
		r := httptest.NewRequest("POST", "/v1/apps/orders/methods/Get", strings.NewReader(`{}`))
		r.Header.Set("X-Request-Id", id)
		w := httptest.NewRecorder()
		s.Handler().ServeHTTP(w, r)
		if got := w.Header().Get("X-Request-Id"); (got == id) != (len(id) <= 128) {
			t.Fatalf("caller's id of %d bytes answered with %q", len(id), got)
		}
	}
}
