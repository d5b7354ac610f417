// Package native is the native host: it runs apps compiled into the same
// binary, binding each app's sdk.Env to a backend and serving them with the
// shared transport in package host.
//
// `roam run` and `roam build` generate a main package that imports the app
// packages (whose package-level sdk.NewApp calls register them) and calls
// Main. App code therefore never contains a main of its own, which is what
// lets the very same package build as a wasip1 reactor.
package native

import (
	"context"
	"log/slog"
	"sync"

	"github.com/roam-dev/roam/backend"
	"github.com/roam-dev/roam/host"
	"github.com/roam-dev/roam/sdk"
)

// App adapts a set-up sdk.Router to host.App.
type App struct {
	r    *sdk.Router
	subs map[[2]string]sdk.EventHandler
}

var _ host.App = (*App)(nil)

// Setup binds a to b through s (for in-process invocation) and returns the
// running app, ready to be added to s.
func Setup(a *sdk.App, b backend.Backend, s *host.Server, log *slog.Logger) (app *App, err error) {
	env := &Env{id: a.ID(), b: b, inv: s.Invoker(a.ID()), log: log.With("app", a.ID()), tr: s.Tracing(), stores: map[string]sdk.State{}}
	// A setup that panics is that app's error, as a returned one is: it
	// printed a goroutine dump and exited 2.
	defer func() {
		if v := recover(); v != nil {
			app, err = nil, sdk.Errorf(sdk.Internal, "setup panicked: %v", v)
		}
	}()
	r, err := a.Setup(env)
	if err != nil {
		return nil, err
	}
	app = &App{r: r, subs: map[[2]string]sdk.EventHandler{}}
	for _, sub := range r.Subscriptions() {
		app.subs[[2]string{sub.PubSub, sub.Topic}] = sub.Handler
	}
	return app, nil
}

// ID returns the app id.
func (a *App) ID() string { return a.r.AppID() }

// Methods returns the app's method names.
func (a *App) Methods() []string { return a.r.Methods() }

// Subscriptions returns the app's subscriptions.
func (a *App) Subscriptions() []backend.Subscription {
	var out []backend.Subscription
	for _, s := range a.r.Subscriptions() {
		out = append(out, backend.Subscription{AppID: a.ID(), PubSub: s.PubSub, Topic: s.Topic, DeadLetterTopic: s.DeadLetterTopic})
	}
	return out
}

// Call runs a method handler.
func (a *App) Call(ctx context.Context, method string, req []byte) ([]byte, error) {
	h, ok := a.r.Method(method)
	if !ok {
		return nil, sdk.Errorf(sdk.NotFound, "app %q has no method %s", a.ID(), sdk.QuoteName(method))
	}
	return h(ctx, req)
}

// Deliver runs the topic handler for e.
func (a *App) Deliver(ctx context.Context, e *sdk.Event) error {
	h, ok := a.subs[[2]string{e.PubSub, e.Topic}]
	if !ok {
		return sdk.Errorf(sdk.NotFound, "app %q does not subscribe to %s/%s", a.ID(), e.PubSub, e.Topic)
	}
	return h(ctx, e)
}

// Env is the native sdk.Env: capabilities come straight from the backend
// (with the host's spans around them when it traces), invocation goes
// through the host so that co-hosted apps call in-process.
type Env struct {
	id  string
	b   backend.Backend
	inv sdk.Invoker
	log *slog.Logger
	tr  host.Tracer // nil: not traced

	mu     sync.Mutex
	stores map[string]sdk.State
}

var _ sdk.Env = (*Env)(nil)

// AppID returns the app id.
func (e *Env) AppID() string { return e.id }

// State returns the app's named store.
func (e *Env) State(store string) sdk.State {
	e.mu.Lock()
	defer e.mu.Unlock()
	s, ok := e.stores[store]
	if !ok {
		s = host.TracedState(e.tr, e.id, store, e.b.Name(), e.b.State(e.id, store))
		e.stores[store] = s
	}
	return s
}

// Publisher returns the app's publisher.
func (e *Env) Publisher() sdk.Publisher { return host.TracedPublisher(e.tr, e.id, e.b.Publisher(e.id)) }

// Invoker returns the app's invoker.
func (e *Env) Invoker() sdk.Invoker { return e.inv }

// Config is the backend's configuration with ROAM_CONFIG_* variables of
// the environment over it (host.EnvConfig).
func (e *Env) Config() sdk.Config { return host.EnvConfig(e.b.Config(e.id), nil) }

// Secrets returns the app's secrets.
func (e *Env) Secrets() sdk.Secrets { return e.b.Secrets(e.id) }

// Log returns a logger with the app id, ctx's request id and, when the
// host traces, the ids of the call's trace and span.
func (e *Env) Log(ctx context.Context) *slog.Logger {
	id, tr := sdk.RequestID(ctx), host.TraceLogAttrs(ctx)
	if id == "" && tr == nil {
		return e.log
	}
	var args []any
	if id != "" {
		args = append(args, slog.String("request_id", id))
	}
	for _, a := range tr {
		args = append(args, a)
	}
	return e.log.With(args...)
}
