package host_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/roam-dev/roam/backend/memory"
	"github.com/roam-dev/roam/host"
	"github.com/roam-dev/roam/host/native"
	"github.com/roam-dev/roam/sdk"
)

var syncApp = sdk.NewApp("synctest", func(env sdk.Env, r *sdk.Router) error {
	r.HandleRaw("Echo", func(ctx context.Context, b []byte) ([]byte, error) { return b, nil })
	return nil
})

func webServer(t *testing.T, o host.Options) string {
	t.Helper()
	b := memory.New(memory.Options{})
	srv, err := native.NewServer(b, []*sdk.App{syncApp}, o)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(func() { ts.Close(); b.Close() })
	return ts.URL
}

func do(t *testing.T, method, url string, body string, hdr map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := (&http.Transport{DisableCompression: true}).RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

func TestCORSClosedByDefault(t *testing.T) {
	u := webServer(t, host.Options{})
	resp, _ := do(t, "POST", u+"/v1/apps/synctest/methods/Echo", "{}", map[string]string{"Origin": "http://127.0.0.1:9999"})
	if got := resp.Header.Get("Access-Control-Allow-Origin"); got != "" {
		t.Fatalf("Allow-Origin %q without any allowed origin", got)
	}
}

func TestCORSOrigins(t *testing.T) {
	u := webServer(t, host.Options{CORSOrigins: []string{"http://127.0.0.1:*", "https://shop.example"}})
	for origin, allowed := range map[string]bool{
		"http://127.0.0.1:5173": true, "http://127.0.0.1": true, "https://shop.example": true,
		"http://127.0.0.1.evil.example:80": false, "http://localhost:5173": false, "https://shop.example.evil": false,
	} {
		pre, _ := do(t, "OPTIONS", u+"/v1/apps/synctest/methods/Echo", "", map[string]string{
			"Origin": origin, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type",
		})
		resp, body := do(t, "POST", u+"/v1/apps/synctest/methods/Echo", `{"a":1}`, map[string]string{"Origin": origin})
		got := resp.Header.Get("Access-Control-Allow-Origin")
		if allowed {
			if pre.StatusCode != http.StatusNoContent || pre.Header.Get("Access-Control-Allow-Methods") == "" || got != origin || string(body) != `{"a":1}` ||
				!strings.Contains(pre.Header.Get("Access-Control-Allow-Headers"), "traceparent, tracestate") {
				t.Errorf("%s: preflight %d %v; call Allow-Origin %q body %s", origin, pre.StatusCode, pre.Header, got, body)
			}
		} else if pre.StatusCode != http.StatusForbidden || got != "" {
			t.Errorf("%s: preflight %d, Allow-Origin %q; want 403 and none", origin, pre.StatusCode, got)
		}
	}
	if err := host.CheckCORSOrigins([]string{"http://127.0.0.1:*", "*", "https://a.example:8443"}); err != nil {
		t.Error(err)
	}
	if err := host.CheckCORSOrigins([]string{"127.0.0.1"}); err == nil {
		t.Error("an origin without a scheme passed")
	}
}

func TestWebAssetsGzip(t *testing.T) {
	wasm := append([]byte("\x00asm\x01\x00\x00\x00"), bytes.Repeat([]byte("roam "), 5000)...)
	u := webServer(t, host.Options{Web: &host.WebAssets{
		Page:    fstest.MapFS{"index.html": {Data: []byte("<!doctype html><title>shop</title>" + strings.Repeat(" ", 400))}},
		Modules: map[string][]byte{"orders": wasm},
	}})
	resp, body := do(t, "GET", u+"/web/modules/orders.wasm", "", map[string]string{"Accept-Encoding": "gzip, deflate"})
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/wasm" || resp.Header.Get("Content-Encoding") != "gzip" {
		t.Fatalf("status %d, headers %v", resp.StatusCode, resp.Header)
	}
	zr, err := gzip.NewReader(bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(zr)
	if !bytes.Equal(raw, wasm) || len(body) >= len(wasm)/10 {
		t.Fatalf("gzip body of %d bytes decodes to %d bytes (want %d)", len(body), len(raw), len(wasm))
	}
	resp, body = do(t, "GET", u+"/web/modules/orders.wasm", "", nil)
	if resp.Header.Get("Content-Encoding") != "" || !bytes.Equal(body, wasm) {
		t.Fatalf("without Accept-Encoding: encoding %q, %d bytes", resp.Header.Get("Content-Encoding"), len(body))
	}
	resp, _ = do(t, "GET", u+"/web/modules/orders.wasm", "", map[string]string{"If-None-Match": resp.Header.Get("ETag")})
	if resp.StatusCode != http.StatusNotModified {
		t.Fatalf("revalidation: %d", resp.StatusCode)
	}
	resp, body = do(t, "GET", u+"/web/", "", nil)
	if resp.StatusCode != 200 || !strings.Contains(string(body), "<title>shop") {
		t.Fatalf("page: %d %s", resp.StatusCode, body)
	}
	resp, _ = do(t, "GET", u+"/", "", nil)
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "/web/" {
		t.Fatalf("/: %d %v", resp.StatusCode, resp.Header)
	}
	resp, _ = do(t, "GET", u+"/web/modules/nope.wasm", "", nil)
	if resp.StatusCode != 404 {
		t.Fatalf("missing module: %d", resp.StatusCode)
	}
}

func TestStateSyncAPI(t *testing.T) {
	u := webServer(t, host.Options{StateAPI: true})
	base := u + "/v1/apps/synctest/state/statestore"
	items := func(body []byte) []host.SyncItem {
		var r struct {
			Items     []host.SyncItem `json:"items"`
			Conflicts []host.SyncItem `json:"conflicts"`
		}
		if err := json.Unmarshal(body, &r); err != nil {
			t.Fatalf("%s: %v", body, err)
		}
		return append(r.Items, r.Conflicts...)
	}
	// Create two keys: if_absent.
	resp, body := do(t, "POST", base+"/transact", `{"ops":[{"op":"set","key":"a","value":"MQ==","if_absent":true},{"op":"set","key":"b","value":"Mg==","if_absent":true}]}`, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("create: %d %s", resp.StatusCode, body)
	}
	it := items(body)
	if len(it) != 2 || !it[0].Found || string(it[0].Value) != "1" || it[0].ETag == "" {
		t.Fatalf("create: %s", body)
	}
	ea, eb := it[0].ETag, it[1].ETag
	// A stale ETag on one key: nothing is written, and the conflict names
	// the key with the server's item.
	resp, body = do(t, "POST", base+"/transact", `{"ops":[{"op":"set","key":"a","value":"MTA=","etag":"`+ea+`"},{"op":"delete","key":"b","etag":"stale"}]}`, nil)
	if resp.StatusCode != 409 {
		t.Fatalf("stale: %d %s", resp.StatusCode, body)
	}
	if c := items(body); len(c) != 1 || c[0].Key != "b" || c[0].ETag != eb || string(c[0].Value) != "2" {
		t.Fatalf("conflicts: %s", body)
	}
	resp, body = do(t, "POST", base+"/bulk", `{"keys":["a","b","c"]}`, nil)
	it = items(body)
	if resp.StatusCode != 200 || string(it[0].Value) != "1" || it[0].ETag != ea || !it[1].Found || it[2].Found {
		t.Fatalf("bulk after conflict: %s", body)
	}
	resp, body = do(t, "POST", base+"/transact", `{"ops":[{"op":"set","key":"a","value":"MTA=","etag":"`+ea+`"},{"op":"delete","key":"b","etag":"`+eb+`"}]}`, nil)
	it = items(body)
	if resp.StatusCode != 200 || string(it[0].Value) != "10" || it[0].ETag == ea || it[1].Found {
		t.Fatalf("push: %d %s", resp.StatusCode, body)
	}
	// Refused whole, with a 400 that says why: a key written twice, and a
	// TTL no Duration holds (it wrapped to a TTL of under a millisecond).
	for _, tc := range []struct{ ops, want string }{
		{`[{"op":"set","key":"d","value":"MQ==","if_absent":true},{"op":"set","key":"d","value":"Mg==","if_absent":true}]`, `ops 0 and 1 both write key \"d\"`},
		{`[{"op":"set","key":"d","value":"MQ==","ttl_ms":18446744073710}]`, `op 0: ttl_ms 18446744073710 is out of range`},
		{`[{"op":"set","key":"d","value":"MQ==","ttl_ms":-1}]`, `op 0: ttl_ms -1 is out of range`},
	} {
		resp, body = do(t, "POST", base+"/transact", `{"ops":`+tc.ops+`}`, nil)
		if resp.StatusCode != 400 || !strings.Contains(string(body), `"InvalidArgument"`) || !strings.Contains(string(body), tc.want) {
			t.Errorf("%s: %d %s, want 400 saying %s", tc.ops, resp.StatusCode, body, tc.want)
		}
	}
	resp, body = do(t, "POST", base+"/bulk", `{"keys":["d"]}`, nil)
	if it = items(body); resp.StatusCode != 200 || it[0].Found {
		t.Fatalf("refused ops wrote: %s", body)
	}
	// The longest TTL a Duration holds keeps the item.
	resp, body = do(t, "POST", base+"/transact", `{"ops":[{"op":"set","key":"far","value":"MQ==","ttl_ms":9223372036854}]}`, nil)
	if it = items(body); resp.StatusCode != 200 || !it[0].Found {
		t.Fatalf("longest TTL: %d %s", resp.StatusCode, body)
	}
	resp, body = do(t, "POST", u+"/v1/apps/synctest/publish/pubsub/t1", `{"data_base64":"e30=","datacontenttype":"application/json"}`, nil)
	if resp.StatusCode != 204 {
		t.Fatalf("publish: %d %s", resp.StatusCode, body)
	}
	resp, _ = do(t, "POST", u+"/v1/apps/nosuch/state/statestore/bulk", `{"keys":["a"]}`, nil)
	if resp.StatusCode != 404 {
		t.Fatalf("unknown app: %d", resp.StatusCode)
	}
	off := webServer(t, host.Options{})
	resp, _ = do(t, "POST", off+"/v1/apps/synctest/state/statestore/bulk", `{"keys":["a"]}`, nil)
	if resp.StatusCode == 200 {
		t.Fatal("state API served without Options.StateAPI")
	}
}

// TestWrongVerbOnHostRoutes: another verb on a path of the host's own GET
// routes is 405 naming GET, even on a host of one app, whose /{method}
// route (Dapr's app channel) takes every other single-segment path.
func TestWrongVerbOnHostRoutes(t *testing.T) {
	u := webServer(t, host.Options{})
	for _, tc := range []struct{ verb, path string }{
		{"POST", "/healthz"}, {"PUT", "/readyz"}, {"DELETE", "/metrics"}, {"POST", "/v1/apps"}, {"PATCH", "/healthz"},
	} {
		resp, body := do(t, tc.verb, u+tc.path, "{}", nil)
		if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "GET, HEAD" ||
			!strings.Contains(string(body), `"code":"InvalidArgument"`) || !strings.Contains(string(body), "it takes GET") {
			t.Errorf("%s %s: %d %v %s, want 405 allowing GET", tc.verb, tc.path, resp.StatusCode, resp.Header.Get("Allow"), body)
		}
	}
	if resp, body := do(t, "GET", u+"/healthz", "", nil); resp.StatusCode != 200 {
		t.Errorf("GET /healthz: %d %s", resp.StatusCode, body)
	}
	// Any other single segment is still a method of the one app.
	if resp, body := do(t, "POST", u+"/nosuch", "{}", nil); resp.StatusCode != 404 || !strings.Contains(string(body), "has no method") {
		t.Errorf("POST /nosuch: %d %s, want the app's 404 for an unknown method", resp.StatusCode, body)
	}
}
