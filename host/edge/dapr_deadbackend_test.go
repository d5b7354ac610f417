package edge

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/roam-dev/roam/host"
	"github.com/roam-dev/roam/internal/daprtest"
)

// The edge host beside a sidecar that is killed and started again: a
// guest's state call fails at once with 503 naming the sidecar, /readyz
// answers 503 while /healthz stays 200, and the same host serves again,
// with its data, once the sidecar is back. Skipped without $ROAM_DAPRD
// (test.sh sets it).
func TestEdgeDeadSidecar(t *testing.T) {
	if os.Getenv("ROAM_DAPRD") == "" {
		t.Skip("ROAM_DAPRD is unset: this test needs a real daprd (test.sh builds one)")
	}
	r := daprtest.StartRedis(t)
	res := daprtest.WriteResources(t, r, daprtest.ResourceOptions{})
	sc, base := serveOnSidecar(t, daprtest.SidecarOptions{AppID: "inventory", Resources: res},
		host.Options{DefaultApp: "inventory", RequestTimeout: 20 * time.Second}, inventoryWasm)
	sc.WaitHealthy(t)
	do := func(method, path, body string) (int, string) {
		req, _ := http.NewRequest(method, base+path, bytes.NewReader([]byte(body)))
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		rb, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(rb)
	}
	waitStatus := func(what, path string, want int, within time.Duration) {
		t.Helper()
		deadline := time.Now().Add(within)
		for {
			method, body := "GET", ""
			if strings.HasPrefix(path, "/v1/") {
				method, body = "POST", `{"sku":"edge-dead"}`
			}
			st, rb := do(method, path, body)
			if st == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %s answered %d %s, not %d within %v", what, path, st, rb, want, within)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	const stock = "/v1/apps/inventory/methods/Stock"
	if st, rb := do("POST", "/v1/apps/inventory/methods/Restock", `{"sku":"edge-dead","quantity":3}`); st != http.StatusOK {
		t.Fatalf("Restock: %d %s", st, rb)
	}

	sc.Kill()
	start := time.Now()
	st, rb := do("POST", stock, `{"sku":"edge-dead"}`)
	var eb struct{ Code, Message string }
	json.Unmarshal([]byte(rb), &eb)
	if st != http.StatusServiceUnavailable || eb.Code != "Unavailable" || !strings.Contains(eb.Message, "sidecar at "+sc.GRPCAddr()) || time.Since(start) > 10*time.Second {
		t.Errorf("Stock with the sidecar killed: %d after %v: %s; want a prompt 503 naming the sidecar", st, time.Since(start), rb)
	}
	waitStatus("sidecar killed", "/readyz", http.StatusServiceUnavailable, 10*time.Second)
	if st, rb := do("GET", "/healthz", ""); st != http.StatusOK {
		t.Errorf("/healthz with the sidecar killed: %d %s, want 200", st, rb)
	}

	if err := sc.Start(); err != nil {
		t.Fatal(err)
	}
	waitStatus("sidecar restarted", "/readyz", http.StatusOK, 20*time.Second)
	waitStatus("sidecar restarted", stock, http.StatusOK, 20*time.Second)
	if st, rb := do("POST", stock, `{"sku":"edge-dead"}`); st != http.StatusOK || !strings.Contains(rb, `"available":`+strconv.Itoa(3)) {
		t.Errorf("Stock after the restart: %d %s, want the 3 restocked before", st, rb)
	}
}
