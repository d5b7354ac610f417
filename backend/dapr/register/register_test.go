package register_test

import (
	"context"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	_ "github.com/roam-dev/roam/backend/dapr/register"
	_ "github.com/roam-dev/roam/examples/shop/inventory"
	"github.com/roam-dev/roam/host/native"
	"github.com/roam-dev/roam/internal/daprtest"
	"github.com/roam-dev/roam/internal/syncbuf"
)

var readyRE = regexp.MustCompile(`roam: ready on (http://\S+) in`)

// run starts the native host as its generated main would, with args, and
// returns its base URL and a function that stops it and returns its logs.
// The host logs through an asynchronous handler, which Run flushes as it
// returns: a record logged before the ready line may reach stderr after
// it, so the logs are read once the host has stopped.
func run(t *testing.T, args ...string) (string, func() string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	stdout, stderr := &syncbuf.Buffer{}, &syncbuf.Buffer{}
	done := make(chan struct{})
	var runErr error
	go func() { runErr = native.Run(ctx, args, stdout, stderr); close(done) }()
	stop := func() string {
		cancel()
		<-done
		return stderr.String()
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			t.Logf("stdout:\n%s\nstderr:\n%s", stdout, stderr)
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		if m := readyRE.FindStringSubmatch(stdout.String()); m != nil {
			return m[1], stop
		}
		select {
		case <-done:
			t.Fatalf("host exited: %v\n%s\n%s", runErr, stdout, stderr)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("host not ready:\n%s\n%s", stdout, stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// The native host picks Dapr when a sidecar's variables are set, logs the
// choice, and serves the app channel on its port; --backend embedded
// overrides the environment.
func TestNativeHostSelection(t *testing.T) {
	r := daprtest.StartRedis(t)
	res := daprtest.WriteResources(t, r, daprtest.ResourceOptions{})
	port := daprtest.FreePort(t)
	sc := daprtest.StartSidecar(t, daprtest.SidecarOptions{AppID: "inventory", AppPort: port, Resources: res})
	for k, v := range sc.Env() {
		t.Setenv(k, v)
	}

	t.Run("dapr from the environment", func(t *testing.T) {
		base, stop := run(t, "--port", strconv.Itoa(port), "--data-dir", t.TempDir())
		sc.WaitHealthy(t)
		// Through the sidecar, which calls the host's app channel.
		resp, err := http.Post("http://"+sc.HTTPAddr()+"/v1.0/invoke/inventory/method/Restock", "application/json",
			strings.NewReader(`{"sku":"sel","quantity":2}`))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("invoke through the sidecar: %s", resp.Status)
		}
		resp, err = http.Post(base+"/v1/apps/inventory/methods/Stock", "application/json", strings.NewReader(`{"sku":"sel"}`))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("Stock: %s", resp.Status)
		}
		if logs := stop(); !strings.Contains(logs, "backend selected") || !strings.Contains(logs, "backend=dapr") ||
			!strings.Contains(logs, "DAPR_") {
			t.Fatalf("start-up log does not give the choice and its reason:\n%s", logs)
		}
	})

	t.Run("forced embedded", func(t *testing.T) {
		_, stop := run(t, "--port", "0", "--data-dir", t.TempDir(), "--backend", "embedded")
		if logs := stop(); !strings.Contains(logs, "backend=embedded") || !strings.Contains(logs, "--backend embedded") {
			t.Fatalf("start-up log:\n%s", logs)
		}
	})
}
