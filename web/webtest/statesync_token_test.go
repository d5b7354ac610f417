package webtest

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/roam-dev/roam/host"
	"github.com/roam-dev/roam/host/native"
	"github.com/roam-dev/roam/internal/syncbuf"
)

var readyRE = regexp.MustCompile(`roam: ready on (http://\S+)`)

// tokenHost runs the conformance app on the native host as its command
// line does (native.Run: --state-api, CORS open to 127.0.0.1 pages), with
// ROAM_STATE_API_TOKEN set to token in its environment, and returns its URL.
func tokenHost(t *testing.T, token string) string {
	t.Helper()
	t.Setenv(host.EnvStateAPIToken, token)
	ctx, cancel := context.WithCancel(context.Background())
	stdout, stderr := &syncbuf.Buffer{}, &syncbuf.Buffer{}
	done := make(chan error, 1)
	go func() {
		done <- native.Run(ctx, []string{"--port", "0", "--addr", "127.0.0.1", "--data-dir", t.TempDir(), "--backend", "embedded",
			"--apps", "conformance", "--state-api", "--cors-origins", "http://127.0.0.1:*"}, stdout, stderr)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Errorf("the host did not stop; its log:\n%s", stderr)
		}
	})
	deadline := time.Now().Add(time.Minute)
	for {
		if m := readyRE.FindStringSubmatch(stdout.String()); m != nil {
			return m[1]
		}
		select {
		case err := <-done:
			t.Fatalf("the host stopped: %v\n%s\n%s", err, stdout, stderr)
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("the host is not ready:\n%s\n%s", stdout, stderr)
		}
	}
}

// tokenPage is testPage, with ?tokenFn=1 giving the Host a stateToken
// function that answers window.roamToken (after a moment, as a page that
// fetches a token does) and records what it was told in window.tokenCalls.
const tokenPage = `<!doctype html>
<meta charset="utf-8">
<title>roam browser host token test</title>
<pre id="error"></pre>
<script type="module">
import { Host } from './roam.js';
const q = new URLSearchParams(location.search);
const opts = JSON.parse(q.get('opts') || '{}');
window.tokenCalls = [];
if (q.get('tokenFn')) {
  opts.stateToken = async (info) => {
    window.tokenCalls.push(info);
    await new Promise((r) => setTimeout(r, 5));
    return window.roamToken;
  };
}
window.roamHost = new Host(opts);
window.roamReady = (async () => {
  const ids = [];
  for (const m of (q.get('modules') || '').split(',').filter(Boolean)) ids.push((await window.roamHost.load('./modules/' + m + '.wasm')).id);
  return ids;
})();
window.roamReady.then(
  (ids) => { document.body.dataset.ready = ids.join(','); },
  (e) => { document.getElementById('error').textContent = e.message; document.body.dataset.error = e.message; });
</script>
`

// tokenAssets serves the bundles, the modules and tokenPage from an origin
// of its own (so the page's sync is cross-origin, preflighted), and
// records the requests that came with an Authorization header.
func tokenAssets(t *testing.T) (string, func() (all, authorized []string)) {
	t.Helper()
	var mu sync.Mutex
	var all, authorized []string
	mux := http.NewServeMux()
	mux.HandleFunc("/web/token.html", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write([]byte(tokenPage))
	})
	mux.Handle("/web/", http.StripPrefix("/web/", http.FileServer(http.Dir(assets))))
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		all = append(all, r.URL.Path)
		if r.Header.Get("Authorization") != "" {
			authorized = append(authorized, r.URL.Path)
		}
		mu.Unlock()
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(ts.Close)
	return ts.URL, func() ([]string, []string) {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(all), slices.Clone(authorized)
	}
}

// tokenSyncResult is what Host.sync or Host.pull resolves to, or its
// error's shape.
type tokenSyncResult struct {
	Pushed, Events, Pulled, Conflicts, Rejected, Parked int
	Err                                                 *struct {
		Code         int    `json:"code"`
		CodeName     string `json:"codeName"`
		Status       int    `json:"status"`
		Message      string `json:"message"`
		Unauthorized bool   `json:"unauthorized"`
		Offline      bool   `json:"offline"`
	}
}

func (b *browser) tokenSync(pull []string) tokenSyncResult {
	b.t.Helper()
	var r tokenSyncResult
	b.eval(`async (keys) => {
		try {
			return await window.roamHost.sync({ pull: [{ app: 'conformance', store: 'statestore', keys }] });
		} catch (e) {
			return { err: { code: e.code, codeName: e.codeName, status: e.status, message: e.message, unauthorized: !!e.unauthorized, offline: !!e.offline } };
		}
	}`, pull, &r)
	return r
}

func (b *browser) tokenPull(keys []string) tokenSyncResult {
	b.t.Helper()
	var r tokenSyncResult
	b.eval(`async (keys) => {
		try {
			return { pulled: (await window.roamHost.pull('conformance', 'statestore', keys)).length };
		} catch (e) {
			return { err: { code: e.code, codeName: e.codeName, status: e.status, message: e.message, unauthorized: !!e.unauthorized, offline: !!e.offline } };
		}
	}`, keys, &r)
	return r
}

// storedItem reads key's record of the conformance app's statestore
// straight from the page's IndexedDB database db: what a reload finds.
func (b *browser) storedItem(db, key string) (rec struct {
	Dirty bool            `json:"dirty"`
	Sent  json.RawMessage `json:"sent"`
	Base  string          `json:"base"`
}) {
	b.t.Helper()
	b.eval(`([db, key]) => new Promise((resolve, reject) => {
		const open = indexedDB.open(db);
		open.onerror = () => reject(open.error);
		open.onsuccess = () => {
			const get = open.result.transaction('items').objectStore('items').get(['conformance', 'statestore', key]);
			get.onerror = () => reject(get.error);
			get.onsuccess = () => {
				const r = get.result;
				open.result.close();
				resolve(r ? { dirty: !!r.dirty, sent: r.sent ?? null, base: r.base } : null);
			};
		};
	})`, []string{db, key}, &rec)
	return rec
}

// serverValue is the conformance app's value of key on the server (its
// methods API, which the token does not guard), or "" when absent.
func serverValue(t *testing.T, base, key string) string {
	t.Helper()
	var v struct{ Value json.RawMessage }
	if st := api(t, base, "conformance", "Get", map[string]string{"key": key}, &v); st != 200 {
		return ""
	}
	return string(v.Value)
}

func wantUnauthorized(t *testing.T, what string, r tokenSyncResult, srv, why, token string) {
	t.Helper()
	e := r.Err
	if e == nil {
		t.Fatalf("%s succeeded: %+v", what, r)
	}
	if e.Code != 4 || e.CodeName != "FailedPrecondition" || e.Status != 401 || !e.Unauthorized || e.Offline {
		t.Errorf("%s: error %+v, want FailedPrecondition, status 401, unauthorized", what, *e)
	}
	if !strings.HasPrefix(e.Message, "sync: "+srv+"/v1/apps/conformance/") || !strings.Contains(e.Message, "answered 401 Unauthorized: "+why) ||
		!strings.HasSuffix(e.Message, "unauthorized: the state sync API wants the header Authorization: Bearer <token>, with the token the host was given in ROAM_STATE_API_TOKEN") {
		t.Errorf("%s: message %q, want one that says %q, with the host's", what, e.Message, why)
	}
	if strings.Contains(e.Message, token) {
		t.Errorf("%s: the message quotes the token: %q", what, e.Message)
	}
}

// TestStateTokenSync runs a page against a real host whose state sync API
// wants ROAM_STATE_API_TOKEN. With the Host's stateToken (a string, or a
// function the page fills in), pushes, forwarded events and pulls carry it
// as Authorization: Bearer, through the cross-origin preflight, and sync.
// Without it, or with a wrong one, the sync fails with FailedPrecondition
// (401, "unauthorized") and keeps everything: the changes stay pending,
// not marked sent, in IndexedDB (a reload finds them), the events queued;
// with the token fixed, the next sync sends them. The token goes nowhere
// else: not with the module fetch, nor to the page's own server.
func TestStateTokenSync(t *testing.T) {
	b := startBrowser(t)
	token := "roam-" + runID() + "-Tok.~+/="
	srv := tokenHost(t, token)
	assetsURL, seen := tokenAssets(t)
	page := func(db string, fn bool, opts map[string]any) string {
		opts["db"], opts["remote"] = db, srv
		o, _ := json.Marshal(opts)
		q := url.Values{"modules": {"conformance"}, "opts": {string(o)}}
		if fn {
			q.Set("tokenFn", "1")
		}
		return assetsURL + "/web/token.html?" + q.Encode()
	}

	// The host wants the token: a request without it is refused.
	resp, err := http.Post(srv+"/v1/apps/conformance/state/statestore/bulk", "application/json", bytes.NewReader([]byte(`{"keys":["x"]}`)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("the host took a state API request without the token: %d", resp.StatusCode)
	}
	if st := api(t, srv, "conformance", "Put", map[string]any{"key": "token/server", "value": "server's"}, nil); st != 200 {
		t.Fatalf("server Put: %d", st)
	}

	// A string token: push, forward, pull.
	db1 := "token-str-" + runID()
	if e := b.openPage(page(db1, false, map[string]any{"stateToken": token})); e != "" {
		t.Fatal(e)
	}
	b.expect("Put", `{"key":"token/a","value":"a"}`, 200, "")
	b.expect("Publish", `{"topic":"token.out","data":{"n":1}}`, 200, "")
	if r := b.tokenSync([]string{"token/server"}); r.Err != nil || r.Pushed != 1 || r.Events != 1 || r.Pulled < 1 || r.Conflicts+r.Rejected+r.Parked != 0 {
		t.Fatalf("sync with the token: %+v\n%s", r, b.logs())
	}
	if v := serverValue(t, srv, "token/a"); v != `"a"` {
		t.Fatalf("server's token/a = %s, want \"a\"", v)
	}
	b.expect("Get", `{"key":"token/server"}`, 200, `"server's"`)
	if r := b.tokenPull([]string{"token/a", "token/server"}); r.Err != nil || r.Pulled != 2 {
		t.Fatalf("pull with the token: %+v", r)
	}
	if s := b.status(); len(s.Dirty) != 0 || s.Events != 0 {
		t.Fatalf("after the sync: %+v", s)
	}

	// A function, that has no token yet.
	db2 := "token-fn-" + runID()
	if e := b.openPage(page(db2, true, map[string]any{})); e != "" {
		t.Fatal(e)
	}
	b.expect("Put", `{"key":"token/b","value":"b"}`, 200, "")
	b.expect("Publish", `{"topic":"token.out","data":{"n":2}}`, 200, "")
	pending := func(when string) {
		t.Helper()
		if s := b.status(); !slices.Equal(s.dirtyKeys(), []string{"token/b"}) || s.Events != 1 || len(s.Rejected)+len(s.Parked) != 0 {
			t.Fatalf("%s: status %+v, want token/b pending and 1 event queued", when, s)
		}
		if rec := b.storedItem(db2, "token/b"); !rec.Dirty || string(rec.Sent) != "null" || rec.Base != "" {
			t.Fatalf("%s: token/b in IndexedDB: %+v, want dirty, not marked sent", when, rec)
		}
		if v := serverValue(t, srv, "token/b"); v != "" {
			t.Fatalf("%s: the server has token/b = %s", when, v)
		}
	}
	wantUnauthorized(t, "sync without a token", b.tokenSync([]string{"token/server"}), srv,
		"the server wants a token and the page sent none (set the Host's stateToken option)", token)
	pending("after a sync without a token")
	wantUnauthorized(t, "pull without a token", b.tokenPull([]string{"token/server"}), srv, "the server wants a token and the page sent none", token)

	// What is pending survives a reload.
	b.reloadPage()
	pending("after a reload")

	b.eval(`() => { window.roamToken = 'not-the-token'; }`, nil, nil)
	wantUnauthorized(t, "sync with a wrong token", b.tokenSync([]string{"token/server"}), srv,
		"the server refused the page's token (the Host's stateToken option)", token)
	pending("after a sync with a wrong token")
	wantUnauthorized(t, "pull with a wrong token", b.tokenPull([]string{"token/server"}), srv, "the server refused the page's token", token)

	// The token fixed: the next sync sends what was pending.
	b.eval(`(t) => { window.roamToken = t; }`, token, nil)
	if r := b.tokenSync([]string{"token/server"}); r.Err != nil || r.Pushed != 1 || r.Events != 1 || r.Pulled < 1 || r.Conflicts+r.Rejected+r.Parked != 0 {
		t.Fatalf("sync with the token fixed: %+v\n%s", r, b.logs())
	}
	if s := b.status(); len(s.Dirty) != 0 || s.Events != 0 || len(s.Rejected)+len(s.Parked) != 0 {
		t.Fatalf("after the sync with the token fixed: %+v", s)
	}
	if v := serverValue(t, srv, "token/b"); v != `"b"` {
		t.Fatalf("server's token/b = %s, want \"b\"", v)
	}
	if rec := b.storedItem(db2, "token/b"); rec.Dirty || string(rec.Sent) != "null" || rec.Base == "" {
		t.Fatalf("token/b in IndexedDB after the sync: %+v, want pushed", rec)
	}
	b.expect("Get", `{"key":"token/server"}`, 200, `"server's"`)
	// The function was told when its token had been refused.
	var calls []struct{ Refused bool }
	b.eval(`() => window.tokenCalls`, nil, &calls)
	if len(calls) == 0 || !slices.ContainsFunc(calls, func(c struct{ Refused bool }) bool { return c.Refused }) {
		t.Errorf("the stateToken function's calls %+v: none told that its token was refused", calls)
	}

	all, authorized := seen()
	if len(authorized) != 0 {
		t.Errorf("requests to the page's own server carried an Authorization header: %v", authorized)
	}
	if !slices.Contains(all, "/web/modules/conformance.wasm") {
		t.Errorf("the module fetch was not seen: %v", all)
	}
}
