package webtest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/roam-dev/roam/backend/embedded"
	"github.com/roam-dev/roam/examples/shop/inventory"
	"github.com/roam-dev/roam/examples/shop/orders"
	"github.com/roam-dev/roam/host"
	"github.com/roam-dev/roam/host/native"
	"github.com/roam-dev/roam/sdk"
)

// shopServer runs the shop's apps on the native host with the state sync
// API, open to pages from 127.0.0.1 origins, and returns its URL.
func shopServer(t *testing.T) string {
	t.Helper()
	return shopServerBehind(t, nil)
}

// shopServerBehind is shopServer with wrap, when not nil, in front of the
// host's handler.
func shopServerBehind(t *testing.T, wrap func(http.Handler) http.Handler) string {
	t.Helper()
	b, err := embedded.Open(embedded.Options{Dir: t.TempDir(), Retry: retry})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := native.NewServer(b, []*sdk.App{orders.App, inventory.App}, host.Options{
		StateAPI: true, CORSOrigins: []string{"http://127.0.0.1:*"},
	})
	if err != nil {
		t.Fatal(err)
	}
	h := srv.Handler()
	if wrap != nil {
		h = wrap(h)
	}
	ts := httptest.NewServer(h)
	t.Cleanup(func() {
		ts.Close()
		b.Close()
	})
	return ts.URL
}

// shopPage serves the shop's page (examples/shop/web/index.html with the
// bundles built from the current sources) from an origin of its own, so
// that its calls to the server are cross-origin, and returns its URL.
// modules, when set, replaces the module directory.
func shopPage(t *testing.T, modules http.Handler) string {
	t.Helper()
	page, err := os.ReadFile(filepath.Join(repoRoot, "examples", "shop", "web", "index.html"))
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/web/{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write(page)
	})
	mux.Handle("/web/dist/", http.StripPrefix("/web/dist/", http.FileServer(http.Dir(assets))))
	if modules == nil {
		modules = http.StripPrefix("/web/modules/", http.FileServer(http.Dir(filepath.Join(assets, "modules"))))
	}
	mux.Handle("/web/modules/", modules)
	ts := httptest.NewServer(mux)
	t.Cleanup(ts.Close)
	return ts.URL + "/web/"
}

// api calls app.method on the server and decodes the reply into out.
func api(t *testing.T, base, app, method string, req any, out any) int {
	t.Helper()
	b, _ := json.Marshal(req)
	resp, err := http.Post(base+"/v1/apps/"+app+"/methods/"+method, "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(body, out); err != nil {
			t.Fatalf("%s.%s: %s: %v", app, method, body, err)
		}
	}
	if resp.StatusCode >= 300 {
		t.Logf("%s.%s: %d %s", app, method, resp.StatusCode, body)
	}
	return resp.StatusCode
}

type order struct {
	ID       string `json:"id"`
	Customer string `json:"customer"`
	SKU      string `json:"sku"`
	Quantity int    `json:"quantity"`
	Status   string `json:"status"`
}

func serverOrders(t *testing.T, base, customer string) []order {
	t.Helper()
	var l struct{ Orders []order }
	if st := api(t, base, "orders", "ListByCustomer", map[string]string{"customer": customer}, &l); st != 200 {
		t.Fatalf("ListByCustomer: %d", st)
	}
	return l.Orders
}

func serverStock(t *testing.T, base, sku string) int {
	t.Helper()
	var l struct{ Available int }
	if st := api(t, base, "inventory", "Stock", map[string]string{"sku": sku}, &l); st != 200 {
		t.Fatalf("Stock %s: %d", sku, st)
	}
	return l.Available
}

// openShop opens the shop page for customer against server and waits
// until it has loaded and synced the stock of sku.
func openShop(t *testing.T, b *browser, pageURL, server, customer, sku string, stock int) {
	t.Helper()
	q := url.Values{"remote": {server}, "db": {"shop-" + customer}, "customer": {customer}, "skus": {sku}}
	b.must(map[string]any{"op": "goto", "url": pageURL + "?" + q.Encode()})
	b.waitFor(`() => document.body.dataset.ready || document.body.dataset.error`, nil)
	var e string
	b.eval(`() => document.body.dataset.error ?? ''`, nil, &e)
	if e != "" {
		t.Fatalf("shop page: %s", e)
	}
	b.waitFor(`(n) => document.querySelector('#stock .available')?.textContent === String(n)`, stock)
}

func (b *browser) createOrder(quantity int) {
	b.t.Helper()
	b.must(map[string]any{"op": "fill", "selector": "#quantity", "value": fmt.Sprint(quantity)})
	var before int
	b.eval(`() => document.querySelectorAll('#orders tbody tr').length`, nil, &before)
	b.must(map[string]any{"op": "click", "selector": "#create"})
	b.waitFor(`(n) => document.querySelectorAll('#orders tbody tr').length > n`, before)
}

// pageOrders returns the orders the page lists, newest first.
func (b *browser) pageOrders() []map[string]string {
	b.t.Helper()
	var out []map[string]string
	b.eval(`() => [...document.querySelectorAll('#orders tbody tr')].map((tr) => ({
		id: tr.dataset.order, status: tr.dataset.status, pending: tr.dataset.pending }))`, nil, &out)
	return out
}

func (b *browser) waitPending(n int) {
	b.t.Helper()
	b.waitFor(`(n) => document.querySelector('#pending-count').textContent === String(n)`, n)
}

func (b *browser) screenshot(name string) {
	b.t.Helper()
	dir := filepath.Join(repoRoot, "web", "test-results")
	os.MkdirAll(dir, 0o755)
	b.must(map[string]any{"op": "screenshot", "path": filepath.Join(dir, name)})
}

func runID() string { return fmt.Sprintf("%x", time.Now().UnixNano()&0xffffffff) }

// TestShopOfflineThenSync: offline, the page creates two orders and
// cancels one, shows them pending, and nothing reaches the server; back
// online, they sync, and the server's own API shows them.
func TestShopOfflineThenSync(t *testing.T) {
	b := startBrowser(t)
	srv := shopServer(t)
	page := shopPage(t, nil)
	cust, sku := "ada-"+runID(), "apple-"+runID()
	if st := api(t, srv, "inventory", "Restock", map[string]any{"sku": sku, "quantity": 10}, nil); st != 200 {
		t.Fatalf("restock: %d", st)
	}
	openShop(t, b, page, srv, cust, sku, 10)
	b.waitPending(0)

	b.must(map[string]any{"op": "offline", "value": true})
	b.waitFor(`() => document.querySelector('#online').dataset.online === 'false'`, nil)
	b.createOrder(2)
	b.createOrder(3)
	os := b.pageOrders()
	if len(os) != 2 {
		t.Fatalf("page lists %v", os)
	}
	first := os[1]["id"] // newest first
	b.must(map[string]any{"op": "click", "selector": `tr[data-order="` + first + `"] button.cancel`})
	b.waitFor(`(id) => document.querySelector('tr[data-order="' + id + '"]')?.dataset.status === 'cancelled'`, first)
	// The cancel's event released the stock locally: 10 - 2 - 3 + 2.
	b.waitFor(`() => document.querySelector('#stock .available').textContent === '7'`, nil)
	for _, o := range b.pageOrders() {
		if o["pending"] != "1" {
			t.Errorf("order %s is not shown as pending while offline", o["id"])
		}
	}
	var pending int
	b.eval(`() => Number(document.querySelector('#pending-count').textContent)`, nil, &pending)
	if pending == 0 {
		t.Fatal("no pending changes shown while offline")
	}
	b.screenshot("shop-offline.png")
	if got := serverOrders(t, srv, cust); len(got) != 0 {
		t.Fatalf("the server has orders while the page is offline: %v", got)
	}

	b.must(map[string]any{"op": "offline", "value": false})
	b.waitPending(0)
	b.waitFor(`() => document.querySelector('#online').dataset.online === 'true'`, nil)
	got := serverOrders(t, srv, cust)
	if len(got) != 2 {
		t.Fatalf("after sync the server has %v", got)
	}
	status := map[string]string{}
	for _, o := range got {
		status[o.ID] = o.Status
	}
	if status[first] != "cancelled" || len(status) != 2 {
		t.Fatalf("server statuses %v; want %s cancelled", status, first)
	}
	for id, st := range status {
		if id != first && st != "created" {
			t.Fatalf("server statuses %v", status)
		}
	}
	if n := serverStock(t, srv, sku); n != 7 {
		t.Fatalf("server stock %d, want 7", n)
	}
	// The server's own changes flow back: a restock there shows here.
	api(t, srv, "inventory", "Restock", map[string]any{"sku": sku, "quantity": 5}, nil)
	b.must(map[string]any{"op": "click", "selector": "#sync"})
	b.waitFor(`() => document.querySelector('#stock .available').textContent === '12'`, nil)
	b.screenshot("shop.png")
}

// TestShopConflict: the same order (and the customer's order index, and
// the stock) change on the server and in the offline page; the sync
// reports conflicts and loses neither side's data.
func TestShopConflict(t *testing.T) {
	b := startBrowser(t)
	srv := shopServer(t)
	page := shopPage(t, nil)
	cust, sku := "bob-"+runID(), "pear-"+runID()
	api(t, srv, "inventory", "Restock", map[string]any{"sku": sku, "quantity": 10}, nil)
	openShop(t, b, page, srv, cust, sku, 10)
	b.createOrder(1)
	b.waitPending(0)
	o := b.pageOrders()[0]["id"]
	var onServer struct {
		Order order
		ETag  string
	}
	if api(t, srv, "orders", "Get", map[string]string{"id": o}, &onServer) != 200 {
		t.Fatal("the order did not sync")
	}

	b.must(map[string]any{"op": "offline", "value": true})
	b.waitFor(`() => document.querySelector('#online').dataset.online === 'false'`, nil)
	// The server cancels the order and takes a new one for the customer.
	api(t, srv, "orders", "Cancel", map[string]string{"id": o}, nil)
	var theirs struct{ Order order }
	if api(t, srv, "orders", "Create", map[string]any{"customer": cust, "sku": sku, "quantity": 4}, &theirs) != 200 {
		t.Fatal("server create failed")
	}
	// Meanwhile the page cancels the same order and takes another one.
	b.must(map[string]any{"op": "click", "selector": `tr[data-order="` + o + `"] button.cancel`})
	b.waitFor(`(id) => document.querySelector('tr[data-order="' + id + '"]')?.dataset.status === 'cancelled'`, o)
	b.createOrder(2)
	mine := b.pageOrders()[0]["id"]

	b.must(map[string]any{"op": "offline", "value": false})
	b.waitFor(`(keys) => keys.every((k) => document.querySelector('#conflicts li[data-key="' + k + '"]'))`, []string{"order/" + o, "customer/" + cust})
	var keys []string
	b.eval(`() => [...document.querySelectorAll('#conflicts li')].map((li) => li.dataset.app + '/' + li.dataset.key)`, nil, &keys)
	joined := strings.Join(keys, " ")
	for _, k := range []string{"orders/order/" + o, "orders/customer/" + cust} {
		if !strings.Contains(joined, k) {
			t.Errorf("conflicts %v lack %s", keys, k)
		}
	}
	b.screenshot("shop-conflict.png")

	// Neither side lost anything. The server keeps its order and its index.
	got := serverOrders(t, srv, cust)
	ids := map[string]string{}
	for _, x := range got {
		ids[x.ID] = x.Status
	}
	if ids[o] != "cancelled" || ids[theirs.Order.ID] != "created" {
		t.Errorf("server orders %v: want %s cancelled and %s created", ids, o, theirs.Order.ID)
	}
	// The page keeps its own: its new order is listed, and the conflict
	// entry for the index holds both versions.
	var idx struct{ Mine, Theirs string }
	b.eval(`(k) => { const li = document.querySelector('#conflicts li[data-key="' + k + '"]');
		return { mine: li.querySelector('.mine').textContent, theirs: li.querySelector('.theirs').textContent }; }`, "customer/"+cust, &idx)
	if !strings.Contains(idx.Mine, mine) || !strings.Contains(idx.Theirs, theirs.Order.ID) {
		t.Errorf("index conflict shows mine %q, theirs %q; want %s in mine and %s in theirs", idx.Mine, idx.Theirs, mine, theirs.Order.ID)
	}
	found := false
	for _, x := range b.pageOrders() {
		found = found || x["id"] == mine
	}
	if !found {
		t.Errorf("the page lost its order %s", mine)
	}
	// The page's new order itself did not conflict and reached the server.
	if api(t, srv, "orders", "Get", map[string]string{"id": mine}, nil) != 200 {
		t.Errorf("order %s did not sync", mine)
	}
	// Resolving takes the server's version of the order.
	b.must(map[string]any{"op": "click", "selector": `#conflicts li[data-key="order/` + o + `"] button.take-theirs`})
	b.waitFor(`(k) => !document.querySelector('#conflicts li[data-key="' + k + '"]')`, "order/"+o)
}

// TestShopReloadKeepsState: the page's state lives in IndexedDB, so a
// reload shows the same orders and stock, and the same pending changes.
func TestShopReloadKeepsState(t *testing.T) {
	b := startBrowser(t)
	page := shopPage(t, nil)
	cust, sku := "cy-"+runID(), "plum-"+runID()
	q := url.Values{"remote": {"none"}, "db": {"reload-" + cust}, "customer": {cust}, "skus": {sku}}
	b.must(map[string]any{"op": "goto", "url": page + "?" + q.Encode()})
	b.waitFor(`() => document.body.dataset.ready`, nil)
	b.eval(`(sku) => window.shop.inventory.call('Restock', { sku, quantity: 7 }).then(() => window.shop.render())`, sku, nil)
	b.waitFor(`() => document.querySelector('#stock .available').textContent === '7'`, nil)
	b.createOrder(3)
	before := b.pageOrders()
	var pending string
	b.eval(`() => document.querySelector('#pending-count').textContent`, nil, &pending)

	b.must(map[string]any{"op": "reload"})
	b.waitFor(`() => document.body.dataset.ready`, nil)
	b.waitFor(`() => document.querySelector('#stock .available').textContent === '4'`, nil)
	after := b.pageOrders()
	if len(after) != 1 || after[0]["id"] != before[0]["id"] || after[0]["status"] != "created" {
		t.Fatalf("after reload: %v, before: %v", after, before)
	}
	b.waitPending(mustAtoi(t, pending))
}

func mustAtoi(t *testing.T, s string) int {
	var n int
	if _, err := fmt.Sscan(s, &n); err != nil {
		t.Fatalf("%q: %v", s, err)
	}
	return n
}

// TestRemoteInvoke: with only orders loaded in the page, its invocations
// of inventory go to the server (the page's promise API, roam.load), and
// the server's error codes and messages come back unchanged.
func TestRemoteInvoke(t *testing.T) {
	b := startBrowser(t)
	srv := shopServer(t)
	ts := serveAssets(t, nil)
	if e := b.openPage(pageURL(ts.URL, nil, `{}`)); e != "" {
		t.Fatal(e)
	}
	sku := "fig-" + runID()
	api(t, srv, "inventory", "Restock", map[string]any{"sku": sku, "quantity": 5}, nil)
	var r struct {
		Order  order
		Status int
		Error  string
	}
	call := `async ([remote, req]) => {
		const roam = await import('./roam.js');
		const app = await roam.load('./modules/orders.wasm', { db: 'remote-invoke', remote });
		try {
			return { order: (await app.call('Create', req)).order };
		} catch (e) {
			return { status: e.status, error: e.codeName + ': ' + e.message };
		}
	}`
	b.eval(call, []any{srv, map[string]any{"customer": "eve", "sku": sku, "quantity": 2}}, &r)
	if r.Order.ID == "" || r.Order.Status != "created" {
		t.Fatalf("create: %+v\n%s", r, b.logs())
	}
	if n := serverStock(t, srv, sku); n != 3 {
		t.Fatalf("server stock %d after a remote reserve of 2 from 5", n)
	}
	b.eval(call, []any{srv, map[string]any{"customer": "eve", "sku": sku, "quantity": 4}}, &r)
	if want := `FailedPrecondition: sku "` + sku + `" has 3 available, order wants 4`; r.Status != 400 || r.Error != want {
		t.Fatalf("got %d %q, want 400 %q", r.Status, r.Error, want)
	}
	b.must(map[string]any{"op": "offline", "value": true})
	b.eval(call, []any{srv, map[string]any{"customer": "eve", "sku": sku, "quantity": 1}}, &r)
	if r.Status != 503 || !strings.Contains(r.Error, "Unavailable: invoke inventory.Reserve: app inventory at "+srv+" is unreachable") {
		t.Fatalf("offline: %d %q", r.Status, r.Error)
	}
}
