package webtest

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/roam-dev/roam/backend"
	"github.com/roam-dev/roam/backend/embedded"
	"github.com/roam-dev/roam/conformance"
	"github.com/roam-dev/roam/conformance/testapp"
	"github.com/roam-dev/roam/examples/shop/inventory"
	"github.com/roam-dev/roam/examples/shop/orders"
	"github.com/roam-dev/roam/host"
	"github.com/roam-dev/roam/host/native"
	"github.com/roam-dev/roam/sdk"
)

// retry is the delivery policy of both runs: the vectors' transcripts
// include ETags, which count writes, and a flaky handler writes once per
// attempt.
var retry = backend.RetryPolicy{MaxAttempts: 4, InitialBackoff: 20 * time.Millisecond, MaxBackoff: 100 * time.Millisecond}

const retryJS = `{"maxAttempts":4,"initialBackoffMs":20,"maxBackoffMs":100}`

// pageDriver runs calls through the page's Host: the status and body are
// those the JS host produces for the HTTP API.
type pageDriver struct{ b *browser }

func (d pageDriver) Call(ctx context.Context, app, method string, body []byte) (int, []byte, error) {
	v, err := d.b.do(map[string]any{"op": "call", "app": app, "method": method, "body": base64.StdEncoding.EncodeToString(body)})
	if err != nil {
		return 0, nil, err
	}
	var r struct {
		Status int    `json:"status"`
		Body   string `json:"body"`
	}
	if err := json.Unmarshal(v, &r); err != nil {
		return 0, nil, err
	}
	out, err := base64.StdEncoding.DecodeString(r.Body)
	return r.Status, out, err
}

// nativeTranscripts runs the vectors on the native host over HTTP, on a
// fresh embedded backend.
func nativeTranscripts(t *testing.T) map[string]conformance.Transcript {
	b, err := embedded.Open(embedded.Options{Dir: t.TempDir(), Retry: retry})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := native.NewServer(b, []*sdk.App{orders.App, inventory.App, testapp.App}, host.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	defer func() {
		ts.Close()
		b.Close()
	}()
	return conformance.RunVectors(t, conformance.HTTPDriver{BaseURL: ts.URL})
}

// TestVectorsInBrowser runs every conformance vector inside Chromium, with
// the modules in the JS host's worker and state on IndexedDB, and requires
// each step's status and body to equal the native host's, byte for byte
// (after the vectors' normalisation of run ids and captured values).
func TestVectorsInBrowser(t *testing.T) {
	b := startBrowser(t)
	ts := serveAssets(t, nil)
	opts := fmt.Sprintf(`{"db":"conformance-%d","retry":%s}`, time.Now().UnixNano(), retryJS)
	if e := b.openPage(pageURL(ts.URL, []string{"conformance", "orders", "inventory"}, opts)); e != "" {
		t.Fatalf("loading modules: %s\n%s", e, b.logs())
	}
	var got, want map[string]conformance.Transcript
	t.Run("browser", func(t *testing.T) { got = conformance.RunVectors(t, pageDriver{b}) })
	t.Run("native", func(t *testing.T) { want = nativeTranscripts(t) })
	if t.Failed() {
		t.Logf("page console:\n%s", b.logs())
		return
	}
	if len(want) == 0 {
		t.Fatal("no transcripts")
	}
	replies := 0
	for name, w := range want {
		g := got[name]
		replies += len(w)
		if strings.Join(g, "\n") != strings.Join(w, "\n") {
			for i := 0; i < max(len(g), len(w)); i++ {
				var gi, wi string
				if i < len(g) {
					gi = g[i]
				}
				if i < len(w) {
					wi = w[i]
				}
				if gi != wi {
					t.Errorf("vector %s, reply %d:\n browser: %.300s\n native:  %.300s", name, i, gi, wi)
				}
			}
		}
	}
	t.Logf("%d vectors, %d replies: the browser's bytes equal the native host's", len(want), replies)
}
