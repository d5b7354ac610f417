package core

import (
	"context"
	"math"
	"regexp"
	"testing"
	"time"

	"github.com/roam-dev/roam/backend"
	"github.com/roam-dev/roam/sdk"
)

func TestNewID(t *testing.T) {
	re := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	seen := map[string]bool{}
	for i := 0; i < 1000; i++ {
		id := NewID()
		if !re.MatchString(id) || seen[id] {
			t.Fatalf("NewID() = %q (repeat: %v)", id, seen[id])
		}
		seen[id] = true
	}
}

func TestPolicy(t *testing.T) {
	if got := Policy(backend.RetryPolicy{}); got != backend.DefaultRetryPolicy {
		t.Fatalf("zero policy = %+v", got)
	}
	got := Policy(backend.RetryPolicy{InitialBackoff: time.Second})
	if got.MaxAttempts != 1 || got.MaxBackoff != time.Second {
		t.Fatalf("policy = %+v", got)
	}
}

func TestCheckTransact(t *testing.T) {
	store := map[string]string{"a": "1", "b": "2"}
	lookup := func(k string) (bool, string, error) { e, ok := store[k]; return ok, e, nil }
	cases := []struct {
		name string
		ops  []sdk.Op
		want sdk.Code
	}{
		{"ok", []sdk.Op{sdk.SetOp("a", nil, sdk.WriteOptions{ETag: "1"}), sdk.DeleteOp("b", sdk.WriteOptions{ETag: "2"})}, sdk.OK},
		{"stale", []sdk.Op{sdk.SetOp("a", nil, sdk.WriteOptions{ETag: "0"})}, sdk.Conflict},
		{"absent with etag", []sdk.Op{sdk.DeleteOp("c", sdk.WriteOptions{ETag: "1"})}, sdk.Conflict},
		{"delete then create", []sdk.Op{sdk.DeleteOp("a", sdk.WriteOptions{}), sdk.SetOp("a", nil, sdk.WriteOptions{IfAbsent: true})}, sdk.OK},
		{"create twice", []sdk.Op{sdk.SetOp("c", nil, sdk.WriteOptions{IfAbsent: true}), sdk.SetOp("c", nil, sdk.WriteOptions{IfAbsent: true})}, sdk.Conflict},
		{"etag after write in same tx", []sdk.Op{sdk.SetOp("a", nil, sdk.WriteOptions{}), sdk.SetOp("a", nil, sdk.WriteOptions{ETag: "1"})}, sdk.Conflict},
		{"etag after delete in same tx", []sdk.Op{sdk.DeleteOp("a", sdk.WriteOptions{}), sdk.DeleteOp("a", sdk.WriteOptions{ETag: "1"})}, sdk.Conflict},
	}
	for _, c := range cases {
		if got := sdk.CodeOf(CheckTransact(c.ops, lookup)); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}

func TestRecordEvent(t *testing.T) {
	r := NewRecord(context.Background(), "orders", sdk.Message{PubSub: "ps", Topic: "t", Data: []byte("x"), Metadata: map[string]string{"k": "v"}})
	e := r.Event()
	if e.SpecVersion != "1.0" || e.Source != "orders" || e.Type != DefaultEventType || e.DataContentType != DefaultContentType || e.ID != r.ID {
		t.Fatalf("event = %+v", e)
	}
	e.Data[0] = 'y'
	if string(r.Data) != "x" {
		t.Fatalf("Event shares data with the record")
	}
	d := r.DeadLettered("dead")
	if d.Topic != "dead" || r.Topic != "t" || d.ID != r.ID || d.Metadata["k"] != "v" {
		t.Fatalf("DeadLettered = %+v", d)
	}
}

// TestExpiryFarFuture: a TTL that ends past what int64 nanoseconds hold
// (after 2262) never expires; the sum used to wrap negative, into the past.
func TestExpiryFarFuture(t *testing.T) {
	now := time.Now()
	for _, ttl := range []time.Duration{9e12 * time.Millisecond, math.MaxInt64} {
		e := Expiry(now, ttl)
		if e != math.MaxInt64 || Expired(e, now) || Expired(e, now.Add(100*365*24*time.Hour)) {
			t.Errorf("TTL %v: expiry %d, want the last instant int64 holds, not expired", ttl, e)
		}
	}
	if e := Expiry(now, time.Second); e != now.UnixNano()+int64(time.Second) {
		t.Errorf("TTL 1s: expiry %d, want %d", e, now.UnixNano()+int64(time.Second))
	}
}
