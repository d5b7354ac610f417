package backendtest

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/roam-dev/roam/backend"
	"github.com/roam-dev/roam/sdk"
)

// stateTimeout bounds each state test; TTL waits are the longest part.
const stateTimeout = 60 * time.Second

// ttlBound is how long an item with a short TTL may take to read as expired.
const ttlBound = 20 * time.Second

// RunState runs the state conformance tests. open returns a fresh backend for
// one test; the suite closes it when the test ends.
func RunState(t *testing.T, open func(t *testing.T) backend.Backend) {
	tests := []struct {
		name string
		fn   func(t *testing.T, b backend.Backend, app string)
	}{
		{"GetSetDelete", testGetSetDelete},
		{"ETagFirstWriteWins", testETagFirstWriteWins},
		{"LastWriteWins", testLastWriteWins},
		{"ETagsNeverRepeat", testETagsNeverRepeat},
		{"BulkGet", testBulkGet},
		{"Transact", testTransact},
		{"TTL", testTTL},
		{"Scoping", testScoping},
		{"InvalidArgument", testInvalidArgument},
		{"KeyInMessages", testKeyInMessages},
		{"Cancelled", testCancelled},
		{"ConcurrentUpdate", testConcurrentUpdate},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := open(t)
			t.Cleanup(func() {
				if err := b.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			})
			tc.fn(t, b, "app-"+uniq())
		})
	}
}

const store = "statestore"

func mustGet(t *testing.T, ctx context.Context, s sdk.State, key string) sdk.Item {
	t.Helper()
	it, err := s.Get(ctx, key)
	noErr(t, err, "Get "+key)
	if it.Key != key {
		t.Fatalf("Get %s: item key %q", key, it.Key)
	}
	if it.ETag == "" {
		t.Fatalf("Get %s: empty ETag", key)
	}
	return it
}

func wantValue(t *testing.T, ctx context.Context, s sdk.State, key, want string) sdk.Item {
	t.Helper()
	it := mustGet(t, ctx, s, key)
	if string(it.Value) != want {
		t.Fatalf("Get %s = %q, want %q", key, it.Value, want)
	}
	return it
}

func wantAbsent(t *testing.T, ctx context.Context, s sdk.State, key string) {
	t.Helper()
	_, err := s.Get(ctx, key)
	wantCode(t, err, sdk.NotFound, "Get "+key)
}

func testGetSetDelete(t *testing.T, b backend.Backend, app string) {
	ctx := ctxFor(t, stateTimeout)
	s := b.State(app, store)
	wantAbsent(t, ctx, s, "k")
	noErr(t, s.Set(ctx, "k", []byte("v1"), sdk.WriteOptions{}), "Set v1")
	wantValue(t, ctx, s, "k", "v1")
	noErr(t, s.Set(ctx, "k", []byte("v2"), sdk.WriteOptions{}), "Set v2")
	wantValue(t, ctx, s, "k", "v2")
	noErr(t, s.Set(ctx, "k", nil, sdk.WriteOptions{}), "Set empty")
	wantValue(t, ctx, s, "k", "")
	noErr(t, s.Set(ctx, "k", []byte(`{"a":[1,2]}`), sdk.WriteOptions{}), "Set json")
	wantValue(t, ctx, s, "k", `{"a":[1,2]}`)
	noErr(t, s.Delete(ctx, "k", sdk.WriteOptions{}), "Delete")
	wantAbsent(t, ctx, s, "k")
	noErr(t, s.Delete(ctx, "k", sdk.WriteOptions{}), "Delete absent key without ETag")
	noErr(t, s.Delete(ctx, "never", sdk.WriteOptions{}), "Delete never-written key")

	// A second handle on the same store sees the same data.
	noErr(t, s.Set(ctx, "shared", []byte("x"), sdk.WriteOptions{}), "Set shared")
	wantValue(t, ctx, b.State(app, store), "shared", "x")
}

func testETagFirstWriteWins(t *testing.T, b backend.Backend, app string) {
	ctx := ctxFor(t, stateTimeout)
	s := b.State(app, store)
	noErr(t, s.Set(ctx, "k", []byte("v1"), sdk.WriteOptions{}), "Set v1")
	e1 := mustGet(t, ctx, s, "k").ETag

	noErr(t, s.Set(ctx, "k", []byte("v2"), sdk.WriteOptions{ETag: e1}), "Set with current ETag")
	e2 := wantValue(t, ctx, s, "k", "v2").ETag
	if e2 == e1 {
		t.Fatalf("ETag did not change on write: %q", e1)
	}

	wantCode(t, s.Set(ctx, "k", []byte("v3"), sdk.WriteOptions{ETag: e1}), sdk.Conflict, "Set with stale ETag")
	if it := wantValue(t, ctx, s, "k", "v2"); it.ETag != e2 {
		t.Fatalf("failed Set changed the ETag: %q, want %q", it.ETag, e2)
	}
	wantCode(t, s.Delete(ctx, "k", sdk.WriteOptions{ETag: e1}), sdk.Conflict, "Delete with stale ETag")
	wantValue(t, ctx, s, "k", "v2")
	noErr(t, s.Delete(ctx, "k", sdk.WriteOptions{ETag: e2}), "Delete with current ETag")
	wantAbsent(t, ctx, s, "k")

	// An ETag on an absent key conflicts: the item it names is gone.
	wantCode(t, s.Set(ctx, "k", []byte("v4"), sdk.WriteOptions{ETag: e2}), sdk.Conflict, "Set absent key with ETag")
	wantAbsent(t, ctx, s, "k")
	wantCode(t, s.Delete(ctx, "k", sdk.WriteOptions{ETag: e2}), sdk.Conflict, "Delete absent key with ETag")

	// IfAbsent: the create half of first-write-wins.
	noErr(t, s.Set(ctx, "new", []byte("first"), sdk.WriteOptions{IfAbsent: true}), "Set IfAbsent on absent key")
	wantCode(t, s.Set(ctx, "new", []byte("second"), sdk.WriteOptions{IfAbsent: true}), sdk.Conflict, "Set IfAbsent on existing key")
	wantValue(t, ctx, s, "new", "first")
}

func testLastWriteWins(t *testing.T, b backend.Backend, app string) {
	ctx := ctxFor(t, stateTimeout)
	s := b.State(app, store)
	noErr(t, s.Set(ctx, "k", []byte("a"), sdk.WriteOptions{}), "Set a")
	e := mustGet(t, ctx, s, "k").ETag
	noErr(t, s.Set(ctx, "k", []byte("b"), sdk.WriteOptions{}), "Set b without ETag")
	noErr(t, s.Set(ctx, "k", []byte("c"), sdk.WriteOptions{}), "Set c without ETag")
	if it := wantValue(t, ctx, s, "k", "c"); it.ETag == e {
		t.Fatalf("ETag %q unchanged after unconditional writes", e)
	}
	wantCode(t, s.Set(ctx, "k", []byte("d"), sdk.WriteOptions{ETag: e}), sdk.Conflict, "Set with ETag overtaken by unconditional writes")
}

func testETagsNeverRepeat(t *testing.T, b backend.Backend, app string) {
	ctx := ctxFor(t, stateTimeout)
	s := b.State(app, store)
	seen := map[string]string{}
	var old []string
	for round := 0; round < 3; round++ {
		for i := 0; i < 4; i++ {
			v := fmt.Sprintf("r%d-%d", round, i)
			noErr(t, s.Set(ctx, "k", []byte(v), sdk.WriteOptions{}), "Set "+v)
			e := wantValue(t, ctx, s, "k", v).ETag
			if prev, dup := seen[e]; dup {
				t.Fatalf("ETag %q of write %s repeats the ETag of write %s", e, v, prev)
			}
			seen[e] = v
			old = append(old, e)
		}
		noErr(t, s.Delete(ctx, "k", sdk.WriteOptions{}), "Delete")
	}
	// Recreated: no ETag from an earlier life of the key matches it.
	noErr(t, s.Set(ctx, "k", []byte("last"), sdk.WriteOptions{IfAbsent: true}), "recreate")
	cur := mustGet(t, ctx, s, "k").ETag
	if _, dup := seen[cur]; dup {
		t.Fatalf("recreated key reuses ETag %q", cur)
	}
	for _, e := range old {
		wantCode(t, s.Set(ctx, "k", []byte("x"), sdk.WriteOptions{ETag: e}), sdk.Conflict, "Set with ETag "+e+" of a deleted incarnation")
	}
	wantValue(t, ctx, s, "k", "last")
}

func testBulkGet(t *testing.T, b backend.Backend, app string) {
	ctx := ctxFor(t, stateTimeout)
	s := b.State(app, store)
	noErr(t, s.Set(ctx, "a", []byte("A"), sdk.WriteOptions{}), "Set a")
	noErr(t, s.Set(ctx, "c", []byte("C"), sdk.WriteOptions{}), "Set c")
	ea := mustGet(t, ctx, s, "a").ETag
	ec := mustGet(t, ctx, s, "c").ETag

	items, err := s.BulkGet(ctx, []string{"c", "missing", "a"})
	noErr(t, err, "BulkGet")
	if len(items) != 3 {
		t.Fatalf("BulkGet returned %d items, want 3", len(items))
	}
	want := []struct {
		key, val, etag string
		found          bool
	}{{"c", "C", ec, true}, {"missing", "", "", false}, {"a", "A", ea, true}}
	for i, w := range want {
		it := items[i]
		if it.Key != w.key || it.Found() != w.found || it.ETag != w.etag || string(it.Value) != w.val {
			t.Fatalf("BulkGet item %d = {Key:%q Value:%q ETag:%q}, want {Key:%q Value:%q ETag:%q}", i, it.Key, it.Value, it.ETag, w.key, w.val, w.etag)
		}
	}
	if items[1].Value != nil {
		t.Fatalf("BulkGet absent key: Value %q, want nil", items[1].Value)
	}

	items, err = s.BulkGet(ctx, nil)
	noErr(t, err, "BulkGet of no keys")
	if len(items) != 0 {
		t.Fatalf("BulkGet of no keys returned %d items", len(items))
	}
}

func testTransact(t *testing.T, b backend.Backend, app string) {
	ctx := ctxFor(t, stateTimeout)
	s := b.State(app, store)
	noErr(t, s.Set(ctx, "a", []byte("1"), sdk.WriteOptions{}), "Set a")
	noErr(t, s.Set(ctx, "b", []byte("2"), sdk.WriteOptions{}), "Set b")
	ea := mustGet(t, ctx, s, "a").ETag

	// Mixed set and delete, with ETag and IfAbsent conditions that hold.
	noErr(t, s.Transact(ctx, []sdk.Op{
		sdk.SetOp("a", []byte("10"), sdk.WriteOptions{ETag: ea}),
		sdk.DeleteOp("b", sdk.WriteOptions{}),
		sdk.SetOp("c", []byte("3"), sdk.WriteOptions{IfAbsent: true}),
	}), "Transact")
	ea2 := wantValue(t, ctx, s, "a", "10").ETag
	if ea2 == ea {
		t.Fatalf("Transact did not change the ETag of a")
	}
	wantAbsent(t, ctx, s, "b")
	ec := wantValue(t, ctx, s, "c", "3").ETag

	// One stale ETag fails the whole transaction; nothing is applied.
	wantCode(t, s.Transact(ctx, []sdk.Op{
		sdk.SetOp("a", []byte("11"), sdk.WriteOptions{}),
		sdk.DeleteOp("c", sdk.WriteOptions{}),
		sdk.SetOp("d", []byte("4"), sdk.WriteOptions{}),
		sdk.SetOp("c", []byte("30"), sdk.WriteOptions{ETag: ea}),
	}), sdk.Conflict, "Transact with stale ETag")
	if it := wantValue(t, ctx, s, "a", "10"); it.ETag != ea2 {
		t.Fatalf("failed Transact changed a's ETag")
	}
	if it := wantValue(t, ctx, s, "c", "3"); it.ETag != ec {
		t.Fatalf("failed Transact changed c's ETag")
	}
	wantAbsent(t, ctx, s, "d")

	// IfAbsent on an existing key fails it too.
	wantCode(t, s.Transact(ctx, []sdk.Op{
		sdk.DeleteOp("a", sdk.WriteOptions{}),
		sdk.SetOp("d", []byte("4"), sdk.WriteOptions{IfAbsent: true}),
		sdk.SetOp("c", []byte("5"), sdk.WriteOptions{IfAbsent: true}),
	}), sdk.Conflict, "Transact with IfAbsent on existing key")
	wantValue(t, ctx, s, "a", "10")
	wantAbsent(t, ctx, s, "d")

	// So does an ETag on an absent key, and a delete with a stale ETag.
	wantCode(t, s.Transact(ctx, []sdk.Op{
		sdk.SetOp("x", []byte("1"), sdk.WriteOptions{}),
		sdk.SetOp("b", []byte("1"), sdk.WriteOptions{ETag: ea}),
	}), sdk.Conflict, "Transact with ETag on absent key")
	wantAbsent(t, ctx, s, "x")
	wantCode(t, s.Transact(ctx, []sdk.Op{
		sdk.SetOp("x", []byte("1"), sdk.WriteOptions{}),
		sdk.DeleteOp("a", sdk.WriteOptions{ETag: ea}),
	}), sdk.Conflict, "Transact deleting with stale ETag")
	wantAbsent(t, ctx, s, "x")
	wantValue(t, ctx, s, "a", "10")

	// A delete then a create of the same key in one transaction.
	noErr(t, s.Transact(ctx, []sdk.Op{
		sdk.DeleteOp("c", sdk.WriteOptions{ETag: ec}),
		sdk.SetOp("c", []byte("new"), sdk.WriteOptions{IfAbsent: true}),
	}), "Transact delete+recreate")
	if it := wantValue(t, ctx, s, "c", "new"); it.ETag == ec {
		t.Fatalf("recreated key kept ETag %q", ec)
	}

	noErr(t, s.Transact(ctx, nil), "empty Transact")
}

func testTTL(t *testing.T, b backend.Backend, app string) {
	ctx := ctxFor(t, stateTimeout)
	s := b.State(app, store)
	const ttl = time.Second

	// "cleared" is set with a TTL first, then overwritten without one: its
	// original TTL ends before "short"'s, so once "short" has expired,
	// "cleared" would have too, had the second Set not cleared the TTL.
	noErr(t, s.Set(ctx, "cleared", []byte("c1"), sdk.WriteOptions{TTL: ttl}), "Set cleared with TTL")
	noErr(t, s.Set(ctx, "cleared", []byte("c2"), sdk.WriteOptions{}), "Set cleared without TTL")
	noErr(t, s.Set(ctx, "short", []byte("s"), sdk.WriteOptions{TTL: ttl}), "Set short")
	es := wantValue(t, ctx, s, "short", "s").ETag // readable before it expires
	noErr(t, s.Transact(ctx, []sdk.Op{sdk.SetOp("txshort", []byte("t"), sdk.WriteOptions{TTL: ttl})}), "Transact with TTL")
	wantValue(t, ctx, s, "txshort", "t")
	noErr(t, s.Set(ctx, "long", []byte("l"), sdk.WriteOptions{TTL: time.Hour}), "Set long")

	eventually(t, ttlBound, "short to expire", func() bool {
		_, err := s.Get(ctx, "short")
		if err != nil && !sdk.IsCode(err, sdk.NotFound) {
			t.Fatalf("Get short: %v", err)
		}
		return err != nil
	})
	eventually(t, ttlBound, "txshort to expire", func() bool {
		_, err := s.Get(ctx, "txshort")
		return sdk.IsCode(err, sdk.NotFound)
	})
	wantValue(t, ctx, s, "cleared", "c2")
	wantValue(t, ctx, s, "long", "l")

	items, err := s.BulkGet(ctx, []string{"short", "long"})
	noErr(t, err, "BulkGet")
	if items[0].Found() || items[0].Value != nil || !items[1].Found() {
		t.Fatalf("BulkGet after expiry: short found=%v, long found=%v", items[0].Found(), items[1].Found())
	}

	// An expired item is absent for writes too.
	wantCode(t, s.Set(ctx, "short", []byte("x"), sdk.WriteOptions{ETag: es}), sdk.Conflict, "Set expired key with its old ETag")
	noErr(t, s.Set(ctx, "short", []byte("again"), sdk.WriteOptions{IfAbsent: true}), "Set IfAbsent on expired key")
	if it := wantValue(t, ctx, s, "short", "again"); it.ETag == es {
		t.Fatalf("recreated expired key reuses ETag %q", es)
	}
}

func testScoping(t *testing.T, b backend.Backend, appA string) {
	ctx := ctxFor(t, stateTimeout)
	appB := "other-" + uniq()
	a := b.State(appA, store)
	bs := b.State(appB, store)
	other := b.State(appA, "otherstore")

	noErr(t, a.Set(ctx, "k", []byte("A"), sdk.WriteOptions{}), "A Set")
	wantAbsent(t, ctx, bs, "k")
	wantAbsent(t, ctx, other, "k")

	noErr(t, bs.Set(ctx, "k", []byte("B"), sdk.WriteOptions{}), "B Set")
	noErr(t, other.Set(ctx, "k", []byte("O"), sdk.WriteOptions{}), "A otherstore Set")
	wantValue(t, ctx, a, "k", "A")
	wantValue(t, ctx, bs, "k", "B")
	wantValue(t, ctx, other, "k", "O")

	items, err := bs.BulkGet(ctx, []string{"k", "onlyA"})
	noErr(t, err, "B BulkGet")
	if string(items[0].Value) != "B" || items[1].Found() {
		t.Fatalf("B BulkGet = %+v", items)
	}

	noErr(t, bs.Delete(ctx, "k", sdk.WriteOptions{}), "B Delete")
	wantValue(t, ctx, a, "k", "A")
	wantValue(t, ctx, other, "k", "O")
	noErr(t, a.Transact(ctx, []sdk.Op{sdk.DeleteOp("k", sdk.WriteOptions{})}), "A Transact delete")
	wantValue(t, ctx, other, "k", "O")
	wantAbsent(t, ctx, a, "k")
}

func testInvalidArgument(t *testing.T, b backend.Backend, app string) {
	ctx := ctxFor(t, stateTimeout)
	s := b.State(app, store)
	_, err := s.Get(ctx, "")
	wantCode(t, err, sdk.InvalidArgument, "Get empty key")
	wantCode(t, s.Set(ctx, "", []byte("x"), sdk.WriteOptions{}), sdk.InvalidArgument, "Set empty key")
	wantCode(t, s.Delete(ctx, "", sdk.WriteOptions{}), sdk.InvalidArgument, "Delete empty key")
	_, err = s.BulkGet(ctx, []string{"a", ""})
	wantCode(t, err, sdk.InvalidArgument, "BulkGet with empty key")
	wantCode(t, s.Transact(ctx, []sdk.Op{
		sdk.SetOp("ok", []byte("x"), sdk.WriteOptions{}),
		sdk.SetOp("", []byte("x"), sdk.WriteOptions{}),
	}), sdk.InvalidArgument, "Transact with empty key")
	wantAbsent(t, ctx, s, "ok")

	noErr(t, s.Set(ctx, "k", []byte("v"), sdk.WriteOptions{}), "Set k")
	e := mustGet(t, ctx, s, "k").ETag
	wantCode(t, s.Set(ctx, "k", []byte("w"), sdk.WriteOptions{ETag: e, IfAbsent: true}), sdk.InvalidArgument, "Set with ETag and IfAbsent")
	wantCode(t, s.Transact(ctx, []sdk.Op{
		sdk.SetOp("k", []byte("w"), sdk.WriteOptions{ETag: e, IfAbsent: true}),
	}), sdk.InvalidArgument, "Transact op with ETag and IfAbsent")
	wantValue(t, ctx, s, "k", "v")
}

func testCancelled(t *testing.T, b backend.Backend, app string) {
	ctx := ctxFor(t, stateTimeout)
	s := b.State(app, store)
	noErr(t, s.Set(ctx, "k", []byte("v"), sdk.WriteOptions{}), "Set")
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.Get(cctx, "k"); err == nil {
		t.Fatalf("Get with cancelled context succeeded")
	}
	if _, err := s.BulkGet(cctx, []string{"k"}); err == nil {
		t.Fatalf("BulkGet with cancelled context succeeded")
	}
	if err := s.Set(cctx, "new", []byte("x"), sdk.WriteOptions{}); err == nil {
		t.Fatalf("Set with cancelled context succeeded")
	}
	if err := s.Delete(cctx, "k", sdk.WriteOptions{}); err == nil {
		t.Fatalf("Delete with cancelled context succeeded")
	}
	if err := s.Transact(cctx, []sdk.Op{sdk.SetOp("new", []byte("x"), sdk.WriteOptions{})}); err == nil {
		t.Fatalf("Transact with cancelled context succeeded")
	}
	wantAbsent(t, ctx, s, "new")
	wantValue(t, ctx, s, "k", "v")
}

func testConcurrentUpdate(t *testing.T, b backend.Backend, app string) {
	ctx := ctxFor(t, stateTimeout)
	s := b.State(app, store)
	const workers, each = 64, 3
	var (
		mu      sync.Mutex
		results []int
		wg      sync.WaitGroup
		errs    = make(chan error, workers)
	)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				n, err := sdk.Update(ctx, s, "counter", 100000, func(cur int, exists bool) (int, error) {
					if exists != (cur != 0) {
						return 0, fmt.Errorf("exists=%v but value %d", exists, cur)
					}
					return cur + 1, nil
				})
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				results = append(results, n)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("Update: %v", err)
	}
	v, _, err := sdk.GetJSON[int](ctx, s, "counter")
	noErr(t, err, "GetJSON counter")
	if v != workers*each {
		t.Fatalf("counter = %d, want %d: increments were lost", v, workers*each)
	}
	// Every successful Update saw a distinct value: no two writers won with
	// the same read.
	sort.Ints(results)
	for i, n := range results {
		if n != i+1 {
			t.Fatalf("Update results not 1..%d: position %d is %d", workers*each, i, n)
		}
	}
}

// testKeyInMessages: a state key may be 16 KiB, and a message that names
// one names its first 128 bytes, cut between characters, and its length
// (sdk.QuoteKey); a key of 128 bytes or fewer reads whole. The browser host
// words the same messages (web/src/store.js): web/webtest's
// TestKeyEchoParity runs KeyEchoSteps on it and on the Go backends.
func testKeyInMessages(t *testing.T, b backend.Backend, app string) {
	ctx := ctxFor(t, stateTimeout)
	s := b.State(app, store)
	long := strings.Repeat("€", (16<<10)/3) + "k" // 16384 bytes, a character across byte 128
	a128 := strings.Repeat("a", 128)
	for _, k := range []struct{ key, quoted string }{
		{"k", `"k"`},
		{a128, `"` + a128 + `"`},
		{a128 + "b", `"` + a128 + `"…(129 bytes)`},
		{long, `"` + strings.Repeat("€", 42) + `"…(16384 bytes)`},
	} {
		want := []struct {
			code sdk.Code
			msg  string
		}{
			{sdk.NotFound, "state " + k.quoted + " not found"},
			{sdk.Conflict, "state " + k.quoted + ": ETag 999 given but the key does not exist"},
			{sdk.OK, ""},
			{sdk.Conflict, "state " + k.quoted + ": key already exists"},
			{sdk.Conflict, "state " + k.quoted + ": ETag 999 is stale"},
			{sdk.Conflict, "state " + k.quoted + ": ETag 999 is stale"},
			{sdk.Conflict, "state " + k.quoted + ": key already exists"},
			{sdk.InvalidArgument, "state " + k.quoted + ": IfAbsent applies to Set only"},
			{sdk.InvalidArgument, "state " + k.quoted + ": ETag and IfAbsent exclude each other"},
			{sdk.InvalidArgument, "state " + k.quoted + ": negative TTL -5ms"},
		}
		for i, err := range KeyEchoSteps(ctx, s, k.key) {
			if sdk.CodeOf(err) != want[i].code || (err != nil && err.Error() != want[i].msg) {
				t.Errorf("key of %d bytes, step %d: %v %.300v, want %v %s", len(k.key), i, sdk.CodeOf(err), err, want[i].code, want[i].msg)
			}
		}
	}
}

// KeyEchoSteps makes the calls whose errors name key, on a store where key
// is absent, and returns their errors, in the order web/test/keyecho.mjs
// makes them on the browser's store.
func KeyEchoSteps(ctx context.Context, st sdk.State, key string) []error {
	_, getErr := st.Get(ctx, key)
	return []error{
		getErr,
		st.Set(ctx, key, []byte("1"), sdk.WriteOptions{ETag: "999"}),
		st.Set(ctx, key, []byte("1"), sdk.WriteOptions{}),
		st.Set(ctx, key, []byte("2"), sdk.WriteOptions{IfAbsent: true}),
		st.Set(ctx, key, []byte("2"), sdk.WriteOptions{ETag: "999"}),
		st.Delete(ctx, key, sdk.WriteOptions{ETag: "999"}),
		st.Transact(ctx, []sdk.Op{sdk.SetOp(key, []byte("3"), sdk.WriteOptions{IfAbsent: true})}),
		st.Delete(ctx, key, sdk.WriteOptions{IfAbsent: true}),
		st.Set(ctx, key, []byte("4"), sdk.WriteOptions{ETag: "1", IfAbsent: true}),
		st.Set(ctx, key, []byte("4"), sdk.WriteOptions{TTL: -5 * time.Millisecond}),
	}
}
