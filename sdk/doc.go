// Package sdk is what Roam app authors import. It is the whole app-facing API:
// typed method and topic handler registration, the capability interfaces
// (State, Publisher, Invoker, Config, Secrets) and the portable error codes.
//
// App code written against this package never learns which target it runs on.
// The same source builds natively (run by the native host, beside an embedded
// store or a Dapr sidecar), as a wasip1 module (run by the edge host or the
// browser host), and for js. The package imports only the standard library.
//
// An app declares itself in a package-level variable, so that registration
// happens during package initialisation. That matters on wasip1: a
// -buildmode=c-shared reactor runs package init only, never main.
//
//	var App = sdk.NewApp("orders", func(env sdk.Env, r *sdk.Router) error {
//		svc := &Service{state: env.State("statestore"), events: env.Publisher()}
//		sdk.Handle(r, "Create", svc.Create)
//		sdk.Subscribe(r, "pubsub", "order.cancelled", svc.OnCancelled)
//		return nil
//	})
//
// The setup function runs once per app instance, when a host binds the app to
// its capabilities (Env). Handlers receive a context carrying the request's
// deadline and id; Env.Log(ctx) returns a logger that carries both app id and
// request id. When the host traces (OpenTelemetry, configured by the OTEL_*
// variables), the context also carries the handler span's W3C trace context
// (Trace), and the capabilities called with it are that span's children,
// wherever the app runs: keep passing the handler's context, also to the
// goroutines it starts.
//
// Requests, replies, events and stored values are JSON. encoding/json's
// reflection is the costliest thing a wasm guest does, so generate codecs for
// an app's types: a line per package
//
//	//go:generate go run github.com/roam-dev/roam/cmd/roam-jsongen -type CreateOrder,OrderReply
//
// and go generate write zz_json.go (commit it), whose AppendJSON and
// DecodeJSON methods the SDK then uses instead of reflection. They encode and
// decode exactly as encoding/json does; sdk/jsonx/jsontest checks that in a
// test.
package sdk
