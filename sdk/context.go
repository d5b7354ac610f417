package sdk

import "context"

type requestIDKey struct{}

// WithRequestID returns ctx carrying a request id. Hosts call it for every
// request and delivery; apps read it with RequestID.
func WithRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, requestIDKey{}, id)
}

// RequestID returns the id of the request ctx belongs to, or "".
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}
