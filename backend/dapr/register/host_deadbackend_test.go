package register_test

import (
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/roam-dev/roam/internal/daprtest"
)

// The native host started with --backend dapr before its sidecar, as in a
// Kubernetes pod whose containers start together: it says what it waits
// for, becomes ready once the sidecar answers, and then follows the
// sidecar's health on /readyz (not on /healthz) without a restart.
// Skipped without $ROAM_DAPRD (test.sh sets it).
func TestNativeHostSidecarLate(t *testing.T) {
	if os.Getenv("ROAM_DAPRD") == "" {
		t.Skip("ROAM_DAPRD is unset: this test needs a real daprd (test.sh builds one)")
	}
	r := daprtest.StartRedis(t)
	res := daprtest.WriteResources(t, r, daprtest.ResourceOptions{})
	port := daprtest.FreePort(t)
	sc := daprtest.StartSidecar(t, daprtest.SidecarOptions{AppID: "inventory", AppPort: port, Resources: res})
	sc.Kill()
	for k, v := range sc.Env() {
		t.Setenv(k, v)
	}
	started := make(chan error, 1)
	go func() {
		time.Sleep(2 * time.Second)
		started <- sc.Start()
	}()
	base, stop := run(t, "--port", strconv.Itoa(port), "--data-dir", t.TempDir(), "--backend", "dapr")
	if err := <-started; err != nil {
		t.Fatal(err)
	}
	get := func(path string) int {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if st := get("/readyz"); st != http.StatusOK {
		t.Errorf("/readyz with the sidecar up: %d", st)
	}
	sc.Kill()
	deadline := time.Now().Add(10 * time.Second)
	for get("/readyz") != http.StatusServiceUnavailable {
		if time.Now().After(deadline) {
			t.Fatal("/readyz still 200 10s after the sidecar was killed")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if st := get("/healthz"); st != http.StatusOK {
		t.Errorf("/healthz with the sidecar killed: %d, want 200", st)
	}
	if err := sc.Start(); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(20 * time.Second)
	for get("/readyz") != http.StatusOK {
		if time.Now().After(deadline) {
			t.Fatal("/readyz not back to 200 within 20s of the sidecar's restart")
		}
		time.Sleep(50 * time.Millisecond)
	}
	logs := stop()
	for _, l := range strings.Split(logs, "\n") {
		if strings.Contains(l, "sidecar") {
			t.Log(l)
		}
	}
	for _, want := range []string{"waiting for the sidecar", sc.GRPCAddr(), "the sidecar does not answer", "the sidecar answers again"} {
		if !strings.Contains(logs, want) {
			t.Errorf("the host's log does not say %q:\n%s", want, logs)
		}
	}
}
