package dapr_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/roam-dev/roam/backend"
	"github.com/roam-dev/roam/internal/daprtest"
	"github.com/roam-dev/roam/sdk"
)

// alo records the deliveries of the at-least-once app, by event label.
var alo = struct {
	sync.Mutex
	attempts map[string]int
	dead     map[string]*sdk.Event
	ok       map[string]bool
}{attempts: map[string]int{}, dead: map[string]*sdk.Event{}, ok: map[string]bool{}}

type aloData struct {
	Label string `json:"label"`
	Fail  int    `json:"fail"` // fail this many deliveries; -1: always
	Bad   bool   `json:"bad"`  // reject as undeliverable
}

// aloApp fails deliveries on purpose: see aloData.
var aloApp = sdk.NewApp("alo", func(env sdk.Env, r *sdk.Router) error {
	sdk.SubscribeJSON(r, "pubsub", "alo.events", func(ctx context.Context, e *sdk.Event, d aloData) error {
		alo.Lock()
		alo.attempts[d.Label]++
		n := alo.attempts[d.Label]
		alo.Unlock()
		switch {
		case d.Bad:
			return sdk.NewError(sdk.InvalidArgument, "never deliverable")
		case d.Fail < 0 || n <= d.Fail:
			return sdk.Errorf(sdk.Unavailable, "failing delivery %d on purpose", n)
		}
		alo.Lock()
		alo.ok[d.Label] = true
		alo.Unlock()
		return nil
	}, sdk.DeadLetter("alo.dead"))
	sdk.Subscribe(r, "pubsub", "alo.dead", func(ctx context.Context, e *sdk.Event) error {
		var d aloData
		json.Unmarshal(e.Data, &d)
		alo.Lock()
		alo.dead[d.Label] = e
		alo.Unlock()
		return nil
	})
	r.HandleRaw("Ping", func(ctx context.Context, b []byte) ([]byte, error) { return b, nil })
	return nil
})

// At-least-once through a real sidecar and Redis streams: a handler that
// fails is called again, up to the Resiliency policy's attempts (4 here),
// after which the event lands on the dead-letter topic, unchanged; one that
// rejects an event (InvalidArgument, DROP) sends it there at once.
func TestAtLeastOnce(t *testing.T) {
	alo.Lock() // a clean record for each run (go test -count)
	clear(alo.attempts)
	clear(alo.dead)
	clear(alo.ok)
	alo.Unlock()
	r := daprtest.StartRedis(t)
	const attempts = 4
	res := daprtest.WriteResources(t, r, daprtest.ResourceOptions{MaxAttempts: attempts, RetryInterval: 20 * time.Millisecond})
	h := startHost(t, hostOptions{appID: "alo", res: res}, aloApp)
	ctx := ctxT(t)
	pub := h.Backend.Publisher("alo")
	for _, d := range []aloData{{Label: "twice", Fail: 2}, {Label: "always", Fail: -1}, {Label: "bad", Bad: true}, {Label: "fine"}} {
		if err := pub.Publish(ctx, sdk.Message{PubSub: "pubsub", Topic: "alo.events", Data: mustJSON(d), Type: "alo.test"}); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		alo.Lock()
		done := alo.ok["twice"] && alo.ok["fine"] && alo.dead["always"] != nil && alo.dead["bad"] != nil
		alo.Unlock()
		if done {
			break
		}
		if time.Now().After(deadline) {
			alo.Lock()
			t.Fatalf("timed out: attempts %v, ok %v, dead %v", alo.attempts, alo.ok, alo.dead)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Every event has reached its final handler; a stray redelivery would
	// come after. Dapr delivers an event again in two ways: the Resiliency
	// retries (every 20ms here, up to attempts), which run inside one
	// delivery, before the Redis streams component acknowledges the entry;
	// and the component's reclaim of entries read and left unacknowledged
	// for processingTimeout (15s, looked for every redeliverInterval, 2s:
	// daprtest.WriteResources). Once both streams have nothing pending in
	// the app's consumer group, neither can deliver again, so the counts
	// below are final: no wait for a guessed time, which would have to be
	// over 17s to see the second kind. (A lost acknowledgement would show
	// within this bound too: the reclaimed entry is delivered again, then
	// acknowledged, and counted below.)
	deadline = time.Now().Add(30 * time.Second)
	for _, topic := range []string{"alo.events", "alo.dead"} {
		for {
			n, err := unacked(r, topic, "alo")
			if err == nil && n == 0 {
				break
			}
			if time.Now().After(deadline) {
				alo.Lock()
				t.Fatalf("%s still has %d entries unacknowledged (%v), which Dapr would redeliver: attempts %v", topic, n, err, alo.attempts)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	alo.Lock()
	defer alo.Unlock()
	want := map[string]int{"twice": 3, "always": attempts, "bad": 1, "fine": 1}
	for l, n := range want {
		if alo.attempts[l] != n {
			t.Errorf("%s delivered %d times, want %d", l, alo.attempts[l], n)
		}
	}
	if alo.dead["twice"] != nil || alo.dead["fine"] != nil {
		t.Errorf("succeeded events reached the dead-letter topic")
	}
	for _, l := range []string{"always", "bad"} {
		e := alo.dead[l]
		if e.Type != "alo.test" || e.Source != "alo" || e.Topic != "alo.dead" || e.PubSub != "pubsub" || e.ID == "" {
			t.Errorf("dead-lettered %s = %+v, want the original type and source on pubsub/alo.dead", l, e)
		}
	}
}

// unacked is how many entries of the Redis stream the consumer group has
// read and not acknowledged: XPENDING's count. Dapr's consumer group is the
// component's consumerID, the app id by default.
func unacked(r *daprtest.Redis, stream, group string) (int, error) {
	rep, err := r.Do("XPENDING", stream, group)
	if err != nil {
		return 0, err
	}
	// The summary form: *4, then :count, the smallest and greatest ids and
	// the consumers.
	rest, ok := strings.CutPrefix(rep, "*4\r\n:")
	if !ok {
		return 0, fmt.Errorf("XPENDING %s %s: %q", stream, group, rep)
	}
	n, _, _ := strings.Cut(rest, "\r\n")
	return strconv.Atoi(n)
}

// fe records the deliveries of the foreign-events app, by event id.
var fe = struct {
	sync.Mutex
	dead map[string][]*sdk.Event
}{dead: map[string][]*sdk.Event{}}

// feApp rejects every event on fe.events, which sends it to fe.dead, where
// its dead-letter handler keeps it.
var feApp = sdk.NewApp("fe", func(env sdk.Env, r *sdk.Router) error {
	sdk.Subscribe(r, "pubsub", "fe.events", func(ctx context.Context, e *sdk.Event) error {
		return sdk.NewError(sdk.InvalidArgument, "not an event this app knows")
	}, sdk.DeadLetter("fe.dead"))
	sdk.Subscribe(r, "pubsub", "fe.dead", func(ctx context.Context, e *sdk.Event) error {
		fe.Lock()
		fe.dead[e.ID] = append(fe.dead[e.ID], e)
		fe.Unlock()
		return nil
	})
	return nil
})

// A CloudEvent that Roam did not publish (here through Dapr's own publish
// API, as another app would) and whose attributes sdk.Event refuses (a time
// with a space for the T, unpadded data_base64) is dropped by the HTTP app
// channel on its topic, and must then reach the app's dead-letter handler
// once, with the attributes that decode; dropping it again on the
// dead-letter topic left it on Dapr's default dead-letter topic, which
// nothing reads.
func TestDeadLetterForeignEvent(t *testing.T) {
	fe.Lock() // a clean record for each run (go test -count)
	clear(fe.dead)
	fe.Unlock()
	r := daprtest.StartRedis(t)
	res := daprtest.WriteResources(t, r, daprtest.ResourceOptions{})
	h := startHost(t, hostOptions{appID: "fe", res: res}, feApp)
	events := map[string]string{
		"foreign-ok":     `{"specversion":"1.0","id":"foreign-ok","source":"billing","type":"billing.paid","time":"2024-05-01T12:00:00Z","datacontenttype":"application/json","data":{"invoice":"43"}}`,
		"foreign-time":   `{"specversion":"1.0","id":"foreign-time","source":"billing","type":"billing.paid","time":"2024-05-01 12:00:00","datacontenttype":"application/json","data":{"invoice":"42"}}`,
		"foreign-base64": `{"specversion":"1.0","id":"foreign-base64","source":"billing","type":"billing.pdf","datacontenttype":"application/pdf","data_base64":"JVBERi0"}`,
	}
	for _, ce := range events {
		sidecarPublish(t, h, "fe.events", "application/cloudevents+json", ce)
	}
	// Until every event has reached the dead-letter handler, or one has
	// landed on the default dead-letter topic instead (the old behaviour:
	// then there is no need to wait any longer).
	deadline := time.Now().Add(30 * time.Second)
	for {
		fe.Lock()
		n := len(fe.dead)
		fe.Unlock()
		if n == len(events) {
			break
		}
		if l := xlen(t, r, backend.DefaultDeadLetterTopic); l > 0 {
			t.Fatalf("%d event(s) dropped again by the dead-letter handler, left on %q (dead-lettered: %d of %d)", l, backend.DefaultDeadLetterTopic, n, len(events))
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out: %d of %d events reached the dead-letter handler", n, len(events))
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Once neither stream has anything pending for the app, Dapr delivers
	// nothing more (TestAtLeastOnce): the record below is final.
	deadline = time.Now().Add(30 * time.Second)
	for _, topic := range []string{"fe.events", "fe.dead"} {
		for {
			n, err := unacked(r, topic, "fe")
			if err == nil && n == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s still has %d entries unacknowledged (%v)", topic, n, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	if l := xlen(t, r, backend.DefaultDeadLetterTopic); l > 0 {
		t.Errorf("%d event(s) left on %q", l, backend.DefaultDeadLetterTopic)
	}
	fe.Lock()
	defer fe.Unlock()
	for id := range events {
		if len(fe.dead[id]) != 1 {
			t.Fatalf("%s reached the dead-letter handler %d times, want once", id, len(fe.dead[id]))
		}
		e := fe.dead[id][0]
		if e.Source != "billing" || e.Topic != "fe.dead" || e.PubSub != "pubsub" {
			t.Errorf("%s = %+v, want source billing on pubsub/fe.dead", id, e)
		}
	}
	if e := fe.dead["foreign-ok"][0]; string(e.Data) != `{"invoice":"43"}` || !e.Time.Equal(time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)) {
		t.Errorf("foreign-ok: data %s, time %v", e.Data, e.Time)
	}
	// The time that does not decode is left out; the rest is as sent.
	if e := fe.dead["foreign-time"][0]; e.Type != "billing.paid" || string(e.Data) != `{"invoice":"42"}` || !e.Time.IsZero() {
		t.Errorf("foreign-time: type %q, data %s, time %v; want billing.paid, the data, no time", e.Type, e.Data, e.Time)
	}
	// Data that does not decode is not lost: the envelope is the data.
	e := fe.dead["foreign-base64"][0]
	var env map[string]any
	if e.DataContentType != "application/cloudevents+json" || json.Unmarshal(e.Data, &env) != nil || env["data_base64"] != "JVBERi0" || env["id"] != "foreign-base64" {
		t.Errorf("foreign-base64: %s %s, want the envelope as received", e.DataContentType, e.Data)
	}
}

// sidecarPublish publishes body on pubsub/topic through the sidecar's own
// publish API, as an app that is not Roam would.
func sidecarPublish(t *testing.T, h *hostOnDapr, topic, contentType, body string) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctxT(t), http.MethodPost, "http://"+h.Sidecar.HTTPAddr()+"/v1.0/publish/pubsub/"+topic, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("publish on %s: %s", topic, resp.Status)
	}
}

// xlen is the length of a Redis stream (0 when there is none).
func xlen(t *testing.T, r *daprtest.Redis, stream string) int {
	t.Helper()
	rep, err := r.Do("XLEN", stream)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(rep, ":")))
	if err != nil {
		t.Fatalf("XLEN %s: %q", stream, rep)
	}
	return n
}

// selfApp subscribes to a topic that is its own dead-letter topic (as an
// app subscribed to the default dead-letter topic is) and rejects every
// event there.
var selfApp = sdk.NewApp("selfdl", func(env sdk.Env, r *sdk.Router) error {
	sdk.Subscribe(r, "pubsub", "selfdl.dead", func(ctx context.Context, e *sdk.Event) error {
		selfDL.Add(1)
		return sdk.NewError(sdk.InvalidArgument, "rejected on purpose")
	}, sdk.DeadLetter("selfdl.dead"))
	return nil
})

var selfDL atomic.Int64

// An event that fails on a subscription's own dead-letter topic is parked
// on topic + ".parked", once, rather than sent back to it for ever (before,
// the handler saw it about 2,000 times a second).
func TestOwnDeadLetterTopicParks(t *testing.T) {
	selfDL.Store(0)
	r := daprtest.StartRedis(t)
	res := daprtest.WriteResources(t, r, daprtest.ResourceOptions{})
	h := startHost(t, hostOptions{appID: "selfdl", res: res}, selfApp)
	sidecarPublish(t, h, "selfdl.dead", "application/json", `{"n":1}`)
	deadline := time.Now().Add(30 * time.Second)
	for xlen(t, r, "selfdl.dead.parked") == 0 {
		if n := selfDL.Load(); n > 1 {
			t.Fatalf("the handler saw the event %d times and it is not parked: it loops", n)
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out: the event is not parked (handler calls: %d)", selfDL.Load())
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Once the topic has nothing pending, Dapr delivers nothing more.
	for {
		n, err := unacked(r, "selfdl.dead", "selfdl")
		if err == nil && n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("selfdl.dead still has %d entries unacknowledged (%v)", n, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := selfDL.Load(); n != 1 {
		t.Errorf("the handler saw the event %d times, want once", n)
	}
	if n := xlen(t, r, "selfdl.dead.parked"); n != 1 {
		t.Errorf("%d events parked, want 1", n)
	}
}
