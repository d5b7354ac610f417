package hostbackend_test

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/roam-dev/roam/backend"
	"github.com/roam-dev/roam/host/hostbackend"
	"github.com/roam-dev/roam/sdk"
)

func TestChoose(t *testing.T) {
	env := func(kv map[string]string) func(string) string { return func(k string) string { return kv[k] } }
	cases := []struct {
		flag string
		env  map[string]string
		want string
		why  string
	}{
		{"", nil, "embedded", "no Dapr sidecar"},
		{"auto", map[string]string{"DAPR_GRPC_PORT": "50001"}, "dapr", "DAPR_GRPC_PORT=50001"},
		{"", map[string]string{"DAPR_HTTP_PORT": "3500"}, "dapr", "DAPR_HTTP_PORT=3500"},
		{"embedded", map[string]string{"DAPR_GRPC_PORT": "50001"}, "embedded", "--backend embedded"},
		{"dapr", nil, "dapr", "--backend dapr"},
	}
	for _, c := range cases {
		name, why, err := hostbackend.Choose(c.flag, env(c.env))
		if err != nil || name != c.want || !strings.Contains(why, c.why) {
			t.Errorf("Choose(%q, %v) = %q, %q, %v; want %q because %q", c.flag, c.env, name, why, err, c.want, c.why)
		}
	}
	if _, _, err := hostbackend.Choose("postgres", env(nil)); err == nil {
		t.Errorf("Choose accepted an unknown backend")
	}
}

// A binary built without the Dapr backend says how to get it.
func TestNotLinked(t *testing.T) {
	for _, n := range hostbackend.Registered() {
		if n == "dapr" {
			t.Fatal("this test binary must not link the Dapr backend")
		}
	}
	_, err := hostbackend.Open(context.Background(), hostbackend.Config{
		Getenv: func(k string) string { return map[string]string{"DAPR_GRPC_PORT": "50001"}[k] },
	})
	if err == nil || !strings.Contains(err.Error(), "--backends embedded,dapr") || !strings.Contains(err.Error(), "built without") {
		t.Fatalf("Open of dapr in a lean binary: %v", err)
	}
}

func TestEmbedded(t *testing.T) {
	b, err := hostbackend.Open(context.Background(), hostbackend.Config{DataDir: t.TempDir(), AppIDs: []string{"a"}, Getenv: func(string) string { return "" }})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if b.Name() != "embedded" {
		t.Fatalf("backend %s", b.Name())
	}
}

// The embedded backend reports its unrouted logs through Config.OnDeliver,
// the hook both hosts hand it: their metrics follow it.
func TestEmbeddedReportsUnrouted(t *testing.T) {
	var mu sync.Mutex
	var got []string
	b, err := hostbackend.Open(context.Background(), hostbackend.Config{
		DataDir: t.TempDir(), AppIDs: []string{"a"}, Getenv: func(string) string { return "" },
		OnDeliver: func(sub backend.Subscription, outcome string) {
			mu.Lock()
			defer mu.Unlock()
			got = append(got, sub.AppID+" "+sub.PubSub+"/"+sub.Topic+" "+outcome)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.Publisher("a").Publish(context.Background(), sdk.Message{PubSub: "ps", Topic: "t", Data: []byte(`1`)}); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 || got[0] != "a ps/t unrouted" {
		t.Fatalf("OnDeliver calls %q, want [a ps/t unrouted]", got)
	}
}
