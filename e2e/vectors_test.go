package e2e_test

import (
	"testing"

	"github.com/roam-dev/roam/conformance"
)

// TestVectors runs every conformance vector against `roam run` of the shop
// and the conformance app: the same suite the native host passes in-process,
// here through the real binary, its embedded backend and its HTTP server.
func TestVectors(t *testing.T) {
	t.Parallel()
	h := startHost(t, t.TempDir(), shopAndConformance)
	tr := conformance.RunVectors(t, conformance.HTTPDriver{BaseURL: h.URL, Client: client})
	vs, err := conformance.LoadVectors()
	if err != nil {
		t.Fatal(err)
	}
	if len(vs) == 0 {
		t.Fatal("no vectors")
	}
	if t.Failed() {
		return
	}
	for _, v := range vs {
		// Every step answers at least once (a concurrent step n times).
		if got := len(tr[v.Name]); got < len(v.Steps) {
			t.Errorf("vector %s: %d replies for %d steps", v.Name, got, len(v.Steps))
		}
	}
}
