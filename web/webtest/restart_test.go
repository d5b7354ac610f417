package webtest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/roam-dev/roam/conformance/testapp"
)

// The tests of a worker restarted under calls: a guest that ignores its
// deadline (a call, an event handler, a setup) holds the worker's only
// thread, and the page ends the worker. Every caller must learn exactly
// what became of its call, nothing acknowledged may be lost, and the page
// must go on with the same modules, offline too.

// outcome is what a call, or a load, came to in the page.
type outcome struct {
	Status int    `json:"status"`
	Body   string `json:"body"`
	Err    string `json:"err"` // a load's error ("Code: message"), or its app
	App    string `json:"app"`
}

// pageHelpers installs, in the page, window.at (the outcomes of calls and
// loads sent at once: [app, method, body] or ['load', url]) and
// window.until (calls a method again after each commit until it answers
// 200 with a body that matches a pattern: no timer).
const pageHelpers = `() => {
	const h = window.roamHost, enc = (s) => new TextEncoder().encode(s), dec = (b) => new TextDecoder().decode(b);
	const settle = (p) => p.then(
		(r) => r instanceof Object && 'status' in r ? { status: r.status, body: dec(r.body) } : { app: r.id },
		(e) => ({ err: e.codeName + ': ' + e.message }));
	window.send = (c) => settle(c[0] === 'load' ? h.load(c[1]) : h.callRaw(c[0], c[1], enc(c[2])));
	window.at = (calls) => Promise.all(calls.map(window.send));
	window.until = async (app, method, body, pattern) => {
		const want = new RegExp(pattern);
		for (;;) {
			const changed = new Promise((r) => { const off = h.on('change', () => { off(); r(); }); });
			const r = await h.callRaw(app, method, enc(body));
			if (r.status === 200 && want.test(dec(r.body))) return true;
			await changed;
		}
	};
	window.restarts = [];
	h.on('restart', (why) => window.restarts.push(why));
	window.errors = [];
	h.on('error', (e) => window.errors.push(e.message));
}`

func (b *browser) helpers() { b.t.Helper(); b.eval(pageHelpers, nil, nil) }

// noErrors fails the test if the host reported an error event (pageHelpers
// records them).
func (b *browser) noErrors() {
	b.t.Helper()
	var errs []string
	b.eval(`() => window.errors`, nil, &errs)
	if len(errs) != 0 {
		b.t.Errorf("errors: %q", errs)
	}
}

// at sends calls at once and returns their outcomes.
func (b *browser) at(calls ...[]string) []outcome {
	b.t.Helper()
	var out []outcome
	b.eval(`(calls) => window.at(calls)`, calls, &out)
	if len(out) != len(calls) {
		b.t.Fatalf("outcomes: %+v", out)
	}
	return out
}

// until waits until app.method answers 200 with a body that matches
// pattern, calling it again after every commit in the page.
func (b *browser) until(app, method, body, pattern string) {
	b.t.Helper()
	b.eval(`([a, m, body, p]) => window.until(a, m, body, p)`, []string{app, method, body, pattern}, nil)
}

// spinning runs fn, which sends a call that loops, and returns once the
// guest is in its loop (it says so on stderr, which the worker's console
// shows).
func (b *browser) spinning(fn string) {
	b.t.Helper()
	var n int
	json.Unmarshal(b.must(map[string]any{"op": "logCount"}), &n)
	b.eval(fn, nil, nil)
	b.must(map[string]any{"op": "waitLog", "text": testapp.SpinLine, "after": n})
}

// waitLog waits until a console line from now on contains text.
func (b *browser) waitLog(text string) {
	b.t.Helper()
	b.must(map[string]any{"op": "waitLog", "text": text})
}

// restarted waits until the worker that replaced one has opened the
// database and loaded the modules again (Host.ready), so that a call sent
// next, with the tests' short deadlines, does not wait for that.
func (b *browser) restarted() {
	b.t.Helper()
	b.eval(`() => window.roamHost.ready`, nil, nil)
}

func (b *browser) restarts() []string {
	b.t.Helper()
	var r []string
	b.eval(`() => window.restarts`, nil, &r)
	return r
}

var (
	// spinStopped is the answer of the call that held the worker.
	spinStopped = regexp.MustCompile(`^\{"code":"DeadlineExceeded","message":"conformance\.Spin did not return, \d+ ms past its deadline: the roam worker running it was restarted, and nothing of it was saved"\}$`)
	// didNotRun is the start of the answer of a call sent behind it.
	didNotRun = regexp.MustCompile(`^\{"code":"Unavailable","message":"the roam worker was restarted \(conformance\.Spin did not return, \d+ ms past its deadline\); `)
)

// TestRestartTellsEachCallWhatHappened: calls that write state and publish
// events, a loop, and calls and loads (another version of the loaded app,
// a new app) sent behind it, all at once. Each learns exactly what became
// of it: those before the loop are answered and saved, the loop fails with
// DeadlineExceeded and nothing of it is saved, those behind it fail with
// Unavailable and did not run. Nothing is applied twice, the event is
// delivered once, and the page goes on with the same modules: another
// version of a loaded app is refused, a new app loads, and a reload finds
// what was acknowledged.
//
// The old worker ran a guest on top of an earlier call's commit still in
// flight: the loop held the commit, the earlier Put's own timer ended the
// worker and blamed it (504, "no answer") though its write was not saved,
// and the loop was told it did not run (503).
func TestRestartTellsEachCallWhatHappened(t *testing.T) {
	b := startBrowser(t)
	conf := readAsset(t, "modules/conformance.wasm")
	ts := serveAssets(t, map[string]http.Handler{"/web/v2/": serveModules("/web/v2/", map[string][]byte{"conformance.wasm": conf})})
	u := pageURL(ts.URL, []string{"conformance"}, `{"db":"restart-`+runID()+`","timeoutMs":1500}`)
	if e := b.openPage(u); e != "" {
		t.Fatal(e)
	}
	b.helpers()
	got := b.at(
		[]string{"conformance", "Put", `{"key":"a","value":1}`},
		[]string{"conformance", "Publish", `{"topic":"conf.events","data":{"n":1}}`},
		[]string{"conformance", "Publish", `{"topic":"nobody.here","data":{"n":2}}`},
		[]string{"conformance", "Spin", `{}`},
		[]string{"conformance", "Put", `{"key":"q","value":1}`},
		[]string{"load", "./v2/conformance.wasm"},
		[]string{"load", "./modules/setupapp.wasm"},
		[]string{"conformance", "Echo", `{"x":1}`},
	)
	for i := 0; i < 3; i++ {
		if got[i].Status != 200 {
			t.Errorf("call %d, before the loop: %+v", i, got[i])
		}
	}
	if got[3].Status != 504 || !spinStopped.MatchString(got[3].Body) {
		t.Errorf("the loop: %+v", got[3])
	}
	for _, i := range []int{4, 7} {
		if got[i].Status != 503 || !didNotRun.MatchString(got[i].Body) || !strings.HasSuffix(got[i].Body, ` did not run: try again"}`) {
			t.Errorf("call %d, behind the loop: %+v", i, got[i])
		}
	}
	for _, i := range []int{5, 6} {
		if !strings.HasPrefix(got[i].Err, "Unavailable: the roam worker was restarted (conformance.Spin did not return") || !strings.HasSuffix(got[i].Err, "did not run: try again") {
			t.Errorf("load %d, behind the loop: %+v", i, got[i])
		}
	}
	if r := b.restarts(); len(r) != 1 {
		t.Errorf("restarts: %q", r)
	}

	// What was acknowledged is there, once; what did not run is not.
	b.restarted()
	after := b.at(
		[]string{"conformance", "Get", `{"key":"a"}`},
		[]string{"conformance", "Get", `{"key":"q"}`},
		[]string{"load", "./v2/conformance.wasm"},
		[]string{"load", "./modules/setupapp.wasm"},
	)
	if after[0].Status != 200 || !strings.Contains(after[0].Body, `"value":1`) {
		t.Errorf("a: %+v", after[0])
	}
	if after[1].Status != 404 {
		t.Errorf("q, whose call did not run: %+v", after[1])
	}
	if after[2].Err != "FailedPrecondition: app conformance is already loaded here" {
		t.Errorf("another version of conformance: %+v", after[2])
	}
	if after[3].App != "setupapp" {
		t.Errorf("setupapp: %+v", after[3])
	}
	b.until("conformance", "Received", `{"topic":"conf.events"}`, "^"+regexp.QuoteMeta(`{"events":[{"n":1}]}`)+"$")
	b.expect("Echo", `{"x":2}`, 200, `{"x":2}`)
	if r := b.call("setupapp", "Boot", `{}`); r.status != 200 || r.body != `{"boots":1}` {
		t.Errorf("setupapp.Boot: %v", r)
	}
	if s := b.status(); s.Events != 1 {
		t.Errorf("events for the server: %d, want 1", s.Events)
	}

	b.reloadPage()
	b.expect("Get", `{"key":"a"}`, 200, `"value":1`)
	b.expect("Get", `{"key":"q"}`, 404, "not found")
	b.expect("Received", `{"topic":"conf.events"}`, 200, `{"events":[{"n":1}]}`)
	if s := b.status(); s.Events != 1 {
		t.Errorf("events for the server after a reload: %d, want 1", s.Events)
	}
}

// TestCommitInFlightWhenGuestLoops: a Put, then a call that loops sent a
// few milliseconds later, while the Put's commit is in flight. The Put is
// answered, and what it was told matches the database: 200 and saved.
//
// The old worker started the loop while the Put's transaction was
// committing: the Put was answered 504 ("no answer ... restarted"), and
// its write turned up saved all the same.
func TestCommitInFlightWhenGuestLoops(t *testing.T) {
	b := startBrowser(t)
	ts := serveAssets(t, nil)
	if e := b.openPage(pageURL(ts.URL, []string{"conformance"}, `{"db":"inflight-`+runID()+`","timeoutMs":300}`)); e != "" {
		t.Fatal(e)
	}
	b.helpers()
	for _, ms := range []float64{0, 4, 8, 12} {
		var r struct {
			Put, Spin, Get outcome
		}
		b.eval(`async (ms) => {
			const key = 'k' + ms;
			const put = window.send(['conformance', 'Put', JSON.stringify({ key, value: ms })]);
			await new Promise((r) => setTimeout(r, 0)); // the Put is sent
			for (const t0 = performance.now(); performance.now() - t0 < ms;) {} // its commit is on its way
			const spin = window.send(['conformance', 'Spin', '{}']);
			const [p, s] = await Promise.all([put, spin]);
			await window.roamHost.ready;
			return { put: p, spin: s, get: await window.send(['conformance', 'Get', JSON.stringify({ key })]) };
		}`, ms, &r)
		if r.Put.Status != 200 || r.Get.Status != 200 {
			t.Errorf("%v ms: the Put answered %+v, and its key reads %+v: what a caller is told must match the disk", ms, r.Put, r.Get)
		}
		if r.Spin.Status != 504 || !spinStopped.MatchString(r.Spin.Body) {
			t.Errorf("%v ms: the loop: %+v", ms, r.Spin)
		}
	}
}

// TestRestartOffline: offline, a call that loops ends the worker, and the
// new worker starts without the network (the worker's script and the
// modules, compiled, are kept by the page): the state and the next calls
// are there. The old page fetched both again: offline the new worker
// failed ("roam worker failed"), and every call after it too, online
// again as well.
func TestRestartOffline(t *testing.T) {
	b := startBrowser(t)
	ts := serveAssets(t, nil)
	if e := b.openPage(pageURL(ts.URL, []string{"conformance"}, `{"db":"offline-restart-`+runID()+`","timeoutMs":1500}`)); e != "" {
		t.Fatal(e)
	}
	b.helpers()
	b.expect("Put", `{"key":"a","value":1}`, 200, "")
	// The page keeps the worker's script once a worker started from it.
	b.waitFor(`() => window.roamHost.workerSource !== null`, nil)
	b.must(map[string]any{"op": "offline", "value": true})
	if r := b.call("conformance", "Spin", `{}`); r.status != 504 || !spinStopped.MatchString(r.body) {
		t.Fatalf("spin: %v", r)
	}
	b.restarted()
	b.expect("Get", `{"key":"a"}`, 200, `"value":1`)
	b.expect("Put", `{"key":"b","value":2}`, 200, "")
	b.must(map[string]any{"op": "offline", "value": false})
	b.expect("Get", `{"key":"b"}`, 200, `"value":2`)
	if r := b.restarts(); len(r) != 1 {
		t.Errorf("restarts: %q", r)
	}
}

// TestLoopingEventHandler: an event whose handler never returns holds the
// worker, which the page ends; the calls sent meanwhile did not run. The
// new worker does not deliver that event again, which would hold it again
// at every start: it is dead-lettered (here to the server, as nothing in
// the page takes the dead-letter topic), and the events behind it are
// delivered. The old page blamed the next call, restarted the worker, and
// the new one delivered the event again: every call failed, for ever.
func TestLoopingEventHandler(t *testing.T) {
	b := startBrowser(t)
	ts := serveAssets(t, nil)
	if e := b.openPage(pageURL(ts.URL, []string{"conformance", "setupapp"}, `{"db":"event-loop-`+runID()+`","timeoutMs":1000}`)); e != "" {
		t.Fatal(e)
	}
	b.helpers()
	b.eval(`() => { window.loopingEvent = new Promise((r) => { window.roamHost.on('restart', r); }); }`, nil, nil)
	b.expect("Publish", `{"topic":"setup.spin","data":"spin"}`, 200, "")
	got := b.at([]string{"conformance", "Publish", `{"topic":"setup.spin","data":"record"}`})
	var why string
	b.eval(`() => window.loopingEvent`, nil, &why)
	if !regexp.MustCompile(`^the handler of event [-0-9a-f]+ \(pubsub/setup\.spin\) in setupapp did not return, \d+ ms past its deadline$`).MatchString(why) {
		t.Errorf("restart: %q", why)
	}
	if got[0].Status != 503 || !strings.Contains(got[0].Body, "conformance.Publish did not run: try again") {
		t.Errorf("a call sent while the handler looped: %+v", got[0])
	}
	b.restarted()
	b.expect("Publish", `{"topic":"setup.spin","data":"record"}`, 200, "")
	b.until("setupapp", "Spun", `{}`, `^\["[-0-9a-f]+"\]$`)
	if r := b.restarts(); len(r) != 1 {
		t.Errorf("restarts: %q", r)
	}
	s := b.status()
	if s.Events != 1 {
		t.Errorf("events for the server (the dead-lettered one): %d, want 1", s.Events)
	}
	var box []struct {
		Topic string `json:"topic"`
	}
	b.eval(`async () => (await window.roamHost.rpc('syncOut')).events.map((e) => ({ topic: e.rec.topic }))`, nil, &box)
	if len(box) != 1 || box[0].Topic != "deadletter" {
		t.Errorf("outbox: %+v", box)
	}
	b.expect("Echo", `{"x":1}`, 200, `{"x":1}`)
}

// TestLoopingSetup: a module whose setup never returns fails to load, with
// DeadlineExceeded, and the page goes on with the modules it had. The old
// page's load never settled unless a call came, and then that call was
// blamed for the loop.
func TestLoopingSetup(t *testing.T) {
	b := startBrowser(t)
	ts := serveAssets(t, nil)
	if e := b.openPage(pageURL(ts.URL, []string{"conformance"}, `{"db":"setup-loop-`+runID()+`","timeoutMs":1000,"config":{"setup-spin":"1"}}`)); e != "" {
		t.Fatal(e)
	}
	b.helpers()
	b.expect("Put", `{"key":"a","value":1}`, 200, "")
	got := b.at([]string{"load", "./modules/setupapp.wasm"})
	if !regexp.MustCompile(`^DeadlineExceeded: the setup of setupapp\.wasm did not return, \d+ ms past its deadline: the roam worker running it was restarted, and nothing of it was saved$`).MatchString(got[0].Err) {
		t.Errorf("load: %+v", got[0])
	}
	b.restarted()
	b.expect("Get", `{"key":"a"}`, 200, `"value":1`)
	if r := b.call("setupapp", "Boot", `{}`); r.status != 404 {
		t.Errorf("setupapp after its setup looped: %v", r)
	}
	b.noErrors()
}

// TestLoadDuringRestart: a module loaded while the worker restarts (from
// the restart event) is loaded once, into the new worker, after the
// modules it loads again; both serve, and both are loaded again at the
// next restart. The old page loaded the modules again from the very list
// that a load during the restart appends to: the new module was loaded a
// second time, refused ("already loaded"), and that failed the restart,
// and every call after it, for good.
func TestLoadDuringRestart(t *testing.T) {
	b := startBrowser(t)
	ts := serveAssets(t, nil)
	if e := b.openPage(pageURL(ts.URL, []string{"conformance"}, `{"db":"load-restart-`+runID()+`","timeoutMs":1000}`)); e != "" {
		t.Fatal(e)
	}
	b.helpers()
	var r struct {
		Spin, Load outcome
	}
	b.eval(`async () => {
		let load;
		const off = window.roamHost.on('restart', () => { off(); load = window.send(['load', './modules/setupapp.wasm']); });
		const spin = await window.send(['conformance', 'Spin', '{}']);
		return { spin, load: await load };
	}`, nil, &r)
	if r.Spin.Status != 504 || r.Load.App != "setupapp" {
		t.Fatalf("spin %+v, load %+v", r.Spin, r.Load)
	}
	for i := 0; i < 2; i++ {
		b.restarted()
		b.expect("Echo", `{"x":1}`, 200, `{"x":1}`)
		if r := b.call("setupapp", "Boot", `{}`); r.status != 200 || r.body != fmt.Sprintf(`{"boots":%d}`, i+1) {
			t.Errorf("setupapp.Boot: %v\n%s", r, b.logs())
		}
		if i == 0 {
			b.expect("Spin", `{}`, 504, "DeadlineExceeded")
		}
	}
	if r := b.restarts(); len(r) != 2 {
		t.Errorf("restarts: %q", r)
	}
}

// TestRestartKeepsTheLoadedVersion: a new worker loads the modules the page
// loaded, as compiled then, not what their URL serves now: here, after
// the page loaded conformance, the server serves another app (another
// version, another build) at that URL. The page goes on with the app it
// loaded, and an App object that says what it is. The old page fetched
// the URL again: the new worker silently served the other app, and every
// call of the loaded one answered 404.
func TestRestartKeepsTheLoadedVersion(t *testing.T) {
	b := startBrowser(t)
	var mu sync.Mutex
	serving := readAsset(t, "modules/conformance.wasm")
	ts := serveAssets(t, map[string]http.Handler{"/web/mutable/": http.StripPrefix("/web/mutable/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		w.Header().Set("Content-Type", "application/wasm")
		w.Header().Set("Cache-Control", "no-store")
		w.Write(serving)
	}))})
	if e := b.openPage(pageURL(ts.URL, []string{"./mutable/app.wasm"}, `{"db":"version-`+runID()+`","timeoutMs":1000}`)); e != "" {
		t.Fatal(e)
	}
	b.helpers()
	b.expect("Put", `{"key":"a","value":1}`, 200, "")
	mu.Lock()
	serving = readAsset(t, "modules/setupapp.wasm")
	mu.Unlock()
	b.expect("Spin", `{}`, 504, "DeadlineExceeded")
	b.restarted()
	b.expect("Get", `{"key":"a"}`, 200, `"value":1`)
	if r := b.call("setupapp", "Boot", `{}`); r.status != 404 {
		t.Errorf("setupapp, served at the URL since: %v", r)
	}
	b.noErrors()
}

// TestPageReloadWhileCallsRun: the page is reloaded while calls that write
// are queued and running in its worker. Their callers are gone with the
// page, and the new page finds a prefix of them saved, in the order they
// were sent, each whole, with no gap; it serves at once. (A regression
// test: the old worker committed in order too.)
func TestPageReloadWhileCallsRun(t *testing.T) {
	b := startBrowser(t)
	ts := serveAssets(t, nil)
	if e := b.openPage(pageURL(ts.URL, []string{"conformance"}, `{"db":"page-reload-`+runID()+`"}`)); e != "" {
		t.Fatal(e)
	}
	b.helpers()
	const n = 60
	b.eval(`(n) => {
		const calls = [];
		for (let i = 0; i < n; i++) calls.push(['conformance', 'Transact', JSON.stringify({ ops: [
			{ op: 'set', key: 'k' + i, value: i }, { op: 'set', key: 'pair' + i, value: i }] })]);
		window.at(calls);
	}`, n, nil)
	b.reloadPage()
	var keys []string
	for i := 0; i < n; i++ {
		keys = append(keys, fmt.Sprintf(`"k%d","pair%d"`, i, i))
	}
	r := b.call("conformance", "BulkGet", `{"keys":[`+strings.Join(keys, ",")+`]}`)
	var got struct {
		Items []struct {
			Key   string
			Found bool
		}
	}
	if r.status != 200 || json.Unmarshal([]byte(r.body), &got) != nil || len(got.Items) != 2*n {
		t.Fatalf("BulkGet: %v", r)
	}
	saved := 0
	for saved < n && got.Items[2*saved].Found {
		saved++
	}
	for i, it := range got.Items {
		if it.Found != (i/2 < saved) {
			t.Errorf("%s found %v, but the first %d calls, and only they, are saved", it.Key, it.Found, saved)
		}
	}
	t.Logf("%d of %d calls saved before the reload", saved, n)
	b.expect("Put", `{"key":"after","value":1}`, 200, "")
}
