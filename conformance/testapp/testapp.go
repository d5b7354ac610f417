// Package testapp is the conformance app: a Roam app whose methods expose the
// SDK's capabilities one by one (state with ETags, TTL, bulk and
// transactions; publish and subscribe with retries and dead letters; invoke;
// config; errors and panics), so that the app-level vectors in
// conformance/vectors can check any host on any backend through its
// transport alone. It is built natively, for wasip1 and for the browser like
// any other app.
//
// Two methods are not in the vectors: Spin (a loop that never yields or
// returns) and Exit (os.Exit(3), which a wasip1 guest turns into proc_exit).
// They exist for the wasm hosts' robustness tests, which check that a guest
// ignoring its deadline is interrupted and that a guest that dies takes
// only its own instance with it. Natively they refuse to run: there they
// would hold a CPU forever or end the host's process.
package testapp

import (
	"context"
	"encoding/json"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/roam-dev/roam/sdk"
)

//go:generate go run github.com/roam-dev/roam/cmd/roam-jsongen -type Value,putReq,empty,keyReq,keysReq,items,txReq,counter,pubReq,Received,receivedState,topicReq,invokeReq,valueReply,secretReq,failReq,sleepReq

// ID is the conformance app's id.
const ID = "conformance"

// Topics the app subscribes to.
const (
	PubSub      = "pubsub"
	TopicEvent  = "conf.events"
	TopicFlaky  = "conf.flaky"
	TopicDead   = "conf.dead"
	TopicPoison = "conf.poison"
	store       = "statestore"
)

// App registers the conformance app.
var App = sdk.NewApp(ID, func(env sdk.Env, r *sdk.Router) error {
	a := &app{env: env, st: env.State(store)}
	sdk.Handle(r, "Put", a.put)
	sdk.Handle(r, "Get", a.get)
	sdk.Handle(r, "Delete", a.del)
	sdk.Handle(r, "BulkGet", a.bulkGet)
	sdk.Handle(r, "Transact", a.transact)
	sdk.Handle(r, "Increment", a.increment)
	sdk.Handle(r, "Publish", a.publish)
	sdk.Handle(r, "Received", a.received)
	sdk.Handle(r, "Invoke", a.invoke)
	sdk.Handle(r, "Config", a.config)
	sdk.Handle(r, "Secret", a.secret)
	sdk.Handle(r, "Fail", a.fail)
	sdk.Handle(r, "Panic", a.panic)
	sdk.Handle(r, "Sleep", a.sleep)
	sdk.Handle(r, "Spin", a.spin)
	sdk.Handle(r, "Exit", a.exit)
	r.HandleRaw("Echo", func(ctx context.Context, b []byte) ([]byte, error) { return b, nil })
	sdk.Subscribe(r, PubSub, TopicEvent, a.record)
	sdk.Subscribe(r, PubSub, TopicFlaky, a.flaky, sdk.DeadLetter(TopicDead))
	sdk.Subscribe(r, PubSub, TopicPoison, a.poison, sdk.DeadLetter(TopicDead))
	sdk.Subscribe(r, PubSub, TopicDead, a.record)
	return nil
})

type app struct {
	env sdk.Env
	st  sdk.State
}

// Value is a stored value as the vectors see it.
type Value struct {
	Key   string          `json:"key"`
	Value json.RawMessage `json:"value,omitempty"`
	ETag  string          `json:"etag,omitempty"`
	Found bool            `json:"found"`
}

type putReq struct {
	Key      string          `json:"key"`
	Value    json.RawMessage `json:"value"`
	ETag     string          `json:"etag"`
	TTLMs    int             `json:"ttl_ms"`
	IfAbsent bool            `json:"if_absent"`
}

type empty struct{}

func (a *app) put(ctx context.Context, r putReq) (empty, error) {
	return empty{}, a.st.Set(ctx, r.Key, r.Value, sdk.WriteOptions{ETag: r.ETag, TTL: time.Duration(r.TTLMs) * time.Millisecond, IfAbsent: r.IfAbsent})
}

type keyReq struct {
	Key  string `json:"key"`
	ETag string `json:"etag"`
}

func (a *app) get(ctx context.Context, r keyReq) (Value, error) {
	it, err := a.st.Get(ctx, r.Key)
	if err != nil {
		return Value{}, err
	}
	return Value{Key: it.Key, Value: it.Value, ETag: it.ETag, Found: true}, nil
}

func (a *app) del(ctx context.Context, r keyReq) (empty, error) {
	return empty{}, a.st.Delete(ctx, r.Key, sdk.WriteOptions{ETag: r.ETag})
}

type keysReq struct {
	Keys []string `json:"keys"`
}

type items struct {
	Items []Value `json:"items"`
}

func (a *app) bulkGet(ctx context.Context, r keysReq) (items, error) {
	its, err := a.st.BulkGet(ctx, r.Keys)
	if err != nil {
		return items{}, err
	}
	out := items{Items: make([]Value, len(its))}
	for i, it := range its {
		out.Items[i] = Value{Key: it.Key, Value: it.Value, ETag: it.ETag, Found: it.Found()}
	}
	return out, nil
}

type txReq struct {
	Ops []struct {
		Op string `json:"op"` // "set" or "delete"
		putReq
	} `json:"ops"`
}

func (a *app) transact(ctx context.Context, r txReq) (empty, error) {
	ops := make([]sdk.Op, 0, len(r.Ops))
	for _, o := range r.Ops {
		w := sdk.WriteOptions{ETag: o.ETag, TTL: time.Duration(o.TTLMs) * time.Millisecond, IfAbsent: o.IfAbsent}
		switch o.Op {
		case "set":
			ops = append(ops, sdk.SetOp(o.Key, o.Value, w))
		case "delete":
			ops = append(ops, sdk.DeleteOp(o.Key, w))
		default:
			return empty{}, sdk.Errorf(sdk.InvalidArgument, "op %q: use set or delete", o.Op)
		}
	}
	return empty{}, a.st.Transact(ctx, ops)
}

type counter struct {
	N int `json:"n"`
}

func (a *app) increment(ctx context.Context, r keyReq) (counter, error) {
	return sdk.Update(ctx, a.st, r.Key, 1000, func(c counter, _ bool) (counter, error) {
		c.N++
		return c, nil
	})
}

type pubReq struct {
	Topic string          `json:"topic"`
	Data  json.RawMessage `json:"data"`
}

func (a *app) publish(ctx context.Context, r pubReq) (empty, error) {
	return empty{}, a.env.Publisher().Publish(ctx, sdk.Message{PubSub: PubSub, Topic: r.Topic, Data: r.Data, ContentType: "application/json"})
}

// Received is what the app recorded for a topic: each event's data, in
// arrival order, without duplicates.
type Received struct {
	Events []json.RawMessage `json:"events"`
}

type receivedState struct {
	Events []json.RawMessage `json:"events"`
	IDs    []string          `json:"ids"`
}

type topicReq struct {
	Topic string `json:"topic"`
	// Match keeps only events whose data contains it (vectors pass their
	// run id, so reruns on a durable backend don't see each other).
	Match string `json:"match"`
}

func (a *app) received(ctx context.Context, r topicReq) (Received, error) {
	rs, _, err := sdk.GetJSON[receivedState](ctx, a.st, "received/"+r.Topic)
	if err != nil && !sdk.IsCode(err, sdk.NotFound) {
		return Received{}, err
	}
	out := Received{Events: []json.RawMessage{}}
	for _, e := range rs.Events {
		if strings.Contains(string(e), r.Match) {
			out.Events = append(out.Events, e)
		}
	}
	return out, nil
}

// record stores an event's data under its topic, once per event id.
func (a *app) record(ctx context.Context, e *sdk.Event) error {
	_, err := sdk.Update(ctx, a.st, "received/"+e.Topic, 1000, func(rs receivedState, _ bool) (receivedState, error) {
		for _, id := range rs.IDs {
			if id == e.ID {
				return rs, nil
			}
		}
		rs.IDs = append(rs.IDs, e.ID)
		rs.Events = append(rs.Events, json.RawMessage(e.Data))
		return rs, nil
	})
	return err
}

// flaky fails an event's first deliveries: the data's "fail" field says how
// many. It then records the event.
func (a *app) flaky(ctx context.Context, e *sdk.Event) error {
	var d struct {
		Fail int `json:"fail"`
	}
	if err := e.Decode(&d); err != nil {
		return err
	}
	c, err := sdk.Update(ctx, a.st, "attempts/"+e.ID, 1000, func(c counter, _ bool) (counter, error) {
		c.N++
		return c, nil
	})
	if err != nil {
		return err
	}
	if c.N <= d.Fail {
		return sdk.Errorf(sdk.Unavailable, "flaky: failing attempt %d of %d on purpose", c.N, d.Fail)
	}
	return a.record(ctx, e)
}

// poison rejects every event as undeliverable.
func (a *app) poison(ctx context.Context, e *sdk.Event) error {
	return sdk.NewError(sdk.InvalidArgument, "poison: this event can never be handled")
}

type invokeReq struct {
	App    string          `json:"app"`
	Method string          `json:"method"`
	Body   json.RawMessage `json:"body"`
}

func (a *app) invoke(ctx context.Context, r invokeReq) (json.RawMessage, error) {
	out, err := a.env.Invoker().Invoke(ctx, r.App, r.Method, r.Body)
	if err != nil {
		return nil, err
	}
	if len(out) == 0 {
		out = []byte("null")
	}
	return out, nil
}

type valueReply struct {
	Value string `json:"value"`
}

func (a *app) config(ctx context.Context, r keyReq) (valueReply, error) {
	v, err := a.env.Config().Get(ctx, r.Key)
	return valueReply{Value: v}, err
}

type secretReq struct {
	Store string `json:"store"`
	Key   string `json:"key"`
}

func (a *app) secret(ctx context.Context, r secretReq) (valueReply, error) {
	v, err := a.env.Secrets().Get(ctx, r.Store, r.Key)
	return valueReply{Value: v}, err
}

type failReq struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

var codes = map[string]sdk.Code{
	"InvalidArgument": sdk.InvalidArgument, "NotFound": sdk.NotFound, "Conflict": sdk.Conflict,
	"FailedPrecondition": sdk.FailedPrecondition, "Unavailable": sdk.Unavailable,
	"DeadlineExceeded": sdk.DeadlineExceeded, "Internal": sdk.Internal,
}

func (a *app) fail(ctx context.Context, r failReq) (empty, error) {
	c, ok := codes[r.Code]
	if !ok {
		return empty{}, sdk.Errorf(sdk.InvalidArgument, "unknown code %q", r.Code)
	}
	return empty{}, sdk.NewError(c, r.Message)
}

func (a *app) panic(ctx context.Context, r failReq) (empty, error) {
	panic(r.Message)
}

type sleepReq struct {
	Ms int `json:"ms"`
}

func (a *app) sleep(ctx context.Context, r sleepReq) (empty, error) {
	t := time.NewTimer(time.Duration(r.Ms) * time.Millisecond)
	defer t.Stop()
	select {
	case <-t.C:
		return empty{}, nil
	case <-ctx.Done():
		return empty{}, sdk.NewError(sdk.DeadlineExceeded, "sleep interrupted by the request deadline")
	}
}

// SpinLine is what Spin writes to stderr just before its loop, so that a
// test can tell the guest is in it.
const SpinLine = "spin: looping"

// spin loops forever, ignoring ctx: only the host can stop it. (The loop
// is empty once compiled: nothing reads what it would write.)
func (a *app) spin(ctx context.Context, r empty) (empty, error) {
	if runtime.GOARCH != "wasm" {
		return empty{}, sdk.NewError(sdk.FailedPrecondition, "Spin runs only in a wasm guest: natively it would hold a CPU until the process exits")
	}
	os.Stderr.WriteString(SpinLine + "\n")
	for {
	}
}

// exit ends the guest with status 3, as a crash would: not a panic the SDK
// can recover, but the end of the instance.
func (a *app) exit(ctx context.Context, r empty) (empty, error) {
	if runtime.GOARCH != "wasm" {
		return empty{}, sdk.NewError(sdk.FailedPrecondition, "Exit runs only in a wasm guest: natively it would end the host's process")
	}
	os.Exit(3)
	return empty{}, nil
}
