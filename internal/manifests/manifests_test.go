package manifests_test

import (
	"os/exec"
	"reflect"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/roam-dev/roam/internal/manifests"
	"github.com/roam-dev/roam/internal/manifests/kube"
	"github.com/roam-dev/roam/operator/api/v1alpha1"
)

// The operator's signature for a renderer.
var _ func(*v1alpha1.RoamApp, manifests.Options) ([]client.Object, error) = manifests.App

func TestApp(t *testing.T) {
	a := &v1alpha1.RoamApp{
		ObjectMeta: metav1.ObjectMeta{Name: "inventory", Namespace: "shop"},
		Spec:       v1alpha1.RoamAppSpec{Image: "ghcr.io/acme/shop/inventory:v1", AllowFrom: []string{"orders"}},
	}
	opts := manifests.Options{MetricsNamespace: "monitoring"}
	got, err := manifests.App(a, opts)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := kube.App(a, opts)
	if len(got) != 4 || len(got) != len(want) {
		t.Fatalf("%d objects, kube has %d", len(got), len(want))
	}
	for i := range got {
		if !reflect.DeepEqual(got[i], client.Object(want[i])) {
			t.Errorf("object %d: %v, kube has %v", i, got[i], want[i])
		}
		if got[i].GetObjectKind().GroupVersionKind().Kind == "" {
			t.Errorf("object %d has no kind", i)
		}
	}
	a.Spec.Mode = v1alpha1.ModeEdge
	if _, err := manifests.App(a, opts); err == nil || !strings.Contains(err.Error(), "pinned by digest") {
		t.Errorf("edge without digest: %v", err)
	}
}

// TestKubeStaysLean keeps client-go and controller-runtime's client out of
// the package the roam binary (the edge host) links.
func TestKubeStaysLean(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/roam-dev/roam/internal/manifests/kube").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, dep := range strings.Fields(string(out)) {
		if strings.HasPrefix(dep, "k8s.io/client-go/") || strings.HasPrefix(dep, "sigs.k8s.io/controller-runtime/pkg/client") {
			t.Errorf("internal/manifests/kube imports %s", dep)
		}
	}
}
