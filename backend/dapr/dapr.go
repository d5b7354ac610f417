// Package dapr is the backend of a Roam host running beside a Dapr sidecar:
// state, pub/sub, invocation, secrets and configuration go through the
// sidecar's API, and the sidecar calls into the host (the app channel) to
// invoke methods and deliver events.
//
// # Client side
//
// The sidecar's gRPC API (DAPR_GRPC_PORT) is preferred, through go-sdk.
// When the gRPC port does not answer, the backend falls back to the HTTP API
// (DAPR_HTTP_PORT) with a client of its own; the choice is made once, at
// Open, and logged. Open waits for the sidecar (StartTimeout, 60s by
// default, as Dapr's SDKs wait), saying what it waits for: in Kubernetes
// the host and daprd start together. Invocation always goes through the
// HTTP API (/v1.0/invoke/{app}/method/{m}): it passes the callee's status
// and body through unchanged, where the gRPC API folds an HTTP app's error
// into a status whose detail it truncates to 64 bytes. DAPR_API_TOKEN,
// when set, is sent on every call to the sidecar.
//
// A sidecar that is gone fails every call at once with Unavailable (503)
// naming its address; a hung one fails them at their deadline with
// DeadlineExceeded (504), naming it too. The host's /readyz answers 503
// meanwhile (ready.go), /healthz stays 200, and the gRPC connection
// reconnects by itself when the sidecar is back: no restart of the host.
// A component behind the sidecar that cannot be reached (Redis down) is
// Unavailable too, told apart by the sidecar's message (classify).
//
// # State on Dapr
//
// Roam's state semantics (sdk.State) are stricter than what Dapr's Redis
// store gives by itself, and the backend closes the gap:
//
//   - A Roam ETag is Dapr's ETag plus a short hash of the value
//     ("7-3f9a0c1e"). Redis restarts an item's version at 1 when it is
//     deleted or expires; the hash keeps an ETag of an earlier incarnation
//     from matching a new one (unless both hold the same bytes at the same
//     version, when the two are indistinguishable anyway).
//   - A write with an ETag reads the item first: Redis accepts any ETag on
//     an absent key, so an absent item (deleted, expired, never written) is
//     a Conflict decided here; a present one is written with Dapr's ETag,
//     which Redis checks atomically.
//   - IfAbsent is a write whose ETag no item can have ("-1"): Redis creates
//     an absent key and rejects a present one, atomically. First-write
//     concurrency without an ETag, the documented Dapr form, does not do this
//     on Redis (it only rejects items that were themselves written
//     first-write, and marks the new item so that later writes without an
//     ETag fail); it is used for other stores.
//   - A transaction checks every precondition against one bulk read and
//     then sends each conditional op with the ETag it read. Redis runs the
//     ops in MULTI/EXEC without rollback, so a transaction holds its keys
//     against this process's other writers of them (a striped lock):
//     against them it is all or nothing. A writer in another process that
//     changes a key between the read and the EXEC fails the transaction
//     with Conflict, but Redis keeps the ops that passed.
//   - TTL is Dapr's ttlInSeconds, rounded up to whole seconds. A write
//     without TTL sends ttlInSeconds=-1, so that it clears an earlier TTL
//     (Redis keeps a key's TTL across writes otherwise).
//
// Keys of the app whose id is the sidecar's are stored as they are, so Dapr
// prefixes them exactly as it would for any Dapr app ("orders||order/1").
// Other apps served by the same host behind the same sidecar get
// "<app>|<key>" under that prefix, which keeps them apart (Dapr forbids
// "||" in keys); the sidecar's own app should then not use keys of that
// form.
//
// # Pub/sub on Dapr
//
// Publish sends a complete CloudEvents 1.0 envelope (id, source = the app,
// type, time, datacontenttype, data) as application/cloudevents+json, which
// Dapr keeps, adding topic, pubsubname and trace fields. Dapr re-encodes JSON
// data: keys arrive sorted.
//
// Subscriptions made before the sidecar asks for them are declared
// programmatically (GET /dapr/subscribe, or ListTopicSubscriptions over
// gRPC) and delivered to the host's port. Subscriptions made later, and all
// of them when the sidecar was started without an app port, are opened as
// streaming subscriptions over the gRPC API. Either way a handler's nil
// error is SUCCESS, InvalidArgument is DROP and any other error is RETRY;
// every subscription names a dead-letter topic (its own, or the default), to
// which Dapr sends an event that is dropped or that exhausts the retries of
// the pub/sub component's inbound Resiliency policy. Without such a policy
// Dapr does not retry: a failed event goes to the dead-letter topic at
// once. Round a cycle of dead-letter topics (two subscriptions naming each
// other's topics) Dapr would pass an event that fails everywhere for ever;
// the backend parks it on <topic>.parked, the last topic it failed on, when
// it comes back to a topic it already failed on (as far as this process
// saw it go round: see lapLocked). An event whose envelope does not decode (a producer other than Roam
// may send a time that is not RFC 3339) is dropped on its topic; on a
// dead-letter topic it goes to the handler with the attributes that do
// decode, since dropping it there would only pass it on to the next
// dead-letter topic. Several apps of one host that subscribe to the same
// topic share one Dapr subscription (the consumer group is the sidecar's app
// id); the backend fans each event out to them and acknowledges it once all
// have.
package dapr

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/roam-dev/roam/backend"
	"github.com/roam-dev/roam/backend/internal/core"
	"github.com/roam-dev/roam/sdk"
)

// Options configure Open. The zero value, completed by OptionsFromEnv, is
// what a host beside `dapr run` needs.
type Options struct {
	// GRPCAddr is host:port of the sidecar's gRPC API; empty: none.
	GRPCAddr string
	// HTTPAddr is host:port (or a base URL) of its HTTP API; empty: none.
	HTTPAddr string
	// Protocol forces "grpc" or "http"; empty: gRPC when it answers.
	Protocol string
	// APIToken is sent on every call to the sidecar (DAPR_API_TOKEN).
	APIToken string
	// AppAPIToken, when set, must come with every call from the sidecar
	// (APP_API_TOKEN); calls without it get 401 (Unauthenticated on gRPC).
	AppAPIToken string
	// ConfigStore is the configuration component that sdk.Config reads;
	// empty means "configstore".
	ConfigStore string
	// DeadLetterTopic is the dead-letter topic of subscriptions that name
	// none; empty means backend.DefaultDeadLetterTopic.
	DeadLetterTopic string
	// StartTimeout bounds Open's wait for the sidecar; zero means 60s.
	StartTimeout time.Duration
	// ProbeTimeout bounds one attempt to reach an API; zero means 2s.
	ProbeTimeout time.Duration
	// CloseGrace is how long Close waits for deliveries in flight before
	// cancelling their context; zero means 5s.
	CloseGrace time.Duration
	// Logger receives diagnostics; nil means slog.Default().
	Logger *slog.Logger
	// OnDeliver, when set, is called after each delivery to a subscription
	// with "ok", "retry" or "deadletter" (the event was dropped to the
	// dead-letter topic; retries that Dapr exhausts are not seen here).
	OnDeliver func(sub backend.Subscription, outcome string)
	// Tracing says the host traces: deliveries and invocations from the
	// sidecar then carry its trace context (traceparent) to the host's
	// spans. Calls to the sidecar carry the host's whenever a span is in
	// their context, which happens only when the host traces.
	Tracing bool
}

// Environment variables Dapr sets for an app (and Roam reads).
const (
	EnvGRPCPort    = "DAPR_GRPC_PORT"
	EnvHTTPPort    = "DAPR_HTTP_PORT"
	EnvAPIToken    = "DAPR_API_TOKEN"
	EnvAppAPIToken = "APP_API_TOKEN"
	// EnvGRPCEndpoint and EnvHTTPEndpoint name a sidecar that is not on
	// 127.0.0.1 (host:port or a URL); they take precedence over the ports.
	EnvGRPCEndpoint = "DAPR_GRPC_ENDPOINT"
	EnvHTTPEndpoint = "DAPR_HTTP_ENDPOINT"
)

// Present reports whether the environment says a sidecar is there.
func Present(getenv func(string) string) bool {
	for _, k := range []string{EnvGRPCPort, EnvHTTPPort, EnvGRPCEndpoint, EnvHTTPEndpoint} {
		if getenv(k) != "" {
			return true
		}
	}
	return false
}

// OptionsFromEnv reads the sidecar's addresses and tokens from the
// environment Dapr gives an app.
func OptionsFromEnv(getenv func(string) string) Options {
	o := Options{APIToken: getenv(EnvAPIToken), AppAPIToken: getenv(EnvAppAPIToken)}
	if p := getenv(EnvGRPCPort); p != "" {
		o.GRPCAddr = net.JoinHostPort("127.0.0.1", p)
	}
	if e := getenv(EnvGRPCEndpoint); e != "" {
		e = strings.TrimPrefix(strings.TrimPrefix(e, "http://"), "dns:")
		o.GRPCAddr = strings.TrimSuffix(e, "/")
	}
	if p := getenv(EnvHTTPPort); p != "" {
		o.HTTPAddr = net.JoinHostPort("127.0.0.1", p)
	}
	if e := getenv(EnvHTTPEndpoint); e != "" {
		o.HTTPAddr = e
	}
	return o
}

// Backend is the Dapr backend. Create it with Open.
type Backend struct {
	opts     Options
	log      *slog.Logger
	grpcAddr string
	httpBase string
	sc       sidecar
	http     *httpSidecar // invocation, and the fallback
	grpc     *grpcSidecar // nil over HTTP
	info     sidecarInfo
	dlTopic  string
	cfgStore string

	locks keyLocks
	ready readiness // of the sidecar, for /readyz (ready.go)

	mu      sync.Mutex
	closed  bool
	done    atomic.Bool // closed, for the hot paths
	routes  map[routeKey]*route
	order   []routeKey // programmatic routes, in subscription order
	listed  bool       // the sidecar has read the programmatic subscriptions
	streams []*stream
	dedup   map[string]map[int]bool // event id → local subscriptions done
	trails  map[trailKey][]string   // event → topics it arrived on by dead-letter (see lap)

	ctx      context.Context // deliveries; cancelled after CloseGrace
	cancel   context.CancelFunc
	inflight sync.WaitGroup
	app      *appChannel
}

var (
	_ backend.Backend    = (*Backend)(nil)
	_ backend.AppChannel = (*Backend)(nil)
)

// Open connects to the sidecar, waiting up to StartTimeout for it, and
// chooses the protocol: gRPC when its port answers, else HTTP.
func Open(ctx context.Context, o Options) (*Backend, error) {
	if o.GRPCAddr == "" && o.HTTPAddr == "" {
		return nil, sdk.NewError(sdk.InvalidArgument, "dapr: no sidecar address: set DAPR_GRPC_PORT or DAPR_HTTP_PORT (dapr run does)")
	}
	if o.Protocol != "" && o.Protocol != "grpc" && o.Protocol != "http" {
		return nil, sdk.Errorf(sdk.InvalidArgument, "dapr: protocol %q: use grpc or http", o.Protocol)
	}
	if o.StartTimeout <= 0 {
		o.StartTimeout = 60 * time.Second
	}
	if o.ProbeTimeout <= 0 {
		o.ProbeTimeout = 2 * time.Second
	}
	if o.CloseGrace <= 0 {
		o.CloseGrace = 5 * time.Second
	}
	if o.ConfigStore == "" {
		o.ConfigStore = "configstore"
	}
	b := &Backend{
		opts:     o,
		log:      o.Logger,
		grpcAddr: o.GRPCAddr,
		dlTopic:  o.DeadLetterTopic,
		cfgStore: o.ConfigStore,
		routes:   map[routeKey]*route{},
		dedup:    map[string]map[int]bool{},
		trails:   map[trailKey][]string{},
	}
	if b.log == nil {
		b.log = slog.Default()
	}
	if b.dlTopic == "" {
		b.dlTopic = backend.DefaultDeadLetterTopic
	}
	if o.HTTPAddr != "" {
		b.httpBase = o.HTTPAddr
		if !strings.Contains(b.httpBase, "://") {
			b.httpBase = "http://" + b.httpBase
		}
		b.httpBase = trimSlash(b.httpBase)
		b.http = &httpSidecar{b: b, base: b.httpBase, token: o.APIToken, client: &http.Client{
			Transport: &http.Transport{
				Proxy:               nil,
				DialContext:         (&net.Dialer{Timeout: 2 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
				MaxIdleConns:        512,
				MaxIdleConnsPerHost: 512,
				IdleConnTimeout:     90 * time.Second,
			},
		}}
	}
	if o.GRPCAddr != "" && o.Protocol != "http" {
		conn, err := dialGRPC(o.GRPCAddr, o.APIToken)
		if err != nil {
			return nil, sdk.Errorf(sdk.InvalidArgument, "dapr: gRPC address %q: %v", o.GRPCAddr, err)
		}
		b.grpc = newGRPCSidecar(b, conn)
	}
	if err := b.probe(ctx); err != nil {
		b.closeClients()
		return nil, err
	}
	b.ctx, b.cancel = context.WithCancel(context.Background())
	b.app = &appChannel{b: b}
	return b, nil
}

// probe waits for the sidecar and picks the protocol: gRPC when it answers;
// HTTP when gRPC does not answer within ProbeTimeout of HTTP answering.
//
// In Kubernetes the host and its sidecar start in parallel, and the host
// usually asks first. It waits up to StartTimeout, as Dapr's own SDKs wait
// for their sidecar: it logs what it waits for when the sidecar does not
// answer at once, and again every waitLogEvery, and it fails with an error
// that names the addresses it tried and their last errors, when the time is
// up or ctx ends first (a SIGTERM while waiting).
func (b *Backend) probe(ctx context.Context) error {
	start := time.Now()
	deadline := start.Add(b.opts.StartTimeout)
	var httpSince, nextLog time.Time
	var lastGRPC, lastHTTP error
	tried := func() string {
		var parts []string
		if b.grpcAddr != "" && b.grpc != nil {
			parts = append(parts, fmt.Sprintf("gRPC %s: %v", b.grpcAddr, lastGRPC))
		}
		if b.httpBase != "" && lastHTTP != nil {
			parts = append(parts, fmt.Sprintf("HTTP %s: %v", b.httpBase, lastHTTP))
		}
		return strings.Join(parts, "; ")
	}
	stopped := func(err error) error {
		return fmt.Errorf("dapr: stopped after waiting %v for the sidecar (%s): %w", time.Since(start).Round(time.Millisecond), tried(), err)
	}
	for {
		if b.grpc != nil {
			pctx, cancel := context.WithTimeout(ctx, b.opts.ProbeTimeout)
			info, err := b.grpc.metadata(pctx)
			cancel()
			if err == nil {
				b.sc, b.info = b.grpc, info
				return nil
			}
			if sdk.IsCode(err, sdk.FailedPrecondition) {
				return err // it answered, and refused us: the token
			}
			lastGRPC = err
		}
		if b.http != nil && (b.grpc == nil || b.opts.Protocol == "" || b.opts.Protocol == "http") {
			pctx, cancel := context.WithTimeout(ctx, b.opts.ProbeTimeout)
			info, err := b.http.metadata(pctx)
			cancel()
			if err == nil {
				if httpSince.IsZero() {
					httpSince = time.Now()
				}
				if b.grpc == nil || time.Since(httpSince) >= b.opts.ProbeTimeout {
					if b.grpc != nil {
						b.log.Warn("dapr: the sidecar's gRPC API does not answer; using its HTTP API", "grpc", b.grpcAddr, "http", b.httpBase, "err", lastGRPC)
						b.grpc.close()
						b.grpc = nil
					}
					b.sc, b.info = b.http, info
					return nil
				}
			} else {
				if sdk.IsCode(err, sdk.FailedPrecondition) {
					return err
				}
				lastHTTP = err
			}
		}
		if err := ctx.Err(); err != nil {
			return stopped(err)
		}
		if time.Now().After(deadline) {
			return sdk.Errorf(sdk.Unavailable, "dapr: no sidecar answered within %v (%s); is daprd running, where DAPR_GRPC_PORT and DAPR_HTTP_PORT (or DAPR_GRPC_ENDPOINT and DAPR_HTTP_ENDPOINT) say?", b.opts.StartTimeout, tried())
		}
		if now := time.Now(); httpSince.IsZero() && !now.Before(nextLog) {
			attrs := []any{"timeout", b.opts.StartTimeout}
			if b.grpc != nil {
				attrs = append(attrs, "grpc", b.grpcAddr, "grpc_err", lastGRPC)
			}
			if lastHTTP != nil {
				attrs = append(attrs, "http", b.httpBase, "http_err", lastHTTP)
			}
			if nextLog.IsZero() {
				b.log.Info("dapr: waiting for the sidecar to answer", attrs...)
			} else {
				b.log.Warn("dapr: still waiting for the sidecar to answer", append(attrs, "waited", now.Sub(start).Round(time.Second))...)
			}
			nextLog = now.Add(waitLogEvery)
		}
		select {
		case <-ctx.Done():
			return stopped(ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// waitLogEvery is how often probe says that it is still waiting.
const waitLogEvery = 10 * time.Second

func (b *Backend) closeClients() {
	if b.grpc != nil {
		b.grpc.close()
	}
	if b.http != nil {
		b.http.close()
	}
}

// Name returns "dapr".
func (b *Backend) Name() string { return "dapr" }

// Protocol returns the API the backend talks to the sidecar with: "grpc"
// or "http".
func (b *Backend) Protocol() string { return b.sc.protocol() }

// SidecarAppID returns the app id the sidecar runs as.
func (b *Backend) SidecarAppID() string { return b.info.appID }

// Describe is a one-line account of the sidecar, for start-up logs.
func (b *Backend) Describe() string {
	addr := b.httpBase
	if b.sc.protocol() == "grpc" {
		addr = b.grpcAddr
	}
	s := fmt.Sprintf("sidecar app id %q over %s at %s", b.info.appID, strings.ToUpper(b.sc.protocol()), addr)
	if b.info.appPort > 0 {
		s += ", app channel " + b.info.appProto + " to port " + strconv.Itoa(b.info.appPort)
	} else {
		s += ", no app channel (subscriptions stream over gRPC)"
	}
	return s
}

// Close stops deliveries, waiting up to Options.CloseGrace for handlers in
// flight, and closes the connections. Events not yet acknowledged stay with
// the broker. Close is idempotent.
func (b *Backend) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	b.done.Store(true)
	streams := b.streams
	b.mu.Unlock()
	for _, s := range streams {
		s.stop()
	}
	core.DrainOrCancel(&b.inflight, b.opts.CloseGrace, b.cancel, b.log, "dapr")
	b.cancel()
	for _, s := range streams {
		s.wait()
	}
	b.closeClients()
	return nil
}

func (b *Backend) isClosed() bool { return b.done.Load() }

// ---- config and secrets ----

// Config returns the configuration of Options.ConfigStore.
func (b *Backend) Config(appID string) sdk.Config { return config{b} }

type config struct{ b *Backend }

func (c config) Get(ctx context.Context, key string) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	if key == "" {
		return "", sdk.NewError(sdk.InvalidArgument, "config key is empty")
	}
	v, ok, err := c.b.sc.config(ctx, c.b.cfgStore, key)
	if err != nil {
		return "", err
	}
	if !ok {
		return "", sdk.Errorf(sdk.NotFound, "config key %q is not set", key)
	}
	return v, nil
}

// Secrets returns the sidecar's secret stores.
func (b *Backend) Secrets(appID string) sdk.Secrets { return secrets{b} }

type secrets struct{ b *Backend }

func (s secrets) Get(ctx context.Context, store, key string) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	if store == "" || key == "" {
		return "", sdk.NewError(sdk.InvalidArgument, "secret store and key are required")
	}
	m, err := s.b.sc.secret(ctx, store, key)
	if err != nil {
		// Dapr reports an absent secret or store as a failure of the
		// store; say NotFound, as the embedded backend does.
		if msg := strings.ToLower(err.Error()); !sdk.IsCode(err, sdk.Unavailable) &&
			(strings.Contains(msg, "not found") || strings.Contains(msg, "not configured") ||
				strings.Contains(msg, "does not exist") || strings.Contains(msg, "failed finding")) {
			return "", sdk.Errorf(sdk.NotFound, "secret %q not found in store %q: %v", key, store, err)
		}
		return "", err
	}
	v, ok := m[key]
	if !ok {
		if len(m) == 1 {
			for _, v := range m {
				return v, nil
			}
		}
		return "", sdk.Errorf(sdk.NotFound, "secret %q not found in store %q", key, store)
	}
	return v, nil
}

// closedErr is returned by every capability of a closed backend.
func closedErr() error { return core.ErrClosed("dapr") }
