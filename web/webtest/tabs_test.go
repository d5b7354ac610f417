package webtest

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
)

// The tests of two tabs of one origin: two pages, each with its own worker
// over the same IndexedDB database (a second page in the same browser
// context). They take turns at the database (lease.js); another tab that
// deletes or upgrades the database makes a tab's worker close it, answer
// what it had, and start again.

// openTabs opens the test page with modules and opts in the browser's tab
// and in a second one.
func openTabs(t *testing.T, b *browser, u string) *browser {
	t.Helper()
	if e := b.openPage(u); e != "" {
		t.Fatal(e)
	}
	b2 := b.newTab()
	if e := b2.openPage(u); e != "" {
		t.Fatal(e)
	}
	b.helpers()
	b2.helpers()
	return b2
}

// both runs fa and fb at the same time.
func both(fa, fb func()) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		fb()
	}()
	fa()
	wg.Wait()
}

// TestTabsWriteTheSameState: two tabs increment one counter and publish
// events at the same time, then both sync at once. Every increment is
// acknowledged with its own count and none is lost; every event reaches
// the server once; no key is reported as a conflict with itself.
//
// The old workers checked each write against their own memory and
// committed over each other: each tab counted 1 to 20, the counter ended
// at 20, and events published in two tabs took the same outbox position,
// one overwriting the other.
func TestTabsWriteTheSameState(t *testing.T) {
	b := startBrowser(t)
	srv, probe := syncServer(t)
	ts := serveAssets(t, nil)
	b2 := openTabs(t, b, pageURL(ts.URL, []string{"conformance"}, `{"db":"tabs-`+runID()+`","remote":"`+srv+`"}`))
	burst := func(b *browser, tab string) []outcome {
		var calls [][]string
		for i := 0; i < 20; i++ {
			calls = append(calls, []string{"conformance", "Increment", `{"key":"n"}`})
			if i%7 == 0 {
				calls = append(calls, []string{"conformance", "Publish", fmt.Sprintf(`{"topic":"nobody.here","data":{"tab":%q,"i":%d}}`, tab, i)})
			}
		}
		return b.at(calls...)
	}
	var ra, rb []outcome
	both(func() { ra = burst(b, "a") }, func() { rb = burst(b2, "b") })
	var counts []string
	for _, r := range append(ra, rb...) {
		if r.Status != 200 {
			t.Errorf("a call: %+v", r)
		}
		if strings.HasPrefix(r.Body, `{"n":`) {
			counts = append(counts, r.Body)
		}
	}
	slices.Sort(counts)
	if n := len(slices.Compact(counts)); n != 40 {
		t.Errorf("%d different counts acknowledged, want 40: %q", n, counts)
	}
	for _, tab := range []*browser{b, b2} {
		tab.expect("Get", `{"key":"n"}`, 200, `"value":{"n":40}`)
		if s := tab.status(); s.Events != 6 {
			t.Errorf("tab %d: events for the server: %d, want 6", tab.page, s.Events)
		}
	}

	var sa, sb syncResult
	both(func() { sa = b.sync() }, func() { sb = b2.sync() })
	if sa.Err != "" || sb.Err != "" || sa.Conflicts+sb.Conflicts != 0 || sa.Pushed+sb.Pushed != 1 || sa.Events+sb.Events != 6 {
		t.Errorf("syncs at once: %+v and %+v", sa, sb)
	}
	_, pub := probe.seen()
	slices.Sort(pub)
	if len(slices.Compact(slices.Clone(pub))) != 6 || len(pub) != 6 {
		t.Errorf("events the server got: %q", pub)
	}
	var n struct{ Value struct{ N int } }
	if api(t, srv, "conformance", "Get", map[string]string{"key": "n"}, &n); n.Value.N != 40 {
		t.Errorf("the server's counter: %d", n.Value.N)
	}
	for _, tab := range []*browser{b, b2} {
		if s := tab.status(); len(s.Dirty) != 0 || s.Events != 0 {
			t.Errorf("tab %d after the syncs: %+v", tab.page, s)
		}
	}
	b.reloadPage()
	b.expect("Get", `{"key":"n"}`, 200, `"value":{"n":40}`)
}

// rawDB runs, in tab b, what another page might do to the database with
// IndexedDB itself: 'delete' it, or open it at 'version' 2 (a newer
// version of the page upgrading it), and counts the blocked events its
// request gets. keys (with 'version') lists the conformance app's keys on
// disk after the upgrade.
const rawDB = `([what, db]) => new Promise((resolve, reject) => {
	const out = { blocked: 0, keys: [] };
	const r = what === 'delete' ? indexedDB.deleteDatabase(db) : indexedDB.open(db, 2);
	r.onblocked = () => { out.blocked++; };
	r.onerror = () => reject(r.error);
	r.onupgradeneeded = (e) => { if (e.oldVersion >= 1) r.result.createObjectStore('added-by-v2'); };
	r.onsuccess = () => {
		if (what === 'delete') return resolve(out);
		const conn = r.result;
		const g = conn.transaction('items').objectStore('items').getAllKeys();
		g.onsuccess = () => {
			out.keys = g.result.filter((k) => k[0] === 'conformance').map((k) => k[2]);
			conn.close();
			resolve(out);
		};
	};
})`

type rawResult struct {
	Blocked int
	Keys    []string
}

// TestAnotherTabDeletesTheDatabase: a tab deletes the database while
// another tab's worker holds it open. The worker closes it at once (the
// delete is not blocked), answers what it was running, and a new worker
// opens the database again: the page goes on without a reload, with what
// was deleted gone, as the other tab asked. A worker held by a guest that
// loops cannot close it: the delete waits until the page ends that
// worker, and then goes on, and so does the page.
func TestAnotherTabDeletesTheDatabase(t *testing.T) {
	b := startBrowser(t)
	ts := serveAssets(t, nil)
	db := "delete-" + runID()
	// Long enough for a call sent after the restart to wait, without
	// being answered late, until the worker that looped is gone: a
	// browser ends a worker busy in wasm up to 2 s after it is told to,
	// and the delete, and so the new worker's open, waits for it.
	b2 := openTabs(t, b, pageURL(ts.URL, []string{"conformance"}, `{"db":"`+db+`","timeoutMs":4000}`))
	b.expect("Put", `{"key":"k","value":1}`, 200, "")
	b2.eval(`() => window.roamHost.close()`, nil, nil) // the second tab as a page that does not use Roam
	b.eval(`() => { window.restarted = new Promise((r) => { const off = window.roamHost.on('restart', (why) => { off(); r(why); }); }); }`, nil, nil)
	var raw rawResult
	b2.eval(rawDB, []string{"delete", db}, &raw)
	if raw.Blocked != 0 {
		t.Errorf("the delete was blocked %d times", raw.Blocked)
	}
	var why string
	b.eval(`() => window.restarted`, nil, &why)
	b.restarted()
	if why != "IndexedDB "+db+" is being deleted or upgraded by another tab" {
		t.Errorf("restart: %q", why)
	}
	b.expect("Get", `{"key":"k"}`, 404, "not found")
	b.expect("Put", `{"key":"k2","value":2}`, 200, "")
	b.expect("Get", `{"key":"k2"}`, 200, `"value":2`)

	// The same while a guest loops in the worker.
	b.spinning(`() => { window.spin = window.send(['conformance', 'Spin', '{}']); }`)
	// The delete waits for that worker to be gone. (Chromium does not tell
	// it "blocked" here: the versionchange event waits for the worker's
	// thread, which never takes it.)
	b2.eval(rawDB, []string{"delete", db}, &raw)
	t.Logf("the delete was blocked %d times", raw.Blocked)
	var spin outcome
	b.eval(`() => window.spin`, nil, &spin)
	if spin.Status != 504 || !spinStopped.MatchString(spin.Body) {
		t.Errorf("spin: %+v", spin)
	}
	b.restarted()
	b.expect("Get", `{"key":"k2"}`, 404, "not found")
	b.expect("Put", `{"key":"k3","value":3}`, 200, "")
	b.reloadPage()
	b.expect("Get", `{"key":"k3"}`, 200, `"value":3`)
}

// TestNewerTabUpgradesTheDatabase: while a tab's worker runs calls that
// write, another tab (a newer version of the page) opens the database at
// a higher version. The worker closes the database as soon as its thread
// is free (the upgrade waits, blocked, meanwhile): the call running
// finishes, its commit with it, and the rest answer Unavailable without
// running. What every caller was told
// matches the disk the other tab then reads. The page cannot use the
// upgraded database, and says so, at every call, instead of hanging.
//
// The old worker asked for a new worker as soon as the database was to
// close, and the page ended it at once: calls whose commit was on its way
// were answered "restarted" and turned up saved.
func TestNewerTabUpgradesTheDatabase(t *testing.T) {
	b := startBrowser(t)
	ts := serveAssets(t, nil)
	db := "upgrade-" + runID()
	b2 := openTabs(t, b, pageURL(ts.URL, []string{"conformance"}, `{"db":"`+db+`"}`))
	b2.eval(`() => window.roamHost.close()`, nil, nil)
	// k0, then a call that holds the worker for a while (legitimately,
	// within its deadline), and k1... behind it: the upgrade comes while
	// they wait.
	b.expect("Put", `{"key":"k0","value":0}`, 200, "")
	b.eval(`() => {
		window.upgraded = new Promise((r) => { const off = window.roamHost.on('restart', () => { off(); r(); }); });
		const calls = [['conformance', 'Sleep', '{"ms":1500}']];
		for (let i = 1; i < 30; i++) calls.push(['conformance', 'Put', JSON.stringify({ key: 'k' + i, value: i })]);
		window.puts = window.at(calls);
	}`, nil, nil)
	var raw rawResult
	b2.eval(rawDB, []string{"version", db}, &raw)
	var puts []outcome
	b.eval(`() => window.puts`, nil, &puts)
	if puts[0].Status != 204 && puts[0].Status != 200 {
		t.Errorf("Sleep: %+v", puts[0])
	}
	puts[0] = outcome{Status: 200} // k0's
	onDisk := map[string]bool{}
	for _, k := range raw.Keys {
		onDisk[k] = true
	}
	saved, refused := 0, 0
	notRun := regexp.MustCompile(`^\{"code":"Unavailable","message":"(IndexedDB ` + db + ` is being deleted or upgraded by another tab; the roam worker is restarting: try again|state was not saved: .*|the roam worker was restarted \(IndexedDB ` + db + ` is being deleted or upgraded by another tab\); conformance\.Put did not run: try again)"\}$`)
	for i, p := range puts {
		k := fmt.Sprintf("k%d", i)
		switch {
		case p.Status == 200 && onDisk[k]:
			saved++
		case p.Status == 503 && notRun.MatchString(p.Body) && !onDisk[k]:
			refused++
		default:
			t.Errorf("%s answered %+v, and is on disk: %v", k, p, onDisk[k])
		}
	}
	t.Logf("%d saved, %d refused; the upgrade was blocked %d times", saved, refused, raw.Blocked)
	if saved == 0 || refused == 0 {
		t.Errorf("the upgrade came before or after every call (%d saved, %d refused): the test did not test", saved, refused)
	}
	// A page that cannot use the database does not keep it from the tab
	// that can: once its new worker failed to open it, it lets go.
	var held []string
	b.eval(`async () => {
		await window.upgraded;
		await window.roamHost.ready.catch(() => {});
		return (await navigator.locks.query()).held.map((l) => l.name);
	}`, nil, &held)
	if slices.Contains(held, "roam:"+db) {
		t.Errorf("the page still holds the database's lock: %q", held)
	}
	versionErr := regexp.MustCompile(`^\{"code":"Unavailable","message":"IndexedDB ` + db + ` was upgraded by a newer version of this page \(in another tab\?\) past version 1, the one this page reads: reload the page \(VersionError: .*\)"\}$`)
	for i := 0; i < 2; i++ {
		if r := b.call("conformance", "Get", `{"key":"k0"}`); r.status != 503 || !versionErr.MatchString(r.body) {
			t.Errorf("a call after the upgrade: %v", r)
		}
	}
}

// TestLoopInAnotherTab: a guest that loops in one tab holds the database
// until its page ends that worker; a call sent meanwhile in the other tab
// waits for its turn, and is answered exactly: it ran (200, saved) or, past
// its deadline before its turn came, it did not (504, not saved). Both
// tabs then go on, and take turns again.
func TestLoopInAnotherTab(t *testing.T) {
	b := startBrowser(t)
	ts := serveAssets(t, nil)
	b2 := openTabs(t, b, pageURL(ts.URL, []string{"conformance"}, `{"db":"loop-tab-`+runID()+`","timeoutMs":1500}`))
	b.expect("Put", `{"key":"a","value":1}`, 200, "")
	b.spinning(`() => { window.spin = window.send(['conformance', 'Spin', '{}']); }`)
	r := b2.call("conformance", "Put", `{"key":"b","value":2}`)
	var spin outcome
	b.eval(`() => window.spin`, nil, &spin)
	if spin.Status != 504 || !spinStopped.MatchString(spin.Body) {
		t.Errorf("spin: %+v", spin)
	}
	b.restarted()
	g := b2.call("conformance", "Get", `{"key":"b"}`)
	switch {
	case r.status == 200 && g.status == 200:
	case r.status == 504 && regexp.MustCompile(`^\{"code":"DeadlineExceeded","message":"conformance\.Put did not run: at its deadline it was still waiting \(`).MatchString(r.body) && g.status == 404:
	default:
		t.Errorf("the other tab's Put answered %v, and b reads %v", r, g)
	}
	t.Logf("the other tab's Put: %v", r)
	b2.expect("Put", `{"key":"c","value":3}`, 200, "")
	b.expect("Get", `{"key":"c"}`, 200, `"value":3`)
	b2.expect("Get", `{"key":"a"}`, 200, `"value":1`)
}
