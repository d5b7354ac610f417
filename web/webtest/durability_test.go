package webtest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/roam-dev/roam/backend/embedded"
	"github.com/roam-dev/roam/conformance/testapp"
	"github.com/roam-dev/roam/host"
	"github.com/roam-dev/roam/host/native"
	"github.com/roam-dev/roam/sdk"
	"github.com/roam-dev/roam/web/webtest/testdata/setupapp"
)

// TestStoreUnit runs the browser host's node unit tests (web/test/*.test.mjs):
// what Chromium cannot be made to do on cue, such as an IndexedDB commit that
// fails once while calls run on top of it.
func TestStoreUnit(t *testing.T) {
	needBrowser(t)
	files, err := filepath.Glob(filepath.Join(repoRoot, "web", "test", "*.test.mjs"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no web/test/*.test.mjs: %v", err)
	}
	cmd := exec.Command("node", append([]string{"--test"}, files...)...)
	cmd.Dir = filepath.Join(repoRoot, "web")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("node --test: %v\n%s", err, out)
	}
}

// syncProbe sees the state sync requests of a page to syncServer, and
// refuses some as a server refuses what it cannot take: a transact that
// writes a key starting with "refuse/", and a publish to "refused.topic" or
// "setup.booted" (setupapp's topic), with 400, unless accepting is set (as
// if the server's limits were raised). A bulk read of a store named
// "status-NNN" answers status NNN.
type syncProbe struct {
	mu        sync.Mutex
	transacts []transactSeen
	published []string // topic data
	accepting bool
}

// accept makes the probe refuse nothing from now on.
func (p *syncProbe) accept() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.accepting = true
}

type transactSeen struct{ ops, bytes int }

// syncServer runs the conformance app and setupapp on the native host with
// the state sync API, behind syncProbe, and returns its URL.
func syncServer(t *testing.T) (string, *syncProbe) {
	t.Helper()
	be, err := embedded.Open(embedded.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := native.NewServer(be, []*sdk.App{testapp.App, setupapp.App}, host.Options{StateAPI: true, CORSOrigins: []string{"http://127.0.0.1:*"}})
	if err != nil {
		t.Fatal(err)
	}
	p := &syncProbe{}
	h := srv.Handler()
	answer := func(w http.ResponseWriter, r *http.Request, status int, msg string) {
		w.Header().Set("Access-Control-Allow-Origin", r.Header.Get("Origin"))
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		fmt.Fprintf(w, `{"code":"InvalidArgument","message":%q}`, msg)
	}
	refuse := func(w http.ResponseWriter, r *http.Request, msg string) {
		answer(w, r, http.StatusBadRequest, msg)
	}
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			h.ServeHTTP(w, r)
			return
		}
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		p.mu.Lock()
		accepting := p.accepting
		p.mu.Unlock()
		switch {
		case strings.HasSuffix(r.URL.Path, "/bulk"):
			// /v1/apps/{app}/state/{store}/bulk
			var status int
			if parts := strings.Split(r.URL.Path, "/"); len(parts) == 7 {
				if _, err := fmt.Sscanf(parts[5], "status-%d", &status); err == nil {
					answer(w, r, status, "store "+parts[5]+": refused by the test's server")
					return
				}
			}
		case strings.HasSuffix(r.URL.Path, "/transact"):
			var req struct{ Ops []struct{ Key string } }
			json.Unmarshal(body, &req)
			p.mu.Lock()
			p.transacts = append(p.transacts, transactSeen{len(req.Ops), len(body)})
			p.mu.Unlock()
			for _, o := range req.Ops {
				if strings.HasPrefix(o.Key, "refuse/") && !accepting {
					refuse(w, r, "key "+o.Key+": refused by the test's server")
					return
				}
			}
		case strings.Contains(r.URL.Path, "/publish/"):
			topic := r.URL.Path[strings.LastIndex(r.URL.Path, "/")+1:]
			if (topic == "refused.topic" || topic == "setup.booted") && !accepting {
				refuse(w, r, "topic "+topic+" is not allowed here")
				return
			}
			var req struct {
				Data []byte `json:"data_base64"`
			}
			json.Unmarshal(body, &req)
			p.mu.Lock()
			p.published = append(p.published, topic+" "+string(req.Data))
			p.mu.Unlock()
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(func() {
		ts.Close()
		be.Close()
	})
	return ts.URL, p
}

func (p *syncProbe) seen() ([]transactSeen, []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.transacts), slices.Clone(p.published)
}

// failCommits makes the next n IndexedDB write transactions of the page's
// roam worker abort, as a full disk or an exceeded quota makes them fail.
func (b *browser) failCommits(n int) {
	b.t.Helper()
	b.must(map[string]any{"op": "workerEval", "url": "roam-worker", "arg": n, "fn": `(n) => {
		self.__roamFail = n;
		if (!self.__roamPatched) {
			self.__roamPatched = true;
			const put = IDBObjectStore.prototype.put;
			IDBObjectStore.prototype.put = function (...args) {
				const r = put.apply(this, args);
				const tx = this.transaction;
				if (self.__roamFail > 0 && tx.mode === 'readwrite' && !tx.__roamDoomed) {
					self.__roamFail--;
					tx.__roamDoomed = true;
					queueMicrotask(() => tx.abort());
				}
				return r;
			};
		}
		return n;
	}`})
}

// expect calls the conformance app and fails unless it answers status and
// a body containing want.
func (b *browser) expect(method, body string, status int, want string) {
	b.t.Helper()
	r := b.call("conformance", method, body)
	if r.status != status || !strings.Contains(r.body, want) {
		b.t.Fatalf("%s %.100s: %d %.300s, want %d with %q\n%s", method, body, r.status, r.body, status, want, b.logs())
	}
}

// hostStatus is Host.status() as the tests read it.
type hostStatus struct {
	Dirty    []struct{ Key string }
	Rejected []struct {
		App, Store, Key string
		Status          int
		Message         string
	}
	Events int
	Parked []struct {
		Pos    int    `json:"pos"`
		App    string `json:"app"`
		ID     string `json:"id"`
		Topic  string `json:"topic"`
		Reason string `json:"reason"`
	}
}

func (b *browser) status() hostStatus {
	b.t.Helper()
	var s hostStatus
	b.eval(`async () => { const s = await window.roamHost.status(); for (const d of s.dirty) delete d.value; return s; }`, nil, &s)
	return s
}

func (s hostStatus) dirtyKeys() []string {
	var ks []string
	for _, d := range s.Dirty {
		ks = append(ks, d.Key)
	}
	slices.Sort(ks)
	return ks
}

// syncResult is what Host.sync() resolves to, or its error.
type syncResult struct {
	Pushed, Conflicts, Rejected, Events, Parked, Pulled int
	PullFailed                                          []struct {
		App, Store string
		Status     int
		Message    string
	}
	Err string
}

func (b *browser) sync() syncResult {
	b.t.Helper()
	var r syncResult
	b.eval(`async () => { try { return await window.roamHost.sync(); } catch (e) { return {err: String(e)}; } }`, nil, &r)
	return r
}

// TestCommitFailureIsUndone: an IndexedDB commit that fails (a quota, a
// full disk) fails its own call with 503 "state was not saved", and leaves
// nothing of it behind: the write and the event are gone from memory, sync
// pushes and forwards neither, and a reload does not find them. The next
// calls, reads and writes, work without a reload.
func TestCommitFailureIsUndone(t *testing.T) {
	b := startBrowser(t)
	srv, probe := syncServer(t)
	ts := serveAssets(t, nil)
	if e := b.openPage(pageURL(ts.URL, []string{"conformance"}, `{"db":"commitfail-`+runID()+`","remote":"`+srv+`"}`)); e != "" {
		t.Fatal(e)
	}
	b.expect("Put", `{"key":"a","value":1}`, 200, "")
	b.failCommits(2)
	const notSaved = `{"code":"Unavailable","message":"state was not saved: IndexedDB transaction aborted"}`
	b.expect("Put", `{"key":"b","value":2}`, 503, notSaved)
	b.expect("Publish", `{"topic":"nobody.here","data":{"n":1}}`, 503, notSaved)

	b.expect("Get", `{"key":"b"}`, 404, "not found")
	b.expect("Get", `{"key":"a"}`, 200, `"value":1`)
	b.expect("Echo", `{"x":1}`, 200, `{"x":1}`)
	b.expect("Put", `{"key":"c","value":3}`, 200, "")
	b.expect("Publish", `{"topic":"nobody.here","data":{"n":2}}`, 200, "")
	if s := b.status(); !slices.Equal(s.dirtyKeys(), []string{"a", "c"}) || s.Events != 1 {
		t.Fatalf("status: dirty %v, events %d; want [a c] and 1", s.dirtyKeys(), s.Events)
	}

	if r := b.sync(); r.Err != "" || r.Pushed != 2 || r.Events != 1 {
		t.Fatalf("sync: %+v", r)
	}
	for k, want := range map[string]int{"a": 200, "b": 404, "c": 200} {
		if st := api(t, srv, "conformance", "Get", map[string]string{"key": k}, nil); st != want {
			t.Errorf("server Get %s: %d, want %d", k, st, want)
		}
	}
	if _, pub := probe.seen(); !slices.Equal(pub, []string{`nobody.here {"n":2}`}) {
		t.Errorf("forwarded events: %q", pub)
	}

	b.must(map[string]any{"op": "reload"})
	b.waitFor(`() => document.body.dataset.ready !== undefined || document.body.dataset.error !== undefined`, nil)
	b.expect("Get", `{"key":"a"}`, 200, `"value":1`)
	b.expect("Get", `{"key":"b"}`, 404, "not found")
	b.expect("Get", `{"key":"c"}`, 200, `"value":3`)
}

// TestClosedDatabaseRecovers: site data cleared under a running page closes
// the worker's IndexedDB connection. The host replaces the worker, which
// opens the database afresh, and the page goes on without a reload: what was
// cleared is gone, as the user asked, and new writes are saved.
func TestClosedDatabaseRecovers(t *testing.T) {
	b := startBrowser(t)
	ts := serveAssets(t, nil)
	if e := b.openPage(pageURL(ts.URL, []string{"conformance"}, `{"db":"closed-`+runID()+`"}`)); e != "" {
		t.Fatal(e)
	}
	b.eval(`() => { window.restarts = []; window.roamHost.on('restart', (why) => window.restarts.push(why)); }`, nil, nil)
	b.expect("Put", `{"key":"small","value":1}`, 200, "")
	b.must(map[string]any{"op": "cdp", "method": "Storage.clearDataForOrigin", "params": map[string]any{"origin": ts.URL, "storageTypes": "indexeddb"}})
	var why []string
	b.must(map[string]any{"op": "wait", "fn": `() => window.restarts.length > 0`})
	b.eval(`() => window.restarts`, nil, &why)
	if len(why) != 1 || !strings.Contains(why[0], "was closed by the browser") {
		t.Fatalf("restarts: %q", why)
	}
	b.expect("Echo", `{"x":1}`, 200, `{"x":1}`)
	b.expect("Get", `{"key":"small"}`, 404, "not found")
	b.expect("Put", `{"key":"k1","value":1}`, 200, "")
	b.expect("Get", `{"key":"k1"}`, 200, `"value":1`)
	if s := b.status(); !slices.Equal(s.dirtyKeys(), []string{"k1"}) {
		t.Fatalf("dirty: %v", s.dirtyKeys())
	}
	b.must(map[string]any{"op": "reload"})
	b.waitFor(`() => document.body.dataset.ready !== undefined || document.body.dataset.error !== undefined`, nil)
	b.expect("Get", `{"key":"k1"}`, 200, `"value":1`)
}

// TestSyncSplitsAndParks: a sync of more keys (1,001) and bytes than one
// request of the state sync API may carry goes out in requests within its
// limits (host/statesync.go: 1000 ops, MaxBodyBytes). A change the server
// refuses for good (a value too big for its request limit: 413; a key it
// refuses: 400) is reported for that key in status().rejected, and an event
// it refuses is parked: neither stops the other keys, stores and events,
// and a later sync does not send them again. An event too big to ever be
// forwarded is refused when published.
func TestSyncSplitsAndParks(t *testing.T) {
	b := startBrowser(t)
	srv, probe := syncServer(t)
	ts := serveAssets(t, nil)
	if e := b.openPage(pageURL(ts.URL, []string{"conformance"}, `{"db":"split-`+runID()+`","remote":"`+srv+`"}`)); e != "" {
		t.Fatal(e)
	}
	var ops []string
	for i := range 1001 {
		ops = append(ops, fmt.Sprintf(`{"op":"set","key":"key-%d","value":%d}`, i, i))
	}
	b.expect("Transact", `{"ops":[`+strings.Join(ops, ",")+`]}`, 200, "")
	mid := strings.Repeat("m", 1536<<10) // 2 MiB base64: two do not fit in one request
	for i := range 3 {
		b.expect("Put", fmt.Sprintf(`{"key":"mid-%d","value":"%s"}`, i, mid), 200, "")
	}
	big := strings.Repeat("y", 3500<<10) // 4.6 MiB base64: over the server's 4 MiB
	b.expect("Put", `{"key":"big","value":"`+big+`"}`, 200, "")
	b.expect("Put", `{"key":"refuse/1","value":1}`, 200, "")
	b.expect("Publish", `{"topic":"refused.topic","data":{"n":0}}`, 200, "")
	b.expect("Publish", `{"topic":"nobody.here","data":{"n":1}}`, 200, "")
	b.expect("Publish", `{"topic":"nobody.here","data":"`+big+`"}`, 400,
		`{"code":"InvalidArgument","message":"publish pubsub/nobody.here: no module in this page subscribes to the topic, so the event goes to the server, but forwarding it takes a `)
	b.expect("Publish", `{"topic":"nobody.here","data":"`+big+`"}`, 400, `over the server's limit of 4194304 bytes"}`)

	if r := b.sync(); r.Err != "" || r.Pushed != 1004 || r.Rejected != 2 || r.Events != 1 || r.Parked != 1 {
		t.Fatalf("sync: %+v\n%s", r, b.logs())
	}
	s := b.status()
	if len(s.Dirty) != 0 || s.Events != 0 {
		t.Errorf("after sync: dirty %v, events %d", s.dirtyKeys(), s.Events)
	}
	rejected := map[string]string{}
	for _, r := range s.Rejected {
		rejected[r.Key] = fmt.Sprint(r.Status, " ", r.Message)
	}
	if len(rejected) != 2 || !regexp.MustCompile(`^413 the change takes a \d+-byte request, over the server's limit of 4194304 bytes \(remoteMaxBodyBytes\)$`).MatchString(rejected["big"]) ||
		rejected["refuse/1"] != "400 key refuse/1: refused by the test's server" {
		t.Errorf("rejected: %q", rejected)
	}
	if len(s.Parked) != 1 || s.Parked[0].Topic != "refused.topic" ||
		s.Parked[0].Reason != "the server refused it with 400: topic refused.topic is not allowed here" {
		t.Errorf("parked: %+v", s.Parked)
	}
	trs, pub := probe.seen()
	t.Logf("transact requests (ops, bytes): %v", trs)
	if !slices.Equal(pub, []string{`nobody.here {"n":1}`}) {
		t.Errorf("forwarded events: %q", pub)
	}
	for _, tr := range trs {
		if tr.ops > 1000 || tr.bytes > 4<<20 {
			t.Errorf("a transact request of %d ops and %d bytes", tr.ops, tr.bytes)
		}
	}
	for _, k := range []string{"key-0", "key-1000", "mid-0", "mid-2"} {
		if st := api(t, srv, "conformance", "Get", map[string]string{"key": k}, nil); st != 200 {
			t.Errorf("server Get %s: %d", k, st)
		}
	}
	for _, k := range []string{"big", "refuse/1"} {
		if st := api(t, srv, "conformance", "Get", map[string]string{"key": k}, nil); st != 404 {
			t.Errorf("server Get %s: %d, want 404", k, st)
		}
	}

	// Nothing is sent again; a key written again is pushed again.
	if r := b.sync(); r.Err != "" || r.Pushed != 0 || r.Rejected != 0 || r.Events != 0 || r.Parked != 0 {
		t.Fatalf("second sync: %+v", r)
	}
	b.expect("Put", `{"key":"big","value":"small now"}`, 200, "")
	if r := b.sync(); r.Err != "" || r.Pushed != 1 || r.Rejected != 0 {
		t.Fatalf("third sync: %+v", r)
	}
	if s := b.status(); len(s.Rejected) != 1 || s.Rejected[0].Key != "refuse/1" {
		t.Errorf("rejected after big was written again: %+v", s.Rejected)
	}
	if st := api(t, srv, "conformance", "Get", map[string]string{"key": "big"}, nil); st != 200 {
		t.Errorf("server Get big: %d", st)
	}

	// An event too big to forward that is in the outbox all the same (a
	// page that allowed more queued it) is parked unsent.
	db := `"db":"split2-` + runID() + `","remote":"` + srv + `"`
	if e := b.openPage(pageURL(ts.URL, []string{"conformance"}, `{`+db+`,"remoteMaxBodyBytes":8388608}`)); e != "" {
		t.Fatal(e)
	}
	b.expect("Publish", `{"topic":"nobody.here","data":"`+big+`"}`, 200, "")
	b.expect("Publish", `{"topic":"nobody.here","data":{"n":2}}`, 200, "")
	if e := b.openPage(pageURL(ts.URL, []string{"conformance"}, `{`+db+`}`)); e != "" {
		t.Fatal(e)
	}
	if r := b.sync(); r.Err != "" || r.Events != 1 || r.Parked != 1 {
		t.Fatalf("sync of a big event: %+v", r)
	}
	s = b.status()
	if len(s.Parked) != 1 || !regexp.MustCompile(`^forwarding it takes a \d+-byte request, over the server's limit of 4194304 bytes \(remoteMaxBodyBytes\)$`).MatchString(s.Parked[0].Reason) {
		t.Errorf("parked: %+v", s.Parked)
	}
	if _, pub := probe.seen(); !slices.Equal(pub, []string{`nobody.here {"n":1}`, `nobody.here {"n":2}`}) {
		t.Errorf("forwarded events: %q", pub)
	}
}
