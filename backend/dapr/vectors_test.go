package dapr_test

import (
	"testing"

	"github.com/roam-dev/roam/conformance"
	"github.com/roam-dev/roam/conformance/testapp"
	"github.com/roam-dev/roam/examples/shop/inventory"
	"github.com/roam-dev/roam/examples/shop/orders"
	"github.com/roam-dev/roam/internal/daprtest"
	"github.com/roam-dev/roam/sdk"
)

// The app-level vectors, unchanged, on the native host with the Dapr
// backend: the shop's two apps and the conformance app in one host behind
// one sidecar, whose app channel (HTTP, then gRPC) delivers their events.
func TestVectorsNative(t *testing.T) {
	r := daprtest.StartRedis(t)
	res := daprtest.WriteResources(t, r, daprtest.ResourceOptions{MaxAttempts: 4})
	for _, proto := range []string{"http", "grpc"} {
		t.Run(proto, func(t *testing.T) {
			h := startHost(t, hostOptions{appID: "conformance", appProtocol: proto, res: res},
				orders.App, inventory.App, testapp.App)
			conformance.RunVectors(t, conformance.HTTPDriver{BaseURL: h.URL, Client: client})
		})
	}
	_ = sdk.OK
}
