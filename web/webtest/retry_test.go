package webtest

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
)

// setAsideReply is what Host.retry and Host.discard resolve to, or their
// error ("codeName: message").
type setAsideReply struct {
	Keys, Events int
	Err          string
}

// setAside calls Host.retry or Host.discard (op) with what.
func (b *browser) setAside(op string, what any) setAsideReply {
	b.t.Helper()
	var r setAsideReply
	b.eval(`async ([op, what]) => {
		try {
			return await (what === null ? window.roamHost[op]() : window.roamHost[op](what));
		} catch (e) {
			return { err: e.codeName + ': ' + e.message };
		}
	}`, []any{op, what}, &r)
	return r
}

// syncPull runs Host.sync({pull}).
func (b *browser) syncPull(pull any) syncResult {
	b.t.Helper()
	var r syncResult
	b.eval(`async (pull) => { try { return await window.roamHost.sync({ pull }); } catch (e) { return {err: String(e)}; } }`, pull, &r)
	return r
}

// reloadPage reloads the test page and waits until its modules loaded.
func (b *browser) reloadPage() {
	b.t.Helper()
	b.must(map[string]any{"op": "reload"})
	b.waitFor(`() => document.body.dataset.ready !== undefined || document.body.dataset.error !== undefined`, nil)
}

type stateKey struct {
	App   string `json:"app"`
	Store string `json:"store"`
	Key   string `json:"key"`
}

func confKey(k string) stateKey { return stateKey{"conformance", "statestore", k} }

func (s hostStatus) rejectedKeys() []string {
	var ks []string
	for _, r := range s.Rejected {
		ks = append(ks, r.Key)
	}
	slices.Sort(ks)
	return ks
}

// TestRetryAndDiscard: what the server refused for good (changes, rejected;
// events, parked) stays set aside until the page asks: Host.retry sends it
// again at the next sync, once the server takes it (its limits raised),
// and Host.discard drops it, a change for the server's version. Both are
// saved in IndexedDB and survive a reload; a name that is not set aside
// fails and changes nothing, and discard drops only what it names.
func TestRetryAndDiscard(t *testing.T) {
	b := startBrowser(t)
	srv, probe := syncServer(t)
	ts := serveAssets(t, nil)
	if e := b.openPage(pageURL(ts.URL, []string{"conformance"}, `{"db":"retry-`+runID()+`","remote":"`+srv+`"}`)); e != "" {
		t.Fatal(e)
	}
	// refuse/old is on the server, and the page changes it; refuse/a and
	// refuse/b are new.
	if st := api(t, srv, "conformance", "Put", map[string]any{"key": "refuse/old", "value": "server's"}, nil); st != 200 {
		t.Fatalf("server Put: %d", st)
	}
	if r := b.syncPull([]any{map[string]any{"app": "conformance", "store": "statestore", "keys": []string{"refuse/old"}}}); r.Err != "" || r.Pulled != 1 {
		t.Fatalf("first sync: %+v", r)
	}
	b.expect("Put", `{"key":"refuse/old","value":"mine"}`, 200, "")
	b.expect("Put", `{"key":"refuse/a","value":1}`, 200, "")
	b.expect("Put", `{"key":"refuse/b","value":2}`, 200, "")
	b.expect("Publish", `{"topic":"refused.topic","data":{"n":1}}`, 200, "")
	b.expect("Publish", `{"topic":"refused.topic","data":{"n":2}}`, 200, "")
	if r := b.sync(); r.Err != "" || r.Rejected != 3 || r.Parked != 2 || r.Pushed != 0 || r.Events != 0 {
		t.Fatalf("sync: %+v\n%s", r, b.logs())
	}
	s := b.status()
	if !slices.Equal(s.rejectedKeys(), []string{"refuse/a", "refuse/b", "refuse/old"}) || len(s.Parked) != 2 {
		t.Fatalf("set aside: rejected %v, parked %+v", s.rejectedKeys(), s.Parked)
	}
	first, second := s.Parked[0], s.Parked[1] // in publish order: {"n":1}, {"n":2}

	// The server takes everything now, but a sync does not send what was
	// set aside by itself.
	probe.accept()
	if r := b.sync(); r.Err != "" || r.Pushed != 0 || r.Events != 0 {
		t.Fatalf("sync before retry: %+v", r)
	}

	// A name that is not set aside fails the whole call.
	if r := b.setAside("retry", map[string]any{"keys": []stateKey{confKey("refuse/b"), confKey("nope")}}); r.Err != "NotFound: no change of conformance/statestore/nope refused by the server" {
		t.Fatalf("retry of an unknown key: %+v", r)
	}
	if r := b.setAside("retry", map[string]any{"events": []int{first.Pos + second.Pos + 1000}}); !strings.HasPrefix(r.Err, "NotFound: no parked event at ") {
		t.Fatalf("retry of an unknown event: %+v", r)
	}
	if r := b.setAside("discard", nil); !strings.HasPrefix(r.Err, "InvalidArgument: discard: name the refused changes") {
		t.Fatalf("discard of nothing named: %+v", r)
	}
	if r := b.setAside("discard", map[string]any{}); !strings.HasPrefix(r.Err, "InvalidArgument: discard: name") {
		t.Fatalf("discard of nothing named: %+v", r)
	}
	if s := b.status(); len(s.Rejected) != 3 || len(s.Parked) != 2 {
		t.Fatalf("after failed calls: rejected %v, parked %+v", s.rejectedKeys(), s.Parked)
	}

	// Retry one key and one event (named as status() lists it), and reload.
	if r := b.setAside("retry", map[string]any{"keys": []stateKey{confKey("refuse/a")}, "events": []any{first}}); r.Err != "" || r.Keys != 1 || r.Events != 1 {
		t.Fatalf("retry: %+v", r)
	}
	b.reloadPage()
	s = b.status()
	if !slices.Equal(s.rejectedKeys(), []string{"refuse/b", "refuse/old"}) || !slices.Equal(s.dirtyKeys(), []string{"refuse/a"}) ||
		s.Events != 1 || len(s.Parked) != 1 || s.Parked[0].Pos != second.Pos {
		t.Fatalf("after retry and reload: rejected %v, dirty %v, events %d, parked %+v", s.rejectedKeys(), s.dirtyKeys(), s.Events, s.Parked)
	}

	// Discard the other two keys and the other event, and reload: the key
	// the server never had is gone, the one it has reads as absent until
	// the next pull brings the server's version.
	if r := b.setAside("discard", map[string]any{"keys": []stateKey{confKey("refuse/b"), confKey("refuse/old")}, "events": []int{second.Pos}}); r.Err != "" || r.Keys != 2 || r.Events != 1 {
		t.Fatalf("discard: %+v", r)
	}
	b.expect("Get", `{"key":"refuse/b"}`, 404, "not found")
	b.expect("Get", `{"key":"refuse/old"}`, 404, "not found")
	b.reloadPage()
	s = b.status()
	if len(s.Rejected) != 0 || len(s.Parked) != 0 || !slices.Equal(s.dirtyKeys(), []string{"refuse/a"}) || s.Events != 1 {
		t.Fatalf("after discard and reload: rejected %v, dirty %v, events %d, parked %+v", s.rejectedKeys(), s.dirtyKeys(), s.Events, s.Parked)
	}
	b.expect("Get", `{"key":"refuse/old"}`, 404, "not found")

	// The next sync sends what was retried, and nothing discarded.
	if r := b.sync(); r.Err != "" || r.Pushed != 1 || r.Events != 1 || r.Rejected != 0 || r.Parked != 0 || r.Pulled < 1 {
		t.Fatalf("sync after retry: %+v\n%s", r, b.logs())
	}
	b.expect("Get", `{"key":"refuse/old"}`, 200, `"value":"server's"`)
	for k, want := range map[string]int{"refuse/a": 200, "refuse/b": 404} {
		if st := api(t, srv, "conformance", "Get", map[string]string{"key": k}, nil); st != want {
			t.Errorf("server Get %s: %d, want %d", k, st, want)
		}
	}
	var old struct{ Value string }
	if api(t, srv, "conformance", "Get", map[string]string{"key": "refuse/old"}, &old); old.Value != "server's" {
		t.Errorf("server's refuse/old: %q", old.Value)
	}
	if _, pub := probe.seen(); !slices.Equal(pub, []string{`refused.topic {"n":1}`}) {
		t.Errorf("forwarded events: %q", pub)
	}
	if s := b.status(); len(s.Dirty) != 0 || len(s.Rejected) != 0 || s.Events != 0 || len(s.Parked) != 0 {
		t.Errorf("after sync: %+v", s)
	}
}

// TestRetryAll: Host.retry() with no argument takes back everything set
// aside; a parked event whose topic a module loaded since subscribes to is
// delivered to it in the page, not forwarded.
func TestRetryAll(t *testing.T) {
	b := startBrowser(t)
	srv, probe := syncServer(t)
	ts := serveAssets(t, nil)
	opts := `{"db":"retryall-` + runID() + `","remote":"` + srv + `"}`
	if e := b.openPage(pageURL(ts.URL, []string{"conformance"}, opts)); e != "" {
		t.Fatal(e)
	}
	b.expect("Publish", `{"topic":"setup.booted","data":42}`, 200, "") // setupapp's topic; not loaded
	b.expect("Put", `{"key":"refuse/c","value":3}`, 200, "")
	if r := b.sync(); r.Err != "" || r.Rejected != 1 || r.Parked != 1 {
		t.Fatalf("sync: %+v\n%s", r, b.logs())
	}
	if e := b.openPage(pageURL(ts.URL, []string{"conformance", "setupapp"}, opts)); e != "" {
		t.Fatal(e)
	}
	if s := b.status(); len(s.Rejected) != 1 || len(s.Parked) != 1 || s.Parked[0].Topic != "setup.booted" {
		t.Fatalf("set aside: %+v", s)
	}
	probe.accept()
	if r := b.setAside("retry", nil); r.Err != "" || r.Keys != 1 || r.Events != 1 {
		t.Fatalf("retry: %+v", r)
	}
	// (A wait's predicate answers at once: it asks again while no call is out.)
	b.waitFor(`() => {
		window.seenCall ??= window.roamHost.call('setupapp', 'Seen').then((s) => { window.seen = s; }).finally(() => { window.seenCall = null; });
		return window.seen?.includes(42);
	}`, nil)
	if r := b.sync(); r.Err != "" || r.Pushed != 1 || r.Events != 0 || r.Parked != 0 {
		t.Fatalf("sync after retry: %+v", r)
	}
	if st := api(t, srv, "conformance", "Get", map[string]string{"key": "refuse/c"}, nil); st != 200 {
		t.Errorf("server Get refuse/c: %d", st)
	}
	if _, pub := probe.seen(); len(pub) != 0 {
		t.Errorf("forwarded events: %q", pub)
	}
	if s := b.status(); len(s.Rejected) != 0 || len(s.Parked) != 0 || s.Events != 0 {
		t.Errorf("after sync: %+v", s)
	}
}

// TestPullRefusedStore: a store the server refuses to read (a 4xx) is
// reported in the sync's result, and the sync goes on with the other
// stores; offline-like failures (5xx, 429) and the page's credentials
// (401, 403) still end it.
func TestPullRefusedStore(t *testing.T) {
	b := startBrowser(t)
	srv, _ := syncServer(t)
	ts := serveAssets(t, nil)
	if e := b.openPage(pageURL(ts.URL, []string{"conformance"}, `{"db":"pullfail-`+runID()+`","remote":"`+srv+`"}`)); e != "" {
		t.Fatal(e)
	}
	api(t, srv, "conformance", "Put", map[string]any{"key": "k", "value": 1}, nil)
	b.expect("Publish", `{"topic":"nobody.here","data":{"n":1}}`, 200, "")
	pull := func(stores ...string) []any {
		var out []any
		for _, s := range stores {
			out = append(out, map[string]any{"app": "conformance", "store": s, "keys": []string{"k"}})
		}
		return out
	}
	// The refused stores come first: the page has no state of its own yet.
	r := b.syncPull(pull("status-404", "status-400", "statestore"))
	if r.Err != "" || r.Events != 1 || r.Pulled != 1 || len(r.PullFailed) != 2 {
		t.Fatalf("sync: %+v\n%s", r, b.logs())
	}
	for i, st := range []int{404, 400} {
		f := r.PullFailed[i]
		if f.App != "conformance" || f.Store != fmt.Sprint("status-", st) || f.Status != st || f.Message != fmt.Sprintf("store status-%d: refused by the test's server", st) {
			t.Errorf("pullFailed[%d]: %+v", i, f)
		}
	}
	b.expect("Get", `{"key":"k"}`, 200, `"value":1`)

	for _, st := range []int{401, 403, 429, 503} {
		want := fmt.Sprintf("RoamError: store status-%d: refused by the test's server", st)
		if st == 401 {
			// Said as the state API's token refused (statesync_token_test.go).
			want = "RoamError: sync: " + srv + "/v1/apps/conformance/state/status-401/bulk answered 401 Unauthorized: the server wants a token and the page sent none (set the Host's stateToken option): store status-401: refused by the test's server"
		}
		if r := b.syncPull(pull(fmt.Sprint("status-", st))); r.Err != want {
			t.Errorf("sync with a %d: %+v, want the error %q", st, r, want)
		}
	}
}

// TestShopShowsRefused: the shop page counts what the server refused (the
// order's keys and its event) apart from what waits to sync, after a
// reload too, and its Retry button sends them once the server takes them.
func TestShopShowsRefused(t *testing.T) {
	b := startBrowser(t)
	var refusing atomic.Bool
	refusing.Store(true)
	// The server refuses the orders store's pushes and every event, as one
	// whose body limit is too low for them.
	srv := shopServerBehind(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			p := r.URL.Path
			if refusing.Load() && r.Method == http.MethodPost &&
				(strings.HasPrefix(p, "/v1/apps/orders/state/") && strings.HasSuffix(p, "/transact") || strings.Contains(p, "/publish/")) {
				w.Header().Set("Access-Control-Allow-Origin", r.Header.Get("Origin"))
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusRequestEntityTooLarge)
				w.Write([]byte(`{"code":"InvalidArgument","message":"request body exceeds 64 bytes"}`))
				return
			}
			h.ServeHTTP(w, r)
		})
	})
	page := shopPage(t, nil)
	cust, sku := "dee-"+runID(), "kiwi-"+runID()
	api(t, srv, "inventory", "Restock", map[string]any{"sku": sku, "quantity": 10}, nil)
	openShop(t, b, page, srv, cust, sku, 10)
	b.waitFor(`() => document.querySelector('#refused').hidden`, nil)
	b.createOrder(1)
	// The order and the customer's index, and order.created.
	b.waitFor(`() => !document.querySelector('#refused').hidden && document.querySelector('#refused-count').textContent === '3'`, nil)
	b.waitPending(0) // the stock went out
	if n := serverStock(t, srv, sku); n != 9 {
		t.Fatalf("server stock %d, want 9", n)
	}
	if got := serverOrders(t, srv, cust); len(got) != 0 {
		t.Fatalf("the server has orders it refused: %v", got)
	}
	b.screenshot("shop-refused.png")

	q := url.Values{"remote": {srv}, "db": {"shop-" + cust}, "customer": {cust}, "skus": {sku}}
	b.must(map[string]any{"op": "goto", "url": page + "?" + q.Encode()})
	b.waitFor(`() => document.body.dataset.ready`, nil)
	b.waitFor(`() => !document.querySelector('#refused').hidden && document.querySelector('#refused-count').textContent === '3'`, nil)

	refusing.Store(false)
	b.must(map[string]any{"op": "click", "selector": "#retry"})
	b.waitFor(`() => document.querySelector('#refused').hidden`, nil)
	b.waitPending(0)
	if got := serverOrders(t, srv, cust); len(got) != 1 || got[0].Status != "created" {
		t.Fatalf("after retry the server has %v", got)
	}
}
