package embedded

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/roam-dev/roam/backend"
	"github.com/roam-dev/roam/sdk"
)

// TestAuditOddTopicsKept: topics are bucket names here (pubsub NUL topic),
// and nothing bounds their length but the request: a topic with NUL,
// Dapr's separator, U+FFFD or 40 KiB (past bbolt's 32 KiB key limit, which
// bucket names escape) is kept across a restart and delivered to its own
// subscription, and no other. A topic that is not UTF-8 is refused: the
// stored record's JSON turned "\xff" into "\ufffd", so its event reached
// the subscription with a topic the app does not take, and failed every
// delivery until it was dead-lettered.
func TestAuditOddTopicsKept(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	topics := []string{"a\x00b", "a", "x||y", "\ufffd", strings.Repeat("t", 40<<10)}
	b := open(t, Options{Dir: dir})
	for _, bad := range []sdk.Message{{PubSub: "ps", Topic: "a\xff"}, {PubSub: "p\xffs", Topic: "a"}} {
		if err := b.Publisher("pub").Publish(ctx, bad); !sdk.IsCode(err, sdk.InvalidArgument) || !strings.Contains(err.Error(), "must be UTF-8") {
			t.Errorf("publish to %q/%q: %v, want InvalidArgument", bad.PubSub, bad.Topic, err)
		}
	}
	nop := func(context.Context, backend.Subscription, *sdk.Event) error { return nil }
	for _, bad := range []backend.Subscription{{AppID: "sub", PubSub: "ps", Topic: "a\xff"}, {AppID: "sub", PubSub: "ps", Topic: "a", DeadLetterTopic: "\xff"}} {
		if err := b.Subscribe([]backend.Subscription{bad}, nop); !sdk.IsCode(err, sdk.InvalidArgument) || !strings.Contains(err.Error(), "must be UTF-8") {
			t.Errorf("subscribe %+v: %v, want InvalidArgument", bad, err)
		}
	}
	for _, tp := range topics {
		if err := b.Publisher("pub").Publish(ctx, sdk.Message{PubSub: "ps", Topic: tp, Data: []byte(`"` + tp[:1] + `"`)}); err != nil {
			t.Fatalf("publish to %.20q: %v", tp, err)
		}
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b = open(t, Options{Dir: dir})
	type got struct {
		sub, topic string
		data       string
	}
	ch := make(chan got, 2*len(topics))
	var subs []backend.Subscription
	for _, tp := range topics {
		subs = append(subs, backend.Subscription{AppID: "sub", PubSub: "ps", Topic: tp})
	}
	err := b.Subscribe(subs, func(ctx context.Context, s backend.Subscription, ev *sdk.Event) error {
		ch <- got{s.Topic, ev.Topic, string(ev.Data)}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.OpenApps("pub"); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for range topics {
		select {
		case g := <-ch:
			if g.sub != g.topic || g.data != `"`+g.topic[:1]+`"` || seen[g.topic] {
				t.Errorf("subscription %.20q got event of %.20q with %s (seen before: %v)", g.sub, g.topic, g.data, seen[g.topic])
			}
			seen[g.topic] = true
		case <-time.After(time.Minute):
			t.Fatalf("delivered %d of %d events", len(seen), len(topics))
		}
	}
}
