// Package traceapp is a test app for the edge host's tracing: it reports
// the trace context its handler sees, and publishes from a goroutine that
// one call starts and a later call lets run, so that a test can tell
// whether the host parents that publication by the context the guest sends
// (ABI v1.1) or by the call in progress. It lives under testdata so that
// ./... never builds it.
package traceapp

import (
	"context"

	"github.com/roam-dev/roam/sdk"
)

var (
	release chan struct{}
	done    chan error
)

// App registers the trace app.
var App = sdk.NewApp("traceapp", func(env sdk.Env, r *sdk.Router) error {
	pub := env.Publisher()
	sdk.Handle(r, "Trace", func(ctx context.Context, _ struct{}) (sdk.TraceContext, error) {
		return sdk.Trace(ctx), nil
	})
	// Spawn starts a goroutine, under Spawn's context, that publishes once
	// Release lets it.
	sdk.Handle(r, "Spawn", func(ctx context.Context, _ struct{}) (struct{}, error) {
		release, done = make(chan struct{}), make(chan error, 1)
		go func() {
			<-release
			done <- sdk.PublishJSON(ctx, pub, "pubsub", "spawned", struct{}{})
		}()
		return struct{}{}, nil
	})
	sdk.Handle(r, "Release", func(ctx context.Context, _ struct{}) (struct{}, error) {
		if release == nil {
			return struct{}{}, sdk.NewError(sdk.FailedPrecondition, "call Spawn first")
		}
		close(release)
		err := <-done
		release = nil
		return struct{}{}, err
	})
	return nil
})
