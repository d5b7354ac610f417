package k8scheck

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

func TestDocuments(t *testing.T) {
	docs := Documents([]byte("# header\n---\na: 1\n---\n# only a comment\n---\n\nb: 2\n---\n"))
	if len(docs) != 2 || strings.TrimSpace(string(docs[0])) != "a: 1" || strings.TrimSpace(string(docs[1])) != "b: 2" {
		t.Fatalf("%q", docs)
	}
}

func TestCheck(t *testing.T) {
	svc := "apiVersion: v1\nkind: Service\nmetadata:\n  name: orders\n  namespace: shop\nspec:\n  ports:\n  - port: 80\n"
	obj, err := Check([]byte(svc), nil)
	if _, ok := obj.(*corev1.Service); err != nil || !ok {
		t.Fatalf("%T %v", obj, err)
	}
	for _, c := range []struct{ doc, want string }{
		{strings.Replace(svc, "  - port: 80\n", "  - port: 80\n    prot: 81\n", 1), `unknown field "spec.ports[0].prot"`},
		{svc + "spec:\n  type: NodePort\n", `key "spec" already set`},
		{strings.Replace(svc, "name: orders", "name: Orders", 1), "metadata.name"},
		{strings.Replace(svc, "kind: Service", "kind: Servic", 1), "no kind \"Servic\" is registered"},
	} {
		if _, err := Check([]byte(c.doc), nil); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("err = %v, want %q", err, c.want)
		}
	}
}

// TestRoamAppCRD loads the repository's own CRD and validates a RoamApp
// against its schema (its CEL rules are not evaluated).
func TestRoamAppCRD(t *testing.T) {
	crds, err := LoadCRDDir("../../../operator/config/crd")
	if err != nil {
		t.Fatal(err)
	}
	if len(crds.Kinds()) != 1 || crds.Kinds()[0].Kind != "RoamApp" {
		t.Fatalf("kinds %v", crds.Kinds())
	}
	app := "apiVersion: roam.dev/v1alpha1\nkind: RoamApp\nmetadata:\n  name: orders\n  namespace: shop\nspec:\n  image: ghcr.io/acme/shop/orders:v1\n"
	if _, err := Check([]byte(app), crds); err != nil {
		t.Fatal(err)
	}
	if _, err := Check([]byte(app+"  replicas: 2000\n  colour: blue\n"), crds); err == nil ||
		!strings.Contains(err.Error(), "spec.replicas") || !strings.Contains(err.Error(), "spec.colour") {
		t.Errorf("err = %v", err)
	}
}
