package native_test

import (
	"net/http/httptest"
	"testing"
	"time"

	"github.com/roam-dev/roam/backend"
	"github.com/roam-dev/roam/backend/embedded"
	"github.com/roam-dev/roam/backend/memory"
	"github.com/roam-dev/roam/conformance"
	"github.com/roam-dev/roam/conformance/testapp"
	"github.com/roam-dev/roam/examples/shop/inventory"
	"github.com/roam-dev/roam/examples/shop/orders"
	"github.com/roam-dev/roam/host"
	"github.com/roam-dev/roam/host/native"
	"github.com/roam-dev/roam/sdk"
)

var fastRetry = backend.RetryPolicy{MaxAttempts: 4, InitialBackoff: 20 * time.Millisecond, MaxBackoff: 100 * time.Millisecond}

func serve(t *testing.T, b backend.Backend) string {
	t.Helper()
	srv, err := native.NewServer(b, []*sdk.App{orders.App, inventory.App, testapp.App}, host.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(func() {
		ts.Close()
		b.Close()
	})
	return ts.URL
}

func TestVectorsEmbedded(t *testing.T) {
	b, err := embedded.Open(embedded.Options{Dir: t.TempDir(), Retry: fastRetry})
	if err != nil {
		t.Fatal(err)
	}
	conformance.RunVectors(t, conformance.HTTPDriver{BaseURL: serve(t, b)})
}

func TestVectorsMemory(t *testing.T) {
	b := memory.New(memory.Options{Retry: fastRetry})
	conformance.RunVectors(t, conformance.HTTPDriver{BaseURL: serve(t, b)})
}
