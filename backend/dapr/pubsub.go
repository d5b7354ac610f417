package dapr

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	runtimev1pb "github.com/dapr/dapr/pkg/proto/runtime/v1"

	"github.com/roam-dev/roam/backend"
	"github.com/roam-dev/roam/backend/internal/core"
	"github.com/roam-dev/roam/sdk"
)

// ---- publishing ----

// Publisher returns a publisher whose events carry appID as their source.
func (b *Backend) Publisher(appID string) sdk.Publisher { return publisher{b, appID} }

type publisher struct {
	b   *Backend
	app string
}

// cloudEventType is the content type under which Dapr keeps an envelope as
// it is instead of wrapping it in one of its own.
const cloudEventType = "application/cloudevents+json"

func (p publisher) Publish(ctx context.Context, m sdk.Message) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := core.CheckMessage(m); err != nil {
		return err
	}
	if p.b.isClosed() {
		return closedErr()
	}
	env, err := envelope(core.NewRecord(ctx, p.app, m))
	if err != nil {
		return sdk.Errorf(sdk.Internal, "publish %s/%s: %v", m.PubSub, m.Topic, err)
	}
	return p.b.sc.publish(ctx, m.PubSub, m.Topic, env, cloudEventType, m.Metadata)
}

// envelope renders a record as a CloudEvents 1.0 JSON envelope: JSON data
// as "data", text as a "data" string (as Dapr writes text), anything else
// as "data_base64".
func envelope(r *core.Record) ([]byte, error) {
	ce := map[string]any{
		"specversion":     "1.0",
		"id":              r.ID,
		"source":          r.Source,
		"type":            r.Type,
		"time":            r.Time.Format(time.RFC3339Nano),
		"datacontenttype": r.DataContentType,
	}
	if r.TraceParent != "" {
		// Dapr keeps an envelope's trace fields when it has a traceid, and
		// puts its own in otherwise: the event then continues the host's
		// producer span whatever the sidecar's tracing configuration.
		// tracestate too, even empty: Dapr fills in its own otherwise,
		// which belongs to another span.
		ce["traceparent"], ce["traceid"], ce["tracestate"] = r.TraceParent, r.TraceParent, r.TraceState
	}
	switch {
	case len(r.Data) == 0:
	case isJSONType(r.DataContentType) && json.Valid(r.Data):
		ce["data"] = json.RawMessage(r.Data)
	case strings.HasPrefix(r.DataContentType, "text/") && utf8.Valid(r.Data):
		ce["data"] = string(r.Data)
	default:
		ce["data_base64"] = base64.StdEncoding.EncodeToString(r.Data)
	}
	return json.Marshal(ce)
}

func isJSONType(ct string) bool {
	if i := strings.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	ct = strings.TrimSpace(ct)
	return ct == "" || ct == "application/json" || ct == "text/json" || strings.HasSuffix(ct, "+json")
}

// ---- subscriptions ----

type routeKey struct{ pubsub, topic string }

// route is one Dapr subscription and the local subscriptions it feeds.
type route struct {
	key  routeKey
	dl   string // dead-letter topic
	path string // app-channel path of programmatic deliveries
	// cyclic: the route is on a cycle of this backend's dead-letter
	// topics, whose events lapLocked follows.
	cyclic bool
	subs   []localSub
}

type localSub struct {
	sub backend.Subscription
	d   backend.Deliverer
}

// eventsPrefix is where programmatic subscriptions are delivered.
const eventsPrefix = "/dapr/roam/events/"

func routePath(k routeKey) string {
	return eventsPrefix + url.PathEscape(k.pubsub) + "/" + url.PathEscape(k.topic)
}

func (b *Backend) registeredLocked(s backend.Subscription) bool {
	if r := b.routes[routeKey{s.PubSub, s.Topic}]; r != nil {
		for _, x := range r.subs {
			if x.sub.AppID == s.AppID {
				return true
			}
		}
	}
	return false
}

// Subscribe registers subs. Subscriptions on a topic new to this backend
// become Dapr subscriptions: programmatic ones while the sidecar has not yet
// read the app's subscriptions (it reads them once, when the app's port
// opens), streaming ones after that or when the sidecar has no app channel.
// Subscriptions on a topic already subscribed here join its Dapr
// subscription, and must then name the same dead-letter topic.
func (b *Backend) Subscribe(subs []backend.Subscription, d backend.Deliverer) error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return closedErr()
	}
	if err := core.CheckSubscriptions(subs, d, b.registeredLocked); err != nil {
		b.mu.Unlock()
		return err
	}
	fresh := map[routeKey]*route{}
	var order []routeKey
	for _, s := range subs {
		rk := routeKey{s.PubSub, s.Topic}
		dl := parkedTopic(s.Topic, core.DeadLetterTopic(s, b.dlTopic))
		if dl == s.Topic+parkedSuffix {
			b.log.Info("dapr: the subscription's dead-letter topic is its own topic; events that fail there are parked on another", "app", s.AppID, "pubsub", s.PubSub, "topic", s.Topic, "parked", dl)
		}
		r := b.routes[rk]
		if r == nil {
			r = fresh[rk]
		}
		if r == nil {
			r = &route{key: rk, dl: dl, path: routePath(rk)}
			fresh[rk] = r
			order = append(order, rk)
		}
		if r.dl != dl {
			b.mu.Unlock()
			return sdk.Errorf(sdk.InvalidArgument, "subscribe %s to %s/%s with dead-letter topic %q: another app of this host subscribes to it with %q, and on Dapr one subscription per topic has one dead-letter topic",
				s.AppID, s.PubSub, s.Topic, dl, r.dl)
		}
	}
	programmatic := b.info.appPort > 0 && !b.listed
	if !programmatic && len(fresh) > 0 && b.grpc == nil {
		b.mu.Unlock()
		return sdk.NewError(sdk.FailedPrecondition, "subscribe: the sidecar has already read this app's subscriptions (or has no app channel), and later subscriptions stream over its gRPC API, which does not answer")
	}
	for _, s := range subs {
		rk := routeKey{s.PubSub, s.Topic}
		r := b.routes[rk]
		if r == nil {
			r = fresh[rk]
		}
		r.subs = append(r.subs, localSub{s, d})
	}
	var streams []*stream
	for _, rk := range order {
		b.routes[rk] = fresh[rk]
		if programmatic {
			b.order = append(b.order, rk)
		} else {
			st := newStream(b, fresh[rk])
			b.streams = append(b.streams, st)
			streams = append(streams, st)
		}
	}
	cycles := b.cyclesLocked(order)
	b.mu.Unlock()
	for _, c := range cycles {
		b.log.Warn("dapr: the dead-letter topics of this host's subscriptions form a cycle; Dapr would pass an event that fails on all of them round it for ever, so the host parks it on <topic>.parked (the last topic it failed on) when it comes back by dead-letter to a topic it failed on, as far as this process saw it go round",
			"pubsub", c[0].pubsub, "cycle", cycleString(c))
	}
	for _, st := range streams {
		go st.run()
	}
	// Return once the streams are open, so that a failure shows here.
	var first error
	for _, st := range streams {
		if err := st.waitReady(30 * time.Second); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// programmatic returns the programmatic subscriptions and notes that the
// sidecar has read them.
func (b *Backend) programmatic() []*route {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.listed = true
	out := make([]*route, 0, len(b.order))
	for _, k := range b.order {
		out = append(out, b.routes[k])
	}
	return out
}

// routeByPath finds the route of a programmatic delivery.
func (b *Backend) routeByPath(path string) *route {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, k := range b.order {
		if r := b.routes[k]; r.path == path || pathUnescape(r.path) == path {
			return r
		}
	}
	return nil
}

func (b *Backend) routeByName(pubsub, topic string) *route {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.routes[routeKey{pubsub, topic}]
}

// parkedSuffix names the topic where a subscription whose dead-letter
// topic is its own topic sends the events that fail there.
const parkedSuffix = ".parked"

// parkedTopic is the dead-letter topic a subscription to topic is given
// when dl is its dead-letter topic. An app that subscribes to a dead-letter
// topic itself (the default one, say) gets that very topic as its own
// dead-letter topic, and Dapr would then send an event that fails there
// back to it, for ever: a handler that rejects it spun through about 2,000
// deliveries a second. The embedded backend parks such an event; Dapr has
// no place of its own for it, so it goes to topic + ".parked", which keeps it
// in the broker for an operator to see, and which nothing subscribes to
// unless someone chooses to.
func parkedTopic(topic, dl string) string {
	if dl == topic {
		return topic + parkedSuffix
	}
	return dl
}

// cyclesLocked marks the routes on a cycle of dead-letter topics among
// this backend's routes (cyclic), and returns the cycles that pass
// through the routes of keys (those just subscribed), each once, as the
// routes in dead-letter order from the first of keys on it.
func (b *Backend) cyclesLocked(keys []routeKey) [][]routeKey {
	var out [][]routeKey
	seen := map[routeKey]bool{}
	for _, k := range keys {
		if seen[k] {
			continue
		}
		var path []routeKey
		for at := k; ; {
			r := b.routes[at]
			if r == nil || slices.Contains(path, at) {
				break
			}
			path = append(path, at)
			at = routeKey{at.pubsub, r.dl}
			if at == k {
				for _, x := range path {
					seen[x] = true
					b.routes[x].cyclic = true
				}
				out = append(out, path)
				break
			}
		}
	}
	return out
}

func cycleString(c []routeKey) string {
	var sb strings.Builder
	for _, k := range c {
		sb.WriteString(k.topic + " -> ")
	}
	return sb.String() + c[0].topic
}

// trailKey names an event for lapLocked: its pub/sub and CloudEvent id.
type trailKey struct{ pubsub, id string }

// maxTrails bounds Backend.trails; past it the map is cleared, as dedup is.
const maxTrails = 10000

// lapLocked stops an event that Dapr would dead-letter round a cycle of
// dead-letter topics for ever (two subscriptions naming each other's
// topics). Dapr dead-letters on its own, after the Resiliency policy's
// last attempt, and tells the app neither which attempt a delivery is, nor
// that it is the last, nor (over gRPC) where a dead-lettered event comes
// from. So the backend parks the event when it comes back, instead of when
// it fails for the last time, by its CloudEvent id (which Dapr keeps when
// it dead-letters): it notes the topics of the cycle that the event is
// delivered on, in order. An event that is delivered on one it left for
// another has failed for good on each since (an event moves from topic to
// topic only by dead-letter), and lapLocked returns them, oldest first,
// with loops true. Deliveries on the topic it was last delivered on are
// Dapr's retries. The topic an event was published on (its envelope's,
// over HTTP; "" or r's own over gRPC) starts its notes when it is another.
//
// The notes are this process's, in memory: after a restart, or when
// another replica of the app took one of the deliveries, the event goes
// round once more before it is parked. deliver drops an event's notes
// once it is handled; those of a parked event stay, so that Dapr
// delivering the same message again parks it again rather than hand it to
// the handler.
func (b *Backend) lapLocked(r *route, id, topic string) (failed []string, loops bool) {
	if id == "" || !r.cyclic {
		return nil, false
	}
	k := trailKey{r.key.pubsub, id}
	trail := b.trails[k]
	switch {
	case len(trail) > 0 && trail[len(trail)-1] == r.key.topic:
		return nil, false // Dapr retrying
	case slices.Contains(trail, r.key.topic):
		return trail, true
	case trail == nil && topic != "" && topic != r.key.topic:
		trail = []string{topic, r.key.topic}
	default:
		trail = append(slices.Clip(trail), r.key.topic)
	}
	if _, ok := b.trails[k]; !ok && len(b.trails) >= maxTrails {
		clear(b.trails)
	}
	b.trails[k] = trail
	return nil, false
}

// park publishes ev, which came back by dead-letter to r's topic after it
// failed for good on each topic of failed, to the parked topic of the last
// of them (see parkedTopic), and returns Dapr's status: SUCCESS once it is
// published, RETRY otherwise (the next delivery parks it again).
func (b *Backend) park(ctx context.Context, r *route, ev *sdk.Event, failed []string) string {
	to := failed[len(failed)-1] + parkedSuffix
	env, err := envelope(&core.Record{
		ID: ev.ID, Source: ev.Source, Type: ev.Type, Subject: ev.Subject, Time: ev.Time, DataContentType: ev.DataContentType,
		PubSub: r.key.pubsub, Topic: to, TraceParent: ev.TraceParent, TraceState: ev.TraceState, Data: ev.Data,
	})
	if err == nil {
		err = b.sc.publish(ctx, r.key.pubsub, to, env, cloudEventType, nil)
	}
	attrs := []any{"pubsub", r.key.pubsub, "topic", r.key.topic, "id", ev.ID, "failed_on", strings.Join(failed, " -> "), "parked", to}
	if err != nil {
		b.log.Error("dapr: parking an event that came back by dead-letter to a topic it failed on failed; asking for a retry", append(attrs, "err", err)...)
		return statusRetry
	}
	b.log.Error("dapr: event came back by dead-letter to a topic it failed on; parked, not delivered again", attrs...)
	return statusSuccess
}

// deadLettered reports whether an event delivered on r, whose envelope
// names topic as the one it was published on, has been dead-lettered: it
// was published on another topic (Dapr writes the publish topic into the
// envelope and keeps it when it dead-letters), or r's topic is the
// dead-letter topic of a subscription of this backend. The second sign
// covers envelopes that name no topic. (A subscription's dead-letter topic
// is never its own: see parkedTopic.)
func (b *Backend) deadLettered(r *route, topic string) bool {
	if topic != "" && topic != r.key.topic {
		return true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, x := range b.routes {
		if x.key.pubsub == r.key.pubsub && x.dl == r.key.topic {
			return true
		}
	}
	return false
}

func pathUnescape(p string) string {
	u, err := url.PathUnescape(p)
	if err != nil {
		return p
	}
	return u
}

// Dapr's status replies to a delivery.
const (
	statusSuccess = "SUCCESS"
	statusRetry   = "RETRY"
	statusDrop    = "DROP"
)

// deliver hands ev to every local subscription of r that has not yet
// handled it and returns Dapr's status: SUCCESS when all have, DROP when
// the only failures say the event can never succeed (InvalidArgument: Dapr
// sends it to the dead-letter topic), RETRY otherwise. The event's pub/sub
// and topic are those it was delivered on: a dead-lettered event arrives
// with the topic of its dead-letter subscription. An event that Dapr
// dead-lettered back to a topic where it already failed for good (a cycle
// of dead-letter topics) is parked instead of delivered (lapLocked).
func (b *Backend) deliver(ctx context.Context, r *route, ev *sdk.Event) string {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return statusRetry
	}
	b.inflight.Add(1)
	// ev.Topic is still the delivery's: over HTTP, the topic the event
	// was published on.
	if failed, loops := b.lapLocked(r, ev.ID, ev.Topic); loops {
		b.mu.Unlock()
		defer b.inflight.Done()
		ctx, stop := mergeCancel(ctx, b.ctx)
		defer stop()
		return b.park(ctx, r, ev, failed)
	}
	subs := append([]localSub(nil), r.subs...)
	var done map[int]bool
	if len(subs) > 1 {
		done = b.dedup[ev.ID]
		if done == nil {
			done = map[int]bool{}
			if len(b.dedup) >= 10000 {
				clear(b.dedup)
			}
			b.dedup[ev.ID] = done
		}
		done = cloneDone(done)
	}
	b.mu.Unlock()
	defer b.inflight.Done()

	ctx, stop := mergeCancel(ctx, b.ctx)
	defer stop()
	ev.PubSub, ev.Topic = r.key.pubsub, r.key.topic
	retry, drop := false, false
	for i, ls := range subs {
		if done != nil && done[i] {
			continue
		}
		err := call(ctx, ls, ev)
		switch {
		case err == nil:
			b.report(ls.sub, "ok")
		case sdk.IsCode(err, sdk.InvalidArgument):
			drop = true
			b.report(ls.sub, "deadletter")
			b.log.Warn("dapr: event rejected by its handler; dropping it to the dead-letter topic", "app", ls.sub.AppID,
				"pubsub", r.key.pubsub, "topic", r.key.topic, "id", ev.ID, "deadletter", r.dl, "err", err)
		default:
			retry = true
			b.report(ls.sub, "retry")
			b.log.Debug("dapr: event handler failed; asking for a retry", "app", ls.sub.AppID, "topic", r.key.topic, "id", ev.ID, "err", err)
			continue
		}
		if done != nil {
			done[i] = true
		}
	}
	if done != nil {
		b.mu.Lock()
		if retry {
			b.dedup[ev.ID] = done
		} else {
			delete(b.dedup, ev.ID)
		}
		b.mu.Unlock()
	}
	if !retry && !drop && r.cyclic {
		b.mu.Lock()
		delete(b.trails, trailKey{r.key.pubsub, ev.ID})
		b.mu.Unlock()
	}
	switch {
	case retry:
		return statusRetry
	case drop:
		return statusDrop
	}
	return statusSuccess
}

func cloneDone(m map[int]bool) map[int]bool {
	c := make(map[int]bool, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

// call runs one deliverer on a copy of ev, turning a panic into an error.
func call(ctx context.Context, ls localSub, ev *sdk.Event) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = sdk.Errorf(sdk.Internal, "event handler panicked: %v", p)
		}
	}()
	c := *ev
	c.Data = append([]byte(nil), ev.Data...)
	return ls.d(ctx, ls.sub, &c)
}

func (b *Backend) report(sub backend.Subscription, outcome string) {
	if b.opts.OnDeliver != nil {
		b.opts.OnDeliver(sub, outcome)
	}
}

// mergeCancel returns ctx, also cancelled when other is.
func mergeCancel(ctx, other context.Context) (context.Context, func()) {
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(other, cancel)
	return ctx, func() { stop(); cancel() }
}

// eventFromProto builds an event from a gRPC delivery (app channel or
// streaming subscription).
func eventFromProto(in *runtimev1pb.TopicEventRequest) *sdk.Event {
	ev := &sdk.Event{
		SpecVersion:     in.GetSpecVersion(),
		ID:              in.GetId(),
		Source:          in.GetSource(),
		Type:            in.GetType(),
		DataContentType: in.GetDataContentType(),
		PubSub:          in.GetPubsubName(),
		Topic:           in.GetTopic(),
		Data:            in.GetData(),
	}
	if x := in.GetExtensions().GetFields(); x != nil {
		if t, err := time.Parse(time.RFC3339Nano, x["time"].GetStringValue()); err == nil {
			ev.Time = t
		}
		ev.Subject = x["subject"].GetStringValue()
		ev.TraceParent = x["traceparent"].GetStringValue()
		ev.TraceState = x["tracestate"].GetStringValue()
	}
	return ev
}

func protoStatus(s string) runtimev1pb.TopicEventResponse_TopicEventResponseStatus {
	switch s {
	case statusSuccess:
		return runtimev1pb.TopicEventResponse_SUCCESS
	case statusDrop:
		return runtimev1pb.TopicEventResponse_DROP
	}
	return runtimev1pb.TopicEventResponse_RETRY
}

// ---- streaming subscriptions ----

// stream is one streaming subscription over the gRPC API, reopened when
// the connection breaks (a restarted sidecar) until the backend closes.
type stream struct {
	b      *Backend
	r      *route
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}

	readyOnce sync.Once
	ready     chan error
}

func newStream(b *Backend, r *route) *stream {
	ctx, cancel := context.WithCancel(context.Background())
	return &stream{b: b, r: r, ctx: ctx, cancel: cancel, done: make(chan struct{}), ready: make(chan error, 1)}
}

func (s *stream) stop() { s.cancel() }
func (s *stream) wait() { <-s.done }

func (s *stream) signal(err error) {
	s.readyOnce.Do(func() { s.ready <- err })
}

func (s *stream) waitReady(d time.Duration) error {
	select {
	case err := <-s.ready:
		return err
	case <-time.After(d):
		return sdk.Errorf(sdk.Unavailable, "subscribe %s/%s: the sidecar did not open the subscription within %v", s.r.key.pubsub, s.r.key.topic, d)
	}
}

func (s *stream) run() {
	defer close(s.done)
	wait := 100 * time.Millisecond
	for s.ctx.Err() == nil {
		err := s.once()
		if s.ctx.Err() != nil {
			s.signal(nil)
			return
		}
		s.b.log.Warn("dapr: streaming subscription broke; reopening it", "pubsub", s.r.key.pubsub, "topic", s.r.key.topic, "err", err, "in", wait)
		select {
		case <-s.ctx.Done():
		case <-time.After(wait):
		}
		wait = min(2*wait, 2*time.Second)
	}
	s.signal(nil)
}

// once opens the stream and serves it until it breaks.
func (s *stream) once() error {
	what := "subscribe " + s.r.key.pubsub + "/" + s.r.key.topic
	cli, err := s.b.grpc.raw.SubscribeTopicEventsAlpha1(s.ctx)
	if err != nil {
		return s.b.grpcErr(s.ctx, what, err)
	}
	err = cli.Send(&runtimev1pb.SubscribeTopicEventsRequestAlpha1{
		SubscribeTopicEventsRequestType: &runtimev1pb.SubscribeTopicEventsRequestAlpha1_InitialRequest{
			InitialRequest: &runtimev1pb.SubscribeTopicEventsRequestInitialAlpha1{
				PubsubName: s.r.key.pubsub, Topic: s.r.key.topic, DeadLetterTopic: &s.r.dl,
			},
		},
	})
	if err == nil {
		_, err = cli.Recv()
	}
	if err != nil {
		err = s.b.grpcErr(s.ctx, what, err)
		if sdk.CodeOf(err) != sdk.Unavailable {
			s.signal(err)
		}
		return err
	}
	s.signal(nil)
	for {
		resp, err := cli.Recv()
		if err != nil {
			return s.b.grpcErr(s.ctx, what, err)
		}
		in := resp.GetEventMessage()
		if in == nil {
			continue
		}
		st := s.b.deliver(context.Background(), s.r, eventFromProto(in))
		err = cli.Send(&runtimev1pb.SubscribeTopicEventsRequestAlpha1{
			SubscribeTopicEventsRequestType: &runtimev1pb.SubscribeTopicEventsRequestAlpha1_EventProcessed{
				EventProcessed: &runtimev1pb.SubscribeTopicEventsRequestProcessedAlpha1{
					Id: in.GetId(), Status: &runtimev1pb.TopicEventResponse{Status: protoStatus(st)},
				},
			},
		})
		if err != nil {
			return s.b.grpcErr(s.ctx, what, err)
		}
	}
}
