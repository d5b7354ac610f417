// Package host is the part of every Roam host that does not depend on how an
// app's code runs: the HTTP transport, health, metrics, the bounded log
// pipeline, and the wiring of pub/sub deliveries and invocations to apps.
//
// A host runs Apps. The native host adapts apps compiled into the binary
// (host/native); the edge host adapts wasm modules (host/edge). Because both
// are served by this one transport, the same request gets the same bytes back
// whichever way the app runs.
package host

import (
	"context"

	"github.com/roam-dev/roam/backend"
	"github.com/roam-dev/roam/sdk"
)

// App is one running app, however its code is executed.
type App interface {
	ID() string
	// Methods lists the callable method names, sorted.
	Methods() []string
	// Subscriptions lists the app's topic subscriptions (AppID filled in).
	Subscriptions() []backend.Subscription
	// Call runs a method. req is the request body; the reply is the response
	// body. Errors carry sdk codes; an unknown method is NotFound.
	Call(ctx context.Context, method string, req []byte) ([]byte, error)
	// Deliver hands an event to the app's handler for e's pubsub and topic.
	Deliver(ctx context.Context, e *sdk.Event) error
}
