package host

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/pprof"
	"runtime/debug"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/roam-dev/roam/backend"
	"github.com/roam-dev/roam/sdk"
)

// Options configure a Server. Zero values take the defaults noted.
type Options struct {
	// MaxBodyBytes caps a request body (default 4 MiB); larger gets 413.
	MaxBodyBytes int64
	// ReadTimeout and WriteTimeout bound each connection's I/O (default 30s).
	ReadTimeout, WriteTimeout time.Duration
	// RequestTimeout is each call's deadline (default 30s).
	RequestTimeout time.Duration
	// Pprof mounts net/http/pprof under /debug/pprof/.
	Pprof bool
	// DefaultApp receives Dapr app-channel calls (/{method}). Empty means the
	// only app, when there is exactly one.
	DefaultApp string
	Logger     *slog.Logger
	Metrics    *Metrics
	// CORSOrigins are the browser origins allowed to call this host from
	// pages of their own (see CheckCORSOrigins); empty means none.
	CORSOrigins []string
	// StateAPI serves the state sync API of browser hosts (statesync.go).
	// It reads and writes every served app's state, and publishes as any of
	// them, without going through the apps' methods.
	StateAPI bool
	// StateAPIToken, when set, must come with every request of the state
	// sync API as "Authorization: Bearer <token>" (compared in constant
	// time); one without it is 401. The hosts read it from
	// ROAM_STATE_API_TOKEN (EnvStateAPIToken). Empty means no check.
	StateAPIToken string
	// Web, when set, is served under /web/ for browser hosts (web.go).
	Web *WebAssets
	// Tracing, when set, records the spans of calls, deliveries and the
	// apps' capabilities (tracing.go); nil traces nothing, at no cost.
	Tracing Tracer
	// MaxConnections caps the client connections open at once; a client
	// beyond them waits, and idle keep-alive connections are closed to make
	// room for it (conncap.go). 0 means the default, 10,000 or less under a
	// low open-file limit (defaultMaxConnections); negative means no cap.
	MaxConnections int
}

// Server serves apps over HTTP and wires their invocations and deliveries.
type Server struct {
	opts    Options
	backend backend.Backend
	log     *slog.Logger
	metrics *Metrics
	tracing Tracer

	mu sync.RWMutex // guards http; serializes Add
	// apps is replaced, never modified (Add copies it), so that the request
	// path looks an app up without a lock.
	apps  atomic.Pointer[map[string]*entry]
	ready atomic.Bool
	http  *http.Server
	// metricsHTTP serves /metrics on a port of its own (StartMetrics);
	// nil when it is served on the main one. Guarded by mu.
	metricsHTTP *http.Server
	// metricsElsewhere is set by StartMetrics: the main port then answers
	// 404 to /metrics.
	metricsElsewhere atomic.Bool
	mux              *http.ServeMux
	// handler is mux behind the CORS layer.
	handler http.Handler
	// conns caps the connections of Start's listeners; nil for no cap.
	conns *connCap
	// stateToken is the SHA-256 of Options.StateAPIToken; nil for none.
	stateToken *[sha256.Size]byte
}

type entry struct {
	app     App
	methods map[string]*method
}

// method is what the request path needs of one method, resolved once at
// Add: its metrics, and its span names and attributes.
type method struct {
	*methodMetrics
	spans methodSpans
}

// NewServer returns a server for apps on b.
func NewServer(b backend.Backend, opts Options) *Server {
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = 4 << 20
	}
	if opts.ReadTimeout <= 0 {
		opts.ReadTimeout = 30 * time.Second
	}
	if opts.WriteTimeout <= 0 {
		opts.WriteTimeout = 30 * time.Second
	}
	if opts.RequestTimeout <= 0 {
		opts.RequestTimeout = 30 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Metrics == nil {
		opts.Metrics = NewMetrics(nil)
	}
	if opts.MaxConnections == 0 {
		opts.MaxConnections = defaultMaxConnections()
	}
	s := &Server{opts: opts, backend: b, log: opts.Logger, metrics: opts.Metrics, tracing: opts.Tracing}
	if opts.MaxConnections > 0 {
		s.conns = newConnCap(opts.MaxConnections, s.metrics, s.log)
	}
	s.apps.Store(&map[string]*entry{})
	if opts.StateAPIToken != "" {
		sum := sha256.Sum256([]byte(opts.StateAPIToken))
		s.stateToken = &sum
	}
	s.mux = s.routes()
	s.handler = s.withCORS(http.HandlerFunc(s.route))
	if ac, ok := b.(backend.AppChannel); ok {
		// A sidecar calls in on this port too (Dapr's app channel).
		s.handler = ac.AppHandler(s.handler)
	}
	return s
}

// Add registers an app. Add every app before Start.
func (s *Server) Add(a App) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := *s.apps.Load()
	if _, dup := old[a.ID()]; dup {
		return sdk.Errorf(sdk.FailedPrecondition, "app %q is already served here", a.ID())
	}
	e := &entry{app: a, methods: map[string]*method{}}
	for _, m := range a.Methods() {
		e.methods[m] = &method{methodMetrics: s.metrics.forMethod(a.ID(), m), spans: newMethodSpans(a.ID(), m)}
	}
	apps := maps.Clone(old)
	apps[a.ID()] = e
	s.apps.Store(&apps)
	return nil
}

// AppIDs returns the served app ids, sorted.
func (s *Server) AppIDs() []string {
	apps := *s.apps.Load()
	ids := make([]string, 0, len(apps))
	for id := range apps {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

func (s *Server) lookup(id string) (*entry, bool) {
	e, ok := (*s.apps.Load())[id]
	return e, ok
}

// Handler returns the HTTP handler of every route.
func (s *Server) Handler() http.Handler { return s.handler }

// Metrics returns the server's collectors.
func (s *Server) Metrics() *Metrics { return s.metrics }

// Tracing returns the server's Tracer, nil when tracing is off. Hosts
// decorate the apps' capabilities with it (TracedState, TracedPublisher).
func (s *Server) Tracing() Tracer { return s.tracing }

// StartDeliveries subscribes every app's topics on the backend.
func (s *Server) StartDeliveries() error {
	var subs []backend.Subscription
	for _, id := range s.AppIDs() {
		e, _ := s.lookup(id)
		subs = append(subs, e.app.Subscriptions()...)
	}
	if len(subs) == 0 {
		return nil
	}
	return s.backend.Subscribe(subs, s.Deliver)
}

// Deliver hands an event to the subscribing app; it is the backend.Deliverer
// of this server, and the entry point for events arriving from a sidecar.
func (s *Server) Deliver(ctx context.Context, sub backend.Subscription, ev *sdk.Event) (err error) {
	e, ok := s.lookup(sub.AppID)
	if !ok {
		return sdk.Errorf(sdk.NotFound, "no app %q here", sub.AppID)
	}
	ctx, cancel := context.WithTimeout(sdk.WithRequestID(ctx, ev.ID), s.opts.RequestTimeout)
	defer cancel()
	var span Span
	if s.tracing != nil {
		ctx, span = startConsumer(ctx, s.tracing, sub, ev)
	}
	inFlight := s.metrics.inFlight.WithLabelValues(sub.AppID, sub.PubSub, sub.Topic)
	inFlight.Inc()
	defer func() {
		if p := recover(); p != nil {
			err = s.panicked(sub.AppID, "event "+sub.Topic, p)
		}
		inFlight.Dec()
		outcome := "ok"
		switch {
		case err == nil:
		case sdk.IsCode(err, sdk.InvalidArgument):
			outcome = "rejected"
		default:
			outcome = "failed"
		}
		s.metrics.deliveries.WithLabelValues(sub.AppID, sub.PubSub, sub.Topic, outcome).Inc()
		if span != nil {
			end(span, err, faultsOnly)
		}
	}()
	return e.app.Deliver(ctx, ev)
}

// Invoker returns the invoker for app caller: apps served here are called
// directly, in-process; any other goes to the backend.
func (s *Server) Invoker(caller string) sdk.Invoker {
	return invoker{s: s, caller: caller, remote: s.backend.Invoker(caller)}
}

type invoker struct {
	s      *Server
	caller string
	remote sdk.Invoker
}

func (i invoker) Invoke(ctx context.Context, appID, method string, data []byte) ([]byte, error) {
	if i.s.tracing == nil {
		if e, ok := i.s.lookup(appID); ok {
			return i.s.call(ctx, e, method, data)
		}
		return i.remote.Invoke(ctx, appID, method, data)
	}
	// The client span; the backend's invoker carries its context to the
	// callee's host (a header), or the callee's server span is started here.
	ctx, span := startClient(ctx, i.s.tracing, i.caller, appID, method)
	var out []byte
	var err error
	if e, ok := i.s.lookup(appID); ok {
		out, err = i.s.serveInProcess(ctx, e, method, data)
	} else {
		out, err = i.remote.Invoke(ctx, appID, method, data)
	}
	end(span, err, anyError)
	return out, err
}

// Call runs app.method as an HTTP request would, minus the transport.
func (s *Server) Call(ctx context.Context, app, method string, body []byte) ([]byte, error) {
	e, ok := s.lookup(app)
	if !ok {
		return nil, s.unknownApp(app)
	}
	if s.tracing != nil {
		return s.serveInProcess(ctx, e, method, body)
	}
	return s.call(ctx, e, method, body)
}

// serveInProcess is call under a server span, for calls that reach an app
// without crossing a transport (which would have started one).
func (s *Server) serveInProcess(ctx context.Context, e *entry, method string, body []byte) ([]byte, error) {
	mt, ok := e.methods[method]
	if !ok {
		return s.call(ctx, e, method, body) // NotFound
	}
	ctx, span := startServer(ctx, s.tracing, e.app.ID(), &mt.spans)
	out, err := s.call(ctx, e, method, body)
	end(span, err, faultsOnly)
	return out, err
}

func (s *Server) call(ctx context.Context, e *entry, method string, body []byte) (out []byte, err error) {
	mm, ok := e.methods[method]
	if !ok {
		return nil, sdk.Errorf(sdk.NotFound, "app %q has no method %s; it has: %s", e.app.ID(), sdk.QuoteName(method), strings.Join(e.app.Methods(), ", "))
	}
	start := time.Now()
	if _, has := ctx.Deadline(); !has {
		// WithTimeout, with the clock read once: the deadline is
		// RequestTimeout after start.
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, start.Add(s.opts.RequestTimeout))
		defer cancel()
	}
	var span Span
	if s.tracing != nil {
		ctx, span = startHandler(ctx, s.tracing, e.app.ID(), &mm.spans)
	}
	defer func() {
		if p := recover(); p != nil {
			out, err = nil, s.panicked(e.app.ID(), method, p)
		}
		if err != nil && ctx.Err() == context.DeadlineExceeded && sdk.CodeOf(err) != sdk.DeadlineExceeded {
			err = sdk.Errorf(sdk.DeadlineExceeded, "%s.%s: deadline exceeded: %v", e.app.ID(), method, err)
		}
		mm.observe(start, sdk.CodeOf(err))
		if span != nil {
			end(span, err, faultsOnly)
		}
	}()
	return e.app.Call(ctx, method, body)
}

func (s *Server) panicked(app, what string, p any) error {
	s.log.Error("handler panicked", "app", app, "handler", what, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
	return sdk.Errorf(sdk.Internal, "%s %s panicked: %v", app, what, p)
}

func (s *Server) unknownApp(app string) error {
	return sdk.Errorf(sdk.NotFound, "no app %s here; apps: %s", sdk.QuoteName(app), strings.Join(s.AppIDs(), ", "))
}

// callPattern is the route of method calls.
const callPattern = "/v1/apps/{app}/methods/{method}"

// route is the host's handler before CORS: CONNECT is refused, method
// calls on plain paths are served at once, everything else by the
// ServeMux. The mux's match costs allocations (its path values) and a walk
// of its tree on every call; callPath takes only the paths for which the
// mux would pick callPattern with the same app and method, so the answer
// is the same either way. The one difference is that r.PathValue is not
// set (r.Pattern is), and nothing on the call's path reads it.
func (s *Server) route(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodConnect {
		refuseConnect(w)
		return
	}
	if app, method, ok := callPath(r); ok {
		r.Pattern = callPattern
		s.serveCall(w, r, app, method)
		return
	}
	s.mux.ServeHTTP(w, r)
}

// refuseConnect answers a CONNECT, which no route takes: a host is an
// origin server, not a proxy, and a CONNECT with a path rather than a
// host:port is malformed anyway (RFC 9112, section 3.2.3). It is 400 rather
// than 405 because there is no resource whose Allow the reply could list.
//
// The mux never sees a CONNECT. It matches a CONNECT's path as sent,
// uncleaned, and binds a wildcard to an empty segment without recording a
// value (golang/go#81222): for CONNECT /v1/apps//methods/Get it picks
// callPattern with one path value for two wildcards, so r.PathValue("app")
// is "Get" and r.PathValue("method") panics. Refusing every CONNECT here
// closes that for every pattern, present and future.
func refuseConnect(w http.ResponseWriter) {
	writeError(w, http.StatusBadRequest, sdk.NewError(sdk.InvalidArgument,
		"method CONNECT not allowed: this host is not a proxy; call /v1/apps/{app}/methods/{method} with POST and a JSON body"))
}

// callPath splits /v1/apps/{app}/methods/{method} when the mux would match
// it to callPattern without cleaning or unescaping anything: a path that is
// the escaped path as it is (no RawPath) and whose app and method are
// plain segments. Anything else goes to the mux, which answers as it
// always has (404, a redirect to the clean path, or the call with
// unescaped values). route has answered CONNECT before, so the mux cleans
// every path it is given.
func callPath(r *http.Request) (app, method string, ok bool) {
	if r.URL.RawPath != "" {
		return "", "", false
	}
	rest, ok := strings.CutPrefix(r.URL.Path, "/v1/apps/")
	if !ok {
		return "", "", false
	}
	i := strings.IndexByte(rest, '/')
	if i < 0 {
		return "", "", false
	}
	app = rest[:i]
	method, ok = strings.CutPrefix(rest[i:], "/methods/")
	if !ok || !plainSegment(app) || !plainSegment(method) {
		return "", "", false
	}
	return app, method, true
}

// plainSegment reports whether s is a path segment that the mux neither
// cleans (empty, "." or "..") nor escapes or unescapes: URL-unreserved
// characters only, so no '/' and no '%'.
func plainSegment(s string) bool {
	if s == "" || s == "." || s == ".." {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~') {
			return false
		}
	}
	return true
}

func (s *Server) routes() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc(callPattern, func(w http.ResponseWriter, r *http.Request) {
		s.serveCall(w, r, r.PathValue("app"), r.PathValue("method"))
	})
	// get registers a GET route, and noRoute's 405 for its path's other
	// verbs (without it, /{method} below would take the single-segment
	// ones on a host of one app).
	get := func(path string, h http.HandlerFunc) {
		mux.HandleFunc("GET "+path, h)
		mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) { s.noRoute(mux, w, r) })
	}
	get("/v1/apps", s.serveApps)
	get("/healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, []byte(`{"status":"ok"}`))
	})
	get("/readyz", func(w http.ResponseWriter, r *http.Request) {
		if !s.ready.Load() {
			writeError(w, http.StatusServiceUnavailable, sdk.NewError(sdk.Unavailable, "not ready"))
			return
		}
		writeJSON(w, http.StatusOK, []byte(`{"status":"ready"}`))
	})
	// /metrics, unless StartMetrics serves it on a port of its own: then
	// 404, to every verb, as a path this port does not have.
	scrape := promhttp.HandlerFor(s.metrics.Registry, promhttp.HandlerOpts{})
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		if s.metricsElsewhere.Load() {
			s.metricsNotHere(w, r)
			return
		}
		scrape.ServeHTTP(w, r)
	})
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, r *http.Request) {
		if s.metricsElsewhere.Load() {
			s.metricsNotHere(w, r)
			return
		}
		s.noRoute(mux, w, r)
	})
	s.webRoutes(mux)
	if s.opts.Pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	// Dapr's app channel invokes /{method}. It reaches the default app.
	mux.HandleFunc("/{method}", func(w http.ResponseWriter, r *http.Request) {
		app := s.defaultApp()
		if app == "" {
			s.noRoute(mux, w, r)
			return
		}
		s.serveCall(w, r, app, r.PathValue("method"))
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { s.noRoute(mux, w, r) })
	return mux
}

// noRoute answers a request no route takes: 405 when a GET route serves
// its path (POST /healthz) or a POST route does (GET on the state sync
// API), else 404.
func (s *Server) noRoute(mux *http.ServeMux, w http.ResponseWriter, r *http.Request) {
	if s.getOnly(mux, r) {
		w.Header().Set("Allow", "GET, HEAD")
		writeError(w, http.StatusMethodNotAllowed, sdk.Errorf(sdk.InvalidArgument, "method %s not allowed on %s: it takes GET", r.Method, r.URL.Path))
		return
	}
	if s.postOnly(mux, r) {
		w.Header().Set("Allow", "POST")
		writeError(w, http.StatusMethodNotAllowed, sdk.Errorf(sdk.InvalidArgument, "method %s not allowed on %s: call with POST and a JSON body", r.Method, r.URL.Path))
		return
	}
	writeError(w, http.StatusNotFound, sdk.Errorf(sdk.NotFound, "no route %s; call /v1/apps/{app}/methods/{method}", r.URL.Path))
}

// getOnly reports whether r, not a GET, is on the path of one of the
// host's GET routes. The catch-alls do not count.
func (s *Server) getOnly(mux *http.ServeMux, r *http.Request) bool {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		return false
	}
	g := r.Clone(r.Context())
	g.Method = http.MethodGet
	_, pattern := mux.Handler(g)
	return pattern != "" && pattern != "/" && pattern != "/{method}"
}

// postOnly reports whether r, not a POST, is on the path of one of the
// host's POST routes (the state sync API): without it a GET there was 404
// "no route", as if the path did not exist.
func (s *Server) postOnly(mux *http.ServeMux, r *http.Request) bool {
	if r.Method == http.MethodPost {
		return false
	}
	p := r.Clone(r.Context())
	p.Method = http.MethodPost
	_, pattern := mux.Handler(p)
	return strings.HasPrefix(pattern, "POST ")
}

func (s *Server) defaultApp() string {
	if s.opts.DefaultApp != "" {
		return s.opts.DefaultApp
	}
	if ids := s.AppIDs(); len(ids) == 1 {
		return ids[0]
	}
	return ""
}

func (s *Server) serveCall(w http.ResponseWriter, r *http.Request, app, method string) {
	rc := new(requestCtx)
	// r.Header.Get, without canonicalizing a key that is canonical: the
	// server canonicalizes the request's keys, and Get finds no other.
	if v := r.Header["X-Request-Id"]; len(v) > 0 && v[0] != "" && len(v[0]) <= 128 {
		rc.id = v[0]
	} else {
		rc.id = newRequestID()
	}
	rc.hdr[0] = rc.id
	w.Header()["X-Request-Id"] = rc.hdr[:] // canonical already
	if r.Method != http.MethodPost && r.Method != http.MethodPut {
		w.Header().Set("Allow", "POST, PUT")
		writeError(w, http.StatusMethodNotAllowed, sdk.Errorf(sdk.InvalidArgument, "method %s not allowed: call with POST and a JSON body", r.Method))
		return
	}
	e, ok := s.lookup(app)
	if !ok {
		writeError(w, http.StatusNotFound, s.unknownApp(app))
		return
	}
	if s.tracing == nil {
		s.serveApp(r.Context(), w, r, e, method, rc)
		return
	}
	mt, known := e.methods[method]
	if !known {
		s.serveApp(r.Context(), w, r, e, method, rc) // NotFound, untraced
		return
	}
	ctx, span := startIngress(s.tracing, r, app, &mt.spans)
	status, err := s.serveApp(ctx, w, r, e, method, rc)
	endIngress(span, status, err)
}

// serveApp answers a call of a known app and reports the status it wrote.
// The app's context is ctx with rc's request id.
func (s *Server) serveApp(ctx context.Context, w http.ResponseWriter, r *http.Request, e *entry, method string, rc *requestCtx) (int, error) {
	body, err := readBody(r, s.opts.MaxBodyBytes)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			err = sdk.Errorf(sdk.InvalidArgument, "request body exceeds %d bytes", s.opts.MaxBodyBytes)
			writeError(w, http.StatusRequestEntityTooLarge, err)
			return http.StatusRequestEntityTooLarge, err
		}
		err = sdk.Errorf(sdk.InvalidArgument, "reading request body: %v", err)
		writeError(w, http.StatusBadRequest, err)
		return http.StatusBadRequest, err
	}
	// JSON is UTF-8 (RFC 8259); json.Valid alone passes other bytes, which
	// decoding would then replace with U+FFFD, silently.
	if len(body) > 0 && (!json.Valid(body) || !utf8.Valid(body)) {
		err = sdk.NewError(sdk.InvalidArgument, "request body is not valid JSON")
		writeError(w, http.StatusBadRequest, err)
		return http.StatusBadRequest, err
	}
	out, err := s.call(rc.with(ctx), e, method, body)
	if err != nil {
		st := HTTPStatus(sdk.CodeOf(err))
		writeError(w, st, err)
		return st, err
	}
	if len(out) == 0 {
		w.WriteHeader(http.StatusNoContent)
		return http.StatusNoContent, nil
	}
	writeJSON(w, http.StatusOK, out)
	return http.StatusOK, nil
}

func (s *Server) serveApps(w http.ResponseWriter, r *http.Request) {
	type appInfo struct {
		ID            string   `json:"id"`
		Methods       []string `json:"methods"`
		Subscriptions []string `json:"subscriptions"`
	}
	out := []appInfo{}
	for _, id := range s.AppIDs() {
		e, _ := s.lookup(id)
		ai := appInfo{ID: id, Methods: e.app.Methods(), Subscriptions: []string{}}
		for _, sub := range e.app.Subscriptions() {
			ai.Subscriptions = append(ai.Subscriptions, sub.PubSub+"/"+sub.Topic)
		}
		out = append(out, ai)
	}
	b, _ := json.Marshal(map[string]any{"apps": out, "backend": s.backend.Name()})
	writeJSON(w, http.StatusOK, b)
}

// preallocBody bounds the buffer readBody allocates on the word of a
// request's Content-Length, before any of the body has arrived. Past it the
// buffer grows with the bytes actually received: otherwise a client that
// sends headers declaring the limit and then nothing holds MaxBodyBytes of
// memory per connection for as long as ReadTimeout (4 MiB for ~100 bytes
// sent).
const preallocBody = 64 << 10

func readBody(r *http.Request, limit int64) ([]byte, error) {
	if r.ContentLength > limit {
		return nil, &http.MaxBytesError{Limit: limit}
	}
	if r.ContentLength > 0 && r.ContentLength <= preallocBody {
		// net/http's body reader stops at ContentLength, within limit.
		buf := make([]byte, r.ContentLength)
		if _, err := io.ReadFull(r.Body, buf); err != nil {
			return nil, err
		}
		return buf, nil
	}
	return io.ReadAll(http.MaxBytesReader(nil, r.Body, limit))
}

// jsonContentType is the Content-Type of every JSON reply, one slice for
// all of them: net/http only reads a header's values.
var jsonContentType = []string{"application/json"}

func writeJSON(w http.ResponseWriter, status int, b []byte) {
	h := w.Header()
	h["Content-Type"] = jsonContentType
	w.WriteHeader(status)
	w.Write(b)
}

// newRequestID returns 16 random hex digits, in one allocation. The ids
// correlate records; they are not secrets, so the runtime's generator
// (ChaCha8, seeded by the OS) serves, without a getrandom call each.
func newRequestID() string {
	const digits = "0123456789abcdef"
	var b [16]byte
	n := rand.Uint64()
	for i := len(b) - 1; i >= 0; i-- {
		b[i] = digits[n&0xf]
		n >>= 4
	}
	return string(b[:])
}

// requestCtx is a call's context with its request id, as
// sdk.WithRequestID(ctx, id) would make it, and the value of its
// X-Request-Id header: one allocation where they took three (the context,
// the id boxed in it, the header's slice).
type requestCtx struct {
	context.Context
	id  string
	hdr [1]string
}

// with returns ctx with rc's request id.
func (rc *requestCtx) with(ctx context.Context) context.Context {
	if requestIDKey == nil {
		return sdk.WithRequestID(ctx, rc.id)
	}
	rc.Context = ctx
	return rc
}

// Value is sdk.RequestID's value, then ctx's. Another context made of this
// one finds its cancellation through Value, as it would through
// sdk.WithRequestID's, so it adds no goroutine.
func (rc *requestCtx) Value(key any) any {
	if key == requestIDKey {
		return rc.id
	}
	return rc.Context.Value(key)
}

// requestIDKey is the key sdk.RequestID looks its value up by, learnt from
// sdk.RequestID itself; nil if it could not be, and then requestCtx.with
// uses sdk.WithRequestID.
var requestIDKey = func() any {
	p := &keyProbe{Context: context.Background()}
	sdk.RequestID(p)
	return p.key
}()

func init() {
	// The key is right if sdk.RequestID finds the id by it.
	if requestIDKey != nil && sdk.RequestID((&requestCtx{id: "probe"}).with(context.Background())) != "probe" {
		requestIDKey = nil
	}
}

// keyProbe records the key of the last Value call.
type keyProbe struct {
	context.Context
	key any
}

func (p *keyProbe) Value(key any) any { p.key = key; return nil }

// Serve serves HTTP on ln until Shutdown. It marks the server ready first.
func (s *Server) Serve(ln net.Listener) error { return <-s.Start(ln) }

// Start marks the server ready and serves HTTP on ln in the background until
// Shutdown; the channel receives Serve's result. Readiness is set before
// Start returns: the listener is bound, so a caller that announces the host
// next can never be answered 503 by /readyz.
func (s *Server) Start(ln net.Listener) <-chan error {
	s.mu.Lock()
	base := newRequestBase()
	s.http = s.newHTTPServer(s.closeWhenDraining(s.handler))
	s.http.BaseContext = base.baseContext
	if _, ok := s.backend.(backend.AppChannel); ok {
		// The sidecar's app channel may speak gRPC: accept h2c as well.
		p := new(http.Protocols)
		p.SetHTTP1(true)
		p.SetUnencryptedHTTP2(true)
		s.http.Protocols = p
	}
	if s.conns != nil {
		ln = s.conns.listener(ln)
		s.http.ConnState = s.conns.connState
	}
	srv := s.http
	s.mu.Unlock()
	s.warnOpenStateAPI(ln.Addr())
	s.ready.Store(true)
	return serveInBackground(srv, ln)
}

// newHTTPServer is an http.Server for h with the host's timeouts, header
// cap and error log: the serving port's (Start) and the metrics port's
// (StartMetrics).
func (s *Server) newHTTPServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadTimeout:       s.opts.ReadTimeout,
		ReadHeaderTimeout: 10 * time.Second,
		WriteTimeout:      s.opts.WriteTimeout,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
}

// serveInBackground serves srv on ln until it is shut down; the channel
// receives Serve's result, nil for a shutdown.
func serveInBackground(srv *http.Server, ln net.Listener) <-chan error {
	errc := make(chan error, 1)
	go func() {
		err := srv.Serve(ln)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		errc <- err
	}()
	return errc
}

// maxHeaderBytes bounds a request's header block, request line included
// (net/http answers 431 past it). net/http's default, 1 MiB, let each
// connection still sending its headers hold a megabyte for up to
// ReadHeaderTimeout: 10 GiB at the default connection cap. 64 KiB is 8 times
// what common proxies accept (nginx's 4 × 8 KiB, daprd's 4 KiB read buffer).
const maxHeaderBytes = 64 << 10

// warnOpenStateAPI logs, once per listener, what an operator must know of a
// state sync API without a token on an address other than loopback: anyone
// who reaches it reads and writes every app's state. roam run, which turns
// it on, listens on 127.0.0.1 and stays quiet.
func (s *Server) warnOpenStateAPI(addr net.Addr) {
	if !s.opts.StateAPI || s.opts.StateAPIToken != "" {
		return
	}
	if ta, ok := addr.(*net.TCPAddr); ok && ta.IP.IsLoopback() {
		return
	}
	s.log.Warn("the state sync API is on without a token: any client that reaches "+addr.String()+
		" can read and overwrite the state of every app served here, and publish as them; set "+EnvStateAPIToken+
		", or turn --state-api off", "addr", addr.String(), "cors_origins", strings.Join(s.opts.CORSOrigins, ","))
}

// Shutdown stops accepting requests and waits for those in flight, up to
// ctx's deadline. Readiness turns off first so balancers drain the host
// (ServeUntilDone turns it off earlier, and drains before it calls
// Shutdown). If ctx ends first, Shutdown cancels the contexts of the
// requests still running, waits a moment (cutoffWait) for their handlers
// to answer, and returns ctx's error; the connections of handlers that
// ignore the cancellation stay open until they return.
func (s *Server) Shutdown(ctx context.Context) error {
	s.ready.Store(false)
	s.mu.RLock()
	srv, msrv := s.http, s.metricsHTTP
	s.mu.RUnlock()
	// The metrics port closes last: a scraper sees the whole shutdown.
	defer shutdownMetrics(msrv)
	if srv == nil {
		return nil
	}
	err := srv.Shutdown(ctx)
	if err == nil {
		return nil
	}
	cancelRequests(srv)
	wctx, cancel := context.WithTimeout(context.Background(), cutoffWait)
	defer cancel()
	srv.Shutdown(wctx) // again: it returns once every connection has closed
	return err
}
