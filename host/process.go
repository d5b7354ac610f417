package host

// The parts of a host process that do not depend on how apps run, shared by
// the native host's Run and the edge host's Run.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/roam-dev/roam/backend"
)

// NewLogger returns a host process's logger: text or JSON records on w at
// or above level, behind a bounded asynchronous pipeline. Close the
// returned handler at exit to flush it.
func NewLogger(level, format string, w io.Writer) (*slog.Logger, *AsyncHandler, error) {
	lv, err := parseLogLevel(level)
	if err != nil {
		return nil, nil, err
	}
	var base slog.Handler
	ho := &slog.HandlerOptions{Level: lv}
	if format == "json" {
		base = slog.NewJSONHandler(w, ho)
	} else {
		base = slog.NewTextHandler(w, ho)
	}
	logs := NewAsyncHandler(base, 4096)
	return slog.New(logs), logs, nil
}

// parseLogLevel reads --log-level as NewLogger takes it.
func parseLogLevel(level string) (slog.Level, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return 0, fmt.Errorf("--log-level %q: use debug, info, warn or error", level)
	}
	return lv, nil
}

// LoadDataConfig reads the optional config.json ({"key": "value"}) and
// secrets.json ({"store": {"key": "value"}}) of a data directory, the
// embedded counterparts of Dapr's configuration and local-file secret stores.
func LoadDataConfig(dir string) (map[string]string, map[string]map[string]string, error) {
	cfg := map[string]string{}
	secrets := map[string]map[string]string{}
	for name, v := range map[string]any{"config.json": &cfg, "secrets.json": &secrets} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, nil, err
		}
		if err := json.Unmarshal(b, v); err != nil {
			return nil, nil, fmt.Errorf("%s: %w", filepath.Join(dir, name), err)
		}
	}
	return cfg, secrets, nil
}

// Listen opens a host's TCP listener, saying what to do about a port in use.
func Listen(addr string, port int) (net.Listener, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort(addr, strconv.Itoa(port)))
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return nil, fmt.Errorf("port %d on %s is in use: stop the process holding it, or pass --port with another number (--port 0 picks a free one)", port, addr)
		}
		return nil, fmt.Errorf("listen on %s:%d: %w", addr, port, err)
	}
	return ln, nil
}

// ServeOptions describe what ServeUntilDone prints and how it shuts down.
type ServeOptions struct {
	Stdout  io.Writer // the human-facing start-up lines
	Start   time.Time // when the process started, for the "ready in" line
	DataDir string
	// Grace is how long in-flight requests get at shutdown, counted from
	// the moment ctx is done (--shutdown-grace); the drain is part of it.
	Grace  time.Duration
	Logger *slog.Logger
	// Drain is how long the host goes on accepting and serving requests
	// once ctx is done, with /readyz answering 503 and every reply asking
	// its client to close the connection, before it stops accepting; it is
	// part of Grace, and never longer. Zero means DefaultDrain(Grace) when
	// a SIGTERM ended ctx (an orchestrator stopping the process) and none
	// otherwise (a Ctrl-C at a terminal: nothing balances traffic to it);
	// negative means none.
	Drain time.Duration
	// OnReady, when set, runs once the host serves and has printed its
	// ready line.
	OnReady func()
	// Metrics, when set, is the listener of --metrics-port
	// (ListenMetrics): /metrics is served there alone (Server.StartMetrics),
	// and the serving port answers 404 to it. ServeUntilDone closes it.
	Metrics net.Listener
}

// DefaultDrain is the drain after a SIGTERM: half the grace, at most 5
// seconds. Kubernetes sends SIGTERM while the pod's endpoints are still
// being removed, and kube-proxy, ingresses and the clients' keep-alive
// connections go on sending requests for a few seconds; a host that
// stopped accepting at once would refuse them.
func DefaultDrain(grace time.Duration) time.Duration {
	return min(grace/2, 5*time.Second)
}

// drain returns the drain of a shutdown that sig started (nil: not a
// signal): Drain, or its default; never more than the grace.
func (o ServeOptions) drain(sig os.Signal) time.Duration {
	d := o.Drain
	if d == 0 && sig == syscall.SIGTERM {
		d = DefaultDrain(o.Grace)
	}
	return max(0, min(d, o.Grace))
}

// ServeUntilDone announces srv's apps on b (when b is a
// backend.Announcer), serves srv on ln (and its /metrics on o.Metrics, when
// set), prints the start-up lines, and shuts down gracefully when ctx is
// done. It closes ln and o.Metrics; the caller closes b.
//
// The shutdown takes at most o.Grace from the moment ctx is done. /readyz
// answers 503 at once; the host then drains (ServeOptions.Drain): it still
// accepts and serves, and asks each client to close its connection after
// the reply. It then stops accepting and waits for the requests in flight
// until the grace ends. Past the grace, it cancels the contexts of those
// still running, gives them a moment to answer, and returns an error, so
// that the process exits non-zero: a clean shutdown returns nil.
//
// When a signal ended ctx (see NotifyContext), a second SIGINT or SIGTERM
// ends the process at once, with status 128 plus the signal's number.
func ServeUntilDone(ctx context.Context, srv *Server, b backend.Backend, ln net.Listener, o ServeOptions) error {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	baseURL := "http://" + ln.Addr().String()
	if an, ok := b.(backend.Announcer); ok {
		withdraw, err := an.Announce(srv.AppIDs(), baseURL)
		if err != nil {
			ln.Close()
			if o.Metrics != nil {
				o.Metrics.Close()
			}
			return err
		}
		defer withdraw()
	}

	// A host stopped before it was ever ready has no traffic to drain.
	stoppedEarly := ctx.Err() != nil
	// The metrics port first: once the main one serves, /metrics is
	// nowhere but there. A nil merrc never receives.
	metricsURL := baseURL
	var merrc <-chan error
	if o.Metrics != nil {
		metricsURL = "http://" + o.Metrics.Addr().String()
		merrc = srv.StartMetrics(o.Metrics)
		// Shutdown stops it; this, on the returns that do not shut down.
		defer srv.closeMetrics()
	}
	errc := srv.Start(ln)

	if b.Name() == "embedded" {
		fmt.Fprintf(o.Stdout, "roam: backend %s, data in %s\n", b.Name(), o.DataDir)
	} else {
		fmt.Fprintf(o.Stdout, "roam: backend %s\n", b.Name()) // its data lives behind the sidecar
	}
	for _, id := range srv.AppIDs() {
		fmt.Fprintf(o.Stdout, "roam: app %-10s %s/v1/apps/%s/methods/{method}\n", id, baseURL, id)
	}
	if srv.opts.Web != nil {
		fmt.Fprintf(o.Stdout, "roam: page %s/web/\n", baseURL)
	}
	fmt.Fprintf(o.Stdout, "roam: ready on %s in %s (metrics %s/metrics)\n", baseURL, time.Since(o.Start).Round(time.Microsecond), metricsURL)
	if o.OnReady != nil {
		o.OnReady()
	}

	select {
	case err := <-errc:
		return err
	case err := <-merrc:
		return metricsServeError(err)
	case <-ctx.Done():
	}
	// The grace counts from now: an orchestrator's own grace period (the
	// pod's terminationGracePeriodSeconds) started with its SIGTERM.
	deadline := time.Now().Add(o.Grace)
	// NotifyContext, which delivered the signal, handles a second one.
	sig, bySignal := shutdownSignal(ctx)
	drain := o.drain(sig)
	if stoppedEarly {
		drain = 0
	}
	// Not ready from now on: the balancers stop sending requests here, and
	// the replies of the drain ask their clients to close (see Start).
	srv.ready.Store(false)
	attrs := []any{"grace", o.Grace}
	if bySignal {
		attrs = append(attrs, "signal", sig.String())
	}
	if drain > 0 {
		attrs = append(attrs, "drain", drain)
		log.Info("shutting down: /readyz answers 503; still serving while balancers drain", attrs...)
		t := time.NewTimer(drain)
		select {
		case <-t.C:
		case err := <-errc:
			t.Stop()
			return err
		case err := <-merrc:
			t.Stop()
			return metricsServeError(err)
		}
	} else {
		log.Info("shutting down", attrs...)
	}
	sctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		log.Warn("shutdown: requests still in flight when the grace ran out were cancelled", "grace", o.Grace, "err", err)
		return fmt.Errorf("shutdown: requests were still in flight when --shutdown-grace %s ran out, and were cancelled", o.Grace)
	}
	return nil
}

// metricsServeError is the error of a metrics server that stopped serving
// before the host shut down.
func metricsServeError(err error) error {
	if err == nil {
		err = errors.New("stopped")
	}
	return fmt.Errorf("serving /metrics on --metrics-port: %w", err)
}

// errGraceOver is the cause of a request's context that Shutdown cancelled
// because its deadline passed.
var errGraceOver = errors.New("the host is shutting down and its shutdown grace ran out")

// cutoffWait is how long Shutdown waits, once its deadline has passed and
// it has cancelled the requests still running, for their handlers to answer.
const cutoffWait = time.Second

// requestBase is the base context of the requests of a started server
// (http.Server.BaseContext). Shutdown cancels it once its deadline has
// passed: the handlers still running then stop, rather than go on using a
// backend that their host closes next.
type requestBase struct {
	context.Context
	cancel context.CancelCauseFunc
}

func newRequestBase() *requestBase {
	ctx, cancel := context.WithCancelCause(context.Background())
	return &requestBase{Context: ctx, cancel: cancel}
}

func (rb *requestBase) baseContext(net.Listener) context.Context { return rb }

// cancelRequests cancels the contexts of srv's requests, when Start gave
// it a requestBase.
func cancelRequests(srv *http.Server) {
	if srv.BaseContext == nil {
		return
	}
	if rb, ok := srv.BaseContext(nil).(*requestBase); ok {
		rb.cancel(errGraceOver)
	}
}

// closeWhenDraining wraps a started server's handler: once the server is no
// longer ready (it is shutting down), each reply asks its client to close
// the connection (on HTTP/2, the server then sends GOAWAY). A client that
// keeps a connection open would otherwise go on sending its requests to a
// host that is about to stop, while the balancers in front of it already
// send new connections elsewhere; the next request of a client told to
// close opens a connection through them.
func (s *Server) closeWhenDraining(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.ready.Load() {
			w.Header().Set("Connection", "close")
		}
		h.ServeHTTP(w, r)
	})
}

// CloseBackend closes b for a host that is exiting, waiting at most wait,
// and returns an error if it did not close cleanly: Close failed, did not
// return within wait, or returned while a delivery's handler still ran (in
// srv, which may be nil before the server exists).
//
// A backend's Close waits for its deliveries in flight, cancels them after
// its own grace, and at last leaves running a handler that ignores the
// cancellation (core.DrainOrCancel); wait only backs that up, for a Close
// that would block anyway. Exiting then is safe for at-least-once
// delivery: an event is acknowledged only once its handler has returned,
// so an event whose handler was left running is delivered again by the
// next host. The exit is not clean, though, and the error makes it
// non-zero.
func CloseBackend(b backend.Backend, srv *Server, wait time.Duration) error {
	done := make(chan error, 1)
	go func() { done <- b.Close() }()
	t := time.NewTimer(wait)
	defer t.Stop()
	var err error
	select {
	case cerr := <-done:
		if cerr != nil {
			err = fmt.Errorf("closing backend %s: %w", b.Name(), cerr)
		}
	case <-t.C:
		return fmt.Errorf("backend %s was not closed within %s; exiting without it (events whose handlers were running are not acknowledged, and will be delivered again)", b.Name(), wait)
	}
	if srv != nil {
		if n := srv.deliveriesInFlight(); n > 0 {
			err = errors.Join(err, fmt.Errorf("backend %s closed with %d deliveries' handlers still running, which ignored their cancellation; exiting without them (their events are not acknowledged, and will be delivered again)", b.Name(), n))
		}
	}
	return err
}

// BackendCloseWait is how long a host waits for its backend's Close at
// exit (CloseBackend): more than the backends' own bound, 5 seconds for
// the deliveries in flight and as long again once they are cancelled.
const BackendCloseWait = 15 * time.Second

// deliveriesInFlight counts the deliveries whose handlers are running
// (roam_pubsub_deliveries_in_flight, all series).
func (s *Server) deliveriesInFlight() int {
	fams, _ := s.metrics.Registry.Gather() // what it could gather
	var n float64
	for _, f := range fams {
		if f.GetName() == "roam_pubsub_deliveries_in_flight" {
			for _, m := range f.GetMetric() {
				n += m.GetGauge().GetValue()
			}
		}
	}
	return int(n)
}

// ShutdownSignal is the cause of a context that NotifyContext cancelled.
type ShutdownSignal struct{ Signal os.Signal }

func (e *ShutdownSignal) Error() string { return e.Signal.String() + " signal received" }

// Is makes the cause match context.Canceled, as os/signal's does.
func (e *ShutdownSignal) Is(target error) bool { return target == context.Canceled }

// NotifyContext returns a copy of parent that is cancelled when the process
// receives one of sigs (SIGINT and SIGTERM when none are given), with a
// *ShutdownSignal naming the signal as its cause (ServeUntilDone drains
// after a SIGTERM, not after a Ctrl-C). A second of those signals ends the
// process at once, with status 128 plus its number (130, 143), as the
// default action of the signal would: an operator who sends it does not
// want to wait for the grace, or for a handler that ignores its
// cancellation. stop unregisters the signals.
func NotifyContext(parent context.Context, sigs ...os.Signal) (ctx context.Context, stop func()) {
	if len(sigs) == 0 {
		sigs = []os.Signal{os.Interrupt, syscall.SIGTERM}
	}
	ctx, cancel := context.WithCancelCause(parent)
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, sigs...)
	stopped := make(chan struct{})
	go func() {
		select {
		case sig := <-ch:
			cancel(&ShutdownSignal{sig})
		case <-stopped:
			return
		case <-ctx.Done():
			return
		}
		// The same channel: no second signal is lost in between.
		select {
		case sig := <-ch:
			forceExit(sig)
		case <-stopped:
		}
	}()
	var once sync.Once
	return ctx, func() {
		once.Do(func() {
			signal.Stop(ch)
			close(stopped)
			cancel(context.Canceled)
		})
	}
}

// shutdownSignal reports the signal that ended ctx: NotifyContext's
// *ShutdownSignal cause.
func shutdownSignal(ctx context.Context) (os.Signal, bool) {
	var ss *ShutdownSignal
	if errors.As(context.Cause(ctx), &ss) {
		return ss.Signal, true
	}
	return nil, false
}

// forceExit ends the process at once on a second signal: no flush, no
// Close. The embedded backend's file is safe (bbolt commits atomically),
// and events whose handlers were running are delivered again.
func forceExit(sig os.Signal) {
	code := 1
	if n, ok := sig.(syscall.Signal); ok {
		code = 128 + int(n)
	}
	fmt.Fprintf(os.Stderr, "roam: %s received again while shutting down: exiting now, without waiting for requests and deliveries in flight\n", sig)
	os.Exit(code)
}
