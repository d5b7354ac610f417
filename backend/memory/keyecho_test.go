package memory_test

import (
	"context"
	"strings"
	"testing"

	"github.com/roam-dev/roam/backend/embedded"
	"github.com/roam-dev/roam/backend/memory"
	"github.com/roam-dev/roam/sdk"
)

// TestKeyEchoBackendMessages: a state key may be 16 KiB, and the backends'
// messages named it whole. They name its first 128 bytes, cut between
// characters, and its length (sdk.QuoteKey); a key of 128 bytes or fewer
// reads as it always did. The browser host words the same messages
// (web/src/store.js): web/test/quote.test.mjs expects the same strings of
// it, and web/webtest's TestKeyEchoParity compares the two hosts directly.
func TestKeyEchoBackendMessages(t *testing.T) {
	ctx := context.Background()
	emb, err := embedded.Open(embedded.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer emb.Close()
	mem := memory.New(memory.Options{})
	defer mem.Close()

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
		for name, b := range map[string]interface {
			State(app, store string) sdk.State
		}{"memory": mem, "embedded": emb} {
			st := b.State("a", "st")
			for i, err := range keyEchoSteps(ctx, st, k.key) {
				if sdk.CodeOf(err) != want[i].code || (err != nil && err.Error() != want[i].msg) {
					t.Errorf("%s, key of %d bytes, step %d: %v %.300v, want %v %s", name, len(k.key), i, sdk.CodeOf(err), err, want[i].code, want[i].msg)
				}
				if err != nil && len(err.Error()) > 300 {
					t.Errorf("%s, key of %d bytes, step %d: a message of %d bytes", name, len(k.key), i, len(err.Error()))
				}
			}
		}
	}
}

// keyEchoSteps runs the calls whose errors name key, on a store where key
// is absent, in the order web/test/quote.test.mjs runs them.
func keyEchoSteps(ctx context.Context, st sdk.State, key string) []error {
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
		st.Set(ctx, key, []byte("4"), sdk.WriteOptions{TTL: -5e6}),
	}
}
