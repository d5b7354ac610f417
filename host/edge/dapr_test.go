package edge

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/roam-dev/roam/backend/dapr"
	"github.com/roam-dev/roam/conformance"
	"github.com/roam-dev/roam/host"
	"github.com/roam-dev/roam/internal/daprtest"
)

// The app-level vectors on the edge host with the Dapr backend: the three
// wasm modules bind their ABI imports to a real sidecar (Redis behind it),
// and their events arrive through the host's app channel, over HTTP and
// over gRPC.
func TestVectorsOnDapr(t *testing.T) {
	r := daprtest.StartRedis(t)
	res := daprtest.WriteResources(t, r, daprtest.ResourceOptions{MaxAttempts: 4})
	for _, proto := range []string{"http", "grpc"} {
		t.Run(proto, func(t *testing.T) {
			sc, base := serveOnSidecar(t, daprtest.SidecarOptions{AppID: "conformance", AppProtocol: proto, Resources: res},
				host.Options{DefaultApp: "conformance"}, confWasm, ordersWasm, inventoryWasm)
			sc.WaitHealthy(t)
			conformance.RunVectors(t, conformance.HTTPDriver{BaseURL: base})
		})
	}
}

// serveOnSidecar starts a sidecar (so's AppPort is set here) and an edge
// host beside it on the Dapr backend, with the modules loaded into it. so
// gets its Metrics and Logger here. Both stop at the test's end. It
// returns the sidecar and the host's base URL.
func serveOnSidecar(t *testing.T, sco daprtest.SidecarOptions, so host.Options, wasms ...[]byte) (*daprtest.Sidecar, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sco.AppPort = ln.Addr().(*net.TCPAddr).Port
	sc := daprtest.StartSidecar(t, sco)
	o := dapr.OptionsFromEnv(sc.Getenv())
	o.Logger = testLogger(t)
	b, err := dapr.Open(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	so.Metrics, so.Logger = host.NewMetrics(nil), testLogger(t)
	srv := host.NewServer(b, so)
	rt := newRuntime(t, so.Metrics)
	bind := Binding{Backend: b, Invoker: srv.Invoker, Logger: testLogger(t)}
	for _, w := range wasms {
		m, err := rt.Load(context.Background(), w, ModuleOptions{}, bind)
		if err != nil {
			t.Fatal(err)
		}
		if err := srv.Add(m); err != nil {
			t.Fatal(err)
		}
	}
	if err := srv.StartDeliveries(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { srv.Serve(ln); close(done) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		<-done
		b.Close()
	})
	return sc, "http://" + ln.Addr().String()
}
