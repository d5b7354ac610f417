package embedded

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/roam-dev/roam/backend"
	"github.com/roam-dev/roam/sdk"
)

// pollUntil polls cond every 10ms for up to a minute.
func pollUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// bucketLen returns the number of keys in top/name of app's file.
func bucketLen(t *testing.T, b *Backend, app string, top []byte, rk routeKey) int {
	t.Helper()
	a, err := b.app(app)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	a.db.View(func(tx *bolt.Tx) error {
		if q := tx.Bucket(top).Bucket(rk.bucket()); q != nil {
			n = q.Stats().KeyN
		}
		return nil
	})
	return n
}

// A handler that ignores its cancelled context held Close, and with it a
// host's shutdown, for ever. Close now gives up after a second grace
// period; the event was not acknowledged, so the next Open delivers it.
func TestPubAuditCloseWithHungHandler(t *testing.T) {
	dir := t.TempDir()
	b := open(t, Options{Dir: dir, CloseGrace: 20 * time.Millisecond})
	release := make(chan struct{})
	defer close(release)
	entered := make(chan struct{}, 1)
	sub := backend.Subscription{AppID: "sub", PubSub: "ps", Topic: "t"}
	err := b.Subscribe([]backend.Subscription{sub}, func(ctx context.Context, s backend.Subscription, e *sdk.Event) error {
		select {
		case entered <- struct{}{}:
		default:
		}
		<-release // ignores ctx
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Publisher("pub").Publish(context.Background(), sdk.Message{PubSub: "ps", Topic: "t", Data: []byte(`"hung"`)}); err != nil {
		t.Fatal(err)
	}
	<-entered
	closed := make(chan error, 1)
	go func() { closed <- b.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatalf("Close: %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("Close still waiting for a hung handler a minute after its 20ms grace")
	}

	b2 := open(t, Options{Dir: dir})
	got := make(chan string, 1)
	err = b2.Subscribe([]backend.Subscription{sub}, func(ctx context.Context, s backend.Subscription, e *sdk.Event) error {
		select {
		case got <- string(e.Data):
		default:
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case d := <-got:
		if d != `"hung"` {
			t.Fatalf("redelivered %s, want the hung event", d)
		}
	case <-time.After(time.Minute):
		t.Fatal("the event whose handler hung was not delivered after reopening")
	}
}

// A dead-letter cycle is broken across a restart too: the topics an event
// was dead-lettered from are stored with it. Here it is dead-lettered from
// t to d before the restart (d has no subscriber yet, so it waits in the
// unrouted log); after it, d fails it and names t as its dead-letter topic:
// it is parked, and t never sees it again.
func TestPubAuditDeadLetterCycleAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	policy := backend.RetryPolicy{MaxAttempts: 2, InitialBackoff: time.Millisecond, MaxBackoff: time.Millisecond}
	st := backend.Subscription{AppID: "sub", PubSub: "ps", Topic: "t", DeadLetterTopic: "d"}
	sd := backend.Subscription{AppID: "sub", PubSub: "ps", Topic: "d", DeadLetterTopic: "t"}
	var mu sync.Mutex
	calls := map[string]int{}
	fail := func(ctx context.Context, s backend.Subscription, e *sdk.Event) error {
		mu.Lock()
		calls[s.Topic]++
		mu.Unlock()
		return sdk.Errorf(sdk.Internal, "fails everywhere")
	}
	b := open(t, Options{Dir: dir, Retry: policy})
	if err := b.Subscribe([]backend.Subscription{st}, fail); err != nil {
		t.Fatal(err)
	}
	if err := b.Publisher("pub").Publish(context.Background(), sdk.Message{PubSub: "ps", Topic: "t", Data: []byte(`1`)}); err != nil {
		t.Fatal(err)
	}
	pollUntil(t, "the event dead-lettered to d", func() bool {
		return bucketLen(t, b, "sub", bucketUnrouted, routeKey{"ps", "d"}) == 1
	})
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}

	mu.Lock()
	calls = map[string]int{}
	mu.Unlock()
	b = open(t, Options{Dir: dir, Retry: policy})
	if err := b.Subscribe([]backend.Subscription{st, sd}, fail); err != nil {
		t.Fatal(err)
	}
	pollUntil(t, "the event parked on d", func() bool {
		return bucketLen(t, b, "sub", bucketParked, routeKey{"ps", "d"}) == 1
	})
	// Parked on d before anything could reach t: t's queue is empty, and
	// an event published to t now is its next delivery.
	if err := b.Publisher("pub").Publish(context.Background(), sdk.Message{PubSub: "ps", Topic: "t", Data: []byte(`2`)}); err != nil {
		t.Fatal(err)
	}
	pollUntil(t, "the marker dead-lettered from t", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return calls["t"] >= policy.MaxAttempts
	})
	mu.Lock()
	defer mu.Unlock()
	if calls["t"] != policy.MaxAttempts || calls["d"] < policy.MaxAttempts {
		t.Fatalf("deliveries after the restart: %v; want %d on d, then only the new event's %d on t", calls, policy.MaxAttempts, policy.MaxAttempts)
	}
}

// A subscription dropped from an app (a new version no longer subscribes to
// the topic) left its queued events in the app's file with nothing said:
// they are never delivered while it does not subscribe, and the topic's new
// events go to the publisher's unrouted log. Announce now warns, once.
func TestPubAuditUnsubscribedQueueWarned(t *testing.T) {
	dir := t.TempDir()
	old := backend.Subscription{AppID: "sub", PubSub: "ps", Topic: "old"}
	b := open(t, Options{Dir: dir, CloseGrace: 10 * time.Millisecond})
	err := b.Subscribe([]backend.Subscription{old}, func(ctx context.Context, s backend.Subscription, e *sdk.Event) error {
		<-ctx.Done()
		return ctx.Err()
	})
	if err != nil {
		t.Fatal(err)
	}
	publishN(t, b, "pub", "ps", "old", 3)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}

	var logs logBuffer
	b = open(t, Options{Dir: dir, Logger: logs.logger()})
	if err := b.OpenApps("sub", "pub"); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	got := map[string]int{}
	d := func(ctx context.Context, s backend.Subscription, e *sdk.Event) error {
		mu.Lock()
		got[s.Topic]++
		mu.Unlock()
		return nil
	}
	if err := b.Subscribe([]backend.Subscription{{AppID: "sub", PubSub: "ps", Topic: "new"}}, d); err != nil {
		t.Fatal(err)
	}
	withdraw, err := b.Announce([]string{"sub", "pub"}, "http://127.0.0.1:1")
	if err != nil {
		t.Fatal(err)
	}
	withdraw()
	const warn = "events wait in the queue of a subscription that this process does not register"
	lines := logs.lines(warn, "topic=old")
	if len(lines) != 1 || !strings.Contains(lines[0], "events=3") || !strings.Contains(lines[0], "app=sub") {
		t.Fatalf("log lines about the queue of old: %q, want one Warn naming app sub and 3 events\nlog:\n%s", lines, logs.String())
	}
	if l := logs.lines(warn, "topic=new"); len(l) != 0 {
		t.Fatalf("warned about a registered subscription's queue: %q", l)
	}
	withdraw, err = b.Announce([]string{"sub", "pub"}, "http://127.0.0.1:1")
	if err != nil {
		t.Fatal(err)
	}
	withdraw()
	if lines := logs.lines(warn); len(lines) != 1 {
		t.Fatalf("warned %d times, want once: %q", len(lines), lines)
	}
	// Subscribing again delivers them.
	if err := b.Subscribe([]backend.Subscription{old}, d); err != nil {
		t.Fatal(err)
	}
	pollUntil(t, "the 3 queued events of old", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return got["old"] == 3
	})
}

// TestPubAuditBacklog measures a large backlog: 100,000 events queued for
// a subscription whose handler is down, the process restarted, and the
// queue drained. Opt in with ROAM_PUBAUDIT_BACKLOG=1 (about a minute on
// two cores). This audit measured: publishing took 10 s (32 publishers),
// the file 144 MiB; after reopening, the first delivery came 0.7 ms after
// Subscribe, and the live heap grew 0.5 MiB while ~3,000 events a second
// were delivered (one fsync per acknowledgement). Nothing is read into
// memory at start: a queue is read from its head.
func TestPubAuditBacklog(t *testing.T) {
	if os.Getenv("ROAM_PUBAUDIT_BACKLOG") == "" {
		t.Skip("set ROAM_PUBAUDIT_BACKLOG=1 to measure a 100,000-event backlog")
	}
	const n = 100_000
	dir := t.TempDir()
	sub := backend.Subscription{AppID: "sub", PubSub: "ps", Topic: "t"}
	b := open(t, Options{Dir: dir, CloseGrace: time.Millisecond})
	err := b.Subscribe([]backend.Subscription{sub}, func(ctx context.Context, s backend.Subscription, e *sdk.Event) error {
		<-ctx.Done() // down: nothing is acknowledged
		return ctx.Err()
	})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			for i := next.Add(1); i <= n; i = next.Add(1) {
				m := sdk.Message{PubSub: "ps", Topic: "t", Data: []byte(fmt.Sprintf(`{"i":%d,"pad":"%0200d"}`, i, 0))}
				if err := b.Publisher("pub").Publish(context.Background(), m); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	published := time.Since(start)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, "apps", "sub", "app.db"))
	if err != nil {
		t.Fatal(err)
	}

	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	h0 := heap()
	start = time.Now()
	b = open(t, Options{Dir: dir})
	var got atomic.Int64
	first := make(chan time.Duration, 1)
	err = b.Subscribe([]backend.Subscription{sub}, func(ctx context.Context, s backend.Subscription, e *sdk.Event) error {
		if got.Add(1) == 1 {
			first <- time.Since(start)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var firstAfter time.Duration
	select {
	case firstAfter = <-first:
	case <-time.After(time.Minute):
		t.Fatal("no delivery within a minute of reopening")
	}
	time.Sleep(10 * time.Second)
	grew := int64(heap()) - int64(h0)
	t.Logf("published %d in %v (file %d MiB); reopened: first delivery after %v, %d delivered in 10 s, live heap %+d KiB",
		n, published, fi.Size()>>20, firstAfter, got.Load(), grew>>10)
	if grew > 64<<20 {
		t.Errorf("live heap grew %d MiB while draining the backlog", grew>>20)
	}
}
