package k8scheck

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/roam-dev/roam/internal/daprtest"
)

// TestShopDaprResources validates the self-hosted Dapr resources the shop
// ships (examples/shop/dapr) against the CRDs of the Dapr module go.mod
// requires: a field Dapr's schema lacks is silently dropped by daprd, so
// it is an error here. So are the resources the Dapr tests write.
func TestShopDaprResources(t *testing.T) {
	dir, err := DaprCRDDir("")
	if err != nil {
		t.Fatal(err)
	}
	crds, err := LoadCRDDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob("../../../examples/shop/dapr/*.yaml")
	more, _ := filepath.Glob("../../../examples/shop/dapr/components/*.yaml")
	files = append(files, more...)
	if len(files) < 4 {
		t.Fatalf("found only %v", files)
	}
	// And those the Dapr tests run daprd with, every option on.
	res := daprtest.WriteResources(t, &daprtest.Redis{Addr: "127.0.0.1:1", Port: 1}, daprtest.ResourceOptions{
		MaxAttempts: 5, Secrets: map[string]string{"k": "v"}, StateStores: []string{"second"}, OTLPEndpoint: "127.0.0.1:4317"})
	more, _ = filepath.Glob(filepath.Join(res.Dir, "*.yaml"))
	if len(more) < 4 {
		t.Fatalf("daprtest wrote only %v", more)
	}
	files = append(append(files, more...), res.Config)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, doc := range Documents(b) {
			if _, err := Check(doc, crds); err != nil {
				t.Errorf("%s: %v", filepath.Base(f), err)
			}
		}
	}
}
