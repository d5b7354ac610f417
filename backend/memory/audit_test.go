package memory_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/roam-dev/roam/backend/embedded"
	"github.com/roam-dev/roam/backend/memory"
	"github.com/roam-dev/roam/sdk"
)

// TestAuditOddArgumentsAsEmbedded: the memory backend stands in for the
// embedded one in unit tests, so it must answer odd arguments as the
// embedded backend does. It stored keys over 16 KiB and store names over
// 1 KiB, which the embedded backend (and the browser host) refuse: an app
// passed its tests and failed in production.
func TestAuditOddArgumentsAsEmbedded(t *testing.T) {
	ctx := context.Background()
	mem := memory.New(memory.Options{})
	defer mem.Close()
	emb, err := embedded.Open(embedded.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer emb.Close()
	key := strings.Repeat("k", 16<<10)
	long := key + "k"
	longStore := strings.Repeat("s", 1<<10+1)
	type step struct {
		name string
		run  func(st func(store string) sdk.State) (string, error)
		want sdk.Code
	}
	none := func(err error) (string, error) { return "", err }
	get := func(st sdk.State, k string) (string, error) {
		it, err := st.Get(ctx, k)
		return string(it.Value), err
	}
	steps := []step{
		{"set at the key limit", func(st func(string) sdk.State) (string, error) {
			return none(st("s").Set(ctx, key, []byte("v"), sdk.WriteOptions{}))
		}, sdk.OK},
		{"get at the key limit", func(st func(string) sdk.State) (string, error) { return get(st("s"), key) }, sdk.OK},
		{"set past the key limit", func(st func(string) sdk.State) (string, error) {
			return none(st("s").Set(ctx, long, []byte("v"), sdk.WriteOptions{}))
		}, sdk.InvalidArgument},
		{"delete past the key limit", func(st func(string) sdk.State) (string, error) {
			return none(st("s").Delete(ctx, long, sdk.WriteOptions{}))
		}, sdk.InvalidArgument},
		{"transact past the key limit", func(st func(string) sdk.State) (string, error) {
			return none(st("s").Transact(ctx, []sdk.Op{sdk.SetOp("a", nil, sdk.WriteOptions{}), sdk.DeleteOp(long, sdk.WriteOptions{})}))
		}, sdk.InvalidArgument},
		{"transact refused whole", func(st func(string) sdk.State) (string, error) { return get(st("s"), "a") }, sdk.NotFound},
		{"get past the key limit", func(st func(string) sdk.State) (string, error) { return get(st("s"), long) }, sdk.NotFound},
		{"bulk get past the key limit", func(st func(string) sdk.State) (string, error) {
			its, err := st("s").BulkGet(ctx, []string{long, key})
			if err != nil {
				return "", err
			}
			return fmt.Sprint(its[0].Found(), its[1].Found()), nil
		}, sdk.OK},
		{"set in a store name past the limit", func(st func(string) sdk.State) (string, error) {
			return none(st(longStore).Set(ctx, "a", []byte("v"), sdk.WriteOptions{}))
		}, sdk.InvalidArgument},
		{"get in a store name past the limit", func(st func(string) sdk.State) (string, error) { return get(st(longStore), "a") }, sdk.InvalidArgument},
		{"set with TTL at both limits", func(st func(string) sdk.State) (string, error) {
			return none(st(longStore[1:]).Set(ctx, key, []byte("v"), sdk.WriteOptions{TTL: 1 << 40}))
		}, sdk.OK},
		// Keys are bytes: NUL, Dapr's separator and invalid UTF-8 are keys
		// of their own.
		{"odd keys", func(st func(string) sdk.State) (string, error) {
			for _, k := range []string{"a\x00b", "a", "x||y", "x", "\xff", "\ufffd"} {
				if err := st("s").Set(ctx, k, []byte(k), sdk.WriteOptions{}); err != nil {
					return "", err
				}
			}
			var out []string
			for _, k := range []string{"a\x00b", "a", "x||y", "x", "\xff", "\ufffd", "a\x00"} {
				v, err := get(st("s"), k)
				out = append(out, fmt.Sprintf("%q %v", v, sdk.CodeOf(err)))
			}
			return strings.Join(out, ", "), nil
		}, sdk.OK},
		{"an ETag that is no number", func(st func(string) sdk.State) (string, error) {
			return none(st("s").Set(ctx, "a", nil, sdk.WriteOptions{ETag: "abc"}))
		}, sdk.Conflict},
		{"a number ETag written otherwise", func(st func(string) sdk.State) (string, error) {
			it, err := st("s").Get(ctx, "x")
			if err != nil {
				return "", err
			}
			return none(st("s").Set(ctx, "x", nil, sdk.WriteOptions{ETag: "0" + it.ETag}))
		}, sdk.Conflict},
		{"one key written three times in a transaction", func(st func(string) sdk.State) (string, error) {
			err := st("s").Transact(ctx, []sdk.Op{sdk.SetOp("t", []byte("1"), sdk.WriteOptions{TTL: 1 << 40}),
				sdk.SetOp("t", []byte("2"), sdk.WriteOptions{}), sdk.DeleteOp("t", sdk.WriteOptions{}), sdk.SetOp("t", []byte("3"), sdk.WriteOptions{IfAbsent: true})})
			if err != nil {
				return "", err
			}
			return get(st("s"), "t")
		}, sdk.OK},
	}
	for _, s := range steps {
		mv, merr := s.run(func(store string) sdk.State { return mem.State("app", store) })
		ev, eerr := s.run(func(store string) sdk.State { return emb.State("app", store) })
		if sdk.CodeOf(eerr) != s.want {
			t.Errorf("%s: embedded %v, want %v", s.name, eerr, s.want)
		}
		if mv != ev || sdk.CodeOf(merr) != sdk.CodeOf(eerr) || fmt.Sprint(merr) != fmt.Sprint(eerr) {
			t.Errorf("%s: memory %q %v, embedded %q %v", s.name, mv, merr, ev, eerr)
		}
	}
}
