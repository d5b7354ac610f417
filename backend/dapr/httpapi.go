package dapr

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"github.com/roam-dev/roam/host"
	"github.com/roam-dev/roam/sdk"
)

// httpSidecar speaks the sidecar's HTTP API (/v1.0/...). It is the fallback
// when the gRPC port does not answer, and the path of every invocation (see
// invoke.go).
//
// One limit is Dapr's, not this client's: the HTTP state API takes values
// as JSON and re-encodes them (through jsoniter, whose floats keep six
// decimals), so a value that is not JSON cannot be saved over HTTP and JSON
// values may come back re-formatted. Values are read back byte for byte.
type httpSidecar struct {
	b      *Backend
	base   string // http://127.0.0.1:3500
	token  string
	client *http.Client
}

func (h *httpSidecar) protocol() string { return "http" }
func (h *httpSidecar) close() error     { h.client.CloseIdleConnections(); return nil }

// do sends one request and returns the status and body of a reply.
func (h *httpSidecar) do(ctx context.Context, what, method, path string, body []byte, hdr map[string]string) (int, []byte, http.Header, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, h.base+path, rd)
	if err != nil {
		return 0, nil, nil, sdk.Errorf(sdk.InvalidArgument, "dapr %s: %v", what, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	host.InjectHTTP(ctx, req.Header)
	if h.token != "" {
		req.Header.Set(apiTokenHeader, h.token)
	}
	resp, err := h.client.Do(req)
	if err != nil {
		return 0, nil, nil, h.b.transportErr(ctx, what, err)
	}
	defer resp.Body.Close()
	b, err := readBody(resp.Body)
	if errors.Is(err, errTooBig) {
		return 0, nil, nil, sdk.Errorf(sdk.Internal, "dapr %s: the sidecar's reply %v", what, err)
	}
	if err != nil {
		return 0, nil, nil, h.b.transportErr(ctx, what, err)
	}
	return resp.StatusCode, b, resp.Header, nil
}

func (h *httpSidecar) call(ctx context.Context, what, method, path string, body []byte, hdr map[string]string) ([]byte, http.Header, error) {
	st, b, rh, err := h.do(ctx, what, method, path, body, hdr)
	if err != nil {
		return nil, nil, err
	}
	if st >= 300 {
		return nil, nil, h.b.httpAPIErr(what, st, b)
	}
	return b, rh, nil
}

func esc(s string) string { return url.PathEscape(s) }

func (h *httpSidecar) get(ctx context.Context, store, key string) (stored, error) {
	what := "state get " + store + "/" + keyInMessage(key)
	st, b, hdr, err := h.do(ctx, what, http.MethodGet, "/v1.0/state/"+esc(store)+"/"+esc(key), nil, nil)
	if err != nil {
		return stored{}, err
	}
	switch {
	case st == http.StatusNoContent:
		return stored{}, nil
	case st >= 300:
		return stored{}, h.b.httpAPIErr(what, st, b)
	}
	return stored{value: b, version: hdr.Get("ETag"), found: true}, nil
}

// bulkGet reads the keys one by one, in parallel: the bulk endpoint embeds
// values in its JSON reply and so cannot return values that are not JSON.
func (h *httpSidecar) bulkGet(ctx context.Context, store string, keys []string) (map[string]stored, error) {
	out := make(map[string]stored, len(keys))
	var mu sync.Mutex
	var first error
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for _, k := range keys {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			it, err := h.get(ctx, store, k)
			mu.Lock()
			defer mu.Unlock()
			if err != nil && first == nil {
				first = err
			}
			out[k] = it
		}()
	}
	wg.Wait()
	return out, first
}

type httpStateOptions struct {
	Concurrency string `json:"concurrency,omitempty"`
}

type httpStateItem struct {
	Key      string            `json:"key"`
	Value    json.RawMessage   `json:"value,omitempty"`
	ETag     *string           `json:"etag,omitempty"`
	Metadata map[string]string `json:"metadata,omitempty"`
	Options  *httpStateOptions `json:"options,omitempty"`
}

func httpItem(op writeOp, store string) (httpStateItem, error) {
	it := httpStateItem{Key: op.key, Metadata: op.md, Options: &httpStateOptions{}}
	switch {
	case op.etag != "":
		e := op.etag
		it.ETag = &e
	case op.firstWrite:
		it.Options.Concurrency = "first-write"
	default:
		it.Options.Concurrency = "last-write"
	}
	if !op.del {
		if !json.Valid(op.value) {
			return it, sdk.Errorf(sdk.InvalidArgument,
				"state save %s/%s: the sidecar's HTTP API stores JSON values only and this value is not JSON; use the gRPC API (DAPR_GRPC_PORT)", store, keyInMessage(op.key))
		}
		it.Value = op.value
	}
	return it, nil
}

func (h *httpSidecar) write(ctx context.Context, store string, op writeOp) error {
	if op.del {
		what := "state delete " + store + "/" + keyInMessage(op.key)
		hdr := map[string]string{}
		q := url.Values{}
		switch {
		case op.etag != "":
			hdr["If-Match"] = op.etag
		default:
			q.Set("concurrency", "last-write")
		}
		for k, v := range op.md {
			q.Set("metadata."+k, v)
		}
		_, _, err := h.call(ctx, what, http.MethodDelete, "/v1.0/state/"+esc(store)+"/"+esc(op.key)+"?"+q.Encode(), nil, hdr)
		return err
	}
	it, err := httpItem(op, store)
	if err != nil {
		return err
	}
	body, _ := json.Marshal([]httpStateItem{it})
	_, _, err = h.call(ctx, "state save "+store+"/"+keyInMessage(op.key), http.MethodPost, "/v1.0/state/"+esc(store), body, nil)
	return err
}

func (h *httpSidecar) transact(ctx context.Context, store string, ops []writeOp) error {
	type txOp struct {
		Operation string        `json:"operation"`
		Request   httpStateItem `json:"request"`
	}
	req := struct {
		Operations []txOp `json:"operations"`
	}{}
	for _, op := range ops {
		it, err := httpItem(op, store)
		if err != nil {
			return err
		}
		kind := "upsert"
		if op.del {
			kind = "delete"
		}
		req.Operations = append(req.Operations, txOp{kind, it})
	}
	body, _ := json.Marshal(req)
	_, _, err := h.call(ctx, "state transaction "+store, http.MethodPost, "/v1.0/state/"+esc(store)+"/transaction", body, nil)
	return err
}

func (h *httpSidecar) publish(ctx context.Context, pubsub, topic string, data []byte, ct string, md map[string]string) error {
	q := url.Values{}
	for k, v := range md {
		q.Set("metadata."+k, v)
	}
	what := "publish " + pubsub + "/" + topic
	path := "/v1.0/publish/" + esc(pubsub) + "/" + esc(topic)
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	st, b, _, err := h.do(ctx, what, http.MethodPost, path, data, map[string]string{"Content-Type": ct})
	if err != nil {
		return err
	}
	if st >= 300 {
		return h.b.httpAPIErr(what, st, b)
	}
	return nil
}

func (h *httpSidecar) secret(ctx context.Context, store, key string) (map[string]string, error) {
	what := "secret " + store + "/" + key
	b, _, err := h.call(ctx, what, http.MethodGet, "/v1.0/secrets/"+esc(store)+"/"+esc(key), nil, nil)
	if err != nil {
		return nil, err
	}
	var m map[string]string
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, sdk.Errorf(sdk.Internal, "dapr %s: reply does not decode: %v", what, err)
	}
	return m, nil
}

func (h *httpSidecar) config(ctx context.Context, store, key string) (string, bool, error) {
	what := "configuration " + store + "/" + key
	b, _, err := h.call(ctx, what, http.MethodGet, "/v1.0/configuration/"+esc(store)+"?key="+url.QueryEscape(key), nil, nil)
	if err != nil {
		return "", false, err
	}
	var m map[string]struct {
		Value string `json:"value"`
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return "", false, nil
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return "", false, sdk.Errorf(sdk.Internal, "dapr %s: reply does not decode: %v", what, err)
	}
	it, ok := m[key]
	return it.Value, ok, nil
}

func (h *httpSidecar) metadata(ctx context.Context) (sidecarInfo, error) {
	b, _, err := h.call(ctx, "metadata", http.MethodGet, "/v1.0/metadata", nil, nil)
	if err != nil {
		return sidecarInfo{}, err
	}
	var m struct {
		ID  string `json:"id"`
		App *struct {
			Port     int    `json:"port"`
			Protocol string `json:"protocol"`
		} `json:"appConnectionProperties"`
		Components []struct {
			Name string `json:"name"`
			Type string `json:"type"`
		} `json:"components"`
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return sidecarInfo{}, sdk.Errorf(sdk.Internal, "dapr metadata: reply does not decode: %v", err)
	}
	info := sidecarInfo{appID: m.ID, components: map[string]string{}}
	if m.App != nil {
		info.appPort, info.appProto = m.App.Port, m.App.Protocol
	}
	for _, c := range m.Components {
		info.components[c.Name] = c.Type
	}
	return info, nil
}

// trimSlash keeps base URLs canonical.
func trimSlash(s string) string { return strings.TrimRight(s, "/") }
