package dapr

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/emptypb"

	commonv1pb "github.com/dapr/dapr/pkg/proto/common/v1"
	runtimev1pb "github.com/dapr/dapr/pkg/proto/runtime/v1"

	"github.com/roam-dev/roam/abi"
	"github.com/roam-dev/roam/host"
	"github.com/roam-dev/roam/internal/tracectx"
	"github.com/roam-dev/roam/sdk"
)

// The app channel: what the sidecar calls on the host's port.
//
// Over HTTP (--app-protocol http, the default):
//
//	GET  /dapr/subscribe            the programmatic subscriptions
//	POST /dapr/roam/events/{ps}/{t} a CloudEvent; replies {"status": SUCCESS|RETRY|DROP}
//	POST /{method}                  an invocation, served by the host (its default app)
//
// Over gRPC (--app-protocol grpc) the same port speaks h2c, and Dapr's
// AppCallback service answers ListTopicSubscriptions, OnTopicEvent and
// OnInvoke; OnInvoke runs the method through the host's HTTP handler, so an
// invocation takes the same path (limits, validation, metrics) either way.
//
// With Options.AppAPIToken set, every call of the app channel must carry it
// (header or metadata dapr-api-token): over HTTP a call without it gets 401,
// over gRPC Unauthenticated. The host's own API (/v1/apps/..., /healthz,
// /readyz, /metrics, and the state sync API when on) is not the app channel
// and stays as it is, unless a request carries a token, which must then be
// the right one; except that /readyz also answers 503 while the sidecar does
// not answer (ready.go). APP_API_TOKEN is the sidecar's credential: the
// probes, the metrics scraper and an ingress, which call the host's API,
// do not hold it, and the manifests' NetworkPolicy is what admits them.
// The state sync API has a token of its own (host.EnvStateAPIToken).

// AppHandler wraps the host's handler with the app channel.
func (b *Backend) AppHandler(next http.Handler) http.Handler {
	h := &appChannel{b: b, next: next}
	h.grpc = grpc.NewServer(grpc.UnaryInterceptor(h.authUnary))
	runtimev1pb.RegisterAppCallbackServer(h.grpc, &appCallback{h: h})
	return h
}

type appChannel struct {
	b    *Backend
	next http.Handler
	grpc *grpc.Server
}

func (h *appChannel) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.ProtoMajor == 2 && strings.HasPrefix(r.Header.Get("Content-Type"), "application/grpc") {
		h.grpc.ServeHTTP(w, r)
		return
	}
	p := r.URL.Path
	channel := strings.HasPrefix(p, "/dapr/") ||
		strings.Count(p, "/") == 1 && !(r.Method == http.MethodGet && (p == "/healthz" || p == "/readyz" || p == "/metrics"))
	fromSidecar := false
	if tok := h.b.opts.AppAPIToken; tok != "" {
		got := r.Header.Get(apiTokenHeader)
		if (channel || got != "") && !tokenOK(got, tok) {
			writeJSON(w, http.StatusUnauthorized, errorBody(sdk.FailedPrecondition,
				"unauthorized: the dapr-api-token header is missing or does not match APP_API_TOKEN"))
			return
		}
		fromSidecar = got != ""
	}
	if fromSidecar && !strings.HasPrefix(p, "/dapr/") && strings.Count(p, "/") > 1 {
		h.notAMethod(w, p)
		return
	}
	switch {
	case p == "/dapr/subscribe" && r.Method == http.MethodGet:
		h.serveSubscribe(w)
	case strings.HasPrefix(p, eventsPrefix):
		h.serveEvent(w, r)
	case p == "/readyz" && (r.Method == http.MethodGet || r.Method == http.MethodHead):
		h.serveReady(w, r) // not ready while the sidecar does not answer (ready.go)
	default:
		h.next.ServeHTTP(w, r)
	}
}

// notAMethod refuses a call from the sidecar whose path has more than one
// segment. Dapr's app channel invokes /{method}; a caller that may invoke
// this app could otherwise name one of the host's own routes as the method
// (v1/apps/other/methods/M, v1/apps/me/state/..., debug/pprof/...) and
// reach another app served here, the app's raw state or the profiler,
// past the access policy that let it call this app's methods. Over HTTP
// the sidecar is told apart by its token (APP_API_TOKEN); without one, any
// client reaching the port has the host's API anyway.
func (h *appChannel) notAMethod(w http.ResponseWriter, p string) {
	writeJSON(w, http.StatusNotFound, errorBody(sdk.NotFound, fmt.Sprintf(
		"no method %s: the app channel invokes methods of %s by a name of one path segment, not the host's other routes",
		sdk.QuoteName(strings.TrimPrefix(p, "/")), h.b.appName())))
}

// appName names the sidecar's app in messages.
func (b *Backend) appName() string {
	if id := b.SidecarAppID(); id != "" {
		return "app " + id
	}
	return "this app"
}

// tokenOK compares the tokens' digests in constant time: compared as they
// are, a token of another length was refused at once, which told a client
// timing the refusals the token's length.
func tokenOK(got, want string) bool {
	g, w := sha256.Sum256([]byte(got)), sha256.Sum256([]byte(want))
	return subtle.ConstantTimeCompare(g[:], w[:]) == 1
}

type subscriptionJSON struct {
	PubSubName      string            `json:"pubsubname"`
	Topic           string            `json:"topic"`
	Route           string            `json:"route"`
	DeadLetterTopic string            `json:"deadLetterTopic,omitempty"`
	Metadata        map[string]string `json:"metadata,omitempty"`
}

func (h *appChannel) serveSubscribe(w http.ResponseWriter) {
	out := []subscriptionJSON{}
	for _, r := range h.b.programmatic() {
		out = append(out, subscriptionJSON{PubSubName: r.key.pubsub, Topic: r.key.topic, Route: r.path, DeadLetterTopic: r.dl})
	}
	b, _ := json.Marshal(out)
	writeJSON(w, http.StatusOK, b)
}

func (h *appChannel) serveEvent(w http.ResponseWriter, r *http.Request) {
	rt := h.b.routeByPath(r.URL.Path)
	if rt == nil {
		// Not a subscription of this host (any more): Dapr drops on 404.
		writeJSON(w, http.StatusNotFound, errorBody(sdk.NotFound, "no subscription at "+r.URL.Path))
		return
	}
	body, err := readBody(r.Body)
	if errors.Is(err, errTooBig) {
		h.b.log.Error("dapr: delivery of more than 64 MiB; dropping it to the dead-letter topic", "path", r.URL.Path)
		writeStatus(w, statusDrop)
		return
	}
	if err != nil {
		writeStatus(w, statusRetry)
		return
	}
	ev := new(sdk.Event)
	if err := json.Unmarshal(body, ev); err != nil {
		// A producer other than Roam (Dapr's publish API, another app) may
		// send attributes that sdk.Event refuses: a time that is not RFC
		// 3339, data_base64 that is not base64. On a subscription's own
		// topic the event is dropped to its dead-letter topic at once. On a
		// dead-letter topic, dropping it again would pass it on to that
		// topic's own dead-letter topic (the default, which nothing reads,
		// or this very topic, which Dapr then loops on): there it goes to
		// the handler with the attributes that decode, as the gRPC app
		// channel delivers every event (eventFromProto).
		lev, ignored, lerr := lenientEvent(body)
		if lerr != nil || !h.b.deadLettered(rt, lev.Topic) {
			h.b.log.Error("dapr: delivery is not a CloudEvent; dropping it to the dead-letter topic", "path", r.URL.Path, "deadletter", rt.dl, "err", err)
			writeStatus(w, statusDrop)
			return
		}
		h.b.log.Warn("dapr: dead-lettered event is not a well-formed CloudEvent; delivering the attributes that decode",
			"pubsub", rt.key.pubsub, "topic", rt.key.topic, "from", lev.Topic, "id", lev.ID, "ignored", ignored, "err", err)
		ev = lev
	}
	ctx := r.Context()
	if tc := host.HTTPTrace(r.Header); h.b.opts.Tracing && tc.TraceParent != "" {
		ctx = sdk.WithTrace(ctx, tc) // the sidecar's delivery span
	}
	writeStatus(w, h.b.deliver(ctx, rt, ev))
}

// lenientEvent decodes a CloudEvent that sdk.Event refuses as a whole,
// attribute by attribute: each one that does not decode on its own is left
// out and named in ignored. When the data is one of them, the envelope as
// received becomes the data (application/cloudevents+json), so the payload
// is never lost. It fails only for a body that is not a JSON object.
func lenientEvent(body []byte) (ev *sdk.Event, ignored []string, err error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, nil, err
	}
	if m == nil {
		return nil, nil, errors.New("the body is null")
	}
	for _, k := range slices.Sorted(maps.Keys(m)) {
		one, err := json.Marshal(map[string]json.RawMessage{k: m[k]})
		if err != nil || json.Unmarshal(one, new(sdk.Event)) != nil {
			delete(m, k)
			ignored = append(ignored, k)
		}
	}
	rest, err := json.Marshal(m)
	if err != nil {
		return nil, ignored, err
	}
	ev = new(sdk.Event)
	if err := json.Unmarshal(rest, ev); err != nil {
		return nil, ignored, err
	}
	if slices.Contains(ignored, "data") || slices.Contains(ignored, "data_base64") {
		ev.Data, ev.DataContentType = body, cloudEventType
	}
	return ev, ignored, nil
}

func writeStatus(w http.ResponseWriter, s string) {
	writeJSON(w, http.StatusOK, []byte(`{"status":"`+s+`"}`))
}

func writeJSON(w http.ResponseWriter, status int, b []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(b)
}

func errorBody(c sdk.Code, msg string) []byte {
	b, _ := json.Marshal(struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	}{c.String(), msg})
	return b
}

// authUnary checks APP_API_TOKEN on every gRPC call from the sidecar.
func (h *appChannel) authUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if tok := h.b.opts.AppAPIToken; tok != "" {
		md, _ := metadata.FromIncomingContext(ctx)
		if v := md.Get(apiTokenHeader); len(v) == 0 || !tokenOK(v[0], tok) {
			return nil, status.Error(codes.Unauthenticated, "the dapr-api-token metadata is missing or does not match APP_API_TOKEN")
		}
	}
	return handler(ctx, req)
}

// appCallback is Dapr's AppCallback service.
type appCallback struct {
	runtimev1pb.UnimplementedAppCallbackServer
	h *appChannel
}

func (a *appCallback) ListTopicSubscriptions(ctx context.Context, _ *emptypb.Empty) (*runtimev1pb.ListTopicSubscriptionsResponse, error) {
	out := &runtimev1pb.ListTopicSubscriptionsResponse{}
	for _, r := range a.h.b.programmatic() {
		out.Subscriptions = append(out.Subscriptions, &runtimev1pb.TopicSubscription{
			PubsubName:      r.key.pubsub,
			Topic:           r.key.topic,
			Routes:          &runtimev1pb.TopicRoutes{Default: r.path},
			DeadLetterTopic: r.dl,
		})
	}
	return out, nil
}

func (a *appCallback) OnTopicEvent(ctx context.Context, in *runtimev1pb.TopicEventRequest) (*runtimev1pb.TopicEventResponse, error) {
	rt := a.h.b.routeByPath(in.GetPath())
	if rt == nil {
		rt = a.h.b.routeByName(in.GetPubsubName(), in.GetTopic())
	}
	if rt == nil {
		return nil, status.Errorf(codes.NotFound, "no subscription to %s/%s here", in.GetPubsubName(), in.GetTopic())
	}
	if a.h.b.opts.Tracing {
		ctx = tracedFromMetadata(ctx)
	}
	st := a.h.b.deliver(ctx, rt, eventFromProto(in))
	return &runtimev1pb.TopicEventResponse{Status: protoStatus(st)}, nil
}

func (a *appCallback) ListInputBindings(context.Context, *emptypb.Empty) (*runtimev1pb.ListInputBindingsResponse, error) {
	return &runtimev1pb.ListInputBindingsResponse{}, nil
}

// OnInvoke runs POST /{method} through the host's handler and returns its
// reply, or its error as a status whose code maps back to the SDK's code.
func (a *appCallback) OnInvoke(ctx context.Context, in *commonv1pb.InvokeRequest) (*commonv1pb.InvokeResponse, error) {
	method := strings.TrimPrefix(in.GetMethod(), "/")
	if method == "" {
		return nil, status.Error(codes.InvalidArgument, "method is empty")
	}
	if strings.Contains(method, "/") {
		// What the HTTP channel refuses (notAMethod): "/"+method would
		// reach the host's own routes.
		return nil, status.Errorf(codes.NotFound, "no method %s: the app channel invokes methods of %s by a name of one path segment, not the host's other routes",
			sdk.QuoteName(method), a.h.b.appName())
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "/"+method, bytes.NewReader(in.GetData().GetValue()))
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "method %q: %v", method, err)
	}
	req.Header.Set("Content-Type", "application/json")
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		if v := md.Get("x-request-id"); len(v) > 0 {
			req.Header.Set("X-Request-Id", v[0])
		}
		if a.h.b.opts.Tracing { // the host's ingress reads it from headers
			if tc := sidecarSpan(md); tc.TraceParent != "" {
				req.Header.Set("traceparent", tc.TraceParent)
				if tc.TraceState != "" {
					req.Header.Set("tracestate", tc.TraceState)
				}
			}
		}
	}
	rec := &recorder{hdr: http.Header{}, status: http.StatusOK}
	a.h.next.ServeHTTP(rec, req)
	if rec.status < 300 {
		return &commonv1pb.InvokeResponse{ContentType: "application/json", Data: &anypb.Any{Value: rec.body.Bytes()}}, nil
	}
	return nil, statusErr(decodeReply(rec.status, rec.body.Bytes()))
}

// decodeReply turns a host's error reply back into an *sdk.Error.
func decodeReply(st int, body []byte) error {
	var eb struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	}
	if json.Unmarshal(body, &eb) == nil && eb.Code != "" {
		if c, ok := abi.ParseCode(eb.Code); ok && c != abi.OK {
			return &sdk.Error{Code: c, Message: eb.Message}
		}
	}
	return sdk.Errorf(codeOfHTTP(st), "HTTP %d: %s", st, strings.TrimSpace(string(body)))
}

// recorder is a minimal in-memory ResponseWriter.
type recorder struct {
	hdr    http.Header
	status int
	wrote  bool
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.hdr }
func (r *recorder) WriteHeader(s int) {
	if !r.wrote {
		r.status, r.wrote = s, true
	}
}
func (r *recorder) Write(b []byte) (int, error) {
	r.wrote = true
	return r.body.Write(b)
}

// tracedFromMetadata returns ctx carrying the sidecar's span
// (sidecarSpan) as the parent of the host's.
func tracedFromMetadata(ctx context.Context) context.Context {
	md, _ := metadata.FromIncomingContext(ctx)
	if tc := sidecarSpan(md); tc.TraceParent != "" {
		return sdk.WithTrace(ctx, tc)
	}
	return ctx
}

// sidecarSpan reads the span a sidecar calls its app under, as Dapr itself
// reads it: grpc-trace-bin (OpenCensus's binary form), else traceparent.
// The order is Dapr's: on an invocation, Dapr also passes the caller's
// HTTP headers through as metadata, traceparent among them.
func sidecarSpan(md metadata.MD) sdk.TraceContext {
	if v := md.Get("grpc-trace-bin"); len(v) > 0 {
		if sc, ok := tracectx.FromBinary([]byte(v[0])); ok {
			return sdk.TraceContext{TraceParent: tracectx.Format(sc)}
		}
	}
	tc := sdk.TraceContext{}
	if v := md.Get("traceparent"); len(v) > 0 {
		tc.TraceParent = v[0]
		if v := md.Get("tracestate"); len(v) > 0 {
			tc.TraceState = v[0]
		}
	}
	return tc
}
