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
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			sc := daprtest.StartSidecar(t, daprtest.SidecarOptions{
				AppID: "conformance", AppPort: ln.Addr().(*net.TCPAddr).Port, AppProtocol: proto, Resources: res,
			})
			o := dapr.OptionsFromEnv(sc.Getenv())
			o.Logger = testLogger(t)
			b, err := dapr.Open(context.Background(), o)
			if err != nil {
				t.Fatal(err)
			}
			so := host.Options{DefaultApp: "conformance", Metrics: host.NewMetrics(nil), Logger: testLogger(t)}
			srv := host.NewServer(b, so)
			rt := newRuntime(t, so.Metrics)
			bind := Binding{Backend: b, Invoker: srv.Invoker, Logger: testLogger(t)}
			for _, w := range [][]byte{confWasm, ordersWasm, inventoryWasm} {
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
			sc.WaitHealthy(t)
			conformance.RunVectors(t, conformance.HTTPDriver{BaseURL: "http://" + ln.Addr().String()})
		})
	}
}
