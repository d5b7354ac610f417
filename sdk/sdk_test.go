package sdk_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/roam-dev/roam/sdk"
)

func TestCodeOf(t *testing.T) {
	cases := []struct {
		err  error
		want sdk.Code
	}{
		{nil, sdk.OK},
		{sdk.NewError(sdk.Conflict, "x"), sdk.Conflict},
		{fmt.Errorf("wrapped: %w", sdk.NewError(sdk.NotFound, "x")), sdk.NotFound},
		{context.DeadlineExceeded, sdk.DeadlineExceeded},
		{fmt.Errorf("op: %w", context.Canceled), sdk.Unavailable},
		{errors.New("plain"), sdk.Internal},
	}
	for _, c := range cases {
		if got := sdk.CodeOf(c.err); got != c.want {
			t.Errorf("CodeOf(%v) = %v, want %v", c.err, got, c.want)
		}
	}
	if !errors.Is(fmt.Errorf("w: %w", sdk.NewError(sdk.Conflict, "stale")), &sdk.Error{Code: sdk.Conflict}) {
		t.Error("errors.Is by code failed")
	}
	if got := sdk.NewError(sdk.Conflict, "").Error(); got != "Conflict" {
		t.Errorf("empty message reads %q, want the code's name", got)
	}
	if got := fmt.Errorf("reserve: %w", sdk.NewError(sdk.FailedPrecondition, "out of stock")).Error(); got != "reserve: out of stock" {
		t.Errorf("message chain = %q", got)
	}
}

func TestValidAppID(t *testing.T) {
	for _, id := range []string{"orders", "a", "shop-2", "x1"} {
		if err := sdk.ValidAppID(id); err != nil {
			t.Errorf("%q: %v", id, err)
		}
	}
	for _, id := range []string{"", "Orders", "-a", "a-", "a_b", "a.b", string(make([]byte, 64))} {
		if err := sdk.ValidAppID(id); err == nil {
			t.Errorf("%q accepted", id)
		}
	}
}

func TestEventJSON(t *testing.T) {
	at := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	e := sdk.Event{SpecVersion: "1.0", ID: "1", Source: "orders", Type: "roam.event", Time: at,
		DataContentType: "application/json", PubSub: "pubsub", Topic: "t", Data: []byte(`{"a":1}`)}
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"specversion":"1.0","id":"1","source":"orders","type":"roam.event","time":"2026-11-26T10:00:00Z","datacontenttype":"application/json","pubsubname":"pubsub","topic":"t","data":{"a":1}}`
	if string(b) != want {
		t.Fatalf("got  %s\nwant %s", b, want)
	}
	var back sdk.Event
	if err := json.Unmarshal(b, &back); err != nil || string(back.Data) != `{"a":1}` || !back.Time.Equal(at) {
		t.Fatalf("round trip: %+v %v", back, err)
	}
	// Binary data travels as data_base64; text from Dapr as a JSON string.
	bin := sdk.Event{SpecVersion: "1.0", ID: "2", DataContentType: "application/octet-stream", Data: []byte{0, 1, 2}}
	b, _ = json.Marshal(bin)
	var back2 sdk.Event
	if err := json.Unmarshal(b, &back2); err != nil || string(back2.Data) != "\x00\x01\x02" {
		t.Fatalf("binary round trip: %s %v %v", b, back2.Data, err)
	}
	var text sdk.Event
	if err := json.Unmarshal([]byte(`{"specversion":"1.0","id":"3","datacontenttype":"text/plain","data":"hello"}`), &text); err != nil || string(text.Data) != "hello" {
		t.Fatalf("text: %q %v", text.Data, err)
	}
}

type req struct {
	N int `json:"n"`
}

// Apps register once per process, at init, like real ones.
var (
	doubler = sdk.NewApp("sdk-test-handle", func(env sdk.Env, r *sdk.Router) error {
		sdk.Handle(r, "Double", func(ctx context.Context, q req) (req, error) { return req{q.N * 2}, nil })
		return nil
	})
	emptyApp = sdk.NewApp("sdk-test-empty", func(env sdk.Env, r *sdk.Router) error { return nil })
)

func TestHandleDecoding(t *testing.T) {
	r, err := doubler.Setup(nil)
	if err != nil {
		t.Fatal(err)
	}
	h, _ := r.Method("Double")
	out, err := h(context.Background(), []byte(`{"n":21}`))
	if err != nil || string(out) != `{"n":42}` {
		t.Fatalf("got %s %v", out, err)
	}
	if out, err := h(context.Background(), nil); err != nil || string(out) != `{"n":0}` {
		t.Fatalf("empty body: %s %v", out, err)
	}
	if _, err := h(context.Background(), []byte(`{"n":"x"}`)); sdk.CodeOf(err) != sdk.InvalidArgument {
		t.Fatalf("wrong type: %v", err)
	}
}

func TestSetupWithoutHandlers(t *testing.T) {
	if _, err := emptyApp.Setup(nil); sdk.CodeOf(err) != sdk.FailedPrecondition {
		t.Fatalf("got %v", err)
	}
}
