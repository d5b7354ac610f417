package webtest

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

// badModules serves broken modules under prefix.
func badModules(t *testing.T, prefix string) http.Handler {
	wasm := readAsset(t, "modules/conformance.wasm")
	v2 := bytes.ReplaceAll(wasm, []byte("roam_v1"), []byte("roam_v2"))
	if bytes.Equal(v2, wasm) {
		t.Fatal("no roam_v1 in the module")
	}
	files := map[string][]byte{
		"corrupt.wasm":   append([]byte("\x00asm\x01\x00\x00\x00"), bytes.Repeat([]byte{0xff}, 64)...),
		"truncated.wasm": wasm[:len(wasm)/2],
		// 4,294,967,295 functions in 12 bytes: the edge host refuses it
		// before wazero allocates 16 GB for it (wasmopt.CheckLimits).
		"bomb.wasm":      []byte("\x00asm\x01\x00\x00\x00\x03\x06\xff\xff\xff\xff\x0f\x00"),
		"v2.wasm":        v2,
		"orders.wasm":    []byte("<html>not a module</html>"),
		"inventory.wasm": readAsset(t, "modules/inventory.wasm"),
	}
	return serveModules(prefix, files)
}

// serveModules serves files, by name, as wasm modules under prefix.
func serveModules(prefix string, files map[string][]byte) http.Handler {
	return http.StripPrefix(prefix, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, ok := files[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/wasm")
		w.Write(b)
	}))
}

// TestBadModules: a corrupted module and one built for another ABI
// version fail to load with a message that says so, on the test page and
// on the shop's page.
func TestBadModules(t *testing.T) {
	b := startBrowser(t)
	ts := serveAssets(t, map[string]http.Handler{"/web/bad/": badModules(t, "/web/bad/")})
	for mod, want := range map[string][]string{
		"./bad/corrupt.wasm":   {"corrupt.wasm is not a valid WebAssembly module"},
		"./bad/truncated.wasm": {"truncated.wasm is not a valid WebAssembly module"},
		"./bad/bomb.wasm":      {"bomb.wasm is not a valid WebAssembly module"},
		"./bad/v2.wasm":        {"v2.wasm was built for ABI roam_v2", "this host implements roam_v1"},
		"./bad/missing.wasm":   {"HTTP 404"},
	} {
		got := b.openPage(pageURL(ts.URL, []string{mod}, `{"db":"bad"}`))
		for _, w := range want {
			if !strings.Contains(got, w) {
				t.Errorf("%s: error %q lacks %q", mod, got, w)
			}
		}
		var shown string
		b.eval(`() => document.querySelector('#error').textContent`, nil, &shown)
		if shown != got {
			t.Errorf("%s: page shows %q", mod, shown)
		}
	}

	page := shopPage(t, badModules(t, "/web/modules/"))
	b.must(map[string]any{"op": "goto", "url": page + "?remote=none"})
	b.waitFor(`() => document.body.dataset.error`, nil)
	var shown string
	b.eval(`() => document.querySelector('#error').textContent`, nil, &shown)
	if !strings.Contains(shown, "The shop could not start: orders.wasm is not a valid WebAssembly module") {
		t.Errorf("shop page shows %q", shown)
	}
	b.screenshot("shop-bad-module.png")
}

type callResult struct {
	status int
	body   string
}

func (b *browser) call(app, method, body string) callResult {
	b.t.Helper()
	v := b.must(map[string]any{"op": "call", "app": app, "method": method, "body": base64.StdEncoding.EncodeToString([]byte(body))})
	var r struct {
		Status int    `json:"status"`
		Body   string `json:"body"`
	}
	json.Unmarshal(v, &r)
	out, _ := base64.StdEncoding.DecodeString(r.Body)
	return callResult{r.Status, string(out)}
}

// TestGuestFailures: a panic the SDK recovers fails its call with the
// guest's message; a trap (the guest exits) fails its call, the worker
// discards the instance and creates another for the next call; state,
// which the host keeps, survives both.
func TestGuestFailures(t *testing.T) {
	b := startBrowser(t)
	ts := serveAssets(t, nil)
	if e := b.openPage(pageURL(ts.URL, []string{"conformance"}, `{"db":"failures-`+runID()+`"}`)); e != "" {
		t.Fatal(e)
	}
	if r := b.call("conformance", "Put", `{"key":"k","value":{"kept":true}}`); r.status != 200 {
		t.Fatalf("put: %v", r)
	}
	r := b.call("conformance", "Panic", `{"message":"boom in the guest"}`)
	if r.status != 500 || r.body != `{"code":"Internal","message":"conformance Panic panicked: boom in the guest"}` {
		t.Fatalf("panic: %v", r)
	}
	if r := b.call("conformance", "Echo", `{"after":"panic"}`); r.status != 200 || r.body != `{"after":"panic"}` {
		t.Fatalf("after panic: %v", r)
	}
	r = b.call("conformance", "Exit", `{}`)
	if r.status != 500 || !strings.Contains(r.body, `"code":"Internal"`) || !strings.Contains(r.body, "exited with status 3") || !strings.Contains(r.body, "instance was discarded") {
		t.Fatalf("exit: %v", r)
	}
	if r := b.call("conformance", "Echo", `{"after":"trap"}`); r.status != 200 || r.body != `{"after":"trap"}` {
		t.Fatalf("after trap: %v\n%s", r, b.logs())
	}
	if r := b.call("conformance", "Get", `{"key":"k"}`); r.status != 200 || !strings.Contains(r.body, `"value":{"kept":true}`) {
		t.Fatalf("state after trap: %v", r)
	}
	// A trap in an invoked app fails the caller's call, not the caller.
	r = b.call("conformance", "Invoke", `{"app":"conformance","method":"Exit","body":{}}`)
	if r.status != 500 || !strings.Contains(r.body, "exited with status 3") {
		t.Fatalf("invoke of a trapping method: %v", r)
	}
	if r := b.call("conformance", "Echo", `{"after":"nested trap"}`); r.status != 200 {
		t.Fatalf("after nested trap: %v", r)
	}
}

// TestGuestIgnoresDeadline: a guest looping forever cannot be interrupted
// inside the worker, so the host ends the worker after the call's deadline:
// the call fails with DeadlineExceeded, a new worker loads the module
// again, and the next call works, with the state written before.
func TestGuestIgnoresDeadline(t *testing.T) {
	b := startBrowser(t)
	ts := serveAssets(t, nil)
	if e := b.openPage(pageURL(ts.URL, []string{"conformance"}, `{"db":"spin-`+runID()+`","timeoutMs":1500}`)); e != "" {
		t.Fatal(e)
	}
	if r := b.call("conformance", "Put", `{"key":"k","value":1}`); r.status != 200 {
		t.Fatalf("put: %v", r)
	}
	start := time.Now()
	r := b.call("conformance", "Spin", `{}`)
	if r.status != 504 || !strings.Contains(r.body, `"code":"DeadlineExceeded"`) || !strings.Contains(r.body, "restarted") {
		t.Fatalf("spin: %v", r)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("spin answered after %v", d)
	}
	b.restarted()
	if r := b.call("conformance", "Get", `{"key":"k"}`); r.status != 200 || !strings.Contains(r.body, `"value":1`) {
		t.Fatalf("after restart: %v\n%s", r, b.logs())
	}

	// Calls queued behind the loop never ran: callRaw answers them 503, as
	// the HTTP API would, and does not throw.
	var queued []struct {
		Status int
		Body   string
		Err    string
	}
	b.eval(`async () => {
		const h = window.roamHost, enc = (s) => new TextEncoder().encode(s);
		const ps = [['Spin', '{}'], ['Put', '{"key":"q1","value":1}'], ['Echo', '{"q":2}']].map(([m, body]) =>
			h.callRaw('conformance', m, enc(body)).then(
				(r) => ({status: r.status, body: new TextDecoder().decode(r.body)}),
				(e) => ({err: String(e)})));
		return Promise.all(ps);
	}`, nil, &queued)
	if len(queued) != 3 || queued[0].Status != 504 {
		t.Fatalf("spin with calls behind it: %+v", queued)
	}
	for _, q := range queued[1:] {
		if q.Err != "" || q.Status != 503 || !didNotRun.MatchString(q.Body) {
			t.Errorf("a call queued behind the loop: %+v", q)
		}
	}
	b.restarted()
	if r := b.call("conformance", "Get", `{"key":"q1"}`); r.status != 404 {
		t.Errorf("q1, whose call never ran: %v", r)
	}
}

// TestModuleFetchTimeout: a module whose server never finishes sending it
// fails the load at loadTimeoutMs, saying so, instead of leaving it (and
// every later load of the URL) pending for good.
func TestModuleFetchTimeout(t *testing.T) {
	b := startBrowser(t)
	release := make(chan struct{})
	defer close(release)
	hang := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/wasm")
		w.Write([]byte("\x00asm\x01\x00\x00\x00")) // a start, and then nothing
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	ts := serveAssets(t, map[string]http.Handler{"/web/hang/": hang})
	start := time.Now()
	got := b.openPage(pageURL(ts.URL, []string{"./hang/slow.wasm"}, `{"db":"hang","loadTimeoutMs":500}`))
	if want := "not complete in 500 ms (loadTimeoutMs)"; !strings.Contains(got, want) {
		t.Errorf("load error %q lacks %q", got, want)
	}
	if took := time.Since(start); took > time.Minute {
		t.Errorf("the load failed after %s", took)
	}
}
