package manifests_test

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/roam-dev/roam/internal/manifests"
	"github.com/roam-dev/roam/operator/api/v1alpha1"
)

// The audit's specs: each is admitted by the CRD (or written by roam
// manifests, which has no API server) and renders objects that the API
// server, or Dapr, would refuse. The renderer must refuse them itself, so
// that the operator reports RenderFailed before it applies anything,
// instead of applying the ServiceAccount and Service and then failing on
// the workload (operator/controller/audit_test.go shows that on a real
// API server).

const auditDigest = "sha256:0f3c5d52c3ab1e9ec9b1a3a4b5d0e0f7c1f4c5c0d7b0a2e4c9d8e7f6a5b4c3d2"

func auditApp(name string, mutate ...func(*v1alpha1.RoamApp)) *v1alpha1.RoamApp {
	a := &v1alpha1.RoamApp{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "shop"},
		Spec:       v1alpha1.RoamAppSpec{Image: "ghcr.io/acme/shop/orders:v1"},
	}
	for _, m := range mutate {
		m(a)
	}
	return a
}

func resources(req, lim corev1.ResourceList, claims ...corev1.ResourceClaim) func(*v1alpha1.RoamApp) {
	return func(a *v1alpha1.RoamApp) {
		a.Spec.Resources = &corev1.ResourceRequirements{Requests: req, Limits: lim, Claims: claims}
	}
}

func list(kv ...string) corev1.ResourceList {
	l := corev1.ResourceList{}
	for i := 0; i < len(kv); i += 2 {
		l[corev1.ResourceName(kv[i])] = resource.MustParse(kv[i+1])
	}
	return l
}

func edgeTolerations(t ...corev1.Toleration) func(*v1alpha1.RoamApp) {
	return func(a *v1alpha1.RoamApp) {
		a.Spec.Mode = v1alpha1.ModeEdge
		a.Spec.Image = "ghcr.io/acme/shop/orders-wasm@" + auditDigest
		a.Spec.Edge = &v1alpha1.EdgeSpec{Tolerations: t}
	}
}

func TestAuditRendererRefusesWhatTheAPIServerRefuses(t *testing.T) {
	opts := manifests.Options{EdgeHostImage: "ghcr.io/roam-dev/roam-edge:v1"}
	five := int64(5)
	long := strings.Repeat("a", 60)
	for _, tc := range []struct {
		name string
		app  *v1alpha1.RoamApp
		want string
	}{
		// A Service's name must start with a letter (DNS-1035); the
		// RoamApp's name is every object's.
		{"name starting with a digit", auditApp("1orders"), `metadata.name "1orders"`},
		// Dapr's injector refuses an app id whose Service APPID-dapr is
		// longer than a DNS label: the pods are never created.
		{"app id too long for Dapr", auditApp(long), "at most 58"},
		{"explicit app id too long for Dapr", auditApp("orders", func(a *v1alpha1.RoamApp) { a.Spec.Dapr.AppID = long }), "at most 58"},
		{"negative request", auditApp("orders", resources(list("cpu", "-1"), nil)), "spec.resources.requests[cpu] -1: must not be negative"},
		{"request above limit", auditApp("orders", resources(list("memory", "2Gi"), list("memory", "1Gi"))), "spec.resources.requests[memory] 2Gi: more than the limit of 1Gi"},
		{"unknown resource", auditApp("orders", resources(list("foo", "1"), nil)), `spec.resources.requests[foo]: "foo" is not a container resource`},
		{"fractional extended resource", auditApp("orders", resources(list("nvidia.com/gpu", "500m"), list("nvidia.com/gpu", "500m"))), "whole number"},
		{"extended resource without a limit", auditApp("orders", resources(list("nvidia.com/gpu", "1"), nil)), "needs a limit too"},
		{"hugepages alone", auditApp("orders", resources(list("hugepages-2Mi", "4Mi"), list("hugepages-2Mi", "4Mi"))), "hugepages need a cpu or memory"},
		{"resource claim", auditApp("orders", resources(nil, nil, corev1.ResourceClaim{Name: "gpu"})), "spec.resources.claims"},
		{"toleration value not a label value", auditApp("orders", edgeTolerations(corev1.Toleration{Key: "k", Operator: corev1.TolerationOpEqual, Value: "has space"})),
			`spec.edge.tolerations[0]: value "has space"`},
		{"tolerationSeconds without NoExecute", auditApp("orders", edgeTolerations(corev1.Toleration{Key: "k", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule, TolerationSeconds: &five})),
			"tolerationSeconds applies only to effect NoExecute"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := manifests.App(tc.app, opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("manifests.App: %v\nwant an error saying %q", err, tc.want)
			}
		})
	}
}

// The checks refuse only what the API server refuses.
func TestAuditRendererAdmitsValidLimits(t *testing.T) {
	opts := manifests.Options{EdgeHostImage: "ghcr.io/roam-dev/roam-edge:v1"}
	five := int64(5)
	no := false
	for _, tc := range []struct {
		name string
		app  *v1alpha1.RoamApp
	}{
		{"63-character name without Dapr", auditApp(strings.Repeat("a", 63), func(a *v1alpha1.RoamApp) { a.Spec.Dapr.Enabled = &no })},
		{"58-character app id", auditApp("orders", func(a *v1alpha1.RoamApp) { a.Spec.Dapr.AppID = strings.Repeat("a", 58) })},
		{"zero resources", auditApp("orders", resources(list("cpu", "0", "memory", "0"), nil))},
		{"limits only", auditApp("orders", resources(nil, list("cpu", "2", "memory", "1Gi")))},
		{"request equal to limit", auditApp("orders", resources(list("memory", "1Gi", "ephemeral-storage", "1Gi"), list("memory", "1Gi")))},
		{"extended resource", auditApp("orders", resources(list("nvidia.com/gpu", "1", "cpu", "1"), list("nvidia.com/gpu", "1")))},
		{"hugepages with memory", auditApp("orders", resources(list("hugepages-2Mi", "4Mi", "memory", "1Gi"), list("hugepages-2Mi", "4Mi", "memory", "1Gi")))},
		{"empty resources", auditApp("orders", resources(nil, nil))},
		{"NoExecute with seconds", auditApp("orders", edgeTolerations(corev1.Toleration{Key: "k", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: &five}))},
		{"Equal with a value", auditApp("orders", edgeTolerations(corev1.Toleration{Key: "k", Value: "edge_1.a", Effect: corev1.TaintEffectNoSchedule}))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := manifests.App(tc.app, opts); err != nil {
				t.Fatal(err)
			}
		})
	}
}
