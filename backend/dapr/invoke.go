package dapr

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/roam-dev/roam/host"
	"github.com/roam-dev/roam/sdk"
)

// Invoker returns an invoker that calls apps by their Dapr app id through
// the sidecar's HTTP API: POST /v1.0/invoke/{app}/method/{method}, which
// reaches the callee's /{method} and passes its status and body back
// unchanged, so that an error keeps its code across the hop (see
// invokeReplyErr). The app id may carry a namespace: "inventory.shop".
func (b *Backend) Invoker(appID string) sdk.Invoker { return invoker{b, appID} }

type invoker struct {
	b      *Backend
	caller string
}

func (i invoker) Invoke(ctx context.Context, target, method string, data []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := validTarget(target); err != nil {
		return nil, err
	}
	if method == "" {
		return nil, sdk.Errorf(sdk.InvalidArgument, "invoke %s: method is empty", target)
	}
	if i.b.isClosed() {
		return nil, closedErr()
	}
	h := i.b.http
	if h == nil {
		return nil, sdk.Errorf(sdk.FailedPrecondition, "invoke %s.%s: invocation through Dapr uses the sidecar's HTTP API; set DAPR_HTTP_PORT", target, method)
	}
	u := h.base + "/v1.0/invoke/" + esc(target) + "/method/" + escMethod(method)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(data))
	if err != nil {
		return nil, sdk.Errorf(sdk.InvalidArgument, "invoke %s.%s: %v", target, method, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Roam-Caller", i.caller)
	if id := sdk.RequestID(ctx); id != "" {
		req.Header.Set("X-Request-Id", id)
	}
	host.InjectHTTP(ctx, req.Header) // the client span: the sidecars' spans and the callee's are its children
	if h.token != "" {
		req.Header.Set(apiTokenHeader, h.token)
	}
	resp, err := h.client.Do(req)
	if err != nil {
		return nil, i.b.transportErr(ctx, "invoke "+target+"."+method, err)
	}
	defer resp.Body.Close()
	body, err := readBody(resp.Body)
	if errors.Is(err, errTooBig) {
		return nil, sdk.Errorf(sdk.Internal, "invoke %s.%s: the reply %v", target, method, err)
	}
	if err != nil {
		return nil, i.b.transportErr(ctx, "invoke "+target+"."+method, err)
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return body, nil
	}
	return nil, invokeReplyErr(target, method, resp.StatusCode, body)
}

// validTarget accepts an app id, optionally followed by ".namespace".
func validTarget(target string) error {
	id, ns, hasNS := strings.Cut(target, ".")
	// The errors quote the id or the namespace, cut if it is long.
	if err := sdk.ValidAppID(id); err != nil {
		return sdk.Errorf(sdk.InvalidArgument, "invoke: %v", err)
	}
	if hasNS {
		if err := sdk.ValidAppID(ns); err != nil {
			return sdk.Errorf(sdk.InvalidArgument, "invoke %s: namespace: %v", sdk.QuoteName(id), err)
		}
	}
	return nil
}

// escMethod escapes each segment of a method, which may hold slashes.
func escMethod(m string) string {
	parts := strings.Split(m, "/")
	for i, p := range parts {
		parts[i] = esc(p)
	}
	return strings.Join(parts, "/")
}
