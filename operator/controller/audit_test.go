package controller

import (
	"context"
	"fmt"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/client-go/tools/record"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/roam-dev/roam/internal/manifests"
	"github.com/roam-dev/roam/operator/api/v1alpha1"
	"github.com/roam-dev/roam/operator/operatortest"
)

// The audit: hostile or careless RoamApps and cluster states, on the real
// API server. A bad spec must be refused by the CRD, or by the operator
// with a condition and an Event, and never leave an app half-applied.

// TestAuditCRDRefusesNamesTheObjectsCannotHave: the CRD admitted a name
// starting with a digit, which the Service cannot have (a DNS-1035 label),
// and app ids longer than Dapr allows.
func TestAuditCRDRefusesNamesTheObjectsCannotHave(t *testing.T) {
	c := setup(t)
	ctx := context.Background()
	ns := namespace(t, c)
	long := strings.Repeat("a", 59)
	for _, tc := range []struct {
		name string
		app  *v1alpha1.RoamApp
		want string
	}{
		{"name starting with a digit", nativeApp(ns, "1orders"), "metadata.name must be a DNS label starting with a letter"},
		{"name too long for Dapr", func() *v1alpha1.RoamApp { a := nativeApp(ns, long); a.Spec.Dapr.AppID = ""; return a }(), "must be at most 58 characters with Dapr enabled"},
		{"app id too long for Dapr", func() *v1alpha1.RoamApp { a := nativeApp(ns, "orders"); a.Spec.Dapr.AppID = long; return a }(), "must be at most 58 characters with Dapr enabled"},
		{"65 tolerations", func() *v1alpha1.RoamApp {
			a := edgeApp(ns, "inventory")
			for i := 0; i < 65; i++ {
				a.Spec.Edge.Tolerations = append(a.Spec.Edge.Tolerations, corev1.Toleration{Key: fmt.Sprintf("k%d", i), Operator: corev1.TolerationOpExists})
			}
			return a
		}(), "spec.edge.tolerations: Too many"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := c.Create(ctx, tc.app)
			if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("create: %v\nwant Invalid with %q", err, tc.want)
			}
		})
	}
	// Without Dapr, a 63-character name is fine; with it, 58.
	no := false
	plain := nativeApp(ns, strings.Repeat("b", 63))
	plain.Spec.Dapr = v1alpha1.DaprSpec{Enabled: &no}
	dapr := nativeApp(ns, "orders")
	dapr.Spec.Dapr.AppID = strings.Repeat("c", 58)
	for _, a := range []*v1alpha1.RoamApp{plain, dapr} {
		if err := c.Create(ctx, a); err != nil {
			t.Fatal(err)
		}
		wantStatus(t, c, a, "False/RollingOut", "True/RollingOut", "False/AsExpected")
	}
}

// objectsOf lists which of app's objects exist.
func objectsOf(t *testing.T, c client.Client, ns, name string) []string {
	t.Helper()
	var have []string
	for _, o := range []client.Object{&corev1.ServiceAccount{}, &corev1.Service{}, &appsv1.Deployment{}, &appsv1.DaemonSet{}, &networkingv1.NetworkPolicy{}} {
		if err := get(c, ns, name, o); err == nil {
			have = append(have, fmt.Sprintf("%T", o))
		} else if !apierrors.IsNotFound(err) {
			t.Fatal(err)
		}
	}
	return have
}

// TestAuditSpecsTheServerRefusesApplyNothing: resources and tolerations the
// CRD admits but a Deployment or DaemonSet may not have. The operator
// applied the ServiceAccount and the Service, then failed on the workload,
// and retried with backoff for ever; now the renderer refuses them, and
// nothing is applied.
func TestAuditSpecsTheServerRefusesApplyNothing(t *testing.T) {
	c := setup(t)
	ctx := context.Background()
	ns := namespace(t, c)
	q := resource.MustParse
	five := int64(5)
	for name, tc := range map[string]struct {
		change func(*v1alpha1.RoamApp)
		want   string
	}{
		"negative": {func(a *v1alpha1.RoamApp) {
			a.Spec.Resources = &corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: q("-1")}}
		}, "must not be negative"},
		"above-limit": {func(a *v1alpha1.RoamApp) {
			a.Spec.Resources = &corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceMemory: q("2Gi")}, Limits: corev1.ResourceList{corev1.ResourceMemory: q("1Gi")}}
		}, "more than the limit"},
		"claim": {func(a *v1alpha1.RoamApp) {
			a.Spec.Resources = &corev1.ResourceRequirements{Claims: []corev1.ResourceClaim{{Name: "gpu"}}}
		}, "spec.resources.claims"},
		"unknown": {func(a *v1alpha1.RoamApp) {
			a.Spec.Resources = &corev1.ResourceRequirements{Requests: corev1.ResourceList{"foo": q("1")}}
		}, "is not a container resource"},
		"toleration-value": {func(a *v1alpha1.RoamApp) {
			*a = *edgeApp(a.Namespace, a.Name)
			a.Spec.Edge.Tolerations = []corev1.Toleration{{Key: "k", Operator: corev1.TolerationOpEqual, Value: "has space"}}
		}, `value "has space"`},
		"toleration-seconds": {func(a *v1alpha1.RoamApp) {
			*a = *edgeApp(a.Namespace, a.Name)
			a.Spec.Edge.Tolerations = []corev1.Toleration{{Key: "k", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule, TolerationSeconds: &five}}
		}, "tolerationSeconds applies only to effect NoExecute"},
	} {
		t.Run(name, func(t *testing.T) {
			app := nativeApp(ns, name)
			tc.change(app)
			if err := c.Create(ctx, app); err != nil {
				t.Fatalf("the CRD refuses it (fine, but not what this test is about): %v", err)
			}
			st := wantStatus(t, c, app, "False/RenderFailed", "False/RenderFailed", "True/RenderFailed")
			if m := meta.FindStatusCondition(st.Status.Conditions, v1alpha1.ConditionDegraded).Message; !strings.Contains(m, tc.want) {
				t.Errorf("Degraded says %q, want %q", m, tc.want)
			}
			wantEvent(t, c, app, corev1.EventTypeWarning, "RenderFailed", tc.want)
			if have := objectsOf(t, c, ns, name); len(have) > 0 {
				t.Errorf("half-applied: %v exist", have)
			}
		})
	}
}

// TestAuditResourcesTheServerAdmitsAreApplied: the renderer's new checks
// refuse nothing the API server admits.
func TestAuditResourcesTheServerAdmitsAreApplied(t *testing.T) {
	c := setup(t)
	ctx := context.Background()
	ns := namespace(t, c)
	l := func(kv ...string) corev1.ResourceList {
		r := corev1.ResourceList{}
		for i := 0; i < len(kv); i += 2 {
			r[corev1.ResourceName(kv[i])] = resource.MustParse(kv[i+1])
		}
		return r
	}
	five := int64(5)
	for name, change := range map[string]func(*v1alpha1.RoamApp){
		"zero": func(a *v1alpha1.RoamApp) {
			a.Spec.Resources = &corev1.ResourceRequirements{Requests: l("cpu", "0", "memory", "0")}
		},
		"limits": func(a *v1alpha1.RoamApp) {
			a.Spec.Resources = &corev1.ResourceRequirements{Limits: l("cpu", "2", "memory", "1Gi")}
		},
		"equal": func(a *v1alpha1.RoamApp) {
			a.Spec.Resources = &corev1.ResourceRequirements{Requests: l("memory", "1Gi"), Limits: l("memory", "1Gi")}
		},
		"extended": func(a *v1alpha1.RoamApp) {
			a.Spec.Resources = &corev1.ResourceRequirements{Requests: l("nvidia.com/gpu", "1", "cpu", "1"), Limits: l("nvidia.com/gpu", "1")}
		},
		"hugepages": func(a *v1alpha1.RoamApp) {
			a.Spec.Resources = &corev1.ResourceRequirements{Requests: l("hugepages-2Mi", "4Mi", "memory", "1Gi"), Limits: l("hugepages-2Mi", "4Mi", "memory", "1Gi")}
		},
		"noexecute": func(a *v1alpha1.RoamApp) {
			*a = *edgeApp(a.Namespace, a.Name)
			a.Spec.Edge.Tolerations = []corev1.Toleration{{Key: "k", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: &five},
				{Key: "pool", Value: "edge_1.a", Effect: corev1.TaintEffectNoSchedule}}
		},
	} {
		app := nativeApp(ns, name)
		change(app)
		if err := c.Create(ctx, app); err != nil {
			t.Fatal(err)
		}
		wantStatus(t, c, app, "False/RollingOut", "True/RollingOut", "False/AsExpected")
	}
}

// TestAuditAppIDChangeReplacesTheWorkload: the app id is in the workload's
// selector, which Kubernetes does not let change. The operator re-pointed
// the Service at the new id's pods (none), then failed on the Deployment
// for ever: an outage. Now it replaces the workload, and the Service
// follows.
func TestAuditAppIDChangeReplacesTheWorkload(t *testing.T) {
	c := setup(t)
	ctx := context.Background()
	ns := namespace(t, c)
	for _, app := range []*v1alpha1.RoamApp{nativeApp(ns, "orders"), edgeApp(ns, "inventory")} {
		if err := c.Create(ctx, app); err != nil {
			t.Fatal(err)
		}
		wantStatus(t, c, app, "False", "True", "False/AsExpected")
		var w client.Object = &appsv1.Deployment{}
		if app.Spec.Mode == v1alpha1.ModeEdge {
			w = &appsv1.DaemonSet{}
		}
		if err := get(c, ns, app.Name, w); err != nil {
			t.Fatal(err)
		}
		old := w.GetUID()
		app = update(t, c, app, func(a *v1alpha1.RoamApp) { a.Spec.Dapr.AppID = a.Name + "-v2" })
		wantStatus(t, c, app, "False", "True", "False/AsExpected")
		operatortest.Eventually(t, "the workload with the new selector", func() error {
			if err := get(c, ns, app.Name, w); err != nil {
				return err
			}
			if got := selectorOf(w).MatchLabels["app.kubernetes.io/name"]; w.GetUID() == old || got != app.Name+"-v2" {
				return fmt.Errorf("uid %s (old %s), selector app id %s", w.GetUID(), old, got)
			}
			return checkOwner(w, app)
		})
		svc := &corev1.Service{}
		if err := get(c, ns, app.Name, svc); err != nil || svc.Spec.Selector["app.kubernetes.io/name"] != app.Name+"-v2" {
			t.Errorf("Service selector %v, %v", svc.Spec.Selector, err)
		}
		wantEvent(t, c, app, corev1.EventTypeNormal, "Replaced", "cannot change")
	}
}

// TestAuditTwoRoamAppsWithOneAppID: roam manifests refuses two apps with
// one app id in a namespace (kube.Render); the operator applied both, and
// their sidecars then shared one Dapr identity. Now the younger is refused
// until the older goes.
func TestAuditTwoRoamAppsWithOneAppID(t *testing.T) {
	c := setup(t)
	ctx := context.Background()
	ns := namespace(t, c)
	first := nativeApp(ns, "orders")
	if err := c.Create(ctx, first); err != nil {
		t.Fatal(err)
	}
	wantStatus(t, c, first, "False", "True", "False/AsExpected")
	second := nativeApp(ns, "orders-copy")
	second.Spec.Dapr.AppID = "orders"
	if err := c.Create(ctx, second); err != nil {
		t.Fatal(err)
	}
	st := wantStatus(t, c, second, "False/AppIDTaken", "False/AppIDTaken", "True/AppIDTaken")
	if m := meta.FindStatusCondition(st.Status.Conditions, v1alpha1.ConditionDegraded).Message; !strings.Contains(m, "RoamApp orders") {
		t.Errorf("Degraded says %q", m)
	}
	wantEvent(t, c, second, corev1.EventTypeWarning, "AppIDTaken", "app id orders is taken by RoamApp orders")
	if have := objectsOf(t, c, ns, second.Name); len(have) > 0 {
		t.Errorf("the refused RoamApp has %v", have)
	}
	wantStatus(t, c, first, "False", "True", "False/AsExpected")

	// The first one takes another id: the second runs, with no requeue
	// timer involved (the watch wakes it).
	update(t, c, first, func(a *v1alpha1.RoamApp) { a.Spec.Dapr.AppID = "orders-old" })
	wantStatus(t, c, second, "False/RollingOut", "True/RollingOut", "False/AsExpected")
	if err := get(c, ns, second.Name, &appsv1.Deployment{}); err != nil {
		t.Error(err)
	}
}

// TestAuditHugeErrorStillReachesTheStatus: a spec with many bad entries
// rendered an error longer than a condition's message may be (32768
// bytes), so the status write was refused and retried for ever, and the
// RoamApp never said what was wrong.
func TestAuditHugeErrorStillReachesTheStatus(t *testing.T) {
	c := setup(t)
	ctx := context.Background()
	ns := namespace(t, c)
	app := edgeApp(ns, "inventory")
	app.Spec.Edge.NodeSelector = map[string]string{}
	for i := 0; i < 40; i++ {
		app.Spec.Edge.NodeSelector[fmt.Sprintf("%03d%s", i, strings.Repeat("_", 1000))] = "x"
	}
	if err := c.Create(ctx, app); err != nil {
		t.Fatal(err)
	}
	st := wantStatus(t, c, app, "False/RenderFailed", "False/RenderFailed", "True/RenderFailed")
	m := meta.FindStatusCondition(st.Status.Conditions, v1alpha1.ConditionDegraded).Message
	if !strings.Contains(m, "spec.edge.nodeSelector key") || !strings.Contains(m, "see the RoamApp's events") || len(m) > maxMessage {
		t.Errorf("Degraded says (%d bytes) %.300q", len(m), m)
	}
}

// TestAuditInvalidApplyIsNotRetried is the safety net behind the
// renderer's checks: an object the API server refuses (here a Deployment a
// Render that skips the checks produced) is applied before the Service and
// NetworkPolicy, which are then left alone, and the reconcile ends without
// an error, as a refused rendering does: retrying the same objects cannot
// help, and the error put the RoamApp in backoff for ever.
func TestAuditInvalidApplyIsNotRetried(t *testing.T) {
	c := setup(t)
	ctx := context.Background()
	ns := namespace(t, c)
	app := nativeApp(ns, "orders")
	// The suite's controller refuses this spec (RenderFailed) and so
	// applies nothing; the Render below renders it with port 8080.
	app.Spec.Dapr.AppPort = 3500
	if err := c.Create(ctx, app); err != nil {
		t.Fatal(err)
	}
	wantStatus(t, c, app, "False/RenderFailed", "False/RenderFailed", "True/RenderFailed")
	rec := record.NewFakeRecorder(100)
	r := &Reconciler{Client: suite.mgr.GetClient(), Scheme: suite.mgr.GetScheme(), Recorder: rec, Options: testOptions,
		Render: func(a *v1alpha1.RoamApp, o manifests.Options) ([]client.Object, error) {
			a = a.DeepCopy()
			a.Spec.Dapr.AppPort = 8080
			objs, err := manifests.App(a, o)
			for _, obj := range objs {
				if d, ok := obj.(*appsv1.Deployment); ok {
					d.Spec.Template.Spec.Containers[0].Resources.Requests[corev1.ResourceCPU] = resource.MustParse("-1")
				}
			}
			return objs, err
		}}
	res, err := r.Reconcile(ctx, ctrl.Request{NamespacedName: key(ns, "orders")})
	if err != nil {
		t.Errorf("reconcile: %+v, %v; want no error", res, err)
	}
	close(rec.Events)
	var applyFailed bool
	for e := range rec.Events {
		applyFailed = applyFailed || strings.HasPrefix(e, "Warning ApplyFailed")
	}
	if !applyFailed {
		t.Error("no ApplyFailed event")
	}
	for _, o := range []client.Object{&corev1.Service{}, &networkingv1.NetworkPolicy{}, &appsv1.Deployment{}} {
		if err := get(c, ns, "orders", o); !apierrors.IsNotFound(err) {
			t.Errorf("%T after a refused Deployment: %v", o, err)
		}
	}
}

// TestAuditTerminatingNamespaceIsQuiet: while a namespace is deleted,
// objects cannot be created in it. Repairing a deleted object there failed
// with an error (Reconciler error logs, backoff, a Degraded status and
// warnings that cannot be written either) until the RoamApp itself went.
func TestAuditTerminatingNamespaceIsQuiet(t *testing.T) {
	c := setup(t)
	ctx := context.Background()
	ns := namespace(t, c)
	app := nativeApp(ns, "orders")
	if err := c.Create(ctx, app); err != nil {
		t.Fatal(err)
	}
	wantStatus(t, c, app, "False", "True", "False/AsExpected")
	nso := &corev1.Namespace{}
	if err := c.Get(ctx, client.ObjectKey{Name: ns}, nso); err != nil {
		t.Fatal(err)
	}
	// envtest runs no namespace controller: the namespace stays
	// Terminating, with the RoamApp in it.
	if err := c.Delete(ctx, nso); err != nil {
		t.Fatal(err)
	}
	if err := c.Delete(ctx, &corev1.Service{ObjectMeta: ctrl.ObjectMeta{Name: "orders", Namespace: ns}}); err != nil {
		t.Fatal(err)
	}
	// The API server's admission reads namespaces from its own cache: wait
	// until it refuses creations there.
	operatortest.Eventually(t, "creations refused in the terminating namespace", func() error {
		err := c.Create(ctx, &corev1.ServiceAccount{ObjectMeta: ctrl.ObjectMeta{GenerateName: "probe-", Namespace: ns}})
		if terminating(err) {
			return nil
		}
		return fmt.Errorf("creating a ServiceAccount: %v", err)
	})
	rec := record.NewFakeRecorder(100)
	r := &Reconciler{Client: suite.mgr.GetClient(), Scheme: suite.mgr.GetScheme(), Recorder: rec, Options: testOptions}
	if res, err := r.Reconcile(ctx, ctrl.Request{NamespacedName: key(ns, "orders")}); err != nil {
		t.Errorf("reconcile: %+v, %v; want no error", res, err)
	}
	close(rec.Events)
	for e := range rec.Events {
		if strings.HasPrefix(e, corev1.EventTypeWarning) {
			t.Errorf("warning in a terminating namespace: %s", e)
		}
	}
}

// TestAuditHPAKeepsTheReplicasItSets: with spec.replicas unset, the
// operator must leave a Deployment's replicas to whoever scales it (an
// HPA), as server-side apply allows when the applied object omits the
// field. The renderer wrote the default, replicas 1, so every reconcile
// scaled the app back to 1 and the HPA up again.
func TestAuditHPAKeepsTheReplicasItSets(t *testing.T) {
	c := setup(t)
	ctx := context.Background()
	ns := namespace(t, c)
	app := nativeApp(ns, "orders")
	app.Spec.Replicas = nil
	if err := c.Create(ctx, app); err != nil {
		t.Fatal(err)
	}
	d := &appsv1.Deployment{}
	operatortest.Eventually(t, "Deployment orders", func() error { return get(c, ns, "orders", d) })
	if d.Spec.Replicas == nil || *d.Spec.Replicas != 1 {
		t.Fatalf("replicas %v, want the API server's default, 1", d.Spec.Replicas)
	}
	// Scale it as an HPA does, through the scale subresource.
	scale := &autoscalingv1.Scale{Spec: autoscalingv1.ScaleSpec{Replicas: 5}}
	if err := c.SubResource("scale").Update(ctx, d, client.WithSubResourceBody(scale), client.FieldOwner("horizontal-pod-autoscaler")); err != nil {
		t.Fatal(err)
	}
	// A new spec: once the operator has applied it, it has applied after
	// the scale.
	update(t, c, app, func(a *v1alpha1.RoamApp) { a.Spec.Image = "ghcr.io/acme/shop/orders:v2" })
	operatortest.Eventually(t, "the new image applied", func() error {
		if err := get(c, ns, "orders", d); err != nil {
			return err
		}
		if img := d.Spec.Template.Spec.Containers[0].Image; img != "ghcr.io/acme/shop/orders:v2" {
			return fmt.Errorf("image %s", img)
		}
		return nil
	})
	if *d.Spec.Replicas != 5 {
		t.Errorf("replicas %d after a reconcile, want the HPA's 5", *d.Spec.Replicas)
	}
	// Setting spec.replicas takes them back.
	update(t, c, app, func(a *v1alpha1.RoamApp) { three := int32(3); a.Spec.Replicas = &three })
	operatortest.Eventually(t, "replicas 3", func() error {
		if err := get(c, ns, "orders", d); err != nil {
			return err
		}
		if *d.Spec.Replicas != 3 {
			return fmt.Errorf("replicas %d", *d.Spec.Replicas)
		}
		return nil
	})
}
