package memory_test

import (
	"context"
	"testing"
	"time"

	"github.com/roam-dev/roam/backend"
	"github.com/roam-dev/roam/backend/memory"
	"github.com/roam-dev/roam/sdk"
)

// Close waited for ever for a handler that ignores its cancelled context.
func TestPubAuditCloseWithHungHandler(t *testing.T) {
	b := memory.New(memory.Options{CloseGrace: 10 * time.Millisecond})
	release := make(chan struct{})
	defer close(release)
	entered := make(chan struct{}, 1)
	err := b.Subscribe([]backend.Subscription{{AppID: "sub", PubSub: "ps", Topic: "t"}}, func(ctx context.Context, s backend.Subscription, e *sdk.Event) error {
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
	if err := b.Publisher("pub").Publish(context.Background(), sdk.Message{PubSub: "ps", Topic: "t", Data: []byte(`1`)}); err != nil {
		t.Fatal(err)
	}
	<-entered
	closed := make(chan struct{})
	go func() { b.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(time.Minute):
		t.Fatal("Close still waiting for a hung handler a minute after its 10ms grace")
	}
}

// An event failing round a cycle of three dead-letter topics is parked
// where the cycle would close, once, with its data.
func TestPubAuditDeadLetterCycleOfThree(t *testing.T) {
	b := memory.New(memory.Options{Retry: backend.RetryPolicy{MaxAttempts: 1, InitialBackoff: time.Millisecond, MaxBackoff: time.Millisecond}})
	defer b.Close()
	subs := []backend.Subscription{
		{AppID: "sub", PubSub: "ps", Topic: "a", DeadLetterTopic: "b"},
		{AppID: "sub", PubSub: "ps", Topic: "b", DeadLetterTopic: "c"},
		{AppID: "sub", PubSub: "ps", Topic: "c", DeadLetterTopic: "a"},
	}
	calls := make(chan string, 100)
	err := b.Subscribe(subs, func(ctx context.Context, s backend.Subscription, e *sdk.Event) error {
		calls <- s.Topic
		return sdk.Errorf(sdk.Internal, "fails everywhere")
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Publisher("pub").Publish(context.Background(), sdk.Message{PubSub: "ps", Topic: "a", Data: []byte(`"x"`)}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for len(b.Parked()) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("not parked within a minute")
		}
		time.Sleep(10 * time.Millisecond)
	}
	p := b.Parked()
	if len(p) != 1 || p[0].Topic != "c" || string(p[0].Data) != `"x"` {
		t.Fatalf("parked %+v, want the event, on c", p)
	}
	var got []string
	for len(calls) > 0 {
		got = append(got, <-calls)
	}
	if len(got) != 3 || got[0] != "a" || got[1] != "b" || got[2] != "c" {
		t.Fatalf("deliveries %q, want a, b, c once each", got)
	}
}
