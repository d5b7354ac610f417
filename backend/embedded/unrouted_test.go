package embedded

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/roam-dev/roam/backend"
	"github.com/roam-dev/roam/internal/syncbuf"
	"github.com/roam-dev/roam/sdk"
)

// logBuffer captures a backend's log output.
type logBuffer struct{ syncbuf.Buffer }

func (l *logBuffer) logger() *slog.Logger { return slog.New(slog.NewTextHandler(l, nil)) }

// lines returns the logged lines that contain every one of subs.
func (l *logBuffer) lines(subs ...string) []string {
	var out []string
	for _, line := range strings.Split(l.String(), "\n") {
		ok := line != ""
		for _, s := range subs {
			ok = ok && strings.Contains(line, s)
		}
		if ok {
			out = append(out, line)
		}
	}
	return out
}

// outcomes counts the OnDeliver calls by "app pubsub/topic outcome".
type outcomes struct {
	mu sync.Mutex
	n  map[string]int
}

func (o *outcomes) hook(sub backend.Subscription, outcome string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.n == nil {
		o.n = map[string]int{}
	}
	o.n[sub.AppID+" "+sub.PubSub+"/"+sub.Topic+" "+outcome]++
}

func (o *outcomes) get(key string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.n[key]
}

const firstPark = "no subscription in this process takes this topic"

func publishN(t *testing.T, b *Backend, app, pubsub, topic string, n int) {
	t.Helper()
	for i := range n {
		err := b.Publisher(app).Publish(context.Background(), sdk.Message{PubSub: pubsub, Topic: topic, Data: []byte(strconv.Itoa(i))})
		if err != nil {
			t.Fatal(err)
		}
	}
}

// The first event an app parks on a topic is logged once, at Info when
// every app with data in the directory runs here; later ones are not.
func TestUnroutedLoggedOncePerTopic(t *testing.T) {
	var logs logBuffer
	b := open(t, Options{Logger: logs.logger()})
	publishN(t, b, "pub", "ps", "a", 3)
	publishN(t, b, "pub", "ps", "b", 2)
	publishN(t, b, "other", "ps", "a", 2)
	for _, k := range [][]string{{"app=pub", "topic=a"}, {"app=pub", "topic=b"}, {"app=other", "topic=a"}} {
		got := logs.lines(append(k, "level=INFO", firstPark, "pubsub=ps", "limit=10000")...)
		if len(got) != 1 {
			t.Errorf("%v: %d first-park lines, want 1:\n%s", k, len(got), strings.Join(got, "\n"))
		}
	}
	if got := logs.lines(firstPark); len(got) != 3 {
		t.Errorf("%d first-park lines, want 3", len(got))
	}
	// Every app with data in the directory runs here: no word of others.
	if got := logs.lines("apps_not_in_this_process"); len(got) != 0 {
		t.Errorf("warned of other processes:\n%s", strings.Join(got, "\n"))
	}
}

// An app that publishes to a topic per order, with no subscriber: the
// first maxNotedTopics topics are logged one by one, then one Warn says the
// rest are not; another pubsub or app has topics of its own.
func TestUnroutedTopicsLoggedUpToALimit(t *testing.T) {
	var logs logBuffer
	b := open(t, Options{Logger: logs.logger()})
	for i := range maxNotedTopics + 5 {
		publishN(t, b, "pub", "ps", "order-"+strconv.Itoa(i), 2)
	}
	publishN(t, b, "pub", "other", "x", 1)
	if got := logs.lines(firstPark, "pubsub=ps"); len(got) != maxNotedTopics {
		t.Errorf("%d first-park lines of pubsub ps, want %d", len(got), maxNotedTopics)
	}
	if got := logs.lines("level=WARN", "more topics", "app=pub", "pubsub=ps"); len(got) != 1 {
		t.Errorf("%d lines saying the further topics are not logged, want 1:\n%s", len(got), strings.Join(got, "\n"))
	}
	if got := logs.lines(firstPark, "pubsub=other", "topic=x"); len(got) != 1 {
		t.Errorf("another pubsub's first topic: %d first-park lines, want 1", len(got))
	}
	b.noteMu.Lock()
	n := len(b.notes)
	b.noteMu.Unlock()
	if n != maxNotedTopics+1 {
		t.Errorf("%d notes kept, want %d", n, maxNotedTopics+1)
	}
}

// The split-process case: inventory runs in another process on the same
// data directory and subscribes to the topic orders publishes. The event
// is parked in orders' file, and the Warn says inventory does not get it.
func TestUnroutedWarnsOfAppsElsewhere(t *testing.T) {
	dir := t.TempDir()
	var logs logBuffer
	ordersHost := open(t, Options{Dir: dir, Logger: logs.logger()})
	inventoryHost := open(t, Options{Dir: dir})
	if err := ordersHost.OpenApps("orders"); err != nil {
		t.Fatal(err)
	}
	err := inventoryHost.Subscribe([]backend.Subscription{{AppID: "inventory", PubSub: "pubsub", Topic: "order.cancelled"}},
		func(context.Context, backend.Subscription, *sdk.Event) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	publishN(t, ordersHost, "orders", "pubsub", "order.cancelled", 2)
	got := logs.lines("level=WARN", firstPark, "app=orders", "pubsub=pubsub", "topic=order.cancelled")
	if len(got) != 1 || !strings.Contains(got[0], "apps in other processes sharing the data directory (--apps) do not receive them") ||
		!strings.Contains(got[0], "apps_not_in_this_process=inventory ") ||
		!strings.Contains(got[0], "data_dir=") {
		t.Fatalf("first-park warnings:\n%s", strings.Join(got, "\n"))
	}
}

// The hook follows every event in and out of an unrouted log: parked,
// dropped at the limit, found at open, drained to a subscription. Drops
// log one Warn per topic per minute.
func TestUnroutedOutcomes(t *testing.T) {
	dir := t.TempDir()
	var logs logBuffer
	var o outcomes
	b := open(t, Options{Dir: dir, UnroutedLimit: 3, OnDeliver: o.hook, Logger: logs.logger()})
	publishN(t, b, "pub", "ps", "t", 5)
	if u, d := o.get("pub ps/t unrouted"), o.get("pub ps/t unrouted-dropped"); u != 5 || d != 2 {
		t.Fatalf("unrouted %d, dropped %d; want 5, 2", u, d)
	}
	if got := logs.lines("level=WARN", "dropped its oldest unrouted events", "topic=t"); len(got) != 1 ||
		!strings.Contains(got[0], "dropped=1 ") || !strings.Contains(got[0], "dropped_total=1 ") {
		t.Fatalf("drop warnings (want one, rate-limited):\n%s", strings.Join(got, "\n"))
	}
	if b.UnroutedDropped() != 2 {
		t.Fatalf("UnroutedDropped = %d", b.UnroutedDropped())
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}

	// At open, the three kept are reported parked, then drained.
	var o2 outcomes
	b = open(t, Options{Dir: dir, UnroutedLimit: 3, OnDeliver: o2.hook, Logger: quiet})
	if err := b.OpenApps("pub"); err != nil {
		t.Fatal(err)
	}
	if u := o2.get("pub ps/t unrouted"); u != 3 {
		t.Fatalf("found %d unrouted at open, want 3", u)
	}
	got := make(chan string, 3)
	err := b.Subscribe([]backend.Subscription{{AppID: "sub", PubSub: "ps", Topic: "t"}},
		func(_ context.Context, _ backend.Subscription, e *sdk.Event) error { got <- string(e.Data); return nil })
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"2", "3", "4"} {
		select {
		case g := <-got:
			if g != want {
				t.Fatalf("got %s, want %s", g, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("event %s not delivered", want)
		}
	}
	if r := o2.get("pub ps/t unrouted-routed"); r != 3 {
		t.Fatalf("routed %d, want 3", r)
	}
	if counts, err := unroutedCounts(b.openApps()[0]); err != nil || len(counts) != 0 {
		t.Fatalf("unrouted logs after draining: %v, %v", counts, err)
	}
}

// A host that announces its apps logs the events already waiting for a
// topic no subscription in this process takes, once per topic, with their
// count, and then not again on the next park.
func TestAnnounceWarnsOfWaitingEvents(t *testing.T) {
	dir := t.TempDir()
	b := open(t, Options{Dir: dir, Logger: quiet})
	publishN(t, b, "orders", "pubsub", "order.cancelled", 2)
	publishN(t, b, "orders", "pubsub", "order.created", 1)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "apps", "inventory"), 0o755); err != nil {
		t.Fatal(err)
	}

	var logs logBuffer
	b = open(t, Options{Dir: dir, Logger: logs.logger()})
	if err := b.OpenApps("orders"); err != nil {
		t.Fatal(err)
	}
	// created has a subscriber here; cancelled does not.
	err := b.Subscribe([]backend.Subscription{{AppID: "orders", PubSub: "pubsub", Topic: "order.created"}},
		func(context.Context, backend.Subscription, *sdk.Event) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	if got := logs.lines("level=WARN"); len(got) != 0 {
		t.Fatalf("warned before the host announced its apps:\n%s", strings.Join(got, "\n"))
	}
	for range 2 {
		withdraw, err := b.Announce([]string{"orders"}, "http://127.0.0.1:1")
		if err != nil {
			t.Fatal(err)
		}
		withdraw()
	}
	publishN(t, b, "orders", "pubsub", "order.cancelled", 1)
	got := logs.lines("level=WARN")
	if len(got) != 1 || !strings.Contains(got[0], "unrouted events wait for their topic") ||
		!strings.Contains(got[0], "topic=order.cancelled") || !strings.Contains(got[0], "events=2") ||
		!strings.Contains(got[0], "apps_not_in_this_process=inventory ") {
		t.Fatalf("warnings (want one, for order.cancelled):\n%s", strings.Join(got, "\n"))
	}
}
