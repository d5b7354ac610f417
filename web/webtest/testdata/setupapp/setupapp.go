// Package setupapp is a test app for the browser host whose setup uses the
// app's own capabilities: it counts its setups in state, publishes an event
// per setup (which it consumes itself) and invokes the Echo method of the
// app that state key "echo-app" (else config "echo-app") names, if any. A
// host that names the app before its setup (roam_app_id, ABI v1.2) serves
// all three; one that learns the id only from the manifest cannot. Exit
// ends the guest (wasm only), so that a test can have the setup run again
// on a new instance. Trace answers the trace context its call carries, and
// InvokeUnder invokes a method under a trace context of its own choosing (as
// a goroutine of another call would), for the tests of trace propagation.
// It lives under testdata so that ./... never builds
// it; web/webtest builds it as a wasm module.
package setupapp

import (
	"context"
	"encoding/json"
	"os"
	"runtime"

	"github.com/roam-dev/roam/sdk"
)

// SpinTopic is the topic whose events setupapp's handler loops on, and
// SpinLine what a loop writes to stderr as it starts.
const (
	SpinTopic = "setup.spin"
	SpinLine  = "setupapp: looping"
)

const (
	store  = "statestore"
	pubsub = "pubsub"
	topic  = "setup.booted"
)

// Boot is what the last setup left in state: how many setups ran (this
// one included) and what the echo app answered, or the invoke's error.
type Boot struct {
	Boots     int             `json:"boots"`
	Echo      json.RawMessage `json:"echo,omitempty"`
	EchoError string          `json:"echoError,omitempty"`
}

// App registers the setup app.
var App = sdk.NewApp("setupapp", func(env sdk.Env, r *sdk.Router) error {
	ctx := context.Background()
	st := env.State(store)
	b, _, err := sdk.GetJSON[Boot](ctx, st, "boot")
	if err != nil && sdk.CodeOf(err) != sdk.NotFound {
		return err
	}
	b.Boots++
	b.Echo, b.EchoError = nil, ""
	echo, _, err := sdk.GetJSON[string](ctx, st, "echo-app")
	if sdk.CodeOf(err) == sdk.NotFound {
		echo, err = env.Config().Get(ctx, "echo-app")
		if sdk.CodeOf(err) == sdk.NotFound {
			err = nil
		}
	}
	if err != nil {
		return err
	}
	if echo != "" {
		reply, err := env.Invoker().Invoke(ctx, echo, "Echo", []byte(`{"from":"setup"}`))
		if err != nil {
			b.EchoError = err.Error()
		} else {
			b.Echo = reply
		}
	}
	if err := sdk.SetJSON(ctx, st, "boot", b, sdk.WriteOptions{}); err != nil {
		return err
	}
	// A setup that never returns, for the tests of a guest looping while it
	// loads: config "setup-spin" asks for it (wasm only).
	if spin, _ := env.Config().Get(ctx, "setup-spin"); spin != "" && runtime.GOARCH == "wasm" {
		os.Stderr.WriteString(SpinLine + "\n")
		for {
		}
	}
	if err := sdk.PublishJSON(ctx, env.Publisher(), pubsub, topic, b.Boots); err != nil {
		return err
	}

	sdk.Handle(r, "Boot", func(ctx context.Context, _ struct{}) (Boot, error) {
		b, _, err := sdk.GetJSON[Boot](ctx, st, "boot")
		return b, err
	})
	// EchoFrom names the app the next setups invoke.
	sdk.Handle(r, "EchoFrom", func(ctx context.Context, app string) (struct{}, error) {
		return struct{}{}, sdk.SetJSON(ctx, st, "echo-app", app, sdk.WriteOptions{})
	})
	r.HandleRaw("Echo", func(ctx context.Context, b []byte) ([]byte, error) { return b, nil })
	// Seen lists the boots whose events were delivered, in order.
	sdk.Handle(r, "Seen", func(ctx context.Context, _ struct{}) ([]int, error) {
		seen, _, err := sdk.GetJSON[[]int](ctx, st, "seen")
		if sdk.CodeOf(err) == sdk.NotFound {
			return []int{}, nil
		}
		return seen, err
	})
	sdk.Handle(r, "Trace", func(ctx context.Context, _ struct{}) (Trace, error) {
		tc := sdk.Trace(ctx)
		return Trace{TraceParent: tc.TraceParent, TraceState: tc.TraceState}, nil
	})
	sdk.Handle(r, "InvokeUnder", func(ctx context.Context, req InvokeUnder) (json.RawMessage, error) {
		ctx = sdk.WithTrace(ctx, sdk.TraceContext{TraceParent: req.TraceParent, TraceState: req.TraceState})
		return env.Invoker().Invoke(ctx, req.App, req.Method, req.Body)
	})
	sdk.Handle(r, "Exit", func(ctx context.Context, _ struct{}) (struct{}, error) {
		if runtime.GOARCH != "wasm" {
			return struct{}{}, sdk.NewError(sdk.FailedPrecondition, "Exit runs only in a wasm guest")
		}
		os.Exit(3)
		return struct{}{}, nil
	})
	// An event on SpinTopic loops in its handler (wasm only), as a guest
	// that ignores its deadline while it handles an event; one whose data
	// is "record" is recorded (in "spun") instead, so that a test can see
	// the events behind it delivered.
	sdk.SubscribeJSON(r, pubsub, SpinTopic, func(ctx context.Context, e *sdk.Event, what string) error {
		if what == "record" {
			spun, _, err := sdk.GetJSON[[]string](ctx, st, "spun")
			if err != nil && sdk.CodeOf(err) != sdk.NotFound {
				return err
			}
			return sdk.SetJSON(ctx, st, "spun", append(spun, e.ID), sdk.WriteOptions{})
		}
		if runtime.GOARCH != "wasm" {
			return sdk.NewError(sdk.FailedPrecondition, "spinning runs only in a wasm guest")
		}
		os.Stderr.WriteString(SpinLine + "\n")
		for {
		}
	})
	sdk.Handle(r, "Spun", func(ctx context.Context, _ struct{}) ([]string, error) {
		spun, _, err := sdk.GetJSON[[]string](ctx, st, "spun")
		if sdk.CodeOf(err) == sdk.NotFound {
			return []string{}, nil
		}
		return spun, err
	})
	sdk.SubscribeJSON(r, pubsub, topic, func(ctx context.Context, _ *sdk.Event, boot int) error {
		seen, _, err := sdk.GetJSON[[]int](ctx, st, "seen")
		if err != nil && sdk.CodeOf(err) != sdk.NotFound {
			return err
		}
		return sdk.SetJSON(ctx, st, "seen", append(seen, boot), sdk.WriteOptions{})
	})
	return nil
})

// Trace is a W3C trace context, as the Trace method reports it.
type Trace struct {
	TraceParent string `json:"traceparent"`
	TraceState  string `json:"tracestate"`
}

// InvokeUnder asks for an invocation of App.Method with Body under the
// trace context TraceParent, TraceState (none when empty).
type InvokeUnder struct {
	App         string          `json:"app"`
	Method      string          `json:"method"`
	Body        json.RawMessage `json:"body"`
	TraceParent string          `json:"traceparent"`
	TraceState  string          `json:"tracestate"`
}
