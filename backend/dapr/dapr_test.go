package dapr_test

import (
	"context"
	"testing"
	"time"

	"github.com/roam-dev/roam/backend"
	"github.com/roam-dev/roam/backend/dapr"
	"github.com/roam-dev/roam/conformance/backendtest"
	"github.com/roam-dev/roam/internal/daprtest"
)

// open connects a backend to sc, with extra variables (NAME=value) added to
// the sidecar's environment.
func open(t testing.TB, sc *daprtest.Sidecar, extra ...string) *dapr.Backend {
	t.Helper()
	o := dapr.OptionsFromEnv(sc.Getenv(extra...))
	o.StartTimeout = 30 * time.Second
	b, err := dapr.Open(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The backend state suite, unchanged, on one sidecar and Redis. Each test
// uses fresh app ids, which the sidecar does not run as, so their keys are
// scoped by the backend ("<app>|<key>") under the sidecar's own prefix.
func TestState(t *testing.T) {
	r := daprtest.StartRedis(t)
	res := daprtest.WriteResources(t, r, daprtest.ResourceOptions{StateStores: []string{"otherstore"}})
	sc := daprtest.StartSidecar(t, daprtest.SidecarOptions{AppID: "statetest", Resources: res})
	backendtest.RunState(t, func(t *testing.T) backend.Backend { return open(t, sc) })
}

// The backend pub/sub suite on a sidecar without an app channel: every
// subscription is a streaming subscription. The retry policy is the
// sidecar's Resiliency (3 deliveries), not the one the suite passes to
// Open: it matches the suite's fastRetry, and the tests that pass a
// larger budget only need three deliveries. The durable tests are skipped:
// closing a backend while its sidecar runs on leaves the events in flight
// to Dapr's retry policy, which dead-letters them once it is spent, where
// the suite expects them back after a reopen. Durability on Dapr is the
// broker's: Redis streams keep unacknowledged events pending, and the
// component redelivers them after its processingTimeout.
func TestPubSub(t *testing.T) {
	r := daprtest.StartRedis(t)
	res := daprtest.WriteResources(t, r, daprtest.ResourceOptions{MaxAttempts: 3})
	sc := daprtest.StartSidecar(t, daprtest.SidecarOptions{AppID: "pubsubtest", Resources: res})
	backendtest.RunPubSub(t, backendtest.PubSubHarness{
		Open: func(t *testing.T, dir string, p backend.RetryPolicy) backend.Backend { return open(t, sc) },
		// In one process: see lapLocked.
		ParksDeadLetterCycles: true,
	})
}
