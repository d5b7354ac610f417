package dapr_test

import (
	"context"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/roam-dev/roam/backend/dapr"
	"github.com/roam-dev/roam/conformance"
	"github.com/roam-dev/roam/host"
	"github.com/roam-dev/roam/host/native"
	"github.com/roam-dev/roam/internal/daprtest"
	"github.com/roam-dev/roam/sdk"
)

// hostOnDapr is a native host serving apps beside its own daprd.
type hostOnDapr struct {
	URL     string
	Port    int
	Sidecar *daprtest.Sidecar
	Backend *dapr.Backend
	Server  *host.Server
}

type hostOptions struct {
	appID       string // the sidecar's app id
	appProtocol string // http (default) or grpc
	res         daprtest.Resources
	sidecarEnv  []string // e.g. APP_API_TOKEN=..., NAMESPACE=...
	backendEnv  []string // e.g. APP_API_TOKEN=..., DAPR_API_TOKEN=...
	noWait      bool     // do not wait for the sidecar to report healthy
	tracing     host.Tracer
}

// startHost starts daprd for o.appID with an app channel to a fresh port,
// opens the Dapr backend, sets apps up on it and serves them on that port.
//
// The port is reserved, not listened on, until the host serves, as a real
// host opens its port (native.Run: host.Listen, then Serve): daprd sees it
// refused until the host answers there (daprtest.ReservedPort).
func startHost(t testing.TB, o hostOptions, apps ...*sdk.App) *hostOnDapr {
	t.Helper()
	rp := daprtest.ReservePort(t)
	port := rp.Port
	sc := daprtest.StartSidecar(t, daprtest.SidecarOptions{
		AppID: o.appID, AppPort: port, AppProtocol: o.appProtocol, Resources: o.res, Env: o.sidecarEnv,
	})
	opts := dapr.OptionsFromEnv(sc.Getenv(o.backendEnv...))
	opts.StartTimeout = 30 * time.Second
	opts.Tracing = o.tracing != nil
	b, err := dapr.Open(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	def := ""
	for _, a := range apps {
		if a.ID() == o.appID {
			def = o.appID
		}
	}
	srv, err := native.NewServer(b, apps, host.Options{DefaultApp: def, RequestTimeout: 20 * time.Second, Tracing: o.tracing})
	if err != nil {
		b.Close()
		t.Fatal(err)
	}
	ln, err := rp.Listen()
	if err != nil {
		b.Close()
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
	if !o.noWait {
		sc.WaitHealthy(t)
	}
	return &hostOnDapr{URL: "http://127.0.0.1:" + strconv.Itoa(port), Port: port, Sidecar: sc, Backend: b, Server: srv}
}

// appDriver routes each app's calls to the host that serves it.
type appDriver map[string]string

func (d appDriver) Call(ctx context.Context, app, method string, body []byte) (int, []byte, error) {
	return call(ctx, d[app], app, method, body)
}

var client = &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 256}}

func call(ctx context.Context, base, app, method string, body []byte) (int, []byte, error) {
	return conformance.HTTPDriver{BaseURL: base, Client: client}.Call(ctx, app, method, body)
}
