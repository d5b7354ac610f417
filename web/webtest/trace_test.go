package webtest

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/roam-dev/roam/backend/embedded"
	"github.com/roam-dev/roam/examples/shop/inventory"
	"github.com/roam-dev/roam/examples/shop/orders"
	"github.com/roam-dev/roam/host"
	"github.com/roam-dev/roam/host/native"
	"github.com/roam-dev/roam/sdk"
)

// traceProbe records the trace headers of the method calls and the event
// forwardings (the state sync API's publish) that reach the server it
// wraps.
type traceProbe struct {
	next http.Handler
	mu   sync.Mutex
	seen []traceSeen
}

type traceSeen struct {
	path                    string
	traceparent, tracestate []string // the header's values; nil when absent
}

func (p *traceProbe) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if (strings.Contains(r.URL.Path, "/methods/") || strings.Contains(r.URL.Path, "/publish/")) && r.Method == http.MethodPost {
		p.mu.Lock()
		p.seen = append(p.seen, traceSeen{r.URL.Path, r.Header.Values("traceparent"), r.Header.Values("tracestate")})
		p.mu.Unlock()
	}
	p.next.ServeHTTP(w, r)
}

// take returns what reached path since the last take, and forgets all.
func (p *traceProbe) take(path string) []traceSeen {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []traceSeen
	for _, s := range p.seen {
		if s.path == path {
			out = append(out, s)
		}
	}
	p.seen = nil
	return out
}

// headers describes what a traceSeen holds, for comparison with headers.
func (s traceSeen) headers() string {
	show := func(v []string) string {
		if v == nil {
			return "none"
		}
		return strings.Join(v, "|")
	}
	return "traceparent " + show(s.traceparent) + ", tracestate " + show(s.tracestate)
}

// headers describes the header values traceparent and tracestate, "" for
// no header.
func headers(traceparent, tracestate string) string {
	var s traceSeen
	if traceparent != "" {
		s.traceparent = []string{traceparent}
	}
	if tracestate != "" {
		s.tracestate = []string{tracestate}
	}
	return s.headers()
}

// traceServer runs the shop on the native host, with its state sync API,
// behind a traceProbe.
func traceServer(t *testing.T) *traceProbe {
	t.Helper()
	b, err := embedded.Open(embedded.Options{Dir: t.TempDir(), Retry: retry})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	srv, err := native.NewServer(b, []*sdk.App{inventory.App, orders.App}, host.Options{CORSOrigins: []string{"http://127.0.0.1:*"}, StateAPI: true})
	if err != nil {
		t.Fatal(err)
	}
	return &traceProbe{next: srv.Handler()}
}

// callTraced calls app.method through the page's Host with req (JSON) and
// the trace context trace (nil for none) and returns the reply.
func callTraced(b *browser, app, method string, req any, trace any) callResult {
	b.t.Helper()
	var r struct {
		Status int
		Body   string
	}
	b.eval(`async ([app, method, req, trace]) => {
		const r = await window.roamHost.callRaw(app, method, JSON.stringify(req), trace ?? undefined);
		return { status: r.status, body: new TextDecoder().decode(r.body) };
	}`, []any{app, method, req, trace}, &r)
	return callResult{r.Status, r.Body}
}

const (
	reservePath = "/v1/apps/inventory/methods/Reserve"
	stockPath   = "/v1/apps/inventory/methods/Stock"
	pageTP      = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	pageTS      = "roam=t61rcWkgMzE, congo=ucfJifl5GOE"
	guestTP     = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"
)

// TestTraceContext: a page's call carries a W3C trace context into the
// guest's Call (ABI v1.1), and the guest's invocations of an app on the
// server carry it on as the traceparent and tracestate headers, which the
// server's ingress parents its spans on. The browser records no span, so
// the page's context goes through unchanged: the server's span is a child
// of the page's own. The context the guest hands back wins (a goroutine of
// another call may invoke); one that does not parse, or none, leaves the
// call's. An invalid traceparent from the page is ignored (no header), an
// invalid tracestate dropped, and a call without one sends none.
func TestTraceContext(t *testing.T) {
	b := startBrowser(t)
	probe := traceServer(t)
	ts := serveAssets(t, map[string]http.Handler{"/v1/": probe})
	if e := b.openPage(pageURL(ts.URL, []string{"orders", "setupapp"}, `{"db":"trace-`+runID()+`","remote":"`+ts.URL+`"}`)); e != "" {
		t.Fatal(e)
	}
	sku := "kiwi-" + runID()
	api(t, ts.URL, "inventory", "Restock", map[string]any{"sku": sku, "quantity": 100}, nil)
	probe.take("")
	create := map[string]any{"customer": "ada", "sku": sku, "quantity": 1}
	tc := func(tp, ts string) map[string]string { return map[string]string{"traceparent": tp, "tracestate": ts} }
	one := func(what, path string) traceSeen {
		t.Helper()
		seen := probe.take(path)
		if len(seen) != 1 {
			t.Fatalf("%s: %d calls of %s reached the server, want 1\n%s", what, len(seen), path, b.logs())
		}
		return seen[0]
	}
	want := func(what string, s traceSeen, tp, ts string) {
		t.Helper()
		if got, want := s.headers(), headers(tp, ts); got != want {
			t.Errorf("%s: the server got %s, want %s", what, got, want)
		}
	}

	// The shop's orders, in the page, reserves stock on the server.
	if r := callTraced(b, "orders", "Create", create, tc(pageTP, pageTS)); r.status != 200 {
		t.Fatalf("Create: %v\n%s", r, b.logs())
	}
	want("traced Create", one("traced Create", reservePath), pageTP, pageTS)
	if r := callTraced(b, "orders", "Create", create, nil); r.status != 200 {
		t.Fatalf("Create: %v", r)
	}
	want("untraced Create", one("untraced Create", reservePath), "", "")

	// The guest's Call carries the context (its module reports ABI ≥ 1.1).
	if r := callTraced(b, "setupapp", "Trace", struct{}{}, tc(pageTP, pageTS)); r.status != 200 || r.body != `{"traceparent":"`+pageTP+`","tracestate":"`+pageTS+`"}` {
		t.Errorf("Trace: %v", r)
	}
	if r := callTraced(b, "setupapp", "Trace", struct{}{}, nil); r.status != 200 || r.body != `{"traceparent":"","tracestate":""}` {
		t.Errorf("untraced Trace: %v", r)
	}

	// What internal/tracectx refuses is ignored: no header, no context in
	// the Call.
	for _, bad := range []string{
		"",
		"00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01",   // uppercase
		"00-00000000000000000000000000000000-00f067aa0ba902b7-01",   // zero trace id
		"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",   // zero span id
		"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",   // version ff
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x", // 00 with more
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03",   // unknown flag
		"00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",    // short
		"00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01",
	} {
		if r := callTraced(b, "orders", "Create", create, tc(bad, pageTS)); r.status != 200 {
			t.Fatalf("Create with traceparent %q: %v", bad, r)
		}
		want("traceparent "+bad, one("traceparent "+bad, reservePath), "", "")
		if r := callTraced(b, "setupapp", "Trace", struct{}{}, tc(bad, pageTS)); r.body != `{"traceparent":"","tracestate":""}` {
			t.Errorf("Trace with traceparent %q: %v", bad, r)
		}
	}
	// A later version is read as its first four fields, as W3C asks.
	future := "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-09-whatever"
	callTraced(b, "orders", "Create", create, tc(future, ""))
	want("a later version", one("a later version", reservePath), future, "")
	// A tracestate that does not parse is dropped, the traceparent kept.
	for _, bad := range []string{"Bad=1", "a=1,a=2", "k=v\u00e9", "k="} {
		callTraced(b, "orders", "Create", create, tc(pageTP, bad))
		want("tracestate "+bad, one("tracestate "+bad, reservePath), pageTP, "")
	}

	// The context the guest hands back is the parent; one that does not
	// parse, or none, leaves the call's. (A guest hands one back only once
	// a call of its has carried one, as the calls above did.)
	under := func(tp string) map[string]any {
		return map[string]any{"app": "inventory", "method": "Stock", "body": map[string]string{"sku": sku}, "traceparent": tp}
	}
	for _, c := range []struct{ what, guest, page, want string }{
		{"the guest's own", guestTP, pageTP, guestTP},
		{"the guest's own, in an untraced call", guestTP, "", guestTP},
		{"the guest's unparsable", "00-nonsense", pageTP, pageTP},
		{"none from the guest", "", pageTP, pageTP},
		{"none at all", "", "", ""},
	} {
		var page any
		if c.page != "" {
			page = tc(c.page, "")
		}
		if r := callTraced(b, "setupapp", "InvokeUnder", under(c.guest), page); r.status != 200 {
			t.Fatalf("%s: InvokeUnder: %v", c.what, r)
		}
		want(c.what, one(c.what, stockPath), c.want, "")
	}
	// An invocation within the page carries it into the callee's Call.
	inPage := map[string]any{"app": "setupapp", "method": "Trace", "body": struct{}{}, "traceparent": guestTP}
	if r := callTraced(b, "setupapp", "InvokeUnder", inPage, tc(pageTP, pageTS)); r.status != 200 || r.body != `{"traceparent":"`+guestTP+`","tracestate":""}` {
		t.Errorf("InvokeUnder setupapp.Trace: %v", r)
	}
}

// TestTraceContextCrossOrigin: a server of another origin gets the trace
// headers only when the page says it takes them (traceHeaders: 'always'):
// they make the request one the browser checks first (a CORS preflight),
// which Roam's hosts answer allowing them.
func TestTraceContextCrossOrigin(t *testing.T) {
	b := startBrowser(t)
	probe := traceServer(t)
	srv := httptest.NewServer(probe)
	t.Cleanup(srv.Close)
	ts := serveAssets(t, nil)
	sku := "lime-" + runID()
	api(t, srv.URL, "inventory", "Restock", map[string]any{"sku": sku, "quantity": 100}, nil)
	create := map[string]any{"customer": "bo", "sku": sku, "quantity": 1}
	trace := map[string]string{"traceparent": pageTP, "tracestate": pageTS}
	for _, c := range []struct{ opts, tp, ts string }{
		{`"traceHeaders":"same-origin"`, "", ""},
		{`"traceHeaders":"never"`, "", ""},
		{`"traceHeaders":"always"`, pageTP, pageTS},
		{`"traceHeaders":null`, "", ""}, // the default
	} {
		opts := `{"db":"trace-x-` + runID() + `","remote":"` + srv.URL + `",` + c.opts + `}`
		if e := b.openPage(pageURL(ts.URL, []string{"orders"}, opts)); e != "" {
			t.Fatal(e)
		}
		probe.take("")
		if r := callTraced(b, "orders", "Create", create, trace); r.status != 200 {
			t.Fatalf("%s: Create: %v\n%s", c.opts, r, b.logs())
		}
		seen := probe.take(reservePath)
		if len(seen) != 1 {
			t.Fatalf("%s: %d Reserve calls reached the server", c.opts, len(seen))
		}
		if got, want := seen[0].headers(), headers(c.tp, c.ts); got != want {
			t.Errorf("%s: the server got %s, want %s", c.opts, got, want)
		}
	}
}

// TestSyncPublishTrace: an event a traced call publishes for the server
// (no module in the page subscribes to it) keeps the call's trace context
// in the outbox, and sync forwards it with the traceparent and tracestate
// headers, under which the server's publish traces it (host's
// TestSyncPublishTraced); an untraced call's event goes without.
func TestSyncPublishTrace(t *testing.T) {
	b := startBrowser(t)
	probe := traceServer(t)
	ts := serveAssets(t, map[string]http.Handler{"/v1/": probe})
	if e := b.openPage(pageURL(ts.URL, []string{"orders"}, `{"db":"trace-pub-`+runID()+`","remote":"`+ts.URL+`"}`)); e != "" {
		t.Fatal(e)
	}
	sku := "fig-" + runID()
	api(t, ts.URL, "inventory", "Restock", map[string]any{"sku": sku, "quantity": 100}, nil)
	create := map[string]any{"customer": "ada", "sku": sku, "quantity": 1}
	const createdPath = "/v1/apps/orders/publish/pubsub/order.created"
	for _, c := range []struct {
		what   string
		trace  any
		tp, ts string
	}{
		{"traced", map[string]string{"traceparent": pageTP, "tracestate": pageTS}, pageTP, pageTS},
		{"untraced", nil, "", ""},
	} {
		if r := callTraced(b, "orders", "Create", create, c.trace); r.status != 200 {
			t.Fatalf("%s Create: %v\n%s", c.what, r, b.logs())
		}
		probe.take("")
		var res struct{ Events int }
		b.eval(`async () => await window.roamHost.sync()`, nil, &res)
		seen := probe.take(createdPath)
		if res.Events != 1 || len(seen) != 1 {
			t.Fatalf("%s: sync forwarded %d events, %d reached %s; want 1\n%s", c.what, res.Events, len(seen), createdPath, b.logs())
		}
		if got, want := seen[0].headers(), headers(c.tp, c.ts); got != want {
			t.Errorf("%s: the server's publish got %s, want %s", c.what, got, want)
		}
	}
}
