package host_test

// The security audit of the HTTP surface (RATIONALE.md, "One transport for
// every host", the security entries): every test here talks to a host
// started with Server.Start on a loopback listener, so that the
// http.Server's own settings (header limit, timeouts) are the ones checked.

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/roam-dev/roam/backend"
	"github.com/roam-dev/roam/backend/embedded"
	"github.com/roam-dev/roam/backend/memory"
	"github.com/roam-dev/roam/host"
	"github.com/roam-dev/roam/host/native"
	"github.com/roam-dev/roam/sdk"
)

// secServerOn serves syncApp on b with o through Start on a listener of
// addr ("127.0.0.1:0" unless given), and returns its base URL.
func secServerOn(t *testing.T, b backend.Backend, o host.Options, addr string) string {
	t.Helper()
	srv, err := native.NewServer(b, []*sdk.App{syncApp}, o)
	if err != nil {
		t.Fatal(err)
	}
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	errc := srv.Start(ln)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		<-errc
	})
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return "http://127.0.0.1:" + port
}

func secServer(t *testing.T, o host.Options) string {
	t.Helper()
	b := memory.New(memory.Options{})
	t.Cleanup(func() { b.Close() })
	return secServerOn(t, b, o, "")
}

// A page of an origin not allowed must not write: CORS alone only kept it
// from reading the reply, and a text/plain POST needs no preflight, so any
// site the user visited could push to the state sync API (roam run's, on
// 127.0.0.1, is on by default) or call methods.
func TestSecauditCrossSiteWritesRefused(t *testing.T) {
	for _, o := range []host.Options{
		{StateAPI: true},
		{StateAPI: true, CORSOrigins: []string{"http://127.0.0.1:*"}}, // roam run's
	} {
		u := secServer(t, o)
		push := u + "/v1/apps/synctest/state/statestore/transact"
		evil := `{"ops":[{"op":"set","key":"owned","value":"MQ=="}]}`
		for _, hdr := range []map[string]string{
			{"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site", "Content-Type": "text/plain"},
			{"Origin": "http://127.0.0.1.evil.example", "Sec-Fetch-Site": "cross-site", "Content-Type": "text/plain"},
			{"Origin": "null", "Sec-Fetch-Site": "cross-site", "Content-Type": "text/plain"}, // a sandboxed frame
			{"Origin": "https://evil.example", "Content-Type": "text/plain"},                 // a browser without Fetch Metadata
		} {
			resp, body := do(t, "POST", push, evil, hdr)
			if resp.StatusCode != http.StatusForbidden || resp.Header.Get("Access-Control-Allow-Origin") != "" || !strings.Contains(string(body), "cross-origin POST refused") {
				t.Errorf("CORS %q, push with %v: %d %s, want 403", o.CORSOrigins, hdr, resp.StatusCode, body)
			}
			resp, body = do(t, "POST", u+"/v1/apps/synctest/methods/Echo", `{}`, hdr)
			if resp.StatusCode != http.StatusForbidden {
				t.Errorf("CORS %q, call with %v: %d %s, want 403", o.CORSOrigins, hdr, resp.StatusCode, body)
			}
		}
		resp, body := do(t, "POST", u+"/v1/apps/synctest/state/statestore/bulk", `{"keys":["owned"]}`, nil)
		if resp.StatusCode != 200 || strings.Contains(string(body), `"found":true`) {
			t.Fatalf("CORS %q: after the refused pushes: %d %s", o.CORSOrigins, resp.StatusCode, body)
		}
		// What stays open: clients that are not browsers, the host's own
		// page, a safe method, and the allowed origins.
		allowed := []map[string]string{nil,
			{"Origin": u, "Sec-Fetch-Site": "same-origin"},
			{"Origin": u}, // Origin matches Host
		}
		if len(o.CORSOrigins) > 0 {
			allowed = append(allowed, map[string]string{"Origin": "http://127.0.0.1:5173", "Sec-Fetch-Site": "same-site"})
		}
		for _, hdr := range allowed {
			if resp, body := do(t, "POST", u+"/v1/apps/synctest/methods/Echo", `{"a":1}`, hdr); resp.StatusCode != 200 {
				t.Errorf("CORS %q, call with %v: %d %s, want 200", o.CORSOrigins, hdr, resp.StatusCode, body)
			}
		}
		if resp, body := do(t, "GET", u+"/v1/apps", "", map[string]string{"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}); resp.StatusCode != 200 {
			t.Errorf("CORS %q, cross-site GET: %d %s, want 200 (a safe method; CORS keeps the reply from the page)", o.CORSOrigins, resp.StatusCode, body)
		}
	}
}

// With a token, the state sync API wants it, before it says whether an
// app exists; the apps' methods do not.
func TestSecauditStateAPIToken(t *testing.T) {
	const tok = "s3cret-token"
	u := secServer(t, host.Options{StateAPI: true, StateAPIToken: tok, CORSOrigins: []string{"https://shop.example"}})
	paths := []string{
		"/v1/apps/synctest/state/statestore/bulk",
		"/v1/apps/synctest/state/statestore/transact",
		"/v1/apps/synctest/publish/pubsub/t",
		"/v1/apps/nosuch/state/statestore/bulk",
	}
	bodies := []string{`{"keys":["a"]}`, `{"ops":[{"op":"set","key":"a","value":"MQ=="}]}`, `{"data_base64":"e30="}`, `{"keys":["a"]}`}
	for i, p := range paths {
		for _, auth := range []string{"", "Bearer", "Bearer ", "Bearer s3cret", "Bearer " + tok + "x", "Basic " + tok, tok, "Bearer  " + tok} {
			hdr := map[string]string{}
			if auth != "" {
				hdr["Authorization"] = auth
			}
			resp, body := do(t, "POST", u+p, bodies[i], hdr)
			if resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") || !strings.Contains(string(body), "ROAM_STATE_API_TOKEN") {
				t.Errorf("%s with Authorization %q: %d %v %s, want 401", p, auth, resp.StatusCode, resp.Header, body)
			}
		}
	}
	want := []int{200, 200, 204, 404}
	for i, p := range paths {
		for _, auth := range []string{"Bearer " + tok, "bearer " + tok} {
			if resp, body := do(t, "POST", u+p, bodies[i], map[string]string{"Authorization": auth}); resp.StatusCode != want[i] {
				t.Errorf("%s with the token (%q): %d %s, want %d", p, auth, resp.StatusCode, body, want[i])
			}
		}
	}
	if resp, body := do(t, "POST", u+"/v1/apps/synctest/methods/Echo", `{}`, nil); resp.StatusCode != 200 {
		t.Errorf("a method call without the token: %d %s, want 200 (the token guards the state API only)", resp.StatusCode, body)
	}
	// A page of an allowed origin may send it.
	pre, _ := do(t, "OPTIONS", u+paths[0], "", map[string]string{
		"Origin": "https://shop.example", "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization,content-type"})
	if pre.StatusCode != http.StatusNoContent || !strings.Contains(pre.Header.Get("Access-Control-Allow-Headers"), "Authorization") {
		t.Errorf("preflight: %d, Allow-Headers %q, want Authorization among them", pre.StatusCode, pre.Header.Get("Access-Control-Allow-Headers"))
	}
}

// syncWriter is a log destination that tests read while the host writes.
type syncWriter struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *syncWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

// A state sync API without a token, listening beyond loopback, is said at
// start; on loopback (roam run) or with a token, nothing is.
func TestSecauditOpenStateAPIWarned(t *testing.T) {
	for _, tc := range []struct {
		o    host.Options
		addr string
		warn bool
	}{
		{host.Options{StateAPI: true}, "0.0.0.0:0", true},
		{host.Options{StateAPI: true}, "127.0.0.1:0", false},
		{host.Options{StateAPI: true, StateAPIToken: "t"}, "0.0.0.0:0", false},
		{host.Options{}, "0.0.0.0:0", false},
	} {
		var logs syncWriter
		tc.o.Logger = slog.New(slog.NewTextHandler(&logs, nil))
		b := memory.New(memory.Options{})
		secServerOn(t, b, tc.o, tc.addr)
		t.Cleanup(func() { b.Close() })
		if got := strings.Contains(logs.String(), "state sync API is on without a token"); got != tc.warn {
			t.Errorf("StateAPI %v, token %q, on %s: warned %v, want %v (%s)", tc.o.StateAPI, tc.o.StateAPIToken, tc.addr, got, tc.warn, logs.String())
		}
	}
}

// Every reply of a host with CORS origins depends on the request's Origin,
// so every one says so, those to a request without one included: a cache
// that stored one without Vary served it to every origin.
func TestSecauditVaryOrigin(t *testing.T) {
	u := secServer(t, host.Options{CORSOrigins: []string{"https://shop.example"}})
	for _, hdr := range []map[string]string{nil, {"Origin": "https://shop.example"}, {"Origin": "https://other.example"}} {
		for _, path := range []string{"/healthz", "/v1/apps", "/nosuch/x"} {
			resp, _ := do(t, "GET", u+path, "", hdr)
			if !strings.Contains(strings.Join(resp.Header.Values("Vary"), ","), "Origin") {
				t.Errorf("GET %s with %v: Vary %q, want Origin", path, hdr, resp.Header.Values("Vary"))
			}
		}
	}
}

// An origin entry no browser's Origin can match is refused at start: it
// read as a rule and allowed nothing.
func TestSecauditCORSOriginsChecked(t *testing.T) {
	for _, o := range []string{"https://*.shop.example", "http://*:8080", "https://user@shop.example", "https://shop.example#x", "null", "*.shop.example"} {
		if err := host.CheckCORSOrigins([]string{o}); err == nil {
			t.Errorf("%q passed", o)
		}
	}
	for _, o := range []string{"*", "http://127.0.0.1:*", "https://shop.example", "https://shop.example:8443/", "http://[::1]:*"} {
		if err := host.CheckCORSOrigins([]string{o}); err != nil {
			t.Errorf("%q: %v", o, err)
		}
	}
	// The null origin (sandboxed frames, file: pages) is none of the
	// listed ones, wildcard port or not.
	u := secServer(t, host.Options{CORSOrigins: []string{"http://127.0.0.1:*"}})
	pre, _ := do(t, "OPTIONS", u+"/v1/apps/synctest/methods/Echo", "", map[string]string{"Origin": "null", "Access-Control-Request-Method": "POST"})
	if pre.StatusCode != http.StatusForbidden || pre.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("preflight from the null origin: %d, Allow-Origin %q", pre.StatusCode, pre.Header.Get("Access-Control-Allow-Origin"))
	}
	for _, origin := range []string{"http://127.0.0.1:80@evil.example", "http://127.0.0.1:+80", "http://127.0.0.1:99999", "http://127.0.0.1:80/x", "http://127.0.0.1:"} {
		pre, _ := do(t, "OPTIONS", u+"/v1/apps/synctest/methods/Echo", "", map[string]string{"Origin": origin, "Access-Control-Request-Method": "POST"})
		if pre.StatusCode != http.StatusForbidden {
			t.Errorf("preflight from %q: %d, want 403", origin, pre.StatusCode)
		}
	}
}

// A header block past 64 KiB is 431: net/http's default, 1 MiB, let every
// connection sending headers hold a megabyte.
func TestSecauditMaxHeaderBytes(t *testing.T) {
	u := secServer(t, host.Options{})
	resp, body := do(t, "POST", u+"/v1/apps/synctest/methods/Echo", `{}`, map[string]string{"X-Pad": strings.Repeat("a", 100<<10)})
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("100 KiB of headers: %d %s, want 431", resp.StatusCode, body)
	}
	resp, body = do(t, "POST", u+"/v1/apps/synctest/methods/Echo?"+strings.Repeat("q", 100<<10), `{}`, nil)
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("a 100 KiB URL: %d %s, want 431", resp.StatusCode, body)
	}
	resp, body = do(t, "POST", u+"/v1/apps/synctest/methods/Echo", `{}`, map[string]string{"X-Pad": strings.Repeat("a", 16<<10)})
	if resp.StatusCode != 200 {
		t.Errorf("16 KiB of headers: %d %s, want 200", resp.StatusCode, body)
	}
}

// rawExchange writes req on a fresh connection and returns the first
// reply's status line and body.
func rawExchange(t *testing.T, u, req string) (int, string) {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(u, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	go io.WriteString(c, req) // a server that answers early must not block us
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("%q: %v", req[:min(len(req), 80)], err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// Bodies are bounded on every route that reads one, chunked or not, and
// the framing tricks of request smuggling are refused by net/http.
func TestSecauditBodiesAndFraming(t *testing.T) {
	const limit = 1 << 10
	u := secServer(t, host.Options{StateAPI: true, MaxBodyBytes: limit})
	big := `{"keys":["` + strings.Repeat("k", 2*limit) + `"]}`
	for _, p := range []string{
		"/v1/apps/synctest/methods/Echo", "/Echo", // the app channel's route, on a host of one app
		"/v1/apps/synctest/state/statestore/bulk", "/v1/apps/synctest/state/statestore/transact", "/v1/apps/synctest/publish/pubsub/t",
	} {
		// Declared.
		if st, body := rawExchange(t, u, fmt.Sprintf("POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s", p, len(big), big)); st != http.StatusRequestEntityTooLarge {
			t.Errorf("POST %s, Content-Length past the limit: %d %s, want 413", p, st, body)
		}
		// Chunked, the size learnt only while reading.
		var chunked strings.Builder
		for i := 0; i < len(big); i += 100 {
			part := big[i:min(i+100, len(big))]
			fmt.Fprintf(&chunked, "%x\r\n%s\r\n", len(part), part)
		}
		chunked.WriteString("0\r\n\r\n")
		if st, body := rawExchange(t, u, "POST "+p+" HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"+chunked.String()); st != http.StatusRequestEntityTooLarge {
			t.Errorf("POST %s, chunked past the limit: %d %s, want 413", p, st, body)
		}
	}
	for _, req := range []string{
		"POST /v1/apps/synctest/methods/Echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 7\r\n\r\n{}",
		"POST /v1/apps/synctest/methods/Echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
		"POST /v1/apps/synctest/methods/Echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n",
		"POST /v1/apps/synctest/methods/Echo HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
		"POST /v1/apps/synctest/methods/Echo HTTP/1.1\r\nHost: x\r\nContent-Length: +2\r\n\r\n{}",
		"POST /v1/apps/synctest/methods/Echo HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}", // no Host
		"POST /v1/apps/synctest/methods/Echo HTTP/1.1\r\nHost: x\r\nX\x00: y\r\nContent-Length: 2\r\n\r\n{}",
	} {
		if st, body := rawExchange(t, u, req); st != http.StatusBadRequest && st != http.StatusNotImplemented {
			t.Errorf("%q: %d %s, want 400 or 501", req, st, body)
		}
	}
}

// Paths that climb, escape a slash or carry a NUL reach no app and no
// file, and never a 2xx or a 5xx. (A state store's name is a name, not a
// path: /state/..%2Fx/bulk reads the store called "../x" of the app, and
// the Dapr backend escapes it on its way to the sidecar.)
func TestSecauditPaths(t *testing.T) {
	b := memory.New(memory.Options{})
	t.Cleanup(func() { b.Close() })
	u := secServerOn(t, b, host.Options{StateAPI: true, Web: &host.WebAssets{Modules: map[string][]byte{"synctest": []byte("\x00asm")}}}, "")
	for _, p := range []string{
		"/v1/apps/../../etc/passwd", "/v1/apps/%2e%2e/methods/Echo", "/v1/apps/synctest%2F..%2F..%2Fx/methods/Echo",
		"/v1/apps/synctest/methods/Echo%2F..%2F..%2Fhealthz", "/v1/apps/synctest%00/methods/Echo", "/v1/apps/synctest/methods/Echo%00",
		"/v1/apps/synctest/publish/a%00b/t",
		"/web/modules/..%2F..%2Fetc%2Fpasswd", "/web/modules/synctest%00.wasm", "/web/../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd",
		"/v1/apps/synctest/methods/" + strings.Repeat("M", 8<<10),
	} {
		st, body := rawExchange(t, u, "POST "+p+" HTTP/1.1\r\nHost: x\r\nContent-Length: 14\r\n\r\n"+`{"keys":["a"]}`)
		if st < 300 || st >= 500 || strings.Contains(body, "root:") {
			t.Errorf("POST %s: %d %s", p, st, body)
		}
		st, body = rawExchange(t, u, "GET "+p+" HTTP/1.1\r\nHost: x\r\n\r\n")
		if st < 300 || st >= 500 || strings.Contains(body, "root:") {
			t.Errorf("GET %s: %d %s", p, st, body)
		}
	}
}

// The request metrics are labelled by served apps and their declared
// methods only: names from the URL add no series. The unrouted families
// are bounded in pub/sub names as in topics: the state sync API's publish
// takes both from the URL.
func TestSecauditMetricsCardinality(t *testing.T) {
	m := host.NewMetrics(nil)
	quiet := slog.New(slog.DiscardHandler)
	b, err := embedded.Open(embedded.Options{Dir: t.TempDir(), OnDeliver: m.OnDeliver, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	u := secServerOn(t, b, host.Options{StateAPI: true, Metrics: m, Logger: quiet}, "")
	series := func() map[string]int {
		fams, err := m.Registry.Gather()
		if err != nil {
			t.Fatal(err)
		}
		n := map[string]int{}
		for _, f := range fams {
			n[f.GetName()] = len(f.GetMetric())
		}
		return n
	}
	do(t, "POST", u+"/v1/apps/synctest/methods/Echo", `{}`, nil)
	before := series()
	for i := range 200 {
		do(t, "POST", fmt.Sprintf("%s/v1/apps/synctest/methods/M%d", u, i), `{}`, nil)
		do(t, "POST", fmt.Sprintf("%s/v1/apps/app%d/methods/Echo", u, i), `{}`, nil)
		do(t, "POST", fmt.Sprintf("%s/M%d", u, i), `{}`, nil)
	}
	after := series()
	for _, f := range []string{"roam_requests_total", "roam_request_duration_seconds"} {
		if after[f] != before[f] {
			t.Errorf("%s: %d series after calls of unknown names, %d before", f, after[f], before[f])
		}
	}
	const pubsubs = 3 * host.MaxUnroutedPubSubs
	for i := range pubsubs {
		resp, body := do(t, "POST", fmt.Sprintf("%s/v1/apps/synctest/publish/ps%d/t", u, i), `{"data_base64":"e30="}`, nil)
		if resp.StatusCode != 204 {
			t.Fatalf("publish: %d %s", resp.StatusCode, body)
		}
	}
	n := series()
	for _, f := range []string{"roam_pubsub_unrouted_events", "roam_pubsub_unrouted_dropped_total"} {
		if n[f] != host.MaxUnroutedPubSubs+1 {
			t.Errorf("%s: %d series after publishing to %d pub/sub names, want %d", f, n[f], pubsubs, host.MaxUnroutedPubSubs+1)
		}
	}
	other := map[string]string{"app": "synctest", "pubsub": host.OtherTopics, "topic": host.OtherTopics}
	if v, ok := metricValue(t, m, "roam_pubsub_unrouted_events", other); !ok || v != pubsubs-host.MaxUnroutedPubSubs {
		t.Errorf("unrouted events of the other pub/subs = %v (present %v), want %d", v, ok, pubsubs-host.MaxUnroutedPubSubs)
	}
	// Routed later, an (other) pubsub's events leave the same series.
	err = b.Subscribe([]backend.Subscription{{AppID: "sub", PubSub: fmt.Sprintf("ps%d", pubsubs-1), Topic: "t"}},
		func(context.Context, backend.Subscription, *sdk.Event) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := metricValue(t, m, "roam_pubsub_unrouted_events", other); v != pubsubs-host.MaxUnroutedPubSubs-1 {
		t.Errorf("after one was routed: %v, want %d", v, pubsubs-host.MaxUnroutedPubSubs-1)
	}
}

// pprof is off unless asked for, and the state sync API too.
func TestSecauditOffByDefault(t *testing.T) {
	u := secServer(t, host.Options{})
	for _, p := range []string{"/debug/pprof/", "/debug/pprof/cmdline", "/debug/pprof/heap"} {
		if resp, body := do(t, "GET", u+p, "", nil); resp.StatusCode != 404 {
			t.Errorf("GET %s without Pprof: %d %.80s", p, resp.StatusCode, body)
		}
	}
	if resp, _ := do(t, "POST", u+"/v1/apps/synctest/state/statestore/bulk", `{"keys":["a"]}`, nil); resp.StatusCode/100 == 2 {
		t.Errorf("state sync API without StateAPI: %d", resp.StatusCode)
	}
	var f host.Flags
	fs := flagSet(&f)
	if f.Pprof || f.StateAPI || f.CORSOrigins != "" || fs.Lookup("pprof").DefValue != "false" || fs.Lookup("state-api").DefValue != "false" {
		t.Errorf("the hosts' flag defaults: pprof %v, state-api %v, cors-origins %q", f.Pprof, f.StateAPI, f.CORSOrigins)
	}
}

func flagSet(f *host.Flags) *flag.FlagSet {
	fs := flag.NewFlagSet("host", flag.ContinueOnError)
	f.Register(fs)
	return fs
}
