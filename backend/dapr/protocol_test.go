package dapr_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/roam-dev/roam/backend/dapr"
	"github.com/roam-dev/roam/internal/daprtest"
	"github.com/roam-dev/roam/sdk"
)

// The client prefers the sidecar's gRPC API and falls back to its HTTP API
// when the gRPC port does not answer; over HTTP the same state semantics
// hold (for JSON values: Dapr's HTTP API stores JSON only), and publishing,
// invocation, config and secrets work.
func TestProtocols(t *testing.T) {
	r := daprtest.StartRedis(t)
	res := daprtest.WriteResources(t, r, daprtest.ResourceOptions{Secrets: map[string]string{"db-password": "hunter2"}})
	if _, err := r.Do("SET", "greeting", "hello||1"); err != nil {
		t.Fatal(err)
	}
	h := startHost(t, hostOptions{appID: "alo", res: res}, aloApp)
	sc := h.Sidecar

	t.Run("grpc preferred", func(t *testing.T) {
		b := open(t, sc)
		defer b.Close()
		if b.Protocol() != "grpc" {
			t.Fatalf("protocol %q with both ports answering, want grpc", b.Protocol())
		}
		exercise(t, b, "grpc")
	})

	t.Run("http when grpc does not answer", func(t *testing.T) {
		dead := daprtest.FreePort(t) // nothing listens here
		o := dapr.OptionsFromEnv(sc.Getenv("DAPR_GRPC_PORT=" + strconv.Itoa(dead)))
		o.StartTimeout, o.ProbeTimeout = 20*time.Second, 500*time.Millisecond
		start := time.Now()
		b, err := dapr.Open(context.Background(), o)
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		if b.Protocol() != "http" {
			t.Fatalf("protocol %q with the gRPC port dead, want http", b.Protocol())
		}
		t.Logf("fell back to HTTP in %v: %s", time.Since(start), b.Describe())
		exercise(t, b, "http")
		err = b.State("alo", "statestore").Set(ctxT(t), "raw", []byte("not json"), sdk.WriteOptions{})
		if !sdk.IsCode(err, sdk.InvalidArgument) {
			t.Fatalf("non-JSON value over HTTP: %v, want InvalidArgument explaining why", err)
		}
	})

	t.Run("no sidecar", func(t *testing.T) {
		o := dapr.OptionsFromEnv(func(k string) string {
			return map[string]string{"DAPR_GRPC_PORT": strconv.Itoa(daprtest.FreePort(t)), "DAPR_HTTP_PORT": strconv.Itoa(daprtest.FreePort(t))}[k]
		})
		o.StartTimeout = time.Second
		_, err := dapr.Open(context.Background(), o)
		if !sdk.IsCode(err, sdk.Unavailable) {
			t.Fatalf("Open with no sidecar: %v, want Unavailable", err)
		}
		t.Log(err)
	})
}

// exercise runs every capability once through b.
func exercise(t *testing.T, b *dapr.Backend, tag string) {
	t.Helper()
	ctx := ctxT(t)
	s := b.State("alo", "statestore")
	k := "proto-" + tag + "-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	must := func(err error, what string) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	must(s.Set(ctx, k, []byte(`{"n":1}`), sdk.WriteOptions{IfAbsent: true}), "Set IfAbsent")
	if err := s.Set(ctx, k, []byte(`{"n":2}`), sdk.WriteOptions{IfAbsent: true}); !sdk.IsCode(err, sdk.Conflict) {
		t.Fatalf("second IfAbsent: %v", err)
	}
	it, err := s.Get(ctx, k)
	must(err, "Get")
	if string(it.Value) != `{"n":1}` {
		t.Fatalf("Get = %s", it.Value)
	}
	must(s.Set(ctx, k, []byte(`{"n":3}`), sdk.WriteOptions{ETag: it.ETag}), "Set with ETag")
	if err := s.Set(ctx, k, []byte(`{"n":4}`), sdk.WriteOptions{ETag: it.ETag}); !sdk.IsCode(err, sdk.Conflict) {
		t.Fatalf("stale ETag: %v", err)
	}
	must(s.Transact(ctx, []sdk.Op{sdk.SetOp(k+"b", []byte(`"b"`), sdk.WriteOptions{IfAbsent: true}), sdk.DeleteOp(k, sdk.WriteOptions{})}), "Transact")
	items, err := s.BulkGet(ctx, []string{k, k + "b"})
	must(err, "BulkGet")
	if items[0].Found() || string(items[1].Value) != `"b"` {
		t.Fatalf("BulkGet = %+v", items)
	}
	must(s.Set(ctx, k+"ttl", []byte(`1`), sdk.WriteOptions{TTL: time.Second}), "Set TTL")
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := s.Get(ctx, k+"ttl"); sdk.IsCode(err, sdk.NotFound) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("TTL item did not expire")
		}
		time.Sleep(50 * time.Millisecond)
	}
	must(b.Publisher("alo").Publish(ctx, sdk.Message{PubSub: "pubsub", Topic: "alo.events", Data: mustJSON(aloData{Label: "via-" + tag})}), "Publish")
	out, err := b.Invoker("x").Invoke(ctx, "alo", "Ping", []byte(`{"via":"`+tag+`"}`))
	must(err, "Invoke")
	if string(out) != `{"via":"`+tag+`"}` {
		t.Fatalf("Invoke = %s", out)
	}
	if v, err := b.Config("alo").Get(ctx, "greeting"); err != nil || v != "hello" {
		t.Fatalf("Config greeting = %q, %v", v, err)
	}
	if _, err := b.Config("alo").Get(ctx, "nope"); !sdk.IsCode(err, sdk.NotFound) {
		t.Fatalf("Config absent key: %v", err)
	}
	if v, err := b.Secrets("alo").Get(ctx, "secretstore", "db-password"); err != nil || v != "hunter2" {
		t.Fatalf("secret = %q, %v", v, err)
	}
	if _, err := b.Secrets("alo").Get(ctx, "secretstore", "nope"); !sdk.IsCode(err, sdk.NotFound) {
		t.Fatalf("absent secret: %v (code %v)", err, sdk.CodeOf(err))
	}
	if _, err := b.Secrets("alo").Get(ctx, "nostore", "x"); !sdk.IsCode(err, sdk.NotFound) {
		t.Fatalf("absent secret store: %v (code %v)", err, sdk.CodeOf(err))
	}
	deadline = time.Now().Add(10 * time.Second)
	for {
		alo.Lock()
		ok := alo.ok["via-"+tag]
		alo.Unlock()
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("event published over %s not delivered", tag)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
