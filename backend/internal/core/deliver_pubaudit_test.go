package core

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/roam-dev/roam/backend"
	"github.com/roam-dev/roam/sdk"
)

// fakeQueue is a Queue whose storage fails on demand: ackFails and
// deadFails failures of Ack and DeadLetter before they succeed.
type fakeQueue struct {
	mu        sync.Mutex
	items     []*Record
	acked     int // events removed
	ackFails  int
	deadFails int
	dead      []*Record // published dead letters
	parked    []*Record
	changed   chan struct{}
}

func newFakeQueue(recs ...*Record) *fakeQueue {
	return &fakeQueue{items: recs, changed: make(chan struct{}, 1)}
}

func (q *fakeQueue) Head() (uint64, *Record, bool, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.items) == 0 {
		return 0, nil, false, nil
	}
	return uint64(q.acked), q.items[0], true, nil
}

func (q *fakeQueue) Ack(pos uint64) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.ackFails > 0 {
		q.ackFails--
		return errors.New("no space left on device")
	}
	if int(pos) == q.acked && len(q.items) > 0 { // else removed already
		q.items = q.items[1:]
		q.acked++
		Wake(q.changed)
	}
	return nil
}

func (q *fakeQueue) DeadLetter(pos uint64, r *Record, topic string) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.deadFails > 0 {
		q.deadFails--
		return errors.New("no space left on device")
	}
	q.dead = append(q.dead, r.DeadLettered(topic))
	return nil
}

func (q *fakeQueue) Park(pos uint64, r *Record) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.parked = append(q.parked, r)
	q.items = q.items[1:]
	q.acked++
	Wake(q.changed)
	return nil
}

func (q *fakeQueue) empty() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.items) == 0
}

// runLoop runs a Loop over q until q is empty, then stops it.
func runLoop(t *testing.T, q *fakeQueue, sub backend.Subscription, d backend.Deliverer, p backend.RetryPolicy) {
	t.Helper()
	stop := make(chan struct{})
	wake := make(chan struct{}, 1)
	l := &Loop{
		Sub: sub, DeadLetterTopic: DeadLetterTopic(sub, ""), Queue: q, Deliver: d, Policy: p,
		Wake: wake, Stop: stop, Ctx: context.Background(), Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	done := make(chan struct{})
	go func() { defer close(done); l.Run() }()
	deadline := time.After(time.Minute)
	for !q.empty() {
		select {
		case <-q.changed:
		case <-deadline:
			close(stop)
			<-done
			t.Fatalf("queue not emptied within a minute")
		}
	}
	close(stop)
	<-done
}

// An event whose handler succeeded but whose removal failed (a full disk)
// was delivered again after every failed removal, 200 ms apart, for as
// long as the disk stayed full: duplicates without bound. The removal
// alone is retried now.
func TestPubAuditAckFailureDoesNotRedeliver(t *testing.T) {
	rec := &Record{ID: "e1", Topic: "t", PubSub: "ps"}
	q := newFakeQueue(rec)
	q.ackFails = 3
	var mu sync.Mutex
	calls := 0
	d := func(ctx context.Context, sub backend.Subscription, e *sdk.Event) error {
		mu.Lock()
		calls++
		mu.Unlock()
		return nil
	}
	runLoop(t, q, backend.Subscription{AppID: "a", PubSub: "ps", Topic: "t"}, d, fastPolicy)
	if calls != 1 {
		t.Fatalf("handler called %d times for one event whose removal failed 3 times, want 1", calls)
	}
}

// A dead letter whose removal from the failed queue fails is not
// published again on every retry of the removal.
func TestPubAuditDeadLetterRemovalFailureDoesNotRepublish(t *testing.T) {
	rec := &Record{ID: "e1", Topic: "t", PubSub: "ps"}
	q := newFakeQueue(rec)
	q.ackFails = 3
	q.deadFails = 2 // the publish itself is retried until it succeeds
	d := func(ctx context.Context, sub backend.Subscription, e *sdk.Event) error {
		return sdk.Errorf(sdk.InvalidArgument, "never")
	}
	runLoop(t, q, backend.Subscription{AppID: "a", PubSub: "ps", Topic: "t", DeadLetterTopic: "dl"}, d, fastPolicy)
	if len(q.dead) != 1 {
		t.Fatalf("dead letter published %d times, want 1", len(q.dead))
	}
	if got := q.dead[0]; got.Topic != "dl" || got.ID != "e1" || len(got.DeadLetters) != 1 || got.DeadLetters[0] != "t" {
		t.Fatalf("dead letter = %+v, want e1 on dl, dead-lettered from t", got)
	}
}

// An event dead-lettered from t to d, failing on d whose dead-letter topic
// is t again, is parked instead of going back to t.
func TestPubAuditDeadLetterCycleParks(t *testing.T) {
	orig := &Record{ID: "e1", Topic: "t", PubSub: "ps"}
	rec := orig.DeadLettered("d")
	q := newFakeQueue(rec)
	d := func(ctx context.Context, sub backend.Subscription, e *sdk.Event) error {
		return sdk.Errorf(sdk.Internal, "always")
	}
	runLoop(t, q, backend.Subscription{AppID: "a", PubSub: "ps", Topic: "d", DeadLetterTopic: "t"}, d, fastPolicy)
	if len(q.dead) != 0 || len(q.parked) != 1 {
		t.Fatalf("dead letters %d, parked %d: want the event parked, not sent back to t", len(q.dead), len(q.parked))
	}
	if orig.DeadLetters != nil {
		t.Fatalf("DeadLettered changed the original record's trail: %q", orig.DeadLetters)
	}
}

func TestPubAuditRecordLoops(t *testing.T) {
	r := &Record{Topic: "a"}
	if !r.Loops("a") || r.Loops("b") {
		t.Fatalf("Loops on a fresh record: own topic %v, other %v", r.Loops("a"), r.Loops("b"))
	}
	r = r.DeadLettered("b").DeadLettered("c")
	for topic, want := range map[string]bool{"a": true, "b": true, "c": true, "d": false} {
		if got := r.Loops(topic); got != want {
			t.Errorf("record on c via a, b: Loops(%q) = %v, want %v", topic, got, want)
		}
	}
	// Two dead letters made from one record do not share a trail.
	base := (&Record{Topic: "a"}).DeadLettered("b")
	x, y := base.DeadLettered("x"), base.DeadLettered("y")
	if x.DeadLetters[1] != "b" || y.DeadLetters[1] != "b" || len(base.DeadLetters) != 1 {
		t.Fatalf("trails share storage: base %q, x %q, y %q", base.DeadLetters, x.DeadLetters, y.DeadLetters)
	}
}

// Close used to wait for ever for a handler that ignores its cancelled
// context, and with it a host's shutdown.
func TestPubAuditDrainOrCancelIsBounded(t *testing.T) {
	var wg sync.WaitGroup
	wg.Add(1)
	release := make(chan struct{})
	go func() { defer wg.Done(); <-release }() // ignores cancellation
	defer close(release)
	cancelled := false
	done := make(chan bool)
	go func() { done <- DrainOrCancel(&wg, 10*time.Millisecond, func() { cancelled = true }, nil, "test") }()
	select {
	case all := <-done:
		if all || !cancelled {
			t.Fatalf("DrainOrCancel = %v, cancelled %v; want false after cancelling", all, cancelled)
		}
	case <-time.After(time.Minute):
		t.Fatal("DrainOrCancel still waiting a minute after a 10ms grace")
	}
}

var fastPolicy = backend.RetryPolicy{MaxAttempts: 3, InitialBackoff: time.Millisecond, MaxBackoff: time.Millisecond}
