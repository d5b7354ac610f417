package host

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"

	"github.com/roam-dev/roam/backend/memory"
	"github.com/roam-dev/roam/sdk"
)

// An adversarial audit of the HTTP surface: what a hostile or careless
// client sends past the body limit, JSON and verb checks.

func auditServer(t *testing.T, o Options) *Server {
	t.Helper()
	b := memory.New(memory.Options{})
	t.Cleanup(func() { b.Close() })
	o.StateAPI = true
	s := NewServer(b, o)
	if err := s.Add(echoApp{"orders"}); err != nil {
		t.Fatal(err)
	}
	return s
}

func serve(s *Server, verb, target, body string) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, httptest.NewRequest(verb, target, strings.NewReader(body)))
	return rec
}

// allocated returns the bytes f allocates (the whole process's, so only a
// bound far above the noise of other goroutines is meaningful).
func allocated(f func()) uint64 {
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	f()
	runtime.ReadMemStats(&m1)
	return m1.TotalAlloc - m0.TotalAlloc
}

// hangUp is a request body that ends before its Content-Length, as a
// client that declared a large body and then sent little of it.
type hangUp struct{ r io.Reader }

func (h *hangUp) Read(p []byte) (int, error) {
	n, err := h.r.Read(p)
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

func (h *hangUp) Close() error { return nil }

// TestAuditBodyNotPreallocated: a request that declares a body of the limit
// and sends two bytes of it made the host allocate the whole limit on the
// word of the header, before any byte arrived (4 MiB held per connection
// for up to ReadTimeout, for ~100 bytes sent).
func TestAuditBodyNotPreallocated(t *testing.T) {
	s := auditServer(t, Options{})
	for _, path := range []string{"/v1/apps/orders/methods/Get", "/v1/apps/orders/state/st/bulk"} {
		var rec *httptest.ResponseRecorder
		n := allocated(func() {
			r := httptest.NewRequest("POST", path, nil)
			r.Body = &hangUp{strings.NewReader("{}")}
			r.ContentLength = s.opts.MaxBodyBytes
			rec = httptest.NewRecorder()
			s.Handler().ServeHTTP(rec, r)
		})
		if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), "reading request body: unexpected EOF") {
			t.Errorf("%s: %d %s, want 400 for the short body", path, rec.Code, rec.Body)
		}
		if n >= 1<<20 {
			t.Errorf("%s: a 2-byte body declared as %d bytes allocated %d bytes", path, s.opts.MaxBodyBytes, n)
		}
	}
	// A body of the declared length, small or large, still reads whole.
	for _, size := range []int{preallocBody, preallocBody + 1, 1 << 20} {
		body := `"` + strings.Repeat("x", size-2) + `"`
		if rec := serve(s, "POST", "/v1/apps/orders/methods/Get", body); rec.Code != 200 || !strings.Contains(rec.Body.String(), body[:100]) {
			t.Errorf("body of %d bytes: %d %.200s", size, rec.Code, rec.Body)
		}
	}
}

// TestAuditSyncKeysExact: keys pushed or asked for through the state sync
// API reach the store as sent, or are refused. Invalid UTF-8 and escaped
// lone surrogates were turned into U+FFFD: the push wrote a key the client
// never had, and \ud800 and \udc00 were one key.
func TestAuditSyncKeysExact(t *testing.T) {
	s := auditServer(t, Options{})
	st := s.backend.State("orders", "st")
	ctx := context.Background()
	for _, body := range []string{
		"{\"ops\":[{\"op\":\"set\",\"key\":\"a\xffb\",\"value\":\"MQ==\"}]}",
		`{"ops":[{"op":"set","key":"a\ud800","value":"MQ=="}]}`,
		`{"ops":[{"op":"set","key":"a\udc00\ud800","value":"MQ=="}]}`,
		`{"ops":[{"op":"set","key":"a\uD800\u0041","value":"MQ=="}]}`,
		`{"ops":[{"op":"set","key":"ok","value":"MQ=="}],"x":"\\\ud800"}`,
	} {
		rec := serve(s, "POST", "/v1/apps/orders/state/st/transact", body)
		if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), `"InvalidArgument"`) {
			t.Errorf("%q: %d %s, want 400", body, rec.Code, rec.Body)
		}
	}
	for _, k := range []string{"a\ufffd", "a\ufffdb", "a\ufffd\ufffd", "a\ufffdA", "ok"} {
		if _, err := st.Get(ctx, k); !sdk.IsCode(err, sdk.NotFound) {
			t.Errorf("refused pushes wrote %q: %v", k, err)
		}
	}
	if rec := serve(s, "POST", "/v1/apps/orders/state/st/bulk", `{"keys":["\udfff"]}`); rec.Code != http.StatusBadRequest {
		t.Errorf("bulk of a lone surrogate: %d %s", rec.Code, rec.Body)
	}
	// Pairs, escaped backslashes and other escapes are text like any other.
	want := []string{"\U0001F600", `\ud800`, "\u00e9\\", "x\"\\u"}
	body := `{"ops":[{"op":"set","key":"\ud83d\uDE00","value":"MQ=="},{"op":"set","key":"\\ud800","value":"MQ=="},` +
		`{"op":"set","key":"\u00e9\\","value":"MQ=="},{"op":"set","key":"x\"\\u","value":"MQ=="}]}`
	rec := serve(s, "POST", "/v1/apps/orders/state/st/transact", body)
	var reply struct{ Items []SyncItem }
	if err := json.Unmarshal(rec.Body.Bytes(), &reply); rec.Code != 200 || err != nil || len(reply.Items) != len(want) {
		t.Fatalf("valid keys: %d %s", rec.Code, rec.Body)
	}
	for i, k := range want {
		if reply.Items[i].Key != k || !reply.Items[i].Found {
			t.Errorf("item %d: %+v, want key %q", i, reply.Items[i], k)
		}
		if _, err := st.Get(ctx, k); err != nil {
			t.Errorf("key %q: %v", k, err)
		}
	}
}

func TestAuditLoneSurrogate(t *testing.T) {
	for in, want := range map[string]int{
		`""`: -1, `"\ud83d\ude00"`: -1, `"\\ud800"`: -1, `"\\\\ud800"`: -1, `"\u0041\\"`: -1, `"\u00e9\ud7ff\ue000"`: -1,
		`"\ud800"`: 1, `"\\\ud800"`: 3, `"\udc00"`: 1, `"\ud83d\u0041"`: 1, `"\ud83d\ud83d\ude00"`: 1, `"\ud83d\ude00\ude00"`: 13, `"\ud800`: 1,
	} {
		if got := loneSurrogate([]byte(in)); got != want {
			t.Errorf("loneSurrogate(%s) = %d, want %d", in, got, want)
		}
	}
}

// TestAuditSyncConditionsChecked: a push op with conditions that exclude
// each other is refused (400) before anything is compared or written. A
// delete "if_absent" deleted the key that was there (sdk.DeleteOp drops
// IfAbsent), and a set with both an etag and if_absent was a conflict (409).
func TestAuditSyncConditionsChecked(t *testing.T) {
	s := auditServer(t, Options{})
	st := s.backend.State("orders", "st")
	ctx := context.Background()
	if err := st.Set(ctx, "k", []byte("1"), sdk.WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	it, _ := st.Get(ctx, "k")
	for _, tc := range []struct{ ops, want string }{
		{`[{"op":"delete","key":"k","if_absent":true}]`, `op 0: key \"k\": if_absent applies to set only`},
		{`[{"op":"set","key":"n","value":"MQ=="},{"op":"set","key":"k","value":"MQ==","etag":"` + it.ETag + `","if_absent":true}]`, `op 1: key \"k\": etag and if_absent exclude each other`},
		{`[{"op":"set","key":"n","value":"MQ==","etag":"1","if_absent":true}]`, `etag and if_absent exclude each other`},
	} {
		rec := serve(s, "POST", "/v1/apps/orders/state/st/transact", `{"ops":`+tc.ops+`}`)
		if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), tc.want) {
			t.Errorf("%s: %d %s, want 400 saying %s", tc.ops, rec.Code, rec.Body, tc.want)
		}
	}
	if got, err := st.Get(ctx, "k"); err != nil || got.ETag != it.ETag {
		t.Errorf("k after refused pushes: %+v %v, want it untouched", got, err)
	}
	if _, err := st.Get(ctx, "n"); !sdk.IsCode(err, sdk.NotFound) {
		t.Errorf("n written by a refused push: %v", err)
	}
}

// TestAuditSyncBulkBounded: a bulk read may name one key many times; its
// reply was built whole, so 1000 copies of a key holding 256 KiB allocated
// 1.6 GB for a request of 6 KB. The values of one reply are now bounded
// (8 times the body limit) and read a few keys at a time.
func TestAuditSyncBulkBounded(t *testing.T) {
	s := auditServer(t, Options{MaxBodyBytes: 64 << 10})
	st := s.backend.State("orders", "st")
	ctx := context.Background()
	big := make([]byte, 64<<10)
	if err := st.Set(ctx, "big", big, sdk.WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	body := `{"keys":[` + strings.TrimSuffix(strings.Repeat(`"big",`, maxSyncKeys), ",") + `]}`
	var rec *httptest.ResponseRecorder
	n := allocated(func() { rec = serve(s, "POST", "/v1/apps/orders/state/st/bulk", body) })
	if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), "ask for fewer keys at a time") {
		t.Errorf("1000 copies of a 64 KiB value: %d %.300s, want 400", rec.Code, rec.Body)
	}
	if n > 32<<20 {
		t.Errorf("1000 copies of a 64 KiB value allocated %d bytes", n)
	}
	// Up to the bound, keys come back in order, duplicates and absent
	// keys included, across the reads.
	keys := []string{}
	for i := 0; i < 40; i++ { // 8 copies of big: the bound exactly
		if i%5 == 0 {
			keys = append(keys, "big")
		} else {
			keys = append(keys, "none")
		}
	}
	b, _ := json.Marshal(map[string][]string{"keys": keys})
	rec = serve(s, "POST", "/v1/apps/orders/state/st/bulk", string(b))
	var reply struct{ Items []SyncItem }
	if err := json.Unmarshal(rec.Body.Bytes(), &reply); rec.Code != 200 || err != nil || len(reply.Items) != len(keys) {
		t.Fatalf("bulk under the bound: %d %.300s", rec.Code, rec.Body)
	}
	for i, it := range reply.Items {
		if it.Key != keys[i] || it.Found != (keys[i] == "big") || (it.Found && len(it.Value) != len(big)) {
			t.Errorf("item %d: key %q found %v %d bytes", i, it.Key, it.Found, len(it.Value))
		}
	}
	many := []string{}
	for i := 0; i < maxSyncKeys; i++ {
		many = append(many, string(rune('a'+i%26))+strings.Repeat("k", i/26))
	}
	b, _ = json.Marshal(map[string][]string{"keys": many})
	if rec = serve(s, "POST", "/v1/apps/orders/state/st/bulk", string(b)); rec.Code != 200 || json.Unmarshal(rec.Body.Bytes(), &reply) != nil || len(reply.Items) != maxSyncKeys || reply.Items[999].Key != many[999] {
		t.Errorf("1000 small keys: %d %.300s", rec.Code, rec.Body)
	}
	// An invalid key is still the store's 400, whichever read meets it.
	many[900] = ""
	b, _ = json.Marshal(map[string][]string{"keys": many})
	if rec = serve(s, "POST", "/v1/apps/orders/state/st/bulk", string(b)); rec.Code != 400 || !strings.Contains(rec.Body.String(), "state key is empty") {
		t.Errorf("an empty key among 1000: %d %.300s", rec.Code, rec.Body)
	}
	if got := (&Server{opts: Options{MaxBodyBytes: 1 << 62}}).syncReplyBytes(); got <= 0 {
		t.Errorf("the bound of a huge body limit wrapped to %d", got)
	}
}

// TestAuditWrongVerbOnSyncRoutes: another verb on a state sync route was
// 404 "no route", as if the path did not exist.
func TestAuditWrongVerbOnSyncRoutes(t *testing.T) {
	s := auditServer(t, Options{})
	for _, tc := range []struct{ verb, path string }{
		{"GET", "/v1/apps/orders/state/st/bulk"}, {"PUT", "/v1/apps/orders/state/st/transact"},
		{"DELETE", "/v1/apps/orders/publish/pubsub/t"}, {"HEAD", "/v1/apps/orders/state/st/bulk"},
	} {
		rec := serve(s, tc.verb, tc.path, "")
		if rec.Code != http.StatusMethodNotAllowed || rec.Header().Get("Allow") != "POST" ||
			(tc.verb != "HEAD" && !strings.Contains(rec.Body.String(), "call with POST")) {
			t.Errorf("%s %s: %d %q %s, want 405 allowing POST", tc.verb, tc.path, rec.Code, rec.Header().Get("Allow"), rec.Body)
		}
	}
	for _, path := range []string{"/v1/apps/orders/state/st/nosuch", "/v1/apps/orders/state/st"} {
		if rec := serve(s, "GET", path, ""); rec.Code != http.StatusNotFound {
			t.Errorf("GET %s: %d %s, want 404", path, rec.Code, rec.Body)
		}
	}
	// Without the state API there is no route to allow.
	mb := memory.New(memory.Options{})
	t.Cleanup(func() { mb.Close() })
	off := NewServer(mb, Options{})
	if rec := serve(off, "GET", "/v1/apps/orders/state/st/bulk", ""); rec.Code != http.StatusNotFound {
		t.Errorf("GET with the state API off: %d %s", rec.Code, rec.Body)
	}
}
