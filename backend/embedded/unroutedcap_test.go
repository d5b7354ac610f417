package embedded

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/roam-dev/roam/backend"
	"github.com/roam-dev/roam/sdk"
)

// capTopic names the i-th of the topics that fill the cap, over two pubsubs:
// the cap is per app, whatever the pubsub.
func capTopic(i int) (pubsub, topic string) {
	return "ps" + strconv.Itoa(i%2), "t-" + strconv.Itoa(i)
}

func publishOne(b *Backend, app, pubsub, topic, data string) error {
	return b.Publisher(app).Publish(context.Background(), sdk.Message{PubSub: pubsub, Topic: topic, Data: []byte(data)})
}

func storedUnroutedTopics(t *testing.T, a *appDB) uint64 {
	t.Helper()
	var n uint64
	if err := a.db.View(func(tx *bolt.Tx) error { n = getUnroutedTopics(tx); return nil }); err != nil {
		t.Fatal(err)
	}
	return n
}

func wantCapErr(t *testing.T, err error, what string) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: published beyond %d unrouted topics", what, maxUnroutedTopics)
	}
	if !sdk.IsCode(err, sdk.Unavailable) || !strings.Contains(err.Error(), strconv.Itoa(maxUnroutedTopics)+" topics") {
		t.Fatalf("%s: error %q (code %v), want Unavailable naming the cap", what, err, sdk.CodeOf(err))
	}
}

// Publishing to maxUnroutedTopics+1 topics that nobody subscribes to: the
// last publish fails with Unavailable naming the cap, the earlier events are
// kept, publishes to their topics and to subscribed topics go on, the cap
// holds across a restart (recounted from the file), and a subscription
// drains a topic, delivers its events once and frees its place.
func TestUnroutedTopicsCapped(t *testing.T) {
	dir := t.TempDir()
	var logs logBuffer
	b := open(t, Options{Dir: dir, Logger: logs.logger()})

	// Fill the cap, concurrently so that the commits batch.
	work := make(chan int)
	errs := make(chan error, maxUnroutedTopics)
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				ps, tp := capTopic(i)
				if err := publishOne(b, "pub", ps, tp, "e"+strconv.Itoa(i)); err != nil {
					errs <- fmt.Errorf("topic %d: %w", i, err)
				}
			}
		}()
	}
	for i := range maxUnroutedTopics {
		work <- i
	}
	close(work)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	a, err := b.app("pub")
	if err != nil {
		t.Fatal(err)
	}
	if n := storedUnroutedTopics(t, a); n != maxUnroutedTopics {
		t.Fatalf("stored count %d, want %d", n, maxUnroutedTopics)
	}

	// One more topic: refused, on any pubsub, once logged.
	wantCapErr(t, publishOne(b, "pub", "ps0", "one-too-many", "x"), "new topic")
	wantCapErr(t, publishOne(b, "pub", "elsewhere", "t", "x"), "new pubsub")
	if got := logs.lines("level=WARN", "as many topics as it may", "app=pub", "max_unrouted_topics=1000"); len(got) != 1 {
		t.Fatalf("%d cap warnings, want 1:\n%s", len(got), strings.Join(got, "\n"))
	}
	// A topic already kept, another app, a subscribed topic: accepted.
	if err := publishOne(b, "pub", "ps1", "t-1", "e1-again"); err != nil {
		t.Fatalf("publish to a kept topic: %v", err)
	}
	if err := publishOne(b, "other", "ps0", "other-topic", "x"); err != nil {
		t.Fatalf("another app's new topic: %v", err)
	}
	live := make(chan string, 10)
	err = b.Subscribe([]backend.Subscription{{AppID: "sub", PubSub: "ps0", Topic: "live"}},
		func(_ context.Context, _ backend.Subscription, e *sdk.Event) error {
			live <- string(e.Data)
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	if err := publishOne(b, "pub", "ps0", "live", "hello"); err != nil {
		t.Fatalf("publish to a subscribed topic: %v", err)
	}
	select {
	case g := <-live:
		if g != "hello" {
			t.Fatalf("got %q", g)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("subscribed topic's event not delivered")
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}

	// A stale count in the file (as an older build would leave it) is
	// recounted from the logs at open.
	db, err := bolt.Open(filepath.Join(dir, "apps", "pub", "app.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		if _, err := tx.Bucket(bucketUnrouted).CreateBucket(routeKey{"ps0", "drained-long-ago"}.bucket()); err != nil {
			return err
		}
		return putUnroutedTopics(tx, 3)
	}); err != nil {
		t.Fatal(err)
	}
	db.Close()

	// After a restart: still capped.
	got := map[string][]string{}
	var mu sync.Mutex
	deliver := func(_ context.Context, s backend.Subscription, e *sdk.Event) error {
		mu.Lock()
		got[s.PubSub+"/"+s.Topic] = append(got[s.PubSub+"/"+s.Topic], string(e.Data))
		mu.Unlock()
		return nil
	}
	b = open(t, Options{Dir: dir, Logger: quiet})
	if err := b.OpenApps("pub"); err != nil {
		t.Fatal(err)
	}
	a, err = b.app("pub")
	if err != nil {
		t.Fatal(err)
	}
	if n := storedUnroutedTopics(t, a); n != maxUnroutedTopics {
		t.Fatalf("count after reopening %d, want %d", n, maxUnroutedTopics)
	}
	wantCapErr(t, publishOne(b, "pub", "ps0", "one-too-many", "x"), "new topic after a restart")

	// A subscription drains t-0 and frees its place: one new topic fits,
	// and the next does not.
	if err := b.Subscribe([]backend.Subscription{{AppID: "sub", PubSub: "ps0", Topic: "t-0"}}, deliver); err != nil {
		t.Fatal(err)
	}
	if n := storedUnroutedTopics(t, a); n != maxUnroutedTopics-1 {
		t.Fatalf("count after draining one topic %d, want %d", n, maxUnroutedTopics-1)
	}
	if err := publishOne(b, "pub", "ps0", "one-too-many", "late"); err != nil {
		t.Fatalf("new topic after a drain freed a place: %v", err)
	}
	wantCapErr(t, publishOne(b, "pub", "ps0", "one-more", "x"), "the next new topic")

	// Everyone subscribes: every event kept is delivered, once.
	var subs []backend.Subscription
	for i := 1; i < maxUnroutedTopics; i++ {
		ps, tp := capTopic(i)
		subs = append(subs, backend.Subscription{AppID: "sub", PubSub: ps, Topic: tp})
	}
	subs = append(subs, backend.Subscription{AppID: "sub", PubSub: "ps0", Topic: "one-too-many"})
	if err := b.Subscribe(subs, deliver); err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{"ps0/one-too-many": {"late"}}
	for i := range maxUnroutedTopics {
		ps, tp := capTopic(i)
		want[ps+"/"+tp] = []string{"e" + strconv.Itoa(i)}
	}
	want["ps1/t-1"] = []string{"e1", "e1-again"}
	deadline := time.Now().Add(60 * time.Second)
	for {
		mu.Lock()
		n := 0
		for _, v := range got {
			n += len(v)
		}
		mu.Unlock()
		if n >= maxUnroutedTopics+2 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond) // room for a duplicate to show
	mu.Lock()
	defer mu.Unlock()
	if len(got) != len(want) {
		t.Fatalf("events of %d topics delivered, want %d", len(got), len(want))
	}
	for k, w := range want {
		if strings.Join(got[k], ",") != strings.Join(w, ",") {
			t.Fatalf("%s: delivered %q, want %q", k, got[k], w)
		}
	}
	if n := storedUnroutedTopics(t, a); n != 0 {
		t.Fatalf("count after draining every topic %d, want 0", n)
	}
	if counts, err := unroutedCounts(a); err != nil || len(counts) != 0 {
		t.Fatalf("unrouted logs after draining: %v, %v", counts, err)
	}
}
