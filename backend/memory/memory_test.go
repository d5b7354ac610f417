package memory_test

import (
	"context"
	"testing"

	"github.com/roam-dev/roam/backend"
	"github.com/roam-dev/roam/backend/memory"
	"github.com/roam-dev/roam/conformance/backendtest"
	"github.com/roam-dev/roam/sdk"
)

func TestState(t *testing.T) {
	backendtest.RunState(t, func(t *testing.T) backend.Backend { return memory.New(memory.Options{}) })
}

func TestPubSub(t *testing.T) {
	backendtest.RunPubSub(t, backendtest.PubSubHarness{
		ParksDeadLetterCycles: true,
		IsolatesSubscriptions: true,
		Open: func(t *testing.T, dir string, p backend.RetryPolicy) backend.Backend {
			return memory.New(memory.Options{Retry: p})
		},
	})
}

func TestInvoker(t *testing.T) {
	ctx := context.Background()
	b := memory.New(memory.Options{})
	defer b.Close()
	_, err := b.Invoker("caller").Invoke(ctx, "orders", "Create", nil)
	if !sdk.IsCode(err, sdk.Unavailable) || err.Error() != "no app orders reachable" {
		t.Fatalf("Invoke without Options.Invoke: %v (code %v)", err, sdk.CodeOf(err))
	}

	b2 := memory.New(memory.Options{Invoke: func(ctx context.Context, caller, target, method string, data []byte) ([]byte, error) {
		if method == "Fail" {
			return nil, sdk.Errorf(sdk.Conflict, "out of stock")
		}
		return []byte(caller + "->" + target + "." + method + ":" + string(data)), nil
	}})
	defer b2.Close()
	out, err := b2.Invoker("caller").Invoke(ctx, "orders", "Create", []byte(`{}`))
	if err != nil || string(out) != "caller->orders.Create:{}" {
		t.Fatalf("Invoke = %q, %v", out, err)
	}
	if _, err := b2.Invoker("caller").Invoke(ctx, "orders", "Fail", nil); !sdk.IsCode(err, sdk.Conflict) {
		t.Fatalf("Invoke Fail: %v", err)
	}
}

func TestConfigSecrets(t *testing.T) {
	ctx := context.Background()
	cfg := map[string]string{"greeting": "hi"}
	b := memory.New(memory.Options{Config: cfg, Secrets: map[string]map[string]string{"vault": {"token": "s3cr3t"}}})
	defer b.Close()
	cfg["greeting"] = "changed after New"
	if v, err := b.Config("a").Get(ctx, "greeting"); err != nil || v != "hi" {
		t.Fatalf("Config greeting = %q, %v", v, err)
	}
	if _, err := b.Config("a").Get(ctx, "nope"); !sdk.IsCode(err, sdk.NotFound) {
		t.Fatalf("Config absent: %v", err)
	}
	if v, err := b.Secrets("a").Get(ctx, "vault", "token"); err != nil || v != "s3cr3t" {
		t.Fatalf("Secret = %q, %v", v, err)
	}
	if _, err := b.Secrets("a").Get(ctx, "vault", "nope"); !sdk.IsCode(err, sdk.NotFound) {
		t.Fatalf("Secret absent key: %v", err)
	}
	if _, err := b.Secrets("a").Get(ctx, "nostore", "token"); !sdk.IsCode(err, sdk.NotFound) {
		t.Fatalf("Secret absent store: %v", err)
	}
}

func TestSubscribeTwice(t *testing.T) {
	b := memory.New(memory.Options{})
	defer b.Close()
	d := func(ctx context.Context, sub backend.Subscription, e *sdk.Event) error { return nil }
	s := backend.Subscription{AppID: "a", PubSub: "pubsub", Topic: "t"}
	if err := b.Subscribe([]backend.Subscription{s}, d); err != nil {
		t.Fatal(err)
	}
	if err := b.Subscribe([]backend.Subscription{s}, d); !sdk.IsCode(err, sdk.FailedPrecondition) {
		t.Fatalf("second Subscribe: %v", err)
	}
	if err := b.Subscribe([]backend.Subscription{{AppID: "Bad_ID", PubSub: "p", Topic: "t"}}, d); !sdk.IsCode(err, sdk.InvalidArgument) {
		t.Fatalf("Subscribe with invalid app id: %v", err)
	}
}

func TestClosed(t *testing.T) {
	ctx := context.Background()
	b := memory.New(memory.Options{})
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := b.State("a", "s").Set(ctx, "k", nil, sdk.WriteOptions{}); !sdk.IsCode(err, sdk.Unavailable) {
		t.Fatalf("Set after Close: %v", err)
	}
	if err := b.Publisher("a").Publish(ctx, sdk.Message{PubSub: "p", Topic: "t"}); !sdk.IsCode(err, sdk.Unavailable) {
		t.Fatalf("Publish after Close: %v", err)
	}
}
