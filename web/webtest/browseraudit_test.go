package webtest

// An audit of what a demanding user of an offline-first page meets in a
// real Chromium: two tabs of one origin writing and syncing at once, a tab
// closed while its push is on the wire, a full storage quota, and a server
// that answers a pull with garbage.

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// crashServer applies a state sync request of kind (a path suffix:
// "/transact", or "/publish/" for a forwarded event) on the real server
// and then never answers it, as a reply lost with the tab that sent it; it
// tells applied once the server took it.
func crashServer(h *hostileServer, kind string) (applied chan int) {
	applied = make(chan int, 4)
	h.set(func(w http.ResponseWriter, r *http.Request, body []byte) bool {
		if !strings.Contains(r.URL.Path, kind) {
			return false
		}
		status, _ := h.realReply(r, body)
		applied <- status
		select {
		case <-r.Context().Done():
		case <-h.stop:
		}
		return true
	})
	return applied
}

// TestBrowserAuditTabClosedMidPush: the page is closed while its push is
// in flight, after the server applied it and before the reply came back.
// The next page (another tab of the same origin, on the same IndexedDB)
// pushes again: nothing is lost, nothing is applied twice, and the keys
// the lost push wrote are not reported as conflicts with themselves.
//
// Before, every key of the lost push came back as a conflict, local and
// server versions identical, for the user to resolve one by one.
func TestBrowserAuditTabClosedMidPush(t *testing.T) {
	b, h, srv := auditPage(t, "")
	// k0 is on the server already (a delete and a set conditional on its
	// ETag), k1 and k2 are new (if_absent).
	b.expect("Put", `{"key":"k0","value":0}`, 200, "")
	b.expect("Put", `{"key":"gone","value":0}`, 200, "")
	if r := b.sync(); r.Err != "" || r.Pushed != 2 {
		t.Fatalf("first sync: %+v", r)
	}
	b.expect("Put", `{"key":"k0","value":"zero"}`, 200, "")
	b.expect("Put", `{"key":"k1","value":1}`, 200, "")
	b.expect("Put", `{"key":"k2","value":2}`, 200, "")
	b.expect("Delete", `{"key":"gone"}`, 200, "")
	b2, u := lostPush(t, b, h)
	if e := b2.openPage(u); e != "" {
		t.Fatal(e)
	}
	r := b2.sync()
	if r.Err != "" || r.Conflicts != 0 {
		t.Errorf("sync after the lost reply: %+v, want no conflicts", r)
	}
	if ks := b2.conflictKeys(); len(ks) != 0 {
		t.Errorf("conflicts %v", ks)
	}
	if s := b2.status(); len(s.Dirty) != 0 {
		t.Errorf("still dirty: %v", s.dirtyKeys())
	}
	for k, want := range map[string]string{"k0": `"zero"`, "k1": "1", "k2": "2"} {
		var v struct {
			Value json.RawMessage
			ETag  string
		}
		if api(t, srv, "conformance", "Get", map[string]any{"key": k}, &v); string(v.Value) != want {
			t.Errorf("server's %s: %s, want %s", k, v.Value, want)
		}
		b2.expect("Get", `{"key":"`+k+`"}`, 200, `"value":`+want)
	}
	if st := api(t, srv, "conformance", "Get", map[string]any{"key": "gone"}, nil); st != 404 {
		t.Errorf("server's deleted key: %d", st)
	}
	b2.expect("Get", `{"key":"gone"}`, 404, "")
	// The keys go on syncing as usual: a change made now is pushed,
	// conditional on the server's ETag of the lost push's write.
	b2.expect("Put", `{"key":"k1","value":11}`, 200, "")
	if r := b2.sync(); r.Err != "" || r.Pushed != 1 || r.Conflicts != 0 {
		t.Errorf("next sync: %+v", r)
	}
	var v struct{ Value int }
	if api(t, srv, "conformance", "Get", map[string]any{"key": "k1"}, &v); v.Value != 11 {
		t.Errorf("server's k1: %d", v.Value)
	}
}

// lostPush makes b's next push one whose reply is lost: the server applies
// it and drops the connection, and b's page is closed. It returns another
// tab of the same browser, not yet on a page, and the page's URL to open
// there.
func lostPush(t *testing.T, b *browser, h *hostileServer) (*browser, string) {
	t.Helper()
	applied := crashServer(h, "/transact")
	b.eval(`() => { window.roamHost.sync().catch(() => {}); }`, nil, nil)
	select {
	case st := <-applied:
		if st != 200 {
			t.Fatalf("the server answered the push %d", st)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no push")
	}
	u := b.pageURLNow()
	b2 := b.newTab()
	b.must(map[string]any{"op": "closePage"})
	h.set(nil)
	return b2, u
}

// TestBrowserAuditTabClosedMidPushThenWritten: as above, but the app
// writes the key again (in another tab) before the push is tried again:
// the new write is pushed over the lost push's, not reported as a
// conflict, and not lost.
func TestBrowserAuditTabClosedMidPushThenWritten(t *testing.T) {
	b, h, srv := auditPage(t, "")
	b.expect("Put", `{"key":"k","value":1}`, 200, "")
	b2, u := lostPush(t, b, h)
	if e := b2.openPage(u); e != "" {
		t.Fatal(e)
	}
	b2.expect("Put", `{"key":"k","value":2}`, 200, "")
	if r := b2.sync(); r.Err != "" || r.Conflicts != 0 || r.Pushed != 1 {
		t.Errorf("sync: %+v", r)
	}
	var v struct{ Value int }
	if api(t, srv, "conformance", "Get", map[string]any{"key": "k"}, &v); v.Value != 2 {
		t.Errorf("server's k: %d", v.Value)
	}
	if s := b2.status(); len(s.Dirty) != 0 {
		t.Errorf("still dirty: %v", s.dirtyKeys())
	}
}

// TestBrowserAuditTabClosedMidPushRealConflict: the lost push's key was
// written on the server by someone else before the page tried again: that
// is a conflict still, with the server's version kept apart.
func TestBrowserAuditTabClosedMidPushRealConflict(t *testing.T) {
	b, h, srv := auditPage(t, "")
	b.expect("Put", `{"key":"k","value":1}`, 200, "")
	b2, u := lostPush(t, b, h)
	api(t, srv, "conformance", "Put", map[string]any{"key": "k", "value": "theirs"}, nil)
	if e := b2.openPage(u); e != "" {
		t.Fatal(e)
	}
	if r := b2.sync(); r.Err != "" || r.Conflicts != 1 {
		t.Errorf("sync: %+v, want 1 conflict", r)
	}
	if ks := b2.conflictKeys(); !slices.Equal(ks, []string{"k"}) {
		t.Errorf("conflicts %v", ks)
	}
	b2.expect("Get", `{"key":"k"}`, 200, `"value":1`)
}

// pageURLNow is the URL of the tab's page.
func (b *browser) pageURLNow() string {
	b.t.Helper()
	var u string
	b.eval(`() => location.href`, nil, &u)
	return u
}

// TestBrowserAuditTabsETagRace: two tabs read a key's ETag and write it
// conditionally at the same time, many times over: each time exactly one
// wins and the other gets Conflict, and the key holds the winner's value.
func TestBrowserAuditTabsETagRace(t *testing.T) {
	b := startBrowser(t)
	ts := serveAssets(t, nil)
	b2 := openTabs(t, b, pageURL(ts.URL, []string{"conformance"}, `{"db":"etag-`+runID()+`"}`))
	b.expect("Put", `{"key":"k","value":"start"}`, 200, "")
	etag := func(tab *browser) string {
		var v struct{ ETag string }
		r := tab.call("conformance", "Get", `{"key":"k"}`)
		json.Unmarshal([]byte(r.body), &v)
		return v.ETag
	}
	for i := 0; i < 10; i++ {
		ea, eb := etag(b), etag(b2)
		if ea != eb {
			t.Fatalf("round %d: the tabs read ETags %s and %s", i, ea, eb)
		}
		var ra, rb callResult
		both(func() { ra = b.call("conformance", "Put", `{"key":"k","value":"a`+ea+`","etag":"`+ea+`"}`) },
			func() { rb = b2.call("conformance", "Put", `{"key":"k","value":"b`+ea+`","etag":"`+ea+`"}`) })
		var winner string
		switch {
		case ra.status == 200 && rb.status == 409:
			winner = "a" + ea
		case rb.status == 200 && ra.status == 409:
			winner = "b" + ea
		default:
			t.Fatalf("round %d: %v and %v, want one 200 and one 409", i, ra, rb)
		}
		for _, r := range []callResult{ra, rb} {
			if r.status == 409 && !strings.Contains(r.body, `"code":"Conflict"`) {
				t.Errorf("round %d: the loser: %v", i, r)
			}
		}
		b.expect("Get", `{"key":"k"}`, 200, winner)
		b2.expect("Get", `{"key":"k"}`, 200, winner)
	}
}

// TestBrowserAuditTabsSeeWholeTransactions: one tab writes 20 keys per
// transaction, over and over, while the other reads them all at once: it
// always sees one transaction's keys, never a mix.
func TestBrowserAuditTabsSeeWholeTransactions(t *testing.T) {
	b := startBrowser(t)
	ts := serveAssets(t, nil)
	b2 := openTabs(t, b, pageURL(ts.URL, []string{"conformance"}, `{"db":"tx-`+runID()+`"}`))
	var keys []string
	tx := func(n int) string {
		var ops []string
		for i := 0; i < 20; i++ {
			ops = append(ops, `{"op":"set","key":"t`+string(rune('a'+i))+`","value":`+itoa(n)+`}`)
		}
		return `{"ops":[` + strings.Join(ops, ",") + `]}`
	}
	for i := 0; i < 20; i++ {
		keys = append(keys, `"t`+string(rune('a'+i))+`"`)
	}
	b.expect("Transact", tx(0), 200, "")
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for n := 1; n <= 30; n++ {
			b.expect("Transact", tx(n), 200, "")
		}
	}()
	mixed := 0
	for i := 0; i < 40; i++ {
		r := b2.call("conformance", "BulkGet", `{"keys":[`+strings.Join(keys, ",")+`]}`)
		var v struct {
			Items []struct{ Value json.RawMessage }
		}
		json.Unmarshal([]byte(r.body), &v)
		if len(v.Items) != 20 {
			t.Fatalf("BulkGet: %v", r)
		}
		for _, it := range v.Items {
			if string(it.Value) != string(v.Items[0].Value) {
				mixed++
				t.Errorf("a read saw two transactions: %s", r.body)
				break
			}
		}
	}
	wg.Wait()
	if mixed != 0 {
		t.Errorf("%d mixed reads", mixed)
	}
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}

// TestBrowserAuditPullRacesPush: one tab pulls a key while the other
// pushes a change of it; the pull's reply, read before the push landed,
// comes back after. The page must not take that older version over the
// newer one it pushed: both tabs keep reading the value they wrote.
//
// Before, Host.pull ran outside the sync lock, and its old reply replaced
// the pushed value (clean, with the server's newer ETag as base) by the
// server's previous one: the user's write seemed undone, and a write made
// on top of it came back as a conflict.
func TestBrowserAuditPullRacesPush(t *testing.T) {
	b, h, srv := auditPage(t, "")
	b.helpers()
	b.expect("Put", `{"key":"k","value":1}`, 200, "")
	if r := b.sync(); r.Err != "" || r.Pushed != 1 {
		t.Fatalf("first sync: %+v", r)
	}
	u := b.pageURLNow()
	b2 := b.newTab()
	if e := b2.openPage(u); e != "" {
		t.Fatal(e)
	}
	held := make(chan struct{})
	release := make(chan struct{})
	var once sync.Once
	h.set(func(w http.ResponseWriter, r *http.Request, body []byte) bool {
		if !strings.HasSuffix(r.URL.Path, "/bulk") {
			return false
		}
		first := false
		once.Do(func() { first = true })
		if !first {
			return false
		}
		// The server's reply as of now, sent later.
		status, reply := h.realReply(r, body)
		close(held)
		select {
		case <-release:
		case <-time.After(3 * time.Second):
		case <-h.stop:
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		w.Write(reply)
		return true
	})
	b2.eval(`() => { window.pulled = window.roamHost.pull('conformance', 'statestore', ['k']).then(() => 'ok', (e) => String(e)); }`, nil, nil)
	<-held
	b.expect("Put", `{"key":"k","value":2}`, 200, "")
	r := b.sync()
	close(release)
	if r.Err != "" || r.Pushed != 1 || r.Conflicts != 0 {
		t.Errorf("sync: %+v", r)
	}
	var pulled string
	b2.eval(`() => window.pulled`, nil, &pulled)
	if pulled != "ok" {
		t.Errorf("pull: %s", pulled)
	}
	var v struct{ Value int }
	if api(t, srv, "conformance", "Get", map[string]any{"key": "k"}, &v); v.Value != 2 {
		t.Errorf("server's k: %d", v.Value)
	}
	b.expect("Get", `{"key":"k"}`, 200, `"value":2`)
	b2.expect("Get", `{"key":"k"}`, 200, `"value":2`)
	b2.expect("Increment", `{"key":"n"}`, 200, "")
	if r := b2.sync(); r.Err != "" || r.Conflicts != 0 {
		t.Errorf("next sync: %+v", r)
	}
	if ks := b.conflictKeys(); len(ks) != 0 {
		t.Errorf("conflicts %v", ks)
	}
}

// quotaFull makes the next n IndexedDB write transactions of the page's
// roam worker fail as a full quota makes them fail in Chromium: aborted,
// with a QuotaExceededError. (Storage.overrideQuotaForOrigin, through a
// session kept attached, shows the smaller quota, yet this Chromium (156,
// headless) still commits a 5 MiB put under a 70 KB quota, raw IndexedDB
// too; so the failure is injected, as it comes.)
func (b *browser) quotaFull(n int) {
	b.t.Helper()
	b.must(map[string]any{"op": "workerEval", "url": "roam-worker", "arg": n, "fn": `(n) => {
		self.__roamFull = n;
		if (!self.__roamFullPatched) {
			self.__roamFullPatched = true;
			const put = IDBObjectStore.prototype.put;
			IDBObjectStore.prototype.put = function (...args) {
				const r = put.apply(this, args);
				const tx = this.transaction;
				if (self.__roamFull > 0 && tx.mode === 'readwrite' && !tx.__roamDoomed) {
					self.__roamFull--;
					tx.__roamDoomed = true;
					const err = new DOMException('The transaction was aborted, so the request cannot be fulfilled.', 'QuotaExceededError');
					Object.defineProperty(tx, 'error', { get: () => err });
					queueMicrotask(() => tx.abort());
				}
				return r;
			};
		}
		return n;
	}`})
}

// TestBrowserAuditQuotaExceeded: a write that does not fit the site's
// storage quota fails with Unavailable (503), with a message that names
// the storage and says that nothing was half written, as the embedded
// backend says of a full disk; a transaction fails whole; what was saved
// before stays, in memory and after a reload; and the next write, once
// there is room, works.
func TestBrowserAuditQuotaExceeded(t *testing.T) {
	b, _, _ := auditPage(t, "")
	b.expect("Put", `{"key":"small","value":"before"}`, 200, "")
	var db string
	b.eval(`() => window.roamHost.options.db`, nil, &db)
	b.quotaFull(2)
	want := `{"code":"Unavailable","message":"state was not saved: IndexedDB ` + db + ` is full: the browser's storage quota for this site is used up (QuotaExceededError: The transaction was aborted, so the request cannot be fulfilled.): the write was rolled back, and the data written before is intact; free some of this site's storage, or ask the browser to keep more (navigator.storage.persist())"}`
	big := `"` + strings.Repeat("x", 1<<20) + `"`
	if r := b.call("conformance", "Put", `{"key":"big","value":`+big+`}`); r.status != 503 || r.body != want {
		t.Errorf("a write over the quota: %d %s\nwant %s", r.status, r.body, want)
	}
	tx := `{"ops":[{"op":"set","key":"small","value":"changed"},{"op":"set","key":"t1","value":1},{"op":"delete","key":"nothing"}]}`
	if r := b.call("conformance", "Transact", tx); r.status != 503 || r.body != want {
		t.Errorf("a transaction over the quota: %d %s", r.status, r.body)
	}
	check := func() {
		b.expect("Get", `{"key":"small"}`, 200, `"value":"before"`)
		b.expect("Get", `{"key":"big"}`, 404, "")
		b.expect("Get", `{"key":"t1"}`, 404, "")
		if s := b.status(); !slices.Equal(s.dirtyKeys(), []string{"small"}) {
			t.Errorf("dirty %v", s.dirtyKeys())
		}
	}
	check()
	b.reloadPage()
	check()
	b.expect("Put", `{"key":"t1","value":1}`, 200, "")
	b.expect("Get", `{"key":"t1"}`, 200, `"value":1`)
}

// TestBrowserAuditPullGarbage: a pull answered with garbage (not JSON, a
// 200 of another shape, a body over the protocol's bound) ends the sync
// with a clear error, and the page's data is as it was: the synced key
// keeps its value, the changed one stays to push.
func TestBrowserAuditPullGarbage(t *testing.T) {
	b, h, _ := auditPage(t, `"remoteMaxBodyBytes":16384`)
	b.expect("Put", `{"key":"synced","value":1}`, 200, "")
	if r := b.sync(); r.Err != "" || r.Pushed != 1 {
		t.Fatalf("first sync: %+v", r)
	}
	// Pushed by the first sync below (the push goes before the pull).
	b.expect("Put", `{"key":"local","value":2}`, 200, "")
	huge := `{"items":[{"key":"synced","found":true,"value":"` + strings.Repeat("QUFB", 80000) + `","etag":"99"}]}`
	for name, body := range map[string]string{
		"not JSON":        `{"items":[{"key":"synced","found":tru`,
		"another shape":   `{"data":{"synced":"QUFB"}}`,
		"items an object": `{"items":{"synced":{"found":true,"value":"QUFB","etag":"99"}}}`,
		"oversized":       huge,
	} {
		h.set(func(w http.ResponseWriter, r *http.Request, _ []byte) bool {
			if !strings.HasSuffix(r.URL.Path, "/bulk") {
				return false
			}
			return answer(w, 200, "application/json", body)
		})
		r := b.sync()
		if !strings.Contains(r.Err, protocolError) || (name == "not JSON") != strings.Contains(r.Err, "its body is not JSON") {
			t.Errorf("%s: sync: %+v", name, r)
		}
		var pulled string
		b.eval(`() => window.roamHost.pull('conformance', 'statestore', ['synced']).then(() => 'ok', (e) => e.codeName + ' ' + e.status + ': ' + e.message)`, nil, &pulled)
		if !strings.HasPrefix(pulled, "Unavailable 502: ") || !strings.Contains(pulled, protocolError) {
			t.Errorf("%s: pull: %s", name, pulled)
		}
		b.expect("Get", `{"key":"synced"}`, 200, `"value":1`)
		b.expect("Get", `{"key":"local"}`, 200, `"value":2`)
	}
}
