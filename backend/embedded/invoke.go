package embedded

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/roam-dev/roam/abi"
	"github.com/roam-dev/roam/host"
	"github.com/roam-dev/roam/sdk"
)

// RegistryEntry is the content of registry/<appID>.json: where a running
// host serves an app.
type RegistryEntry struct {
	App string `json:"app"`
	URL string `json:"url"` // base URL, e.g. http://127.0.0.1:8080
	PID int    `json:"pid"`
}

// RegistryDir returns the directory of the local app registry.
func (b *Backend) RegistryDir() string { return b.regDir }

// maxReplyBytes bounds a remote reply read into memory.
const maxReplyBytes = 64 << 20

// Announce records in the registry that this process serves appIDs at
// baseURL, so that Invokers of other processes sharing Dir can reach them.
// Each entry is written to a temporary file and renamed into place, so a
// reader never sees half an entry. The returned withdraw removes the entries,
// unless another process has announced the same app since.
//
// A host announces its apps once it has subscribed them, so Announce also
// logs, once per topic, every unrouted log of an open app file
// that holds events no subscription in this process takes, with its count:
// such events wait, and if the topic's subscriber runs in another process
// sharing Dir, they wait until a subscriber for it starts in this one.
func (b *Backend) Announce(appIDs []string, baseURL string) (withdraw func(), err error) {
	if _, err := url.Parse(baseURL); err != nil || baseURL == "" {
		return nil, sdk.Errorf(sdk.InvalidArgument, "announce: invalid base URL %q", baseURL)
	}
	for _, id := range appIDs {
		if err := sdk.ValidAppID(id); err != nil {
			return nil, err
		}
	}
	if err := os.MkdirAll(b.regDir, 0o755); err != nil {
		return nil, sdk.Errorf(sdk.Internal, "announce: %v", err)
	}
	mine := RegistryEntry{URL: baseURL, PID: os.Getpid()}
	var written []string
	remove := func() {
		for _, p := range written {
			var e RegistryEntry
			raw, err := os.ReadFile(p)
			if err == nil && json.Unmarshal(raw, &e) == nil && e.PID == mine.PID && e.URL == mine.URL {
				os.Remove(p)
			}
		}
	}
	for _, id := range appIDs {
		e := mine
		e.App = id
		p := filepath.Join(b.regDir, id+".json")
		if err := writeFileAtomic(p, e); err != nil {
			remove()
			return nil, sdk.Errorf(sdk.Internal, "announce %s: %v", id, err)
		}
		written = append(written, p)
	}
	// A host announces its apps once it has subscribed them: events still
	// unrouted now wait for a subscriber this process does not have.
	b.warnStranded()
	var once sync.Once
	return func() { once.Do(remove) }, nil
}

func writeFileAtomic(path string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(append(data, '\n'))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp, 0o644)
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
}

// Invoker returns an invoker that reaches apps announced in the registry,
// identifying appID as the caller.
func (b *Backend) Invoker(appID string) sdk.Invoker { return invoker{b, appID} }

type invoker struct {
	b      *Backend
	caller string
}

func (i invoker) Invoke(ctx context.Context, target, method string, data []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := sdk.ValidAppID(target); err != nil {
		// The error quotes the target, cut if it is long.
		return nil, sdk.Errorf(sdk.InvalidArgument, "invoke: %v (the embedded backend has no namespaces)", err)
	}
	if method == "" {
		return nil, sdk.Errorf(sdk.InvalidArgument, "invoke %s: method is empty", target)
	}
	e, err := i.b.lookup(target)
	if err != nil {
		return nil, err
	}
	u := strings.TrimRight(e.URL, "/") + "/v1/apps/" + url.PathEscape(target) + "/methods/" + url.PathEscape(method)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(data))
	if err != nil {
		return nil, sdk.Errorf(sdk.Unavailable, "invoke %s.%s: registry URL %q is invalid: %v", target, method, e.URL, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Roam-Caller", i.caller)
	host.InjectHTTP(ctx, req.Header) // the caller's client span, when it traces
	resp, err := i.b.client.Do(req)
	if err != nil {
		return nil, transportErr(ctx, target, method, e.URL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxReplyBytes))
	if err != nil {
		return nil, transportErr(ctx, target, method, e.URL, err)
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return body, nil
	}
	return nil, replyErr(target, method, resp.StatusCode, body)
}

// lookup reads target's registry entry and checks that its process lives.
func (b *Backend) lookup(target string) (RegistryEntry, error) {
	path := filepath.Join(b.regDir, target+".json")
	raw, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return RegistryEntry{}, sdk.Errorf(sdk.Unavailable, "app %s is not running (no entry in %s)", target, b.regDir)
	}
	if err != nil {
		return RegistryEntry{}, sdk.Errorf(sdk.Unavailable, "app %s: reading registry entry: %v", target, err)
	}
	var e RegistryEntry
	if err := json.Unmarshal(raw, &e); err != nil || e.URL == "" {
		return RegistryEntry{}, sdk.Errorf(sdk.Unavailable, "app %s: registry entry %s is corrupt", target, path)
	}
	if e.PID > 0 && !pidAlive(e.PID) {
		return RegistryEntry{}, sdk.Errorf(sdk.Unavailable, "app %s is not running: stale registry entry %s (pid %d has exited)", target, path, e.PID)
	}
	return e, nil
}

func transportErr(ctx context.Context, target, method, base string, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		return sdk.Errorf(sdk.CodeOf(cerr), "invoke %s.%s at %s: %v", target, method, base, cerr)
	}
	return sdk.Errorf(sdk.Unavailable, "invoke %s.%s: app %s at %s is unreachable: %v", target, method, target, base, err)
}

// replyErr turns an error reply into an *sdk.Error: the callee's own code and
// message when the body is Roam's {"code","message"}, else a code derived
// from the HTTP status.
func replyErr(target, method string, status int, body []byte) error {
	var eb struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	}
	if json.Unmarshal(body, &eb) == nil && eb.Code != "" {
		code, ok := abi.ParseCode(eb.Code)
		if !ok || code == abi.OK {
			code = abi.Internal
		}
		return &sdk.Error{Code: code, Message: eb.Message}
	}
	msg := strings.TrimSpace(string(body))
	if len(msg) > 200 {
		msg = msg[:200] + "..."
	}
	return sdk.Errorf(host.StatusCode(status), "invoke %s.%s: HTTP %d: %s", target, method, status, msg)
}
