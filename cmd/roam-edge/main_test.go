package main

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestEdgeHostAlone: the roam-edge image carries this binary, which must
// stay the edge host alone (its image is held to 10 MB compressed by
// internal/dist's tests): no Kubernetes types, no build or dist machinery.
func TestEdgeHostAlone(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, dep := range strings.Fields(string(out)) {
		if strings.HasPrefix(dep, "k8s.io/") || strings.HasPrefix(dep, "sigs.k8s.io/") ||
			strings.HasSuffix(dep, "/internal/dist") || strings.HasSuffix(dep, "/internal/manifests") {
			t.Errorf("roam-edge imports %s", dep)
		}
	}
}

// TestVersionAndUsage runs the binary: --version answers, and a call with
// no module is refused with the usage.
func TestVersionAndUsage(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "roam-edge")
	if out, err := exec.Command("go", "build", "-ldflags=-X main.version=v9.9.9", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "--version").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "roam-edge version v9.9.9") {
		t.Fatalf("--version: %v\n%s", err, out)
	}
	out, err = exec.Command(bin).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "requires at least 1 arg") {
		t.Fatalf("no args: %v\n%s", err, out)
	}
}
