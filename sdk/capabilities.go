package sdk

import (
	"context"
	"log/slog"
)

// Invoker calls a method of another app by its app id. Data is the request
// body (JSON by convention); the reply is the callee's response body. An error
// returned by the callee arrives with its original code. The app id may carry
// a namespace, "inventory.shop", where the backend supports namespaces.
type Invoker interface {
	Invoke(ctx context.Context, appID, method string, data []byte) ([]byte, error)
}

// Call invokes appID's method with req encoded as JSON and decodes the reply
// into a Resp: the typed client side of Handle.
func Call[Resp, Req any](ctx context.Context, inv Invoker, appID, method string, req Req) (Resp, error) {
	var resp Resp
	b, err := marshal(req)
	if err != nil {
		return resp, Errorf(InvalidArgument, "invoke %s.%s: request does not encode: %v", appID, method, err)
	}
	out, err := inv.Invoke(ctx, appID, method, b)
	if err != nil {
		return resp, err
	}
	if len(out) > 0 {
		if err := unmarshal(out, &resp); err != nil {
			return resp, Errorf(Internal, "invoke %s.%s: reply does not decode: %v", appID, method, err)
		}
	}
	return resp, nil
}

// Config reads configuration by key. An absent key is NotFound.
type Config interface {
	Get(ctx context.Context, key string) (string, error)
}

// Secrets reads a secret by store name and key. An absent secret is NotFound.
type Secrets interface {
	Get(ctx context.Context, store, key string) (string, error)
}

// Env is what a host hands an app at setup: the app's identity and its
// capabilities, already bound to whatever backend the host runs on. Hosts
// implement it; apps only call it.
type Env interface {
	AppID() string
	// State returns the named state store ("statestore" by convention),
	// scoped to this app.
	State(store string) State
	Publisher() Publisher
	Invoker() Invoker
	Config() Config
	Secrets() Secrets
	// Log returns a logger carrying the app id and, when ctx is a request's
	// context, its request id.
	Log(ctx context.Context) *slog.Logger
}
