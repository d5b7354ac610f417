package register_test

import (
	"bytes"
	"context"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/roam-dev/roam/backend/dapr/register"
	_ "github.com/roam-dev/roam/examples/shop/inventory"
	"github.com/roam-dev/roam/host/native"
	"github.com/roam-dev/roam/internal/daprtest"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

var readyRE = regexp.MustCompile(`roam: ready on (http://\S+) in`)

// run starts the native host as its generated main would, with args, and
// returns its base URL and logs.
func run(t *testing.T, args ...string) (string, *syncBuffer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	stdout, stderr := &syncBuffer{}, &syncBuffer{}
	done := make(chan error, 1)
	go func() { done <- native.Run(ctx, args, stdout, stderr) }()
	t.Cleanup(func() {
		cancel()
		<-done
		if t.Failed() {
			t.Logf("stdout:\n%s\nstderr:\n%s", stdout, stderr)
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		if m := readyRE.FindStringSubmatch(stdout.String()); m != nil {
			return m[1], stderr
		}
		select {
		case err := <-done:
			t.Fatalf("host exited: %v\n%s\n%s", err, stdout, stderr)
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
		base, logs := run(t, "--port", strconv.Itoa(port), "--data-dir", t.TempDir())
		if !strings.Contains(logs.String(), "backend selected") || !strings.Contains(logs.String(), "backend=dapr") ||
			!strings.Contains(logs.String(), "DAPR_") {
			t.Fatalf("start-up log does not give the choice and its reason:\n%s", logs)
		}
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
	})

	t.Run("forced embedded", func(t *testing.T) {
		_, logs := run(t, "--port", "0", "--data-dir", t.TempDir(), "--backend", "embedded")
		if !strings.Contains(logs.String(), "backend=embedded") || !strings.Contains(logs.String(), "--backend embedded") {
			t.Fatalf("start-up log:\n%s", logs)
		}
	})
}
