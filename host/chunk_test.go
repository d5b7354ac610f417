package host

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/roam-dev/roam/backend"
	"github.com/roam-dev/roam/backend/memory"
	"github.com/roam-dev/roam/sdk"
)

// countingBackend counts the BulkGet calls of its stores: the round trips
// a bulk sync request costs a backend whose every call crosses a process
// (a Dapr sidecar).
type countingBackend struct {
	backend.Backend
	calls atomic.Int64
	keys  atomic.Int64 // the keys of every call, added up
	most  atomic.Int64 // the keys of the largest call
}

func (b *countingBackend) State(app, store string) sdk.State {
	return &countingState{State: b.Backend.State(app, store), b: b}
}

type countingState struct {
	sdk.State
	b *countingBackend
}

func (s *countingState) BulkGet(ctx context.Context, keys []string) ([]sdk.Item, error) {
	s.b.calls.Add(1)
	s.b.keys.Add(int64(len(keys)))
	for n := int64(len(keys)); ; {
		m := s.b.most.Load()
		if n <= m || s.b.most.CompareAndSwap(m, n) {
			break
		}
	}
	return s.State.BulkGet(ctx, keys)
}

func countingServer(t testing.TB, o Options) (*Server, *countingBackend) {
	t.Helper()
	mb := memory.New(memory.Options{})
	t.Cleanup(func() { mb.Close() })
	b := &countingBackend{Backend: mb}
	o.StateAPI = true
	s := NewServer(b, o)
	if err := s.Add(echoApp{"orders"}); err != nil {
		t.Fatal(err)
	}
	return s, b
}

// wantBulkReply is the reply of a bulk request as it was built before the
// keys were deduplicated: one item per requested key, each read on its own.
func wantBulkReply(t *testing.T, st sdk.State, keys []string) string {
	t.Helper()
	items := make([]SyncItem, len(keys))
	for i, k := range keys {
		got, err := st.BulkGet(context.Background(), []string{k})
		if err != nil {
			t.Fatal(err)
		}
		it := got[0]
		items[i] = SyncItem{Key: k, Found: it.Found(), Value: it.Value, ETag: it.ETag}
	}
	b, _ := json.Marshal(map[string]any{"items": items})
	return string(b)
}

// TestChunkBulkRoundTrips: a bulk read of many keys costs a few backend
// calls, not one per 16 keys (63 sidecar round trips for 1000 keys), and a
// key asked for many times over is read once; the reply is byte for byte
// the one of reading every requested key on its own.
func TestChunkBulkRoundTrips(t *testing.T) {
	s, b := countingServer(t, Options{})
	st := s.backend.State("orders", "st")
	ctx := context.Background()
	distinct := make([]string, maxSyncKeys)
	for i := range distinct {
		distinct[i] = "k" + strconv.Itoa(i)
		if i%3 == 0 { // every third key is present
			if err := st.Set(ctx, distinct[i], []byte("v"+strconv.Itoa(i)), sdk.WriteOptions{}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := st.Set(ctx, "empty", []byte{}, sdk.WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	mixed := []string{}
	for i := 0; i < maxSyncKeys; i++ {
		mixed = append(mixed, []string{"k3", "none", "empty", "k" + strconv.Itoa(i%40)}[i%4])
	}
	for _, tc := range []struct {
		name string
		keys []string
		// distinct is how many distinct keys the request names: each must
		// be read exactly once.
		distinct int
	}{
		{"1000 distinct keys", distinct, maxSyncKeys},
		{"1000 copies of a present key", slices.Repeat([]string{"k3"}, maxSyncKeys), 1},
		{"1000 copies of an absent key", slices.Repeat([]string{"none"}, maxSyncKeys), 1},
		{"copies, absent and empty keys mixed", mixed, 12}, // k3, none, empty, k7 to k39
		{"no keys", []string{}, 0},
	} {
		want := wantBulkReply(t, st, tc.keys)
		b.calls.Store(0)
		b.keys.Store(0)
		b.most.Store(0)
		body, _ := json.Marshal(map[string][]string{"keys": tc.keys})
		rec := serve(s, "POST", "/v1/apps/orders/state/st/bulk", string(body))
		if rec.Code != 200 || rec.Body.String() != want {
			t.Errorf("%s: %d %.300s\nwant 200 %.300s", tc.name, rec.Code, rec.Body, want)
		}
		if n := b.calls.Load(); n > 8 {
			t.Errorf("%s: %d backend calls, want at most 8", tc.name, n)
		}
		if n := b.most.Load(); n > maxBulkChunk {
			t.Errorf("%s: a backend call of %d keys, want at most %d", tc.name, n, maxBulkChunk)
		}
		if n := b.keys.Load(); n != int64(tc.distinct) {
			t.Errorf("%s: the backend was asked for %d keys, want each of the %d distinct ones once", tc.name, n, tc.distinct)
		}
	}
}

// TestChunkBulkLimitAcrossCopies: the reply's bound counts every copy of a
// key, as the reply holds every copy, though the key is read once; the
// first read stays small, so that a request that passes the bound in its
// first keys costs no more than it did; and reads stop growing once the
// reply nears the bound.
func TestChunkBulkLimitAcrossCopies(t *testing.T) {
	s, b := countingServer(t, Options{MaxBodyBytes: 64 << 10})
	st := s.backend.State("orders", "st")
	ctx := context.Background()
	big := make([]byte, 64<<10)
	for i := 0; i < 300; i++ {
		if err := st.Set(ctx, "big"+strconv.Itoa(i), big, sdk.WriteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// 9 copies of a 64 KiB value: one over the bound of 8, though one read.
	keys := append(slices.Repeat([]string{"big0"}, 9), "none")
	body, _ := json.Marshal(map[string][]string{"keys": keys})
	rec := serve(s, "POST", "/v1/apps/orders/state/st/bulk", string(body))
	if rec.Code != 400 || !strings.Contains(rec.Body.String(), "the values of these 10 keys add up to more than 524288 bytes") {
		t.Errorf("9 copies of 64 KiB: %d %.300s, want 400", rec.Code, rec.Body)
	}
	// 300 distinct large values: the first read of 16 passes the bound,
	// and nothing more is read.
	b.calls.Store(0)
	b.keys.Store(0)
	keys = keys[:0]
	for i := 0; i < 300; i++ {
		keys = append(keys, "big"+strconv.Itoa(i))
	}
	body, _ = json.Marshal(map[string][]string{"keys": keys})
	var rec2 *httptest.ResponseRecorder
	n := allocated(func() { rec2 = serve(s, "POST", "/v1/apps/orders/state/st/bulk", string(body)) })
	if rec2.Code != 400 || !strings.Contains(rec2.Body.String(), "ask for fewer keys at a time") {
		t.Errorf("300 values of 64 KiB: %d %.300s, want 400", rec2.Code, rec2.Body)
	}
	if c, k := b.calls.Load(), b.keys.Load(); c != 1 || k != bulkChunk {
		t.Errorf("300 values of 64 KiB: %d calls for %d keys, want one of %d", c, k, bulkChunk)
	}
	if n > 8<<20 {
		t.Errorf("300 values of 64 KiB allocated %d bytes", n)
	}
	// 60 values of 8 KiB, 480 KiB in all, within the bound: the first 16
	// are more than a sixteenth of it, so every read stays at 16 keys.
	mid := make([]byte, 8<<10)
	keys = keys[:0]
	for i := 0; i < 60; i++ {
		keys = append(keys, "mid"+strconv.Itoa(i))
		if err := st.Set(ctx, keys[i], mid, sdk.WriteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	want := wantBulkReply(t, st, keys)
	b.calls.Store(0)
	b.most.Store(0)
	body, _ = json.Marshal(map[string][]string{"keys": keys})
	if rec = serve(s, "POST", "/v1/apps/orders/state/st/bulk", string(body)); rec.Code != 200 || rec.Body.String() != want {
		t.Errorf("60 values of 8 KiB: %d %.300s", rec.Code, rec.Body)
	}
	if c, m := b.calls.Load(), b.most.Load(); c != 4 || m != bulkChunk {
		t.Errorf("60 values of 8 KiB: %d calls of at most %d keys, want 4 of at most %d", c, m, bulkChunk)
	}
}

// BenchmarkChunkBulk: a bulk read of 1000 distinct small keys, and of 1000
// copies of one.
func BenchmarkChunkBulk(b *testing.B) {
	s, cb := countingServer(b, Options{})
	st := s.backend.State("orders", "st")
	distinct := make([]string, maxSyncKeys)
	for i := range distinct {
		distinct[i] = "k" + strconv.Itoa(i)
		if err := st.Set(context.Background(), distinct[i], []byte(`{"n":1}`), sdk.WriteOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	for _, bc := range []struct {
		name string
		keys []string
	}{{"distinct", distinct}, {"copies", slices.Repeat([]string{"k1"}, maxSyncKeys)}} {
		body, _ := json.Marshal(map[string][]string{"keys": bc.keys})
		b.Run(bc.name, func(b *testing.B) {
			cb.calls.Store(0)
			b.ReportAllocs()
			for b.Loop() {
				if rec := serve(s, "POST", "/v1/apps/orders/state/st/bulk", string(body)); rec.Code != 200 {
					b.Fatalf("%d %.300s", rec.Code, rec.Body)
				}
			}
			b.ReportMetric(float64(cb.calls.Load())/float64(b.N), "calls/op")
		})
	}
}
