package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/roam-dev/roam/internal/dist"
	"github.com/roam-dev/roam/operator/config"
)

// installed runs roam with args and returns the objects it printed, by
// "Kind/name".
func installed(t *testing.T, args ...string) map[string]map[string]any {
	t.Helper()
	var out bytes.Buffer
	if err := run(context.Background(), args, &out, io.Discard); err != nil {
		t.Fatalf("roam %s: %v", strings.Join(args, " "), err)
	}
	docs, err := config.Documents(out.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	objs := map[string]map[string]any{}
	for _, d := range docs {
		objs[d["kind"].(string)+"/"+d["metadata"].(map[string]any)["name"].(string)] = d
	}
	return objs
}

func operatorContainer(t *testing.T, objs map[string]map[string]any) (image, args string) {
	t.Helper()
	d := objs["Deployment/roam-operator"]
	if d == nil {
		t.Fatal("no operator Deployment")
	}
	c := d["spec"].(map[string]any)["template"].(map[string]any)["spec"].(map[string]any)["containers"].([]any)[0].(map[string]any)
	var a []string
	for _, x := range c["args"].([]any) {
		a = append(a, x.(string))
	}
	return c["image"].(string), strings.Join(a, " ")
}

// TestOperatorInstall: `roam operator install` prints the CRD, RBAC and
// Deployment for kubectl apply, with the namespace and images asked for.
// (Its objects are installed into a real API server by cmd/roam-operator's
// tests; TestRoamStaysLean keeps client-go out of roam.)
func TestOperatorInstall(t *testing.T) {
	objs := installed(t, "operator", "install")
	for _, k := range []string{"Namespace/roam-system", "CustomResourceDefinition/roamapps.roam.dev", "ClusterRole/roam-operator",
		"Role/roam-operator", "ClusterRoleBinding/roam-operator", "RoleBinding/roam-operator", "ServiceAccount/roam-operator",
		"Deployment/roam-operator", "Service/roam-operator-metrics"} {
		if objs[k] == nil {
			t.Errorf("roam operator install prints no %s", k)
		}
	}
	image, args := operatorContainer(t, objs)
	tag := dist.Tag(versionString())
	if image != "ghcr.io/roam-dev/roam-operator:"+tag || !strings.Contains(args, "--edge-host-image=ghcr.io/roam-dev/roam-edge:"+tag) {
		t.Errorf("default images: %s, args %s", image, args)
	}

	objs = installed(t, "operator", "install", "--namespace", "platform", "--image", "reg.example/acme/roam-operator:v2")
	if objs["Namespace/platform"] == nil {
		t.Error("no Namespace/platform")
	}
	if ns := objs["Deployment/roam-operator"]["metadata"].(map[string]any)["namespace"]; ns != "platform" {
		t.Errorf("the operator is in namespace %v", ns)
	}
	image, args = operatorContainer(t, objs)
	if image != "reg.example/acme/roam-operator:v2" || !strings.Contains(args, "--edge-host-image=reg.example/acme/roam-edge:v2") {
		t.Errorf("images: %s, args %s", image, args)
	}

	dir := filepath.Join(t.TempDir(), "deploy")
	if err := run(context.Background(), []string{"operator", "install", "-o", dir, "--image", "reg.example/op:v1", "--edge-host-image", "reg.example/edge:v1"}, io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if strings.Join(names, " ") != "0-namespace.yaml 1-crd.yaml 2-rbac.yaml 3-operator.yaml" {
		t.Errorf("-o wrote %v", names)
	}

	for _, args := range [][]string{
		{"operator", "install", "--image", "reg.example/op:v1"}, // no roam-edge beside it to guess
		{"operator", "install", "--namespace", "Not_A_Label"},
		{"operator", "install", "extra"},
	} {
		if err := run(context.Background(), args, io.Discard, io.Discard); err == nil {
			t.Errorf("roam %s: no error", strings.Join(args, " "))
		}
	}
}
