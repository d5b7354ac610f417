package webtest

// An audit of the browser host against a hostile or broken sync server:
// replies of the wrong shape, in the wrong order, naming keys that were not
// asked for, redirected, never finished, or without end. Bad replies must
// end the sync with a clear error and change nothing local: no key is
// written that the page did not ask for, and no change is marked pushed
// that the server did not take.

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/roam-dev/roam/backend/embedded"
	"github.com/roam-dev/roam/conformance/testapp"
	"github.com/roam-dev/roam/host"
	"github.com/roam-dev/roam/host/native"
	"github.com/roam-dev/roam/sdk"
)

// hostileServer is the conformance app on the native host with the state
// sync API, served from the page's own origin (no CORS in the way), where a
// test can take over the state sync requests: override, when set, answers
// a request (its body read) and returns true, or leaves it to the server.
type hostileServer struct {
	real     http.Handler
	mu       sync.Mutex
	override func(w http.ResponseWriter, r *http.Request, body []byte) bool
	stop     chan struct{} // closed at the end of the test: hung replies end
}

func (h *hostileServer) set(f func(w http.ResponseWriter, r *http.Request, body []byte) bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.override = f
}

func (h *hostileServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(body))
	h.mu.Lock()
	f := h.override
	h.mu.Unlock()
	if f != nil && f(w, r, body) {
		return
	}
	h.real.ServeHTTP(w, r)
}

// realReply is what the real server answers r.
func (h *hostileServer) realReply(r *http.Request, body []byte) (int, []byte) {
	rec := httptest.NewRecorder()
	r.Body = io.NopCloser(bytes.NewReader(body))
	h.real.ServeHTTP(rec, r)
	return rec.Code, rec.Body.Bytes()
}

// auditPage opens the test page with the conformance app, state in a
// database of its own, syncing with a hostileServer on the page's origin.
func auditPage(t *testing.T, opts string) (*browser, *hostileServer, string) {
	b := startBrowser(t)
	be, err := embedded.Open(embedded.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := native.NewServer(be, []*sdk.App{testapp.App}, host.Options{StateAPI: true})
	if err != nil {
		t.Fatal(err)
	}
	h := &hostileServer{real: srv.Handler(), stop: make(chan struct{})}
	ts := serveAssets(t, map[string]http.Handler{"/v1/": h})
	t.Cleanup(func() {
		close(h.stop)
		be.Close()
	})
	o := `{"db":"audit-` + runID() + `","remote":"` + ts.URL + `"`
	if opts != "" {
		o += "," + opts
	}
	if e := b.openPage(pageURL(ts.URL, []string{"conformance"}, o+"}")); e != "" {
		t.Fatal(e)
	}
	return b, h, ts.URL
}

func (b *browser) conflictKeys() []string {
	b.t.Helper()
	var ks []string
	b.eval(`async () => (await window.roamHost.status()).conflicts.map((c) => c.key).sort()`, nil, &ks)
	return ks
}

func answer(w http.ResponseWriter, status int, ct, body string) bool {
	if ct != "" {
		w.Header().Set("Content-Type", ct)
	}
	w.WriteHeader(status)
	io.WriteString(w, body)
	return true
}

const protocolError = "does not follow the state sync protocol"

// TestAuditPushReplyInAnotherOrder: a transact reply whose items come in
// another order than the ops (a proxy, a server that sorts them) gave each
// key the ETag and value of another: the local "a" became "B".
func TestAuditPushReplyInAnotherOrder(t *testing.T) {
	b, h, srv := auditPage(t, "")
	b.expect("Put", `{"key":"a","value":"A"}`, 200, "")
	b.expect("Put", `{"key":"b","value":"B"}`, 200, "")
	h.set(func(w http.ResponseWriter, r *http.Request, body []byte) bool {
		if !strings.HasSuffix(r.URL.Path, "/transact") {
			return false
		}
		st, out := h.realReply(r, body)
		var reply struct {
			Items []json.RawMessage `json:"items"`
		}
		json.Unmarshal(out, &reply)
		slices.Reverse(reply.Items)
		out, _ = json.Marshal(reply)
		return answer(w, st, "application/json", string(out))
	})
	if r := b.sync(); r.Err != "" || r.Pushed != 2 {
		t.Fatalf("sync: %+v\n%s", r, b.logs())
	}
	b.expect("Get", `{"key":"a"}`, 200, `"value":"A"`)
	b.expect("Get", `{"key":"b"}`, 200, `"value":"B"`)
	h.set(nil)
	var v struct{ Value string }
	api(t, srv, "conformance", "Get", map[string]any{"key": "a"}, &v)
	if v.Value != "A" {
		t.Fatalf("server's a: %q", v.Value)
	}
	// Nothing left to push, and a pull agrees.
	if r := b.sync(); r.Err != "" || r.Pushed != 0 || r.Conflicts != 0 {
		t.Fatalf("second sync: %+v", r)
	}
	b.expect("Get", `{"key":"a"}`, 200, `"value":"A"`)
}

// TestAuditMalformedPushReplies: a 2xx transact reply that is not the
// protocol's (not JSON, another shape, a value not base64, an ETag not a
// string, an item of another key) ends the sync with a clear error, and
// the change stays to push; once the server answers properly it goes out.
func TestAuditMalformedPushReplies(t *testing.T) {
	b, h, srv := auditPage(t, "")
	replies := []struct {
		name, ct, body string
		status         int
	}{
		{"html", "text/html", "<html>sign in</html>", 200},
		{"empty object", "application/json", `{}`, 200},
		{"no items", "application/json", `{"items":[]}`, 200},
		{"null", "application/json", `null`, 200},
		{"items not a list", "application/json", `{"items":{"key":"k"}}`, 200},
		{"204", "", ``, 204},
		{"not base64", "application/json", `{"items":[{"key":"k","found":true,"value":"%%%","etag":"9"}]}`, 200},
		{"etag a number", "application/json", `{"items":[{"key":"k","found":true,"value":"MQ==","etag":9}]}`, 200},
		{"etag missing", "application/json", `{"items":[{"key":"k","found":true,"value":"MQ=="}]}`, 200},
		{"found a string", "application/json", `{"items":[{"key":"k","found":"yes","value":"MQ==","etag":"9"}]}`, 200},
		{"another key", "application/json", `{"items":[{"key":"other","found":true,"value":"MQ==","etag":"9"}]}`, 200},
		{"twice", "application/json", `{"items":[{"key":"k","found":true,"value":"MQ==","etag":"9"},{"key":"k","found":true,"value":"MQ==","etag":"9"}]}`, 200},
	}
	b.expect("Put", `{"key":"k","value":1}`, 200, "")
	for _, rp := range replies {
		h.set(func(w http.ResponseWriter, r *http.Request, body []byte) bool {
			if !strings.HasSuffix(r.URL.Path, "/transact") {
				return false
			}
			return answer(w, rp.status, rp.ct, rp.body)
		})
		r := b.sync()
		if !strings.Contains(r.Err, protocolError) {
			t.Errorf("%s: sync: %+v, want an error saying the reply %s", rp.name, r, protocolError)
		}
		if s := b.status(); !slices.Equal(s.dirtyKeys(), []string{"k"}) {
			t.Errorf("%s: dirty %v, want [k]", rp.name, s.dirtyKeys())
		}
		b.expect("Get", `{"key":"k"}`, 200, `"value":1`)
		b.expect("Get", `{"key":"other"}`, 404, "")
	}
	h.set(nil)
	if r := b.sync(); r.Err != "" || r.Pushed != 1 {
		t.Fatalf("sync with the server fixed: %+v", r)
	}
	var v struct{ Value int }
	if api(t, srv, "conformance", "Get", map[string]any{"key": "k"}, &v); v.Value != 1 {
		t.Fatalf("server's k: %d", v.Value)
	}
}

// TestAuditPushAnsweredAbsent: a push whose reply says the key it set is
// absent (a server that lost it, or deleted it right after) marked the
// change pushed: the page kept a value the server does not have, clean,
// never pushed again and never reconciled. It is a conflict now, both
// versions kept.
func TestAuditPushAnsweredAbsent(t *testing.T) {
	b, h, _ := auditPage(t, "")
	b.expect("Put", `{"key":"k","value":1}`, 200, "")
	h.set(func(w http.ResponseWriter, r *http.Request, body []byte) bool {
		if !strings.HasSuffix(r.URL.Path, "/transact") {
			return false
		}
		return answer(w, 200, "application/json", `{"items":[{"key":"k","found":false}]}`)
	})
	r := b.sync()
	if r.Err != "" || r.Conflicts != 1 {
		t.Errorf("sync: %+v, want 1 conflict", r)
	}
	if ks := b.conflictKeys(); !slices.Equal(ks, []string{"k"}) {
		t.Errorf("conflicts %v, want [k]", ks)
	}
	b.expect("Get", `{"key":"k"}`, 200, `"value":1`)
}

// TestAuditConflictOfAKeyNotPushed: a 409 whose conflicts name a key the
// push did not write made that key, clean, a conflict, and the sync ended
// as if done with the change unpushed.
func TestAuditConflictOfAKeyNotPushed(t *testing.T) {
	b, h, srv := auditPage(t, "")
	api(t, srv, "conformance", "Put", map[string]any{"key": "other", "value": "server's"}, nil)
	if r := b.syncPull([]any{map[string]any{"app": "conformance", "store": "statestore", "keys": []string{"other"}}}); r.Err != "" || r.Pulled != 1 {
		t.Fatalf("first sync: %+v", r)
	}
	b.expect("Put", `{"key":"k","value":1}`, 200, "")
	h.set(func(w http.ResponseWriter, r *http.Request, body []byte) bool {
		if !strings.HasSuffix(r.URL.Path, "/transact") {
			return false
		}
		return answer(w, 409, "application/json", `{"code":"Conflict","message":"1 of 1 keys changed","conflicts":[{"key":"other","found":true,"value":"ImV2aWwi","etag":"99"}]}`)
	})
	r := b.sync()
	if !strings.Contains(r.Err, protocolError) {
		t.Errorf("sync: %+v, want an error saying the reply %s", r, protocolError)
	}
	if ks := b.conflictKeys(); len(ks) != 0 {
		t.Errorf("conflicts %v, want none", ks)
	}
	if s := b.status(); !slices.Equal(s.dirtyKeys(), []string{"k"}) {
		t.Errorf("dirty %v, want [k]", s.dirtyKeys())
	}
	b.expect("Get", `{"key":"other"}`, 200, `"value":"server's"`)
}

// TestAuditPullReplyNamesOtherKeys: a bulk reply with an item the page did
// not ask for wrote it into IndexedDB, as if the page had it; one naming a
// key twice took the last. Both end the sync now, writing nothing.
func TestAuditPullReplyNamesOtherKeys(t *testing.T) {
	b, h, _ := auditPage(t, "")
	for _, body := range []string{
		`{"items":[{"key":"p","found":false},{"key":"evil","found":true,"value":"ImV2aWwi","etag":"5"}]}`,
		`{"items":[{"key":"p","found":true,"value":"MQ==","etag":"5"},{"key":"p","found":true,"value":"Mg==","etag":"6"}]}`,
		`{"items":[{"key":"p","found":true,"value":"MQ==","etag":""}]}`,
	} {
		h.set(func(w http.ResponseWriter, r *http.Request, _ []byte) bool {
			if !strings.HasSuffix(r.URL.Path, "/bulk") {
				return false
			}
			return answer(w, 200, "application/json", body)
		})
		r := b.syncPull([]any{map[string]any{"app": "conformance", "store": "statestore", "keys": []string{"p"}}})
		if !strings.Contains(r.Err, protocolError) {
			t.Errorf("%s: sync: %+v, want an error saying the reply %s", body, r, protocolError)
		}
		b.expect("Get", `{"key":"evil"}`, 404, "")
		b.expect("Get", `{"key":"p"}`, 404, "")
	}
	b.reloadPage()
	b.expect("Get", `{"key":"evil"}`, 404, "")
}

// TestAuditPublishRedirected: a forward redirected (a gateway sending the
// page to sign in) and answered 200 by the page it was sent to counted as
// published: the event was deleted from the outbox, unsent.
func TestAuditPublishRedirected(t *testing.T) {
	b, h, _ := auditPage(t, "")
	b.expect("Publish", `{"topic":"nobody.here","data":{"n":1}}`, 200, "")
	h.set(func(w http.ResponseWriter, r *http.Request, _ []byte) bool {
		if !strings.Contains(r.URL.Path, "/publish/") {
			return false
		}
		http.Redirect(w, r, "/web/test.html", http.StatusFound)
		return true
	})
	r := b.sync()
	if !strings.Contains(r.Err, redirected) || r.Events != 0 {
		t.Errorf("sync: %+v, want the redirect refused and no event sent", r)
	}
	if s := b.status(); s.Events != 1 {
		t.Errorf("events waiting: %d, want 1", s.Events)
	}
	h.set(nil)
	if r := b.sync(); r.Err != "" || r.Events != 1 {
		t.Fatalf("sync with the server fixed: %+v", r)
	}
}

// redirected is the start of the error of a request answered with a
// redirect, on every path (wire.js's redirectError).
const redirected = "answered with a redirect"

// elsewhere is where the tests' redirects lead: a CORS-open server of a
// plausible reply, which counts the requests it gets.
type elsewhere struct {
	mu   sync.Mutex
	hits int
}

func (e *elsewhere) serve(w http.ResponseWriter, r *http.Request, status int, body string) bool {
	e.mu.Lock()
	e.hits++
	e.mu.Unlock()
	w.Header().Set("Access-Control-Allow-Origin", "*")
	w.Header().Set("Access-Control-Allow-Headers", "*")
	w.Header().Set("Access-Control-Allow-Methods", "*")
	if r.Method == http.MethodOptions || status == 204 {
		w.WriteHeader(204)
		return true
	}
	return answer(w, status, "application/json", body)
}

func (e *elsewhere) count() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.hits
}

// TestAuditInvokeRedirected: the guest's synchronous remote invoke (a
// synchronous XMLHttpRequest in the worker, which follows redirects
// whatever it is told) took the reply of wherever a redirect led for the
// invoked app's: a gateway's sign-in page answering 200 with JSON was
// handed to the guest as inventory's reply. It fails now with Unavailable,
// as sync does for a redirect, whether the redirect stays on the origin
// (302, a POST turned into a GET, and 307, the POST sent again) or leads
// to another one; an invoke of the same app that is not redirected still
// gets its reply.
func TestAuditInvokeRedirected(t *testing.T) {
	b, h, srv := auditPage(t, "")
	there := &elsewhere{}
	const plausible = `{"value":"from elsewhere"}`
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { there.serve(w, r, 200, plausible) }))
	t.Cleanup(other.Close)
	var redirect struct {
		sync.Mutex
		status int
		to     string
	}
	h.set(func(w http.ResponseWriter, r *http.Request, _ []byte) bool {
		switch r.URL.Path {
		case "/v1/elsewhere":
			return there.serve(w, r, 200, plausible)
		case "/v1/apps/remoteapp/methods/Get":
			redirect.Lock()
			status, to := redirect.status, redirect.to
			redirect.Unlock()
			if status == 0 {
				return answer(w, 200, "application/json", `{"value":"from remoteapp"}`)
			}
			http.Redirect(w, r, to, status)
			return true
		}
		return false
	})
	const req = `{"app":"remoteapp","method":"Get","body":{"key":"k"}}`
	b.expect("Invoke", req, 200, `{"value":"from remoteapp"}`)
	for _, c := range []struct {
		name   string
		status int
		to     string
	}{
		{"302 on the origin", http.StatusFound, srv + "/v1/elsewhere"},
		{"307 on the origin", http.StatusTemporaryRedirect, srv + "/v1/elsewhere"},
		{"302 to another origin", http.StatusFound, other.URL + "/signin"},
	} {
		redirect.Lock()
		redirect.status, redirect.to = c.status, c.to
		redirect.Unlock()
		before := there.count()
		r := b.call("conformance", "Invoke", req)
		want := `{"code":"Unavailable","message":"invoke remoteapp.Get: app remoteapp at ` + srv + ` ` + redirected + ` to ` + c.to + `, which answered 200: refused`
		if r.status != 503 || !strings.HasPrefix(r.body, want) || strings.Contains(r.body, "from elsewhere") {
			t.Errorf("%s: %d %s\nwant 503 %s…", c.name, r.status, r.body, want)
		}
		if there.count() == before {
			t.Errorf("%s: the redirect was not followed: the test shows nothing", c.name)
		}
	}
	redirect.Lock()
	redirect.status = 0
	redirect.Unlock()
	b.expect("Invoke", req, 200, `{"value":"from remoteapp"}`)
}

// TestAuditSyncRedirected: state sync follows no redirect. A push, a
// forwarded event and a pull answered with one (302 or 307), whatever is
// at its end (a plausible 200 with the items of the request, the 204 of a
// publish), end the sync with Unavailable and record nothing: the change
// stays to push, the event to forward, and no pulled item is written; and
// nothing is sent on to where the redirect leads. Before, a push or a pull
// took what answered there for the server's reply, and a publish counted
// as sent when it answered 204.
func TestAuditSyncRedirected(t *testing.T) {
	b, h, srv := auditPage(t, "")
	there := &elsewhere{}
	b.expect("Put", `{"key":"k","value":1}`, 200, "")
	b.expect("Publish", `{"topic":"nobody.here","data":{"n":1}}`, 200, "")
	// A sync pushes, then forwards events, then pulls: each case's path
	// is redirected and those before it are served, so that a push case
	// leaves k to push and a pull case finds the event forwarded.
	for _, c := range []struct {
		name, suffix string
		status, then int
		body         string
	}{
		{"push, 302", "/transact", http.StatusFound, 200, `{"items":[{"key":"k","found":true,"value":"MQ==","etag":"99"}]}`},
		{"push, 307", "/transact", http.StatusTemporaryRedirect, 200, `{"items":[{"key":"k","found":true,"value":"MQ==","etag":"99"}]}`},
		{"publish, 302 to a 204", "/nobody.here", http.StatusFound, 204, ""},
		{"publish, 307 to a 204", "/nobody.here", http.StatusTemporaryRedirect, 204, ""},
		{"pull, 302", "/bulk", http.StatusFound, 200, `{"items":[{"key":"p","found":true,"value":"ImV2aWwi","etag":"99"}]}`},
		{"pull, 307", "/bulk", http.StatusTemporaryRedirect, 200, `{"items":[{"key":"p","found":true,"value":"ImV2aWwi","etag":"99"}]}`},
	} {
		h.set(func(w http.ResponseWriter, r *http.Request, _ []byte) bool {
			if r.URL.Path == "/v1/elsewhere" {
				return there.serve(w, r, c.then, c.body)
			}
			if !strings.HasSuffix(r.URL.Path, c.suffix) {
				return false
			}
			http.Redirect(w, r, "/v1/elsewhere", c.status)
			return true
		})
		var r syncResult
		b.eval(`async (pull) => {
			try {
				return await window.roamHost.sync({ pull });
			} catch (e) {
				return { err: e.codeName + ': ' + e.message };
			}
		}`, []any{map[string]any{"app": "conformance", "store": "statestore", "keys": []string{"p"}}}, &r)
		if !strings.HasPrefix(r.Err, "Unavailable: sync: "+srv+"/v1/apps/conformance/") || !strings.Contains(r.Err, c.suffix+" "+redirected+": refused") {
			t.Errorf("%s: sync: %+v, want the redirect refused", c.name, r)
		}
		s := b.status()
		if strings.HasPrefix(c.name, "push") && !slices.Equal(s.dirtyKeys(), []string{"k"}) {
			t.Errorf("%s: dirty %v, want [k]", c.name, s.dirtyKeys())
		}
		if !strings.HasPrefix(c.name, "pull") && s.Events != 1 {
			t.Errorf("%s: events waiting: %d, want 1", c.name, s.Events)
		}
		b.expect("Get", `{"key":"k"}`, 200, `"value":1`)
		b.expect("Get", `{"key":"p"}`, 404, "")
		if n := there.count(); n != 0 {
			t.Fatalf("%s: the redirect was followed: %d requests where it leads", c.name, n)
		}
	}
	h.set(nil)
	if r := b.sync(); r.Err != "" {
		t.Fatalf("sync with the server fixed: %+v", r)
	}
	if s := b.status(); len(s.Dirty) != 0 || s.Events != 0 {
		t.Fatalf("after a sync with the server fixed: %+v", s)
	}
	var v struct{ Value int }
	if api(t, srv, "conformance", "Get", map[string]any{"key": "k"}, &v); v.Value != 1 {
		t.Fatalf("server's k: %d", v.Value)
	}
}

// TestAuditModuleRedirected: a module URL answering with a redirect (a CDN,
// a content-hashed name) loads the module it leads to, as any static asset
// does; the sync and invoke requests, which send something, refuse one.
func TestAuditModuleRedirected(t *testing.T) {
	b, h, srv := auditPage(t, "")
	var hits sync.Map
	h.set(func(w http.ResponseWriter, r *http.Request, _ []byte) bool {
		hits.Store(r.URL.Path, true)
		if r.URL.Path == "/v1/modules/inventory.wasm" {
			http.Redirect(w, r, "/v1/modules/real.wasm", http.StatusFound)
			return true
		}
		if r.URL.Path == "/v1/modules/real.wasm" {
			w.Header().Set("Content-Type", "application/wasm")
			w.Write(readAsset(t, "modules/inventory.wasm"))
			return true
		}
		return false
	})
	var got struct{ Code, Message, App string }
	b.eval(`async (url) => {
		try {
			return { app: (await window.roamHost.load(url)).id };
		} catch (e) {
			return { code: e.codeName, message: e.message };
		}
	}`, srv+"/v1/modules/inventory.wasm", &got)
	if got.App != "inventory" {
		t.Errorf("load through a redirect: %+v, want app inventory", got)
	}
	if _, ok := hits.Load("/v1/modules/real.wasm"); !ok {
		t.Errorf("the redirect was not followed")
	}
}

// TestAuditServerNeverAnswers: a sync request the server never finishes
// answering (no reply at all; headers, then nothing more) held the sync for
// good: every later sync() returned the same pending promise, and the sync
// lock kept the other tabs from syncing too. It fails now after
// syncTimeoutMs, the change kept, and the next sync works.
func TestAuditServerNeverAnswers(t *testing.T) {
	b, h, _ := auditPage(t, `"syncTimeoutMs":1500`)
	b.expect("Put", `{"key":"k","value":1}`, 200, "")
	for _, how := range []string{"no reply", "half a reply"} {
		h.set(func(w http.ResponseWriter, r *http.Request, _ []byte) bool {
			if !strings.HasSuffix(r.URL.Path, "/transact") {
				return false
			}
			if how == "half a reply" {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(200)
				io.WriteString(w, `{"items":[`)
				w.(http.Flusher).Flush()
			}
			select {
			case <-r.Context().Done():
			case <-h.stop:
			}
			return true
		})
		r := b.sync()
		if !strings.Contains(r.Err, "no complete reply") {
			t.Errorf("%s: sync: %+v, want it to give up", how, r)
		}
		if s := b.status(); !slices.Equal(s.dirtyKeys(), []string{"k"}) {
			t.Errorf("%s: dirty %v, want [k]", how, s.dirtyKeys())
		}
	}
	h.set(nil)
	if r := b.sync(); r.Err != "" || r.Pushed != 1 {
		t.Fatalf("sync with the server fixed: %+v", r)
	}
}

// TestAuditEndlessReply: a reply without end (a server, or a proxy, looping)
// was read into memory until the tab gave out. A reply larger than the
// protocol allows (the bulk reply's bound, 8 times remoteMaxBodyBytes of
// values, base64) is refused as it comes.
func TestAuditEndlessReply(t *testing.T) {
	b, h, _ := auditPage(t, `"remoteMaxBodyBytes":16384,"syncTimeoutMs":600000`)
	chunk := strings.Repeat(`{"key":"p","found":true,"value":"MQ==","etag":"5"},`, 1000)
	h.set(func(w http.ResponseWriter, r *http.Request, _ []byte) bool {
		if !strings.HasSuffix(r.URL.Path, "/bulk") {
			return false
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(200)
		io.WriteString(w, `{"items":[`)
		for {
			if _, err := io.WriteString(w, chunk); err != nil {
				return true
			}
			select {
			case <-h.stop:
				return true
			default:
			}
		}
	})
	r := b.syncPull([]any{map[string]any{"app": "conformance", "store": "statestore", "keys": []string{"p"}}})
	if !strings.Contains(r.Err, "bytes") || !strings.Contains(r.Err, protocolError) {
		t.Errorf("sync: %+v, want the reply refused for its size", r)
	}
	b.expect("Get", `{"key":"p"}`, 404, "")
}
