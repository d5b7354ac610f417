package backendtest

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/roam-dev/roam/backend"
	"github.com/roam-dev/roam/sdk"
)

// PubSubHarness tells RunPubSub how to open a backend and what it can do.
type PubSubHarness struct {
	// Open returns a backend whose storage is dir (a fresh temporary
	// directory per test) and whose retry policy is retry. The suite may
	// close it and call Open again with the same dir to simulate a restart;
	// a durable backend must then still hold every unacknowledged event.
	// The suite closes what Open returns, possibly more than once.
	Open func(t *testing.T, dir string, retry backend.RetryPolicy) backend.Backend
	// Durable enables the tests that restart the backend.
	Durable bool
	// DropsUnrouted skips the tests of events published before anyone
	// subscribed to their topic, for brokers that discard them.
	DropsUnrouted bool
	// PubSub is the pub/sub component name to use; empty means "pubsub".
	PubSub string
	// DeadLetterTopic is the backend's default dead-letter topic as Open
	// configures it; empty means backend.DefaultDeadLetterTopic.
	DeadLetterTopic string
	// Timeout bounds every wait for a delivery; zero means 20 seconds.
	Timeout time.Duration
	// ParksDeadLetterCycles enables the test of subscriptions whose
	// dead-letter topics name each other's topics: the backend must park an
	// event that failed on both rather than pass it between them for ever.
	// The in-process backends do. Dapr's broker dead-letters by publishing
	// anew, and the Dapr backend parks the event when it comes back to a
	// topic it failed on, as far as its process saw it go round (a restart
	// or another replica lets it go round once more).
	ParksDeadLetterCycles bool
	// IsolatesSubscriptions enables the test that a handler that hangs
	// holds back its own subscription only. The in-process backends give
	// each subscription its own delivery loop. Dapr's Redis component as
	// the tests configure it (concurrency 1, for per-topic order) runs one
	// delivery at a time for all the component's topics, and a topic
	// subscribed by several apps of one host is one Dapr subscription.
	IsolatesSubscriptions bool
}

// RunPubSub runs the pub/sub conformance tests.
func RunPubSub(t *testing.T, h PubSubHarness) {
	if h.PubSub == "" {
		h.PubSub = "pubsub"
	}
	if h.DeadLetterTopic == "" {
		h.DeadLetterTopic = backend.DefaultDeadLetterTopic
	}
	if h.Timeout <= 0 {
		h.Timeout = 20 * time.Second
	}
	tests := []struct {
		name                                string
		durable, unrouted, cycles, isolated bool
		fn                                  func(e *psEnv)
	}{
		{name: "CloudEvents", fn: testCloudEvents},
		{name: "Order", fn: testOrder},
		{name: "FanOut", fn: testFanOut},
		{name: "RetryThenSuccess", fn: testRetryThenSuccess},
		{name: "DeadLetterAfterMaxAttempts", fn: testDeadLetter},
		{name: "DefaultDeadLetterTopic", fn: testDefaultDeadLetter},
		{name: "InvalidArgumentDeadLettersAtOnce", fn: testInvalidArgumentDeadLetter},
		{name: "HandlerPanics", fn: testHandlerPanics},
		{name: "HungHandlerHoldsOnlyItsSubscription", isolated: true, fn: testHungHandler},
		{name: "DeadLetterCycleParked", cycles: true, fn: testDeadLetterCycle},
		{name: "InvalidPublish", fn: testInvalidPublish},
		{name: "CloseWaitsForInFlight", fn: testCloseWaits},
		{name: "Unrouted", unrouted: true, fn: testUnrouted},
		{name: "RestartRedeliversUnacked", durable: true, fn: testRestartRedelivers},
		{name: "UnroutedSurvivesRestart", durable: true, unrouted: true, fn: testUnroutedRestart},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.durable && !h.Durable {
				t.Skip("backend is not durable")
			}
			if tc.unrouted && h.DropsUnrouted {
				t.Skip("backend drops events published before a subscription exists")
			}
			if tc.cycles && !h.ParksDeadLetterCycles {
				t.Skip("backend passes events round a cycle of dead-letter topics")
			}
			if tc.isolated && !h.IsolatesSubscriptions {
				t.Skip("backend may hold other subscriptions' deliveries behind a hung handler")
			}
			u := uniq()
			e := &psEnv{t: t, h: h, dir: t.TempDir(), ps: h.PubSub, u: u, ctx: ctxFor(t, 5*time.Minute)}
			tc.fn(e)
		})
	}
}

// fastRetry keeps retry tests quick: 3 attempts, a few milliseconds apart.
var fastRetry = backend.RetryPolicy{MaxAttempts: 3, InitialBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond}

type psEnv struct {
	t   *testing.T
	h   PubSubHarness
	dir string
	b   backend.Backend
	ps  string
	u   string
	ctx context.Context
}

func (e *psEnv) open(p backend.RetryPolicy) backend.Backend {
	e.t.Helper()
	b := e.h.Open(e.t, e.dir, p)
	if b == nil {
		e.t.Fatal("harness Open returned nil")
	}
	e.t.Cleanup(func() { b.Close() })
	e.b = b
	return b
}

// restart closes the backend and opens it again on the same storage.
func (e *psEnv) restart(p backend.RetryPolicy) backend.Backend {
	e.t.Helper()
	if err := e.b.Close(); err != nil {
		e.t.Fatalf("Close before restart: %v", err)
	}
	return e.open(p)
}

func (e *psEnv) name(s string) string { return s + "-" + e.u }

func (e *psEnv) sub(app, topic string) backend.Subscription {
	return backend.Subscription{AppID: app, PubSub: e.ps, Topic: topic}
}

func (e *psEnv) subscribe(d backend.Deliverer, subs ...backend.Subscription) {
	e.t.Helper()
	noErr(e.t, e.b.Subscribe(subs, d), "Subscribe")
}

// publish publishes {"k":label} from app to topic.
func (e *psEnv) publish(app, topic string, labels ...string) {
	e.t.Helper()
	for _, l := range labels {
		noErr(e.t, e.b.Publisher(app).Publish(e.ctx, sdk.Message{PubSub: e.ps, Topic: topic, Data: labelData(l)}), "Publish "+l)
	}
}

func (e *psEnv) wait(what string, cond func() bool) {
	e.t.Helper()
	eventually(e.t, e.h.Timeout, what, cond)
}

func labelData(l string) []byte { return []byte(`{"k":"` + l + `"}`) }

// label returns the label of an event published by psEnv.publish.
func label(ev *sdk.Event) string {
	var v struct{ K string }
	if json.Unmarshal(ev.Data, &v) != nil {
		return ""
	}
	return v.K
}

// attempt is one call of a recorder's deliverer.
type attempt struct {
	sub backend.Subscription
	ev  *sdk.Event
	err error
}

// recorder is a Deliverer that logs every call and answers with handler
// (nil: acknowledge everything).
type recorder struct {
	mu      sync.Mutex
	calls   []attempt
	counts  map[string]int
	handler func(sub backend.Subscription, ev *sdk.Event, n int) error
}

func newRecorder(h func(sub backend.Subscription, ev *sdk.Event, n int) error) *recorder {
	return &recorder{counts: map[string]int{}, handler: h}
}

func subKey(s backend.Subscription) string { return s.AppID + "/" + s.PubSub + "/" + s.Topic }

func (r *recorder) Deliver(ctx context.Context, sub backend.Subscription, ev *sdk.Event) error {
	r.mu.Lock()
	k := subKey(sub) + "/" + ev.ID
	r.counts[k]++
	n := r.counts[k]
	r.mu.Unlock()
	var err error
	if r.handler != nil {
		err = r.handler(sub, ev, n)
	}
	r.mu.Lock()
	r.calls = append(r.calls, attempt{sub, ev, err})
	r.mu.Unlock()
	return err
}

// acked returns the events sub acknowledged, in order, without duplicates.
func (r *recorder) acked(sub backend.Subscription) []*sdk.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	seen := map[string]bool{}
	var out []*sdk.Event
	for _, c := range r.calls {
		if c.err == nil && subKey(c.sub) == subKey(sub) && !seen[c.ev.ID] {
			seen[c.ev.ID] = true
			out = append(out, c.ev)
		}
	}
	return out
}

func (r *recorder) ackedLabels(sub backend.Subscription) []string {
	var out []string
	for _, ev := range r.acked(sub) {
		out = append(out, label(ev))
	}
	return out
}

func (r *recorder) hasAcked(sub backend.Subscription, l string) bool {
	for _, x := range r.ackedLabels(sub) {
		if x == l {
			return true
		}
	}
	return false
}

// attemptsOf counts the deliveries to sub of events labelled l.
func (r *recorder) attemptsOf(sub backend.Subscription, l string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, c := range r.calls {
		if subKey(c.sub) == subKey(sub) && label(c.ev) == l {
			n++
		}
	}
	return n
}

// index returns the position in the call log of the first call to sub for
// label l whose outcome matches (ok: nil error), or -1.
func (r *recorder) index(sub backend.Subscription, l string, okOnly bool) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, c := range r.calls {
		if subKey(c.sub) == subKey(sub) && label(c.ev) == l && (!okOnly || c.err == nil) {
			return i
		}
	}
	return -1
}

func (r *recorder) lastIndex(sub backend.Subscription, l string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := len(r.calls) - 1; i >= 0; i-- {
		c := r.calls[i]
		if subKey(c.sub) == subKey(sub) && label(c.ev) == l {
			return i
		}
	}
	return -1
}

func wantLabels(t *testing.T, what string, got []string, want ...string) {
	t.Helper()
	if !reflect.DeepEqual(got, want) && !(len(got) == 0 && len(want) == 0) {
		t.Fatalf("%s: got %q, want %q", what, got, want)
	}
}

// ---- tests ----

func testCloudEvents(e *psEnv) {
	t := e.t
	e.open(fastRetry)
	pub, topic := e.name("pub"), e.name("ce")
	s := e.sub(e.name("sub"), topic)
	r := newRecorder(nil)
	e.subscribe(r.Deliver, s)

	before := time.Now()
	p := e.b.Publisher(pub)
	noErr(t, p.Publish(e.ctx, sdk.Message{PubSub: e.ps, Topic: topic, Data: []byte(`{"k":"one","n":[1,2]}`),
		ContentType: "application/json", Type: "order.created", Metadata: map[string]string{"m": "v"}}), "Publish one")
	noErr(t, p.Publish(e.ctx, sdk.Message{PubSub: e.ps, Topic: topic, Data: []byte(`{"k":"two"}`)}), "Publish two")
	noErr(t, p.Publish(e.ctx, sdk.Message{PubSub: e.ps, Topic: topic, Data: []byte("plain text"), ContentType: "text/plain"}), "Publish three")
	after := time.Now()

	e.wait("3 events", func() bool { return len(r.acked(s)) >= 3 })
	evs := r.acked(s)
	want := []struct{ typ, ct, data string }{
		{"order.created", "application/json", `{"k":"one","n":[1,2]}`},
		{"roam.event", "application/json", `{"k":"two"}`},
		{"roam.event", "text/plain", "plain text"},
	}
	ids := map[string]bool{}
	for i, w := range want {
		ev := evs[i]
		if ev.SpecVersion != "1.0" {
			t.Errorf("event %d: specversion %q, want 1.0", i, ev.SpecVersion)
		}
		if ev.ID == "" || ids[ev.ID] {
			t.Errorf("event %d: id %q is empty or repeats", i, ev.ID)
		}
		ids[ev.ID] = true
		if ev.Source != pub {
			t.Errorf("event %d: source %q, want %q", i, ev.Source, pub)
		}
		if ev.Type != w.typ {
			t.Errorf("event %d: type %q, want %q", i, ev.Type, w.typ)
		}
		if ev.DataContentType != w.ct {
			t.Errorf("event %d: datacontenttype %q, want %q", i, ev.DataContentType, w.ct)
		}
		if ev.PubSub != e.ps || ev.Topic != topic {
			t.Errorf("event %d: pubsubname/topic %q/%q, want %q/%q", i, ev.PubSub, ev.Topic, e.ps, topic)
		}
		if string(ev.Data) != w.data {
			t.Errorf("event %d: data %q, want %q", i, ev.Data, w.data)
		}
		// Allow for clock skew between this process and a broker.
		if ev.Time.Before(before.Add(-time.Minute)) || ev.Time.After(after.Add(time.Minute)) {
			t.Errorf("event %d: time %v not within a minute of the publish (%v..%v)", i, ev.Time, before, after)
		}
	}
}

func testOrder(e *psEnv) {
	e.open(fastRetry)
	pub, topic := e.name("pub"), e.name("order")
	s := e.sub(e.name("sub"), topic)
	r := newRecorder(nil)
	e.subscribe(r.Deliver, s)
	var want []string
	for i := 0; i < 40; i++ {
		l := fmt.Sprint(i)
		want = append(want, l)
		e.publish(pub, topic, l)
	}
	e.wait("40 events", func() bool { return len(r.acked(s)) >= 40 })
	wantLabels(e.t, "delivery order", r.ackedLabels(s), want...)
}

func testFanOut(e *psEnv) {
	e.open(fastRetry)
	pub, topic := e.name("pub"), e.name("fan")
	s1, s2 := e.sub(e.name("one"), topic), e.sub(e.name("two"), topic)
	r := newRecorder(nil)
	e.subscribe(r.Deliver, s1)
	e.subscribe(r.Deliver, s2)
	e.publish(pub, topic, "a", "b", "c", "d", "e")
	e.wait("5 events at both subscriptions", func() bool { return len(r.acked(s1)) >= 5 && len(r.acked(s2)) >= 5 })
	wantLabels(e.t, s1.AppID, r.ackedLabels(s1), "a", "b", "c", "d", "e")
	wantLabels(e.t, s2.AppID, r.ackedLabels(s2), "a", "b", "c", "d", "e")
	a1, a2 := r.acked(s1), r.acked(s2)
	for i := range a1 {
		if a1[i].ID != a2[i].ID {
			e.t.Fatalf("event %d has id %q at %s but %q at %s", i, a1[i].ID, s1.AppID, a2[i].ID, s2.AppID)
		}
	}
}

func testRetryThenSuccess(e *psEnv) {
	e.open(backend.RetryPolicy{MaxAttempts: 5, InitialBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond})
	pub, topic := e.name("pub"), e.name("retry")
	s := e.sub(e.name("sub"), topic)
	dl := e.sub(e.name("dl"), e.name("retry-dl"))
	s.DeadLetterTopic = dl.Topic
	r := newRecorder(func(sub backend.Subscription, ev *sdk.Event, n int) error {
		if label(ev) == "flaky" && n <= 2 {
			return sdk.Errorf(sdk.Unavailable, "flaky failure %d", n)
		}
		return nil
	})
	e.subscribe(r.Deliver, s, dl)
	e.publish(pub, topic, "flaky", "next")
	e.wait("next to be delivered", func() bool { return r.hasAcked(s, "next") })
	wantLabels(e.t, "acknowledged", r.ackedLabels(s), "flaky", "next")
	if n := r.attemptsOf(s, "flaky"); n != 3 {
		e.t.Fatalf("flaky delivered %d times, want 3 (2 failures, then success)", n)
	}
	if r.index(s, "flaky", true) > r.index(s, "next", false) {
		e.t.Fatalf("next was delivered before flaky succeeded: a retrying event must hold back later ones")
	}
	if got := r.ackedLabels(dl); len(got) != 0 {
		e.t.Fatalf("dead-letter topic received %q", got)
	}
}

func testDeadLetter(e *psEnv) {
	e.open(fastRetry)
	pub, topic := e.name("pub"), e.name("dlq")
	s := e.sub(e.name("sub"), topic)
	dl := e.sub(e.name("dlsub"), e.name("dlq-dead"))
	s.DeadLetterTopic = dl.Topic
	r := newRecorder(func(sub backend.Subscription, ev *sdk.Event, n int) error {
		if sub.Topic == topic && label(ev) == "poison" {
			return sdk.Errorf(sdk.Internal, "cannot handle poison (attempt %d)", n)
		}
		return nil
	})
	e.subscribe(r.Deliver, s, dl)
	p := e.b.Publisher(pub)
	noErr(e.t, p.Publish(e.ctx, sdk.Message{PubSub: e.ps, Topic: topic, Data: labelData("poison"), Type: "poison.type"}), "Publish poison")
	e.publish(pub, topic, "after")

	e.wait("poison on the dead-letter topic and after delivered", func() bool {
		return r.hasAcked(dl, "poison") && r.hasAcked(s, "after")
	})
	if n := r.attemptsOf(s, "poison"); n != fastRetry.MaxAttempts {
		e.t.Fatalf("poison delivered %d times before dead-lettering, want MaxAttempts=%d", n, fastRetry.MaxAttempts)
	}
	wantLabels(e.t, "acknowledged on the topic", r.ackedLabels(s), "after")
	if r.lastIndex(s, "poison") > r.index(s, "after", false) {
		e.t.Fatalf("after was delivered while poison was still being retried")
	}
	dead := r.acked(dl)
	if len(dead) != 1 {
		e.t.Fatalf("dead-letter topic received %d events, want 1", len(dead))
	}
	d := dead[0]
	if string(d.Data) != string(labelData("poison")) || d.Type != "poison.type" || d.Topic != dl.Topic || d.PubSub != e.ps || d.Source != pub {
		e.t.Fatalf("dead-lettered event = {Data:%q Type:%q PubSub:%q Topic:%q Source:%q}, want the original data, type and source on %s/%s",
			d.Data, d.Type, d.PubSub, d.Topic, d.Source, e.ps, dl.Topic)
	}
}

func testDefaultDeadLetter(e *psEnv) {
	e.open(fastRetry)
	pub, topic := e.name("pub"), e.name("dflt")
	s := e.sub(e.name("sub"), topic)
	dl := e.sub(e.name("dlsub"), e.h.DeadLetterTopic)
	marker := e.name("doomed")
	r := newRecorder(func(sub backend.Subscription, ev *sdk.Event, n int) error {
		if sub.Topic == topic {
			return sdk.Errorf(sdk.Internal, "always failing")
		}
		return nil
	})
	e.subscribe(r.Deliver, s, dl)
	e.publish(pub, topic, marker)
	e.wait("event on the default dead-letter topic", func() bool { return r.hasAcked(dl, marker) })
	if n := r.attemptsOf(s, marker); n != fastRetry.MaxAttempts {
		e.t.Fatalf("event delivered %d times before dead-lettering, want %d", n, fastRetry.MaxAttempts)
	}
}

func testInvalidArgumentDeadLetter(e *psEnv) {
	e.open(backend.RetryPolicy{MaxAttempts: 5, InitialBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond})
	pub, topic := e.name("pub"), e.name("inval")
	s := e.sub(e.name("sub"), topic)
	dl := e.sub(e.name("dlsub"), e.name("inval-dead"))
	s.DeadLetterTopic = dl.Topic
	r := newRecorder(func(sub backend.Subscription, ev *sdk.Event, n int) error {
		if sub.Topic == topic && label(ev) == "bad" {
			return sdk.Errorf(sdk.InvalidArgument, "bad event can never succeed")
		}
		return nil
	})
	e.subscribe(r.Deliver, s, dl)
	e.publish(pub, topic, "bad", "good")
	e.wait("bad dead-lettered and good delivered", func() bool { return r.hasAcked(dl, "bad") && r.hasAcked(s, "good") })
	if n := r.attemptsOf(s, "bad"); n != 1 {
		e.t.Fatalf("InvalidArgument event delivered %d times, want 1", n)
	}
	wantLabels(e.t, "acknowledged on the topic", r.ackedLabels(s), "good")
}

// A handler that panics on an event fails that delivery: the event is
// retried and dead-lettered as for an error, and the events behind it are
// delivered. The panic must not end the subscription's delivery, nor the
// process.
func testHandlerPanics(e *psEnv) {
	e.open(fastRetry)
	pub, topic := e.name("pub"), e.name("panic")
	s := e.sub(e.name("sub"), topic)
	dl := e.sub(e.name("dlsub"), e.name("panic-dead"))
	s.DeadLetterTopic = dl.Topic
	r := newRecorder(func(sub backend.Subscription, ev *sdk.Event, n int) error {
		if sub.Topic == topic && label(ev) == "boom" {
			panic(fmt.Sprintf("handler panics on boom (attempt %d)", n))
		}
		return nil
	})
	// The recorder logs a call only when the handler returns; count the
	// panicking attempts apart.
	var mu sync.Mutex
	booms := 0
	d := func(ctx context.Context, sub backend.Subscription, ev *sdk.Event) error {
		if sub.Topic == topic && label(ev) == "boom" {
			mu.Lock()
			booms++
			mu.Unlock()
		}
		return r.Deliver(ctx, sub, ev)
	}
	e.subscribe(d, s, dl)
	e.publish(pub, topic, "boom", "after")
	e.wait("boom on the dead-letter topic and after delivered", func() bool {
		return r.hasAcked(dl, "boom") && r.hasAcked(s, "after")
	})
	wantLabels(e.t, "acknowledged on the topic", r.ackedLabels(s), "after")
	mu.Lock()
	defer mu.Unlock()
	if booms != fastRetry.MaxAttempts {
		e.t.Fatalf("panicking handler called %d times for boom, want MaxAttempts=%d", booms, fastRetry.MaxAttempts)
	}
}

// A handler that hangs (until the test ends) holds back its own
// subscription only: other topics of the same app, and other apps on the
// same topic, are delivered meanwhile.
func testHungHandler(e *psEnv) {
	e.open(fastRetry)
	pub, stuck, free := e.name("pub"), e.name("stuck"), e.name("free")
	hung := e.sub(e.name("sub"), stuck)
	sameApp := e.sub(hung.AppID, free)
	otherApp := e.sub(e.name("other"), stuck)
	release := make(chan struct{})
	// Registered after open's Close, so it runs before it: Close then has
	// nothing hung to wait for.
	e.t.Cleanup(func() { close(release) })
	entered := make(chan struct{}, 1)
	r := newRecorder(nil)
	d := func(ctx context.Context, sub backend.Subscription, ev *sdk.Event) error {
		if subKey(sub) == subKey(hung) {
			select {
			case entered <- struct{}{}:
			default:
			}
			select {
			case <-release:
			case <-ctx.Done():
			}
			return sdk.Errorf(sdk.Unavailable, "hung handler released")
		}
		return r.Deliver(ctx, sub, ev)
	}
	e.subscribe(d, hung, sameApp, otherApp)
	e.publish(pub, stuck, "h1", "h2")
	select {
	case <-entered:
	case <-time.After(e.h.Timeout):
		e.t.Fatalf("the hung handler was not called within %v", e.h.Timeout)
	}
	e.publish(pub, free, "f1", "f2", "f3")
	e.wait("the other subscriptions' events", func() bool {
		return len(r.acked(sameApp)) >= 3 && len(r.acked(otherApp)) >= 2
	})
	wantLabels(e.t, "same app, other topic", r.ackedLabels(sameApp), "f1", "f2", "f3")
	wantLabels(e.t, "other app, same topic", r.ackedLabels(otherApp), "h1", "h2")
}

// Two subscriptions whose dead-letter topics are each other's topics: an
// event that fails on both is parked after its attempts on each, not
// passed back and forth for ever (MaxAttempts deliveries a lap).
func testDeadLetterCycle(e *psEnv) {
	e.open(fastRetry)
	pub, ta, tb := e.name("pub"), e.name("cyc-a"), e.name("cyc-b")
	sa, sb := e.sub(e.name("sub"), ta), e.sub(e.name("sub"), tb)
	sa.DeadLetterTopic, sb.DeadLetterTopic = tb, ta
	r := newRecorder(func(sub backend.Subscription, ev *sdk.Event, n int) error {
		if label(ev) == "poison" {
			return sdk.Errorf(sdk.Internal, "poison fails everywhere")
		}
		return nil
	})
	e.subscribe(r.Deliver, sa, sb)
	e.publish(pub, ta, "poison")
	e.wait("poison tried on the dead-letter topic", func() bool { return r.attemptsOf(sb, "poison") >= fastRetry.MaxAttempts })
	// Each queue is ordered: once a marker published now is acknowledged
	// on b, poison has left b (parked, or sent back to a, queued there
	// before the marker on a).
	e.publish(pub, tb, "mark-b")
	e.wait("mark-b", func() bool { return r.hasAcked(sb, "mark-b") })
	e.publish(pub, ta, "mark-a")
	e.wait("mark-a", func() bool { return r.hasAcked(sa, "mark-a") })
	if n := r.attemptsOf(sa, "poison"); n != fastRetry.MaxAttempts {
		e.t.Fatalf("poison delivered %d times on %s, want MaxAttempts=%d: the dead-letter cycle sent it back", n, ta, fastRetry.MaxAttempts)
	}
	if n := r.attemptsOf(sb, "poison"); n != fastRetry.MaxAttempts {
		e.t.Fatalf("poison delivered %d times on %s, want MaxAttempts=%d", n, tb, fastRetry.MaxAttempts)
	}
}

func testInvalidPublish(e *psEnv) {
	e.open(fastRetry)
	p := e.b.Publisher(e.name("pub"))
	wantCode(e.t, p.Publish(e.ctx, sdk.Message{PubSub: e.ps, Data: labelData("x")}), sdk.InvalidArgument, "Publish without topic")
	wantCode(e.t, p.Publish(e.ctx, sdk.Message{Topic: "t", Data: labelData("x")}), sdk.InvalidArgument, "Publish without pubsub")
	cctx, cancel := context.WithCancel(e.ctx)
	cancel()
	if err := p.Publish(cctx, sdk.Message{PubSub: e.ps, Topic: e.name("t"), Data: labelData("x")}); err == nil {
		e.t.Fatalf("Publish with cancelled context succeeded")
	}
}

func testCloseWaits(e *psEnv) {
	e.open(fastRetry)
	pub, topic := e.name("pub"), e.name("slow")
	s := e.sub(e.name("sub"), topic)
	started := make(chan struct{})
	var once sync.Once
	var mu sync.Mutex
	returned := false
	d := func(ctx context.Context, sub backend.Subscription, ev *sdk.Event) error {
		once.Do(func() { close(started) })
		select {
		case <-time.After(300 * time.Millisecond):
		case <-ctx.Done():
		}
		mu.Lock()
		returned = true
		mu.Unlock()
		return nil
	}
	e.subscribe(d, s)
	e.publish(pub, topic, "slow")
	select {
	case <-started:
	case <-time.After(e.h.Timeout):
		e.t.Fatalf("handler not called within %v", e.h.Timeout)
	}
	noErr(e.t, e.b.Close(), "Close")
	mu.Lock()
	defer mu.Unlock()
	if !returned {
		e.t.Fatalf("Close returned while a delivery was still in flight")
	}
}

func testUnrouted(e *psEnv) {
	e.open(fastRetry)
	pub, topic := e.name("pub"), e.name("early")
	s := e.sub(e.name("sub"), topic)
	e.publish(pub, topic, "u1", "u2")
	r := newRecorder(nil)
	e.subscribe(r.Deliver, s)
	e.publish(pub, topic, "u3")
	e.wait("3 events", func() bool { return len(r.acked(s)) >= 3 })
	wantLabels(e.t, "delivered", r.ackedLabels(s), "u1", "u2", "u3")
}

func testRestartRedelivers(e *psEnv) {
	slow := backend.RetryPolicy{MaxAttempts: 1000, InitialBackoff: 20 * time.Millisecond, MaxBackoff: 20 * time.Millisecond}
	e.open(slow)
	pub, topic := e.name("pub"), e.name("restart")
	s := e.sub(e.name("sub"), topic)
	// Before the restart, only "a" is acknowledged; "b" keeps failing and
	// holds back "c", which the handler therefore never sees.
	r1 := newRecorder(func(sub backend.Subscription, ev *sdk.Event, n int) error {
		if label(ev) == "a" {
			return nil
		}
		return sdk.Errorf(sdk.Unavailable, "not yet")
	})
	e.subscribe(r1.Deliver, s)
	e.publish(pub, topic, "a", "b", "c")
	e.wait("a acknowledged and b attempted", func() bool { return r1.hasAcked(s, "a") && r1.attemptsOf(s, "b") >= 1 })
	var bID string
	for _, c := range r1.calls0() {
		if label(c.ev) == "b" {
			bID = c.ev.ID
		}
	}

	e.restart(slow)
	r2 := newRecorder(nil)
	e.subscribe(r2.Deliver, s)
	e.publish(pub, topic, "d")
	e.wait("b, c and d after the restart", func() bool { return r2.hasAcked(s, "d") })
	wantLabels(e.t, "delivered after the restart", r2.ackedLabels(s), "b", "c", "d")
	if got := r2.acked(s)[0].ID; got != bID {
		e.t.Fatalf("redelivered b has id %q, want the original %q", got, bID)
	}
}

// calls0 returns a copy of the call log.
func (r *recorder) calls0() []attempt {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]attempt(nil), r.calls...)
}

func testUnroutedRestart(e *psEnv) {
	e.open(fastRetry)
	pub, topic := e.name("pub"), e.name("early")
	s := e.sub(e.name("sub"), topic)
	e.publish(pub, topic, "u1", "u2")
	e.restart(fastRetry)
	r := newRecorder(nil)
	e.subscribe(r.Deliver, s)
	e.publish(pub, topic, "u3")
	e.wait("3 events", func() bool { return len(r.acked(s)) >= 3 })
	wantLabels(e.t, "delivered", r.ackedLabels(s), "u1", "u2", "u3")
}
