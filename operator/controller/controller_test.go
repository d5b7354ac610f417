package controller

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/record"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/roam-dev/roam/internal/manifests"
	"github.com/roam-dev/roam/operator/api/v1alpha1"
	"github.com/roam-dev/roam/operator/operatortest"
)

var isConflict = apierrors.IsConflict

func key(ns, name string) types.NamespacedName {
	return types.NamespacedName{Namespace: ns, Name: name}
}

// get reads an object, failing with the reason it is not there yet.
func get(c client.Client, ns, name string, o client.Object) error {
	return c.Get(context.Background(), key(ns, name), o)
}

// checkOwner wants o controlled by app, with blockOwnerDeletion: envtest
// runs no garbage collector, so deleting the RoamApp would delete nothing
// here; in a cluster the collector deletes every object whose owner
// reference names the deleted RoamApp's UID, and with blockOwnerDeletion a
// foreground deletion of the RoamApp waits for them.
func checkOwner(o client.Object, app *v1alpha1.RoamApp) error {
	ref := metav1.GetControllerOf(o)
	if ref == nil {
		return fmt.Errorf("%T %s has no controller reference: %v", o, o.GetName(), o.GetOwnerReferences())
	}
	want := metav1.OwnerReference{APIVersion: "roam.dev/v1alpha1", Kind: "RoamApp", Name: app.Name, UID: app.UID,
		Controller: ref.Controller, BlockOwnerDeletion: ref.BlockOwnerDeletion}
	if *ref != want || ref.BlockOwnerDeletion == nil || !*ref.BlockOwnerDeletion || len(o.GetOwnerReferences()) != 1 {
		return fmt.Errorf("%T %s: owner references %+v, want only the RoamApp %s (uid %s) as controller blocking deletion", o, o.GetName(), o.GetOwnerReferences(), app.Name, app.UID)
	}
	return nil
}

func condition(app *v1alpha1.RoamApp, typ string) string {
	c := meta.FindStatusCondition(app.Status.Conditions, typ)
	if c == nil {
		return "<none>"
	}
	return string(c.Status) + "/" + c.Reason
}

// wantStatus polls until the RoamApp's status has observed its generation
// and the three conditions are as given ("True/Available"; "True" matches
// any reason).
func wantStatus(t *testing.T, c client.Client, app *v1alpha1.RoamApp, ready, progressing, degraded string) *v1alpha1.RoamApp {
	t.Helper()
	live := &v1alpha1.RoamApp{}
	operatortest.Eventually(t, fmt.Sprintf("RoamApp %s Ready=%s Progressing=%s Degraded=%s", app.Name, ready, progressing, degraded), func() error {
		if err := get(c, app.Namespace, app.Name, live); err != nil {
			return err
		}
		if live.Status.ObservedGeneration != live.Generation {
			return fmt.Errorf("observedGeneration %d, generation %d", live.Status.ObservedGeneration, live.Generation)
		}
		for typ, want := range map[string]string{v1alpha1.ConditionReady: ready, v1alpha1.ConditionProgressing: progressing, v1alpha1.ConditionDegraded: degraded} {
			got := condition(live, typ)
			if got != want && !strings.HasPrefix(got, want+"/") {
				return fmt.Errorf("%s is %s, want %s; conditions %+v", typ, got, want, live.Status.Conditions)
			}
			if c := meta.FindStatusCondition(live.Status.Conditions, typ); c.ObservedGeneration != live.Generation {
				return fmt.Errorf("%s describes generation %d, not %d", typ, c.ObservedGeneration, live.Generation)
			}
		}
		return nil
	})
	return live
}

// wantEvent polls for an Event about the RoamApp with the reason.
func wantEvent(t *testing.T, c client.Client, app *v1alpha1.RoamApp, typ, reason, contains string) {
	t.Helper()
	operatortest.Eventually(t, "event "+reason+" about RoamApp "+app.Name, func() error {
		var evs corev1.EventList
		if err := c.List(context.Background(), &evs, client.InNamespace(app.Namespace)); err != nil {
			return err
		}
		var seen []string
		for _, e := range evs.Items {
			if e.InvolvedObject.Kind == "RoamApp" && e.InvolvedObject.Name == app.Name {
				if e.Type == typ && e.Reason == reason && strings.Contains(e.Message, contains) && e.Source.Component == Name {
					return nil
				}
				seen = append(seen, e.Type+" "+e.Reason+": "+e.Message)
			}
		}
		return fmt.Errorf("events so far: %q", seen)
	})
}

func TestNativeMode(t *testing.T) {
	c := setup(t)
	ctx := context.Background()
	ns := namespace(t, c)
	app := nativeApp(ns, "orders")
	if err := c.Create(ctx, app); err != nil {
		t.Fatal(err)
	}

	d := &appsv1.Deployment{}
	operatortest.Eventually(t, "Deployment orders", func() error { return get(c, ns, "orders", d) })
	if got := d.Spec.Template.Spec.Containers[0].Image; got != app.Spec.Image {
		t.Errorf("image %q, want %q", got, app.Spec.Image)
	}
	if d.Spec.Replicas == nil || *d.Spec.Replicas != 2 {
		t.Errorf("replicas %v, want 2", d.Spec.Replicas)
	}
	// The sidecar injector reads these from the pod template.
	for k, v := range map[string]string{
		"dapr.io/enabled": "true", "dapr.io/app-id": "orders", "dapr.io/app-port": "8080",
		"dapr.io/app-protocol": "http", "dapr.io/config": "shop-config",
	} {
		if got := d.Spec.Template.Annotations[k]; got != v {
			t.Errorf("pod template annotation %s=%q, want %q", k, got, v)
		}
	}
	if err := checkOwner(d, app); err != nil {
		t.Error(err)
	}
	for _, o := range []client.Object{&corev1.Service{}, &corev1.ServiceAccount{}, &networkingv1.NetworkPolicy{}} {
		operatortest.Eventually(t, fmt.Sprintf("%T orders", o), func() error { return get(c, ns, "orders", o) })
		if err := checkOwner(o, app); err != nil {
			t.Error(err)
		}
	}
	if err := get(c, ns, "orders", &appsv1.DaemonSet{}); !apierrors.IsNotFound(err) {
		t.Errorf("a DaemonSet in native mode: %v", err)
	}
	// Nothing runs the pods here (no Deployment controller): rolling out.
	st := wantStatus(t, c, app, "False/RollingOut", "True/RollingOut", "False/AsExpected")
	if st.Status.Replicas != 2 || st.Status.ReadyReplicas != 0 {
		t.Errorf("status replicas %d ready %d, want 2 and 0", st.Status.Replicas, st.Status.ReadyReplicas)
	}
	wantEvent(t, c, app, corev1.EventTypeNormal, "Applied", "Deployment/orders")
}

func TestSpecChangeRollsTheDeployment(t *testing.T) {
	c := setup(t)
	ns := namespace(t, c)
	app := nativeApp(ns, "orders")
	if err := c.Create(context.Background(), app); err != nil {
		t.Fatal(err)
	}
	wantStatus(t, c, app, "False", "True", "False")

	three := int32(3)
	changed := update(t, c, app, func(a *v1alpha1.RoamApp) {
		a.Spec.Replicas = &three
		a.Spec.Image = "ghcr.io/acme/shop/orders:v2"
	})
	if changed.Generation != 2 {
		t.Fatalf("generation %d after one spec change", changed.Generation)
	}
	operatortest.Eventually(t, "the Deployment follows the spec", func() error {
		d := &appsv1.Deployment{}
		if err := get(c, ns, "orders", d); err != nil {
			return err
		}
		if img := d.Spec.Template.Spec.Containers[0].Image; *d.Spec.Replicas != 3 || img != "ghcr.io/acme/shop/orders:v2" {
			return fmt.Errorf("replicas %d image %s", *d.Spec.Replicas, img)
		}
		return nil
	})
	st := wantStatus(t, c, changed, "False", "True", "False")
	if st.Status.ObservedGeneration != 2 || st.Status.Replicas != 3 {
		t.Errorf("status %+v, want observedGeneration 2 and replicas 3", st.Status)
	}
	wantEvent(t, c, app, corev1.EventTypeNormal, "Applied", "generation 2")
}

func TestEdgeMode(t *testing.T) {
	c := setup(t)
	ns := namespace(t, c)
	app := edgeApp(ns, "orders")
	if err := c.Create(context.Background(), app); err != nil {
		t.Fatal(err)
	}
	ds := &appsv1.DaemonSet{}
	operatortest.Eventually(t, "DaemonSet orders", func() error { return get(c, ns, "orders", ds) })
	pod := ds.Spec.Template.Spec
	if !reflect.DeepEqual(pod.NodeSelector, app.Spec.Edge.NodeSelector) {
		t.Errorf("node selector %v, want %v", pod.NodeSelector, app.Spec.Edge.NodeSelector)
	}
	if !reflect.DeepEqual(pod.Tolerations, app.Spec.Edge.Tolerations) {
		t.Errorf("tolerations %+v, want %+v", pod.Tolerations, app.Spec.Edge.Tolerations)
	}
	host := pod.Containers[0]
	if host.Image != testEdgeImage {
		t.Errorf("edge host image %q, want the operator's %q", host.Image, testEdgeImage)
	}
	// The edge host loads the module by the digest the spec pins.
	var module string
	for _, a := range host.Args {
		if strings.HasPrefix(a, "oci://") {
			module = a
		}
	}
	_, dg, _ := strings.Cut(module, "@")
	if module != "oci://"+app.Spec.Image || dg != digest("orders") {
		t.Errorf("edge host args %q: want the module oci://%s, digest %s", host.Args, app.Spec.Image, digest("orders"))
	}
	if err := checkOwner(ds, app); err != nil {
		t.Error(err)
	}
	for _, o := range []client.Object{&corev1.Service{}, &corev1.ServiceAccount{}, &networkingv1.NetworkPolicy{}} {
		operatortest.Eventually(t, fmt.Sprintf("%T orders", o), func() error { return get(c, ns, "orders", o) })
		if err := checkOwner(o, app); err != nil {
			t.Error(err)
		}
	}
	if err := get(c, ns, "orders", &appsv1.Deployment{}); !apierrors.IsNotFound(err) {
		t.Errorf("a Deployment in edge mode: %v", err)
	}
	// No nodes here, and no DaemonSet controller: the test plays it,
	// first with no node selected, then with two edge nodes ready.
	wantStatus(t, c, app, "False/RollingOut", "True/RollingOut", "False")
	setDaemonSetStatus(t, c, ns, "orders", 0, 0)
	wantStatus(t, c, app, "False/NoMatchingNodes", "False/RolloutComplete", "False")
	setDaemonSetStatus(t, c, ns, "orders", 2, 2)
	st := wantStatus(t, c, app, "True/Available", "False/RolloutComplete", "False")
	if st.Status.Replicas != 2 || st.Status.ReadyReplicas != 2 {
		t.Errorf("status %+v, want 2 of 2 ready", st.Status)
	}
}

// TestImagePullSecrets: spec.imagePullSecrets reach the pods as
// imagePullSecrets, and every one is mounted into the edge host for the
// pull of the module, listed in ROAM_DOCKER_CONFIGS (DOCKER_CONFIG names
// the first); dropping them from the spec drops them from the DaemonSet
// (server-side apply removes what the operator no longer applies).
func TestImagePullSecrets(t *testing.T) {
	c := setup(t)
	ns := namespace(t, c)
	app := edgeApp(ns, "orders")
	app.Spec.ImagePullSecrets = []v1alpha1.PullSecret{{Name: "regcred"}, {Name: "mirror-creds"}}
	if err := c.Create(context.Background(), app); err != nil {
		t.Fatal(err)
	}
	ds := &appsv1.DaemonSet{}
	operatortest.Eventually(t, "DaemonSet orders", func() error { return get(c, ns, "orders", ds) })
	pod := ds.Spec.Template.Spec
	if want := []corev1.LocalObjectReference{{Name: "regcred"}, {Name: "mirror-creds"}}; !reflect.DeepEqual(pod.ImagePullSecrets, want) {
		t.Errorf("imagePullSecrets %v, want %v", pod.ImagePullSecrets, want)
	}
	var vol *corev1.Volume
	for i, v := range pod.Volumes {
		if v.Name == "registry" {
			vol = &pod.Volumes[i]
		}
	}
	var mounted []string
	if vol != nil && vol.Projected != nil {
		for _, src := range vol.Projected.Sources {
			if s := src.Secret; s != nil && reflect.DeepEqual(s.Items, []corev1.KeyToPath{{Key: corev1.DockerConfigJsonKey, Path: s.Name + "/config.json"}}) {
				mounted = append(mounted, s.Name)
			}
		}
	}
	if !slices.Equal(mounted, []string{"regcred", "mirror-creds"}) {
		t.Errorf("registry volume %+v: want regcred and mirror-creds, each as NAME/config.json", vol)
	}
	host := pod.Containers[0]
	if !slices.Contains(host.VolumeMounts, corev1.VolumeMount{Name: "registry", MountPath: "/var/run/roam/registry", ReadOnly: true}) {
		t.Errorf("edge host mounts %+v, want registry read-only at /var/run/roam/registry", host.VolumeMounts)
	}
	for _, want := range []corev1.EnvVar{
		{Name: "DOCKER_CONFIG", Value: "/var/run/roam/registry/regcred"},
		{Name: "ROAM_DOCKER_CONFIGS", Value: "/var/run/roam/registry/regcred:/var/run/roam/registry/mirror-creds"},
	} {
		if !slices.Contains(host.Env, want) {
			t.Errorf("edge host env %+v, want %s=%s", host.Env, want.Name, want.Value)
		}
	}

	update(t, c, app, func(a *v1alpha1.RoamApp) { a.Spec.ImagePullSecrets = nil })
	operatortest.Eventually(t, "the pull secrets leave the DaemonSet", func() error {
		if err := get(c, ns, "orders", ds); err != nil {
			return err
		}
		pod := ds.Spec.Template.Spec
		if len(pod.ImagePullSecrets) != 0 || len(pod.Volumes) != 2 || len(pod.Containers[0].Env) != 0 || len(pod.Containers[0].VolumeMounts) != 2 {
			return fmt.Errorf("imagePullSecrets %v, volumes %v, env %v, mounts %v", pod.ImagePullSecrets, pod.Volumes, pod.Containers[0].Env, pod.Containers[0].VolumeMounts)
		}
		return nil
	})
}

// setDaemonSetStatus writes what the DaemonSet controller would: envtest
// runs no kube-controller-manager.
func setDaemonSetStatus(t *testing.T, c client.Client, ns, name string, desired, ready int32) {
	t.Helper()
	ds := &appsv1.DaemonSet{}
	if err := get(c, ns, name, ds); err != nil {
		t.Fatal(err)
	}
	ds.Status = appsv1.DaemonSetStatus{ObservedGeneration: ds.Generation, DesiredNumberScheduled: desired, CurrentNumberScheduled: desired,
		UpdatedNumberScheduled: desired, NumberReady: ready, NumberAvailable: ready}
	if err := c.Status().Update(context.Background(), ds); err != nil {
		t.Fatal(err)
	}
}

func TestModeSwitchDeletesTheStaleWorkload(t *testing.T) {
	c := setup(t)
	ns := namespace(t, c)
	app := nativeApp(ns, "orders")
	if err := c.Create(context.Background(), app); err != nil {
		t.Fatal(err)
	}
	operatortest.Eventually(t, "Deployment orders", func() error { return get(c, ns, "orders", &appsv1.Deployment{}) })
	edge := edgeApp(ns, "orders")
	update(t, c, app, func(a *v1alpha1.RoamApp) {
		a.Spec.Mode, a.Spec.Image, a.Spec.Edge, a.Spec.Replicas = edge.Spec.Mode, edge.Spec.Image, edge.Spec.Edge, nil
	})
	operatortest.Eventually(t, "DaemonSet orders", func() error { return get(c, ns, "orders", &appsv1.DaemonSet{}) })
	operatortest.Eventually(t, "the Deployment is deleted", func() error {
		if err := get(c, ns, "orders", &appsv1.Deployment{}); !apierrors.IsNotFound(err) {
			return fmt.Errorf("Deployment orders: %v", err)
		}
		return nil
	})
	wantEvent(t, c, app, corev1.EventTypeNormal, "Deleted", "Deployment/orders")
	for _, o := range []client.Object{&corev1.Service{}, &corev1.ServiceAccount{}, &networkingv1.NetworkPolicy{}} {
		if err := get(c, ns, "orders", o); err != nil {
			t.Errorf("%T kept across the switch: %v", o, err)
		}
	}
}

func TestInvalidSpecsAreRejectedByTheAPIServer(t *testing.T) {
	c := setup(t)
	ctx := context.Background()
	ns := namespace(t, c)
	minus := int32(-1)
	for _, tc := range []struct {
		name   string
		change func(*v1alpha1.RoamApp)
		want   string
	}{
		{"edge mode with a tag", func(a *v1alpha1.RoamApp) { a.Spec.Image = "ghcr.io/acme/shop/orders-wasm:v1" },
			"mode edge needs spec.image to be the wasm module's OCI reference pinned by digest"},
		{"edge mode with a short digest", func(a *v1alpha1.RoamApp) { a.Spec.Image = "ghcr.io/acme/shop/orders-wasm@sha256:abc" },
			"pinned by digest (REF@sha256:<64 hex digits>)"},
		{"bad app id", func(a *v1alpha1.RoamApp) { a.Spec.Dapr.AppID = "Orders_1" },
			"spec.dapr.appId: Invalid value: \"string\": dapr.appId must be a DNS label"},
		{"negative replicas", func(a *v1alpha1.RoamApp) {
			a.Spec.Mode, a.Spec.Edge, a.Spec.Replicas = v1alpha1.ModeNative, nil, &minus
		},
			"spec.replicas: Invalid value: -1: spec.replicas in body should be greater than or equal to 0"},
		{"edge settings in native mode", func(a *v1alpha1.RoamApp) { a.Spec.Mode = v1alpha1.ModeNative },
			"spec.edge applies only to mode edge"},
		{"unknown mode", func(a *v1alpha1.RoamApp) { a.Spec.Mode = "wasm" },
			`spec.mode: Unsupported value: "wasm"`},
		{"name not a DNS label", func(a *v1alpha1.RoamApp) { a.Name = "orders.v2" },
			"metadata.name must be a DNS label"},
		{"bad caller", func(a *v1alpha1.RoamApp) { a.Spec.AllowFrom = []string{"Checkout"} },
			"spec.allowFrom[0]: Invalid value"},
		{"pull secret not a Secret name", func(a *v1alpha1.RoamApp) { a.Spec.ImagePullSecrets = []v1alpha1.PullSecret{{Name: "Reg_Cred"}} },
			"spec.imagePullSecrets[0].name: Invalid value: \"string\": an imagePullSecrets name must be a Secret's name: a DNS subdomain"},
		{"pull secret without a name", func(a *v1alpha1.RoamApp) { a.Spec.ImagePullSecrets = []v1alpha1.PullSecret{{}} },
			"spec.imagePullSecrets[0].name: Invalid value"},
		{"pull secret twice", func(a *v1alpha1.RoamApp) {
			a.Spec.ImagePullSecrets = []v1alpha1.PullSecret{{Name: "regcred"}, {Name: "regcred"}}
		},
			`spec.imagePullSecrets[1]: Duplicate value: {"name":"regcred"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			app := edgeApp(ns, "orders")
			tc.change(app)
			err := c.Create(ctx, app)
			if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("create: %v\nwant Invalid with %q", err, tc.want)
			}
			t.Log(err)
		})
	}
	// Updates are checked too.
	app := nativeApp(ns, "valid")
	if err := c.Create(ctx, app); err != nil {
		t.Fatal(err)
	}
	app.Spec.Replicas = &minus
	if err := c.Update(ctx, app); !apierrors.IsInvalid(err) {
		t.Errorf("update to replicas -1: %v, want Invalid", err)
	}
}

func TestDriftIsRepaired(t *testing.T) {
	c := setup(t)
	ctx := context.Background()
	ns := namespace(t, c)
	app := nativeApp(ns, "orders")
	if err := c.Create(ctx, app); err != nil {
		t.Fatal(err)
	}
	d := &appsv1.Deployment{}
	operatortest.Eventually(t, "Deployment orders", func() error { return get(c, ns, "orders", d) })

	// Edit by hand, as kubectl edit would: another image, one replica, no
	// Dapr config.
	operatortest.Eventually(t, "editing the Deployment by hand", func() error {
		if err := get(c, ns, "orders", d); err != nil {
			return err
		}
		one := int32(1)
		d.Spec.Replicas = &one
		d.Spec.Template.Spec.Containers[0].Image = "ghcr.io/evil/orders:latest"
		delete(d.Spec.Template.Annotations, "dapr.io/config")
		return c.Update(ctx, d, client.FieldOwner("kubectl-edit"))
	})
	operatortest.Eventually(t, "the Deployment is restored", func() error {
		if err := get(c, ns, "orders", d); err != nil {
			return err
		}
		if img := d.Spec.Template.Spec.Containers[0].Image; img != app.Spec.Image || *d.Spec.Replicas != 2 || d.Spec.Template.Annotations["dapr.io/config"] != "shop-config" {
			return fmt.Errorf("image %s, replicas %d, annotations %v", img, *d.Spec.Replicas, d.Spec.Template.Annotations)
		}
		return nil
	})

	// Delete by hand: the Service and NetworkPolicy come back.
	for _, o := range []client.Object{&corev1.Service{}, &networkingv1.NetworkPolicy{}, &corev1.ServiceAccount{}} {
		if err := get(c, ns, "orders", o); err != nil {
			t.Fatal(err)
		}
		old := o.GetUID()
		if err := c.Delete(ctx, o); err != nil {
			t.Fatal(err)
		}
		operatortest.Eventually(t, fmt.Sprintf("%T orders is recreated", o), func() error {
			if err := get(c, ns, "orders", o); err != nil {
				return err
			}
			if o.GetUID() == old {
				return fmt.Errorf("still the old object")
			}
			return checkOwner(o, app)
		})
	}
}

func TestStatusFollowsTheRollout(t *testing.T) {
	c := setup(t)
	ctx := context.Background()
	ns := namespace(t, c)
	app := nativeApp(ns, "orders")
	if err := c.Create(ctx, app); err != nil {
		t.Fatal(err)
	}
	wantStatus(t, c, app, "False/RollingOut", "True/RollingOut", "False/AsExpected")

	// envtest runs no kube-controller-manager, so no Deployment controller
	// starts pods or writes the Deployment's status: the test writes the
	// status the Deployment controller would, to simulate the rollout.
	setDeploymentStatus := func(ready int32, conds ...appsv1.DeploymentCondition) {
		t.Helper()
		operatortest.Eventually(t, "writing the Deployment's status", func() error {
			d := &appsv1.Deployment{}
			if err := get(c, ns, "orders", d); err != nil {
				return err
			}
			d.Status = appsv1.DeploymentStatus{ObservedGeneration: d.Generation, Replicas: 2, UpdatedReplicas: 2,
				ReadyReplicas: ready, AvailableReplicas: ready, UnavailableReplicas: 2 - ready, Conditions: conds}
			return c.Status().Update(ctx, d)
		})
	}
	setDeploymentStatus(1)
	wantStatus(t, c, app, "False/RollingOut", "True/RollingOut", "False/AsExpected")
	setDeploymentStatus(2)
	st := wantStatus(t, c, app, "True/Available", "False/RolloutComplete", "False/AsExpected")
	if st.Status.ReadyReplicas != 2 || st.Status.Replicas != 2 {
		t.Errorf("status %+v, want 2 of 2 ready", st.Status)
	}
	wantEvent(t, c, app, corev1.EventTypeNormal, "Available", "2 of 2 replicas ready")

	// A pod cannot be created (a quota, say): Degraded, not Ready.
	setDeploymentStatus(1, appsv1.DeploymentCondition{Type: appsv1.DeploymentReplicaFailure, Status: corev1.ConditionTrue,
		Reason: "FailedCreate", Message: `pods "orders-x" is forbidden: exceeded quota`})
	st = wantStatus(t, c, app, "False/ReplicaFailure", "False/ReplicaFailure", "True/ReplicaFailure")
	if c := meta.FindStatusCondition(st.Status.Conditions, v1alpha1.ConditionDegraded); !strings.Contains(c.Message, "exceeded quota") {
		t.Errorf("Degraded says %q", c.Message)
	}
	wantEvent(t, c, app, corev1.EventTypeWarning, "ReplicaFailure", "Ready=False")
}

func TestSpecTheRendererRefusesIsDegraded(t *testing.T) {
	c := setup(t)
	ns := namespace(t, c)
	app := nativeApp(ns, "orders")
	// The CRD admits any port; manifests.App knows 3500 is the sidecar's.
	app.Spec.Dapr.AppPort = 3500
	if err := c.Create(context.Background(), app); err != nil {
		t.Fatal(err)
	}
	st := wantStatus(t, c, app, "False/RenderFailed", "False/RenderFailed", "True/RenderFailed")
	if c := meta.FindStatusCondition(st.Status.Conditions, v1alpha1.ConditionDegraded); !strings.Contains(c.Message, "spec.dapr.appPort 3500") {
		t.Errorf("Degraded says %q", c.Message)
	}
	wantEvent(t, c, app, corev1.EventTypeWarning, "RenderFailed", "spec.dapr.appPort 3500")
	if err := get(c, ns, "orders", &appsv1.Deployment{}); !apierrors.IsNotFound(err) {
		t.Errorf("Deployment of a refused spec: %v", err)
	}
	// Fixing the spec recovers.
	update(t, c, app, func(a *v1alpha1.RoamApp) { a.Spec.Dapr.AppPort = 8080 })
	wantStatus(t, c, app, "False/RollingOut", "True/RollingOut", "False/AsExpected")
}

func TestObjectsItDoesNotOwnAreLeftAlone(t *testing.T) {
	c := setup(t)
	ctx := context.Background()
	ns := namespace(t, c)
	mine := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "orders", Namespace: ns},
		Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 80}}}}
	if err := c.Create(ctx, mine); err != nil {
		t.Fatal(err)
	}
	app := nativeApp(ns, "orders")
	if err := c.Create(ctx, app); err != nil {
		t.Fatal(err)
	}
	st := wantStatus(t, c, app, "False/NotOwned", "False/NotOwned", "True/NotOwned")
	if c := meta.FindStatusCondition(st.Status.Conditions, v1alpha1.ConditionDegraded); !strings.Contains(c.Message, "Service/orders already exists") {
		t.Errorf("Degraded says %q", c.Message)
	}
	if err := get(c, ns, "orders", mine); err != nil || len(mine.OwnerReferences) != 0 || mine.Spec.Ports[0].Port != 80 {
		t.Errorf("the Service was taken over: %v %+v", err, mine)
	}
}

// staleReads hands the reconciler a RoamApp that is already out of date:
// right after reading it, another writer changes it on the server, and the
// status the reconciler read is blanked so that it must write one.
type staleReads struct {
	client.Client
	admin client.Client
	t     *testing.T
}

func (s staleReads) Get(ctx context.Context, k client.ObjectKey, o client.Object, opts ...client.GetOption) error {
	if err := s.Client.Get(ctx, k, o, opts...); err != nil {
		return err
	}
	if app, ok := o.(*v1alpha1.RoamApp); ok {
		app.Status = v1alpha1.RoamAppStatus{}
		update(s.t, s.admin, app, func(a *v1alpha1.RoamApp) {
			if a.Annotations == nil {
				a.Annotations = map[string]string{}
			}
			a.Annotations["test/bump"] += "x"
		})
	}
	return nil
}

func TestConflictRequeuesWithoutError(t *testing.T) {
	c := setup(t)
	ns := namespace(t, c)
	app := nativeApp(ns, "orders")
	if err := c.Create(context.Background(), app); err != nil {
		t.Fatal(err)
	}
	wantStatus(t, c, app, "False", "True", "False")
	rec := record.NewFakeRecorder(100)
	r := &Reconciler{Client: staleReads{Client: suite.mgr.GetClient(), admin: c, t: t}, Scheme: suite.mgr.GetScheme(), Recorder: rec, Options: testOptions}
	res, err := r.Reconcile(context.Background(), ctrl.Request{NamespacedName: key(ns, "orders")})
	if err != nil || res.RequeueAfter <= 0 {
		t.Fatalf("reconcile against a conflict: %+v, %v; want a requeue and no error", res, err)
	}
	close(rec.Events)
	for e := range rec.Events {
		if strings.HasPrefix(e, corev1.EventTypeWarning) {
			t.Errorf("warning event on a conflict: %s", e)
		}
	}
	// The running controller settles it.
	wantStatus(t, c, app, "False", "True", "False")
}

// TestOperatorAppliesWhatManifestsRenders compares the objects the
// operator applied with manifests.App's output for the same RoamApp, as
// stored (with the CRD's defaults), both ways:
//   - the same set of objects;
//   - every field manifests.App sets has the same value on the server;
//   - the fields the operator owns by server-side apply (managedFields) are
//     exactly fields manifests.App sets, plus the owner reference.
//
// The server adds its own defaults (a Deployment's strategy, a container's
// terminationMessagePath, a Service's clusterIP), owned by no applier;
// those are the only differences allowed.
func TestOperatorAppliesWhatManifestsRenders(t *testing.T) {
	c := setup(t)
	ctx := context.Background()
	ns := namespace(t, c)
	native := nativeApp(ns, "orders")
	native.Spec.AllowFrom = []string{"checkout", "web.frontend"}
	native.Spec.ImagePullSecrets = []v1alpha1.PullSecret{{Name: "regcred"}}
	edge := edgeApp(ns, "inventory")
	edge.Spec.ImagePullSecrets = []v1alpha1.PullSecret{{Name: "regcred"}, {Name: "mirror-creds"}}
	for _, app := range []*v1alpha1.RoamApp{native, edge} {
		if err := c.Create(ctx, app); err != nil {
			t.Fatal(err)
		}
	}
	for _, app := range []*v1alpha1.RoamApp{native, edge} {
		live := wantStatus(t, c, app, "False", "True", "False")
		want, err := manifests.App(live, testOptions)
		if err != nil {
			t.Fatal(err)
		}
		var wantNames []string
		for _, w := range want {
			wantNames = append(wantNames, describe(w))
			got, err := suite.mgr.GetScheme().New(w.GetObjectKind().GroupVersionKind())
			if err != nil {
				t.Fatal(err)
			}
			g := got.(client.Object)
			if err := get(c, w.GetNamespace(), w.GetName(), g); err != nil {
				t.Errorf("%s: %v", describe(w), err)
				continue
			}
			for _, d := range subsetDiff(t, w, g) {
				t.Errorf("%s %s: %s", app.Name, describe(w), d)
			}
			for _, d := range ownedBeyond(t, w, g, Name) {
				t.Errorf("%s %s: %s", app.Name, describe(w), d)
			}
		}
		var gotNames []string
		for _, o := range Owned() {
			gvk, _ := suite.mgr.GetClient().GroupVersionKindFor(o)
			l, _ := suite.mgr.GetScheme().New(gvk.GroupVersion().WithKind(gvk.Kind + "List"))
			list := l.(client.ObjectList)
			if err := c.List(ctx, list, client.InNamespace(ns)); err != nil {
				t.Fatal(err)
			}
			items, _ := meta.ExtractList(list)
			for _, it := range items {
				obj := it.(client.Object)
				if metav1.IsControlledBy(obj, live) {
					obj.GetObjectKind().SetGroupVersionKind(gvk)
					gotNames = append(gotNames, describe(obj))
				}
			}
		}
		slices.Sort(wantNames)
		slices.Sort(gotNames)
		if !slices.Equal(wantNames, gotNames) {
			t.Errorf("%s owns %v, manifests.App renders %v", app.Name, gotNames, wantNames)
		}
	}
}
