package kube_test

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/roam-dev/roam/internal/manifests/k8scheck"
	"github.com/roam-dev/roam/internal/manifests/kube"
	"github.com/roam-dev/roam/operator/api/v1alpha1"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

const digest = "sha256:0f3c5d52c3ab1e9ec9b1a3a4b5d0e0f7c1f4c5c0d7b0a2e4c9d8e7f6a5b4c3d2"

func app(name, ns string, mutate ...func(*v1alpha1.RoamApp)) *v1alpha1.RoamApp {
	a := &v1alpha1.RoamApp{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: v1alpha1.RoamAppSpec{
			Image: "ghcr.io/acme/shop/" + name + ":v1",
			Dapr:  v1alpha1.DaprSpec{Config: kube.DefaultDaprConfig},
		},
	}
	for _, m := range mutate {
		m(a)
	}
	return a
}

func allowFrom(callers ...string) func(*v1alpha1.RoamApp) {
	return func(a *v1alpha1.RoamApp) { a.Spec.AllowFrom = callers }
}

func pullSecrets(names ...string) func(*v1alpha1.RoamApp) {
	return func(a *v1alpha1.RoamApp) {
		for _, n := range names {
			a.Spec.ImagePullSecrets = append(a.Spec.ImagePullSecrets, v1alpha1.PullSecret{Name: n})
		}
	}
}

func edge(nodeSelector map[string]string, tol ...corev1.Toleration) func(*v1alpha1.RoamApp) {
	return func(a *v1alpha1.RoamApp) {
		a.Spec.Mode = v1alpha1.ModeEdge
		a.Spec.Image = "ghcr.io/acme/shop/" + a.Name + "-wasm@" + digest
		a.Spec.Edge = &v1alpha1.EdgeSpec{NodeSelector: nodeSelector, Tolerations: tol}
	}
}

var (
	redis = kube.Redis{Host: "redis-master.shop.svc.cluster.local:6379"}
	opts  = kube.Options{EdgeHostImage: "ghcr.io/acme/shop/roam-edge:v1", MetricsNamespace: "monitoring", Redis: redis}
	dapr  = kube.Dapr{Redis: redis, Tracing: kube.Tracing{OTLPEndpoint: "otel-collector.monitoring.svc.cluster.local:4317", SamplingRate: "0.25"}}
)

// scenarios are the shop deployed three ways; each has a golden file.
var scenarios = map[string][]*v1alpha1.RoamApp{
	// Both apps beside each other; orders calls inventory.
	"shop": {app("orders", "shop"), app("inventory", "shop", allowFrom("orders"))},
	// inventory in a namespace of its own, at the edge; images and the
	// module in a private registry.
	"shop-cross-namespace-edge": {
		app("orders", "shop", func(a *v1alpha1.RoamApp) { r := int32(3); a.Spec.Replicas = &r }, pullSecrets("regcred")),
		app("inventory", "shop-inventory", allowFrom("orders.shop"), edge(
			map[string]string{"apps.openyurt.io/nodepool": "hangzhou"},
			corev1.Toleration{Key: "node-role.kubernetes.io/edge", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule},
		), pullSecrets("regcred", "mirror-creds")),
	},
	// Without Dapr: the embedded backend, callers on the app port.
	"shop-no-dapr": {
		app("orders", "shop", func(a *v1alpha1.RoamApp) { f := false; a.Spec.Dapr.Enabled = &f }),
		app("inventory", "shop", allowFrom("orders"), func(a *v1alpha1.RoamApp) { f := false; a.Spec.Dapr.Enabled = &f }),
	},
}

func render(t *testing.T, apps []*v1alpha1.RoamApp) []kube.Object {
	t.Helper()
	objs, err := kube.Render(apps, opts, dapr)
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

func TestGolden(t *testing.T) {
	for name, apps := range scenarios {
		t.Run(name, func(t *testing.T) {
			got, err := kube.Stream(render(t, apps))
			if err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join("testdata", name+".golden")
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (go test -update writes it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("output differs from %s (go test ./internal/manifests/kube -update rewrites it):\n%s", golden, lineDiff(string(want), string(got)))
			}
		})
	}
}

// lineDiff shows the first lines that differ.
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < len(w) || i < len(g); i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			return "line " + strconv.Itoa(i+1) + ":\n  want: " + wl + "\n  got:  " + gl
		}
	}
	return "(same lines)"
}

func TestDeterministic(t *testing.T) {
	apps := scenarios["shop-cross-namespace-edge"]
	before := apps[1].DeepCopy()
	first, _ := kube.Stream(render(t, apps))
	for range 20 {
		again, _ := kube.Stream(render(t, apps))
		if !bytes.Equal(first, again) {
			t.Fatal("two renders of the same apps differ")
		}
	}
	if !reflect.DeepEqual(before, apps[1]) {
		t.Fatal("rendering changed its input")
	}
}

var (
	crdsOnce sync.Once
	crds     *k8scheck.CRDs
	crdsErr  error
)

// daprCRDs are the CRDs of Dapr's Go module, at the version go.mod requires.
func daprCRDs(t *testing.T) *k8scheck.CRDs {
	t.Helper()
	crdsOnce.Do(func() {
		var dir string
		if dir, crdsErr = k8scheck.DaprCRDDir(""); crdsErr == nil {
			crds, crdsErr = k8scheck.LoadCRDDir(dir)
		}
	})
	if crdsErr != nil {
		t.Fatal(crdsErr)
	}
	return crds
}

// TestStrict decodes every object as YAML, strictly, into its k8s.io/api
// type, and validates every Dapr resource against Dapr's CRDs.
func TestStrict(t *testing.T) {
	crds := daprCRDs(t)
	for name, apps := range scenarios {
		t.Run(name, func(t *testing.T) {
			stream, err := kube.Stream(render(t, apps))
			if err != nil {
				t.Fatal(err)
			}
			kinds := map[string]int{}
			for _, doc := range k8scheck.Documents(stream) {
				obj, err := k8scheck.Check(doc, crds)
				if err != nil {
					t.Errorf("%v\n%s", err, doc)
					continue
				}
				gvk := obj.GetObjectKind().GroupVersionKind()
				kind := gvk.Kind
				if _, untyped := obj.(*unstructured.Unstructured); untyped != (gvk.Group == "dapr.io") {
					t.Errorf("%s decoded as %T", gvk, obj)
				}
				kinds[kind]++
			}
			if kinds["NetworkPolicy"] != 2 || kinds["Service"] != 2 || kinds["ServiceAccount"] != 2 || kinds["Deployment"]+kinds["DaemonSet"] != 2 {
				t.Errorf("objects by kind: %v", kinds)
			}
			if name != "shop-no-dapr" && (kinds["Component"] == 0 || kinds["Configuration"] == 0 || kinds["Resiliency"] == 0) {
				t.Errorf("Dapr resources missing: %v", kinds)
			}
		})
	}
}

// TestStrictCatchesUnknownFields proves the strict decode would see a
// field that k8s.io/api does not have, a misspelt one included.
func TestStrictCatchesUnknownFields(t *testing.T) {
	stream, _ := kube.Stream(render(t, scenarios["shop"]))
	var deployment []byte
	for _, doc := range k8scheck.Documents(stream) {
		if bytes.Contains(doc, []byte("kind: Deployment")) {
			deployment = doc
			break
		}
	}
	if _, err := k8scheck.DecodeStrict(deployment); err != nil {
		t.Fatalf("the unchanged Deployment: %v", err)
	}
	for _, c := range []struct{ from, to, field string }{
		{"  selector:\n", "  replica: 2\n  selector:\n", "replica"},
		{"        readOnlyRootFilesystem: true\n", "        readOnlyRootFileSystem: true\n", "readOnlyRootFileSystem"},
		{"kind: Deployment\n", "kind: Deployment\nstatuz: {}\n", "statuz"},
	} {
		bad := bytes.Replace(deployment, []byte(c.from), []byte(c.to), 1)
		if bytes.Equal(bad, deployment) {
			t.Fatalf("%q is not in the Deployment", c.from)
		}
		_, err := k8scheck.DecodeStrict(bad)
		if err == nil || !strings.Contains(err.Error(), "unknown field") || !strings.Contains(err.Error(), c.field) {
			t.Errorf("field %s: err = %v, want an unknown field error", c.field, err)
		}
	}
}

func byKind[T kube.Object](objs []kube.Object) []T {
	var out []T
	for _, o := range objs {
		if x, ok := o.(T); ok {
			out = append(out, x)
		}
	}
	return out
}

func TestDaprAnnotations(t *testing.T) {
	for name, apps := range scenarios {
		objs := render(t, apps)
		byID := map[string]*v1alpha1.RoamApp{}
		for _, a := range apps {
			byID[a.Name] = kube.Defaulted(a)
		}
		templates := map[string]corev1.PodTemplateSpec{}
		for _, d := range byKind[*appsv1.Deployment](objs) {
			templates[d.Name] = d.Spec.Template
		}
		for _, d := range byKind[*appsv1.DaemonSet](objs) {
			templates[d.Name] = d.Spec.Template
		}
		if len(templates) != len(apps) {
			t.Fatalf("%s: %d workloads for %d apps", name, len(templates), len(apps))
		}
		for n, tmpl := range templates {
			a := byID[n]
			got := tmpl.Annotations
			if !*a.Spec.Dapr.Enabled {
				if len(got) != 0 {
					t.Errorf("%s/%s: Dapr disabled, annotations %v", name, n, got)
				}
				if !contains(tmpl.Spec.Containers[0].Args, "--backend=embedded") {
					t.Errorf("%s/%s: args %v", name, n, tmpl.Spec.Containers[0].Args)
				}
				continue
			}
			want := map[string]string{
				"dapr.io/enabled": "true", "dapr.io/app-id": n, "dapr.io/app-port": "8080",
				"dapr.io/app-protocol": "http", "dapr.io/config": "roam", "dapr.io/metrics-port": "9090",
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("%s/%s: annotations\n got %v\nwant %v", name, n, got, want)
			}
			if !contains(tmpl.Spec.Containers[0].Args, "--backend=dapr") {
				t.Errorf("%s/%s: args %v", name, n, tmpl.Spec.Containers[0].Args)
			}
		}
	}
	// A spec's own wiring goes through.
	a := app("orders", "shop", func(a *v1alpha1.RoamApp) {
		a.Spec.Dapr = v1alpha1.DaprSpec{AppID: "orders-v2", AppPort: 9000, AppProtocol: "grpc", Config: "tracing"}
	})
	objs, err := kube.App(a, opts)
	if err != nil {
		t.Fatal(err)
	}
	d := byKind[*appsv1.Deployment](objs)[0]
	want := map[string]string{"dapr.io/enabled": "true", "dapr.io/app-id": "orders-v2", "dapr.io/app-port": "9000",
		"dapr.io/app-protocol": "grpc", "dapr.io/config": "tracing", "dapr.io/metrics-port": "9090"}
	if got := d.Spec.Template.Annotations; !reflect.DeepEqual(got, want) {
		t.Errorf("annotations\n got %v\nwant %v", got, want)
	}
	c := d.Spec.Template.Spec.Containers[0]
	if c.Ports[0].ContainerPort != 9000 || !contains(c.Args, "--port=9000") {
		t.Errorf("port 9000: ports %v, args %v", c.Ports, c.Args)
	}
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// peer is one admitted source: a namespace ("" for the policy's own) and
// the app id of its pods, on a port.
type peer struct {
	ns, id string
	port   int32
}

// admitted flattens a NetworkPolicy into the sources it admits; a peer it
// cannot express so fails the test.
func admitted(t *testing.T, np *networkingv1.NetworkPolicy) []peer {
	t.Helper()
	var out []peer
	for _, r := range np.Spec.Ingress {
		for _, f := range r.From {
			p := peer{}
			if f.NamespaceSelector != nil {
				p.ns = f.NamespaceSelector.MatchLabels[kube.LabelNamespaceName]
				if p.ns == "" || len(f.NamespaceSelector.MatchLabels) != 1 {
					t.Fatalf("%s: namespace selector %v", np.Name, f.NamespaceSelector)
				}
			}
			if f.PodSelector != nil {
				if len(f.PodSelector.MatchLabels) != 1 || len(f.PodSelector.MatchExpressions) != 0 {
					t.Fatalf("%s: pod selector %v", np.Name, f.PodSelector)
				}
				for k, v := range f.PodSelector.MatchLabels {
					p.id = k + "=" + v
				}
			}
			if f.IPBlock != nil || (f.NamespaceSelector == nil && f.PodSelector == nil) {
				t.Fatalf("%s: peer %v admits more than pods", np.Name, f)
			}
			for _, port := range r.Ports {
				q := p
				q.port = port.Port.IntVal
				out = append(out, q)
			}
			if len(r.Ports) == 0 {
				t.Fatalf("%s: a rule without ports admits every port", np.Name)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.ns != b.ns {
			return a.ns < b.ns
		}
		if a.id != b.id {
			return a.id < b.id
		}
		return a.port < b.port
	})
	return out
}

func TestNetworkPolicies(t *testing.T) {
	// The scraper reaches the host's metrics port (--metrics-port) and the
	// sidecar's, never the app's port (8080), which serves the app's
	// methods and the state sync API.
	monitoring := []peer{{"monitoring", "", 9090}, {"monitoring", "", 9464}}
	want := map[string]map[string][]peer{
		"shop": {
			"orders":    monitoring,
			"inventory": append([]peer{{"", "dapr.io/app-id=orders", 50002}}, monitoring...),
		},
		"shop-cross-namespace-edge": {
			"orders":    monitoring,
			"inventory": append(monitoring[:2:2], peer{"shop", "dapr.io/app-id=orders", 50002}),
		},
		"shop-no-dapr": {
			"orders":    {{"monitoring", "", 9464}},
			"inventory": {{"", "app.kubernetes.io/name=orders", 8080}, {"monitoring", "", 9464}},
		},
	}
	for name, apps := range scenarios {
		objs := render(t, apps)
		nps := byKind[*networkingv1.NetworkPolicy](objs)
		if len(nps) != len(apps) {
			t.Fatalf("%s: %d NetworkPolicies for %d apps", name, len(nps), len(apps))
		}
		for _, np := range nps {
			if !reflect.DeepEqual(np.Spec.PolicyTypes, []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}) {
				t.Errorf("%s/%s: policy types %v", name, np.Name, np.Spec.PolicyTypes)
			}
			if want := kube.Selector(app(np.Name, np.Namespace)); !reflect.DeepEqual(np.Spec.PodSelector.MatchLabels, want) {
				t.Errorf("%s/%s: selects %v", name, np.Name, np.Spec.PodSelector.MatchLabels)
			}
			if got := admitted(t, np); !reflect.DeepEqual(got, want[name][np.Name]) {
				t.Errorf("%s/%s admits\n %v\nwant\n %v", name, np.Name, got, want[name][np.Name])
			}
		}
	}

	// Exactly the named callers: several, in several namespaces, a
	// duplicate and the app's own namespace written out.
	a := app("inventory", "shop", allowFrom("orders", "billing.finance", "orders.shop", "audit.finance", "billing.finance"))
	o := opts
	o.MetricsNamespace, o.HTTPFrom = "", []string{"ingress-nginx"}
	objs, err := kube.App(a, o)
	if err != nil {
		t.Fatal(err)
	}
	got := admitted(t, byKind[*networkingv1.NetworkPolicy](objs)[0])
	wantPeers := []peer{
		{"", "dapr.io/app-id=orders", 50002},
		{"finance", "dapr.io/app-id=audit", 50002},
		{"finance", "dapr.io/app-id=billing", 50002},
		{"ingress-nginx", "", 8080},
	}
	if !reflect.DeepEqual(got, wantPeers) {
		t.Errorf("admits\n %v\nwant\n %v", got, wantPeers)
	}
}

func TestEdge(t *testing.T) {
	objs := render(t, scenarios["shop-cross-namespace-edge"])
	ds := byKind[*appsv1.DaemonSet](objs)
	if len(ds) != 1 || ds[0].Name != "inventory" || ds[0].Namespace != "shop-inventory" {
		t.Fatalf("DaemonSets: %v", ds)
	}
	for _, d := range byKind[*appsv1.Deployment](objs) {
		if d.Name == "inventory" {
			t.Fatal("an edge app got a Deployment too")
		}
	}
	spec := ds[0].Spec.Template.Spec
	if !reflect.DeepEqual(spec.NodeSelector, map[string]string{"apps.openyurt.io/nodepool": "hangzhou"}) {
		t.Errorf("node selector %v", spec.NodeSelector)
	}
	wantTol := []corev1.Toleration{{Key: "node-role.kubernetes.io/edge", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}}
	if !reflect.DeepEqual(spec.Tolerations, wantTol) {
		t.Errorf("tolerations %v", spec.Tolerations)
	}
	c := spec.Containers[0]
	if c.Image != "ghcr.io/acme/shop/roam-edge:v1" {
		t.Errorf("image %s", c.Image)
	}
	if ref := "oci://ghcr.io/acme/shop/inventory-wasm@" + digest; c.Args[len(c.Args)-1] != ref {
		t.Errorf("args %v: want the module %s last", c.Args, ref)
	}
	if *c.SecurityContext.ReadOnlyRootFilesystem != true || c.VolumeMounts[0].MountPath != "/data" {
		t.Errorf("security context %v, mounts %v", c.SecurityContext, c.VolumeMounts)
	}
	// Every pull secret for the kubelet, and every one, read-only, for the
	// edge host's pull of the module: each Secret's .dockerconfigjson as
	// the config.json of its own directory, all listed in
	// $ROAM_DOCKER_CONFIGS in spec order; DOCKER_CONFIG names the first.
	if want := []corev1.LocalObjectReference{{Name: "regcred"}, {Name: "mirror-creds"}}; !reflect.DeepEqual(spec.ImagePullSecrets, want) {
		t.Errorf("imagePullSecrets %v, want %v", spec.ImagePullSecrets, want)
	}
	if got := c.VolumeMounts[len(c.VolumeMounts)-1]; got != (corev1.VolumeMount{Name: "registry", MountPath: kube.RegistryConfigDir, ReadOnly: true}) {
		t.Errorf("registry mount %+v", got)
	}
	dir := kube.RegistryConfigDir + "/"
	wantEnv := []corev1.EnvVar{{Name: "DOCKER_CONFIG", Value: dir + "regcred"}, {Name: "ROAM_DOCKER_CONFIGS", Value: dir + "regcred:" + dir + "mirror-creds"}}
	if !reflect.DeepEqual(c.Env, wantEnv) {
		t.Errorf("env %v, want %v", c.Env, wantEnv)
	}
	vol := spec.Volumes[len(spec.Volumes)-1]
	if p := vol.Projected; vol.Name != "registry" || p == nil || p.DefaultMode == nil || *p.DefaultMode != 0o440 || len(p.Sources) != 2 {
		t.Fatalf("registry volume %+v", vol)
	}
	for i, name := range []string{"regcred", "mirror-creds"} {
		want := &corev1.SecretProjection{LocalObjectReference: corev1.LocalObjectReference{Name: name},
			Items: []corev1.KeyToPath{{Key: ".dockerconfigjson", Path: name + "/config.json"}}}
		if got := vol.Projected.Sources[i]; !reflect.DeepEqual(got, corev1.VolumeProjection{Secret: want}) {
			t.Errorf("registry volume source %d: %+v, want Secret %s's .dockerconfigjson as %s/config.json", i, got, name, name)
		}
	}
	svc := byKind[*corev1.Service](objs)
	for _, s := range svc {
		local := s.Spec.InternalTrafficPolicy != nil && *s.Spec.InternalTrafficPolicy == corev1.ServiceInternalTrafficPolicyLocal
		if local != (s.Name == "inventory") {
			t.Errorf("service %s: internal traffic policy %v", s.Name, s.Spec.InternalTrafficPolicy)
		}
	}

	// No node selector: OpenYurt's edge workers, never every node. No
	// pull secret: nothing mounted, no DOCKER_CONFIG.
	objs, err := kube.App(app("inventory", "shop", edge(nil)), opts)
	if err != nil {
		t.Fatal(err)
	}
	plain := byKind[*appsv1.DaemonSet](objs)[0].Spec.Template.Spec
	if !reflect.DeepEqual(plain.NodeSelector, kube.DefaultEdgeNodeSelector) {
		t.Errorf("default node selector %v", plain.NodeSelector)
	}
	if len(plain.ImagePullSecrets) != 0 || len(plain.Volumes) != 2 || len(plain.Containers[0].Env) != 0 {
		t.Errorf("no pull secret: imagePullSecrets %v, volumes %v, env %v", plain.ImagePullSecrets, plain.Volumes, plain.Containers[0].Env)
	}
	// The host image of the spec wins over Options'.
	objs, err = kube.App(app("inventory", "shop", edge(nil), func(a *v1alpha1.RoamApp) { a.Spec.Edge.HostImage = "registry.local/roam-edge@" + digest }), opts)
	if err != nil {
		t.Fatal(err)
	}
	if got := byKind[*appsv1.DaemonSet](objs)[0].Spec.Template.Spec.Containers[0].Image; got != "registry.local/roam-edge@"+digest {
		t.Errorf("host image %s", got)
	}
}

// A native app's pull secrets are the kubelet's alone: nothing in the
// container reads them. Configuration values keep their variables.
func TestPullSecretsNative(t *testing.T) {
	o := opts
	o.AppConfig = map[string]map[string]string{"orders": {"greeting": "hello"}}
	objs, err := kube.App(app("orders", "shop", pullSecrets("regcred")), o)
	if err != nil {
		t.Fatal(err)
	}
	spec := byKind[*appsv1.Deployment](objs)[0].Spec.Template.Spec
	if !reflect.DeepEqual(spec.ImagePullSecrets, []corev1.LocalObjectReference{{Name: "regcred"}}) {
		t.Errorf("imagePullSecrets %v", spec.ImagePullSecrets)
	}
	c := spec.Containers[0]
	if len(spec.Volumes) != 2 || len(c.VolumeMounts) != 2 || len(c.Env) != 1 || c.Env[0].Name != "ROAM_CONFIG_GREETING" {
		t.Errorf("volumes %v, mounts %v, env %v", spec.Volumes, c.VolumeMounts, c.Env)
	}
	// At the edge, DOCKER_CONFIG (and, for more than one secret,
	// ROAM_DOCKER_CONFIGS) beside the configuration, sorted.
	for secrets, want := range map[string]string{
		"regcred": "DOCKER_CONFIG=/var/run/roam/registry/regcred ROAM_CONFIG_GREETING=hello",
		"regcred mirror": "DOCKER_CONFIG=/var/run/roam/registry/regcred ROAM_CONFIG_GREETING=hello " +
			"ROAM_DOCKER_CONFIGS=/var/run/roam/registry/regcred:/var/run/roam/registry/mirror",
	} {
		objs, err = kube.App(app("orders", "shop", edge(nil), pullSecrets(strings.Fields(secrets)...)), o)
		if err != nil {
			t.Fatal(err)
		}
		var env []string
		for _, e := range byKind[*appsv1.DaemonSet](objs)[0].Spec.Template.Spec.Containers[0].Env {
			env = append(env, e.Name+"="+e.Value)
		}
		if got := strings.Join(env, " "); got != want {
			t.Errorf("edge env with pull secrets %s: %s, want %s", secrets, got, want)
		}
	}
}

func TestCrossNamespace(t *testing.T) {
	objs := render(t, scenarios["shop-cross-namespace-edge"])
	var orders *appsv1.Deployment
	for _, d := range byKind[*appsv1.Deployment](objs) {
		if d.Name == "orders" {
			orders = d
		}
	}
	if orders == nil || orders.Namespace != "shop" {
		t.Fatalf("orders: %v", orders)
	}
	if env := orders.Spec.Template.Spec.Containers[0].Env; len(env) != 1 || env[0].Name != "ROAM_CONFIG_INVENTORY_APP_ID" || env[0].Value != "inventory.shop-inventory" {
		t.Errorf("orders' configuration env: %v", env)
	}
	// Beside each other, nothing to configure.
	for _, d := range byKind[*appsv1.Deployment](render(t, scenarios["shop"])) {
		if env := d.Spec.Template.Spec.Containers[0].Env; len(env) != 0 {
			t.Errorf("%s: configuration env in one namespace: %v", d.Name, env)
		}
	}
	// Each namespace has its Dapr resources, scoped to its apps; the
	// Resiliency of orders' namespace governs calls to inventory.
	scopes := map[string][]any{}
	for _, u := range byKind[*unstructured.Unstructured](objs) {
		if u.GetKind() == "Component" && u.GetName() == "statestore" {
			scopes[u.GetNamespace()] = u.Object["scopes"].([]any)
		}
		if u.GetKind() == "Resiliency" && u.GetNamespace() == "shop" {
			apps, _, _ := unstructured.NestedMap(u.Object, "spec", "targets", "apps")
			if _, ok := apps["inventory"]; !ok {
				t.Errorf("Resiliency of shop does not target inventory: %v", apps)
			}
		}
	}
	if !reflect.DeepEqual(scopes, map[string][]any{"shop": {"orders"}, "shop-inventory": {"inventory"}}) {
		t.Errorf("statestore scopes: %v", scopes)
	}
	// Options set the key: that value wins.
	o := opts
	o.AppConfig = map[string]map[string]string{"orders": {"inventory-app-id": "inventory.elsewhere"}}
	objs, err := kube.Render(scenarios["shop-cross-namespace-edge"], o, dapr)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range byKind[*appsv1.Deployment](objs) {
		if env := d.Spec.Template.Spec.Containers[0].Env; d.Name == "orders" && (len(env) != 1 || env[0].Value != "inventory.elsewhere") {
			t.Errorf("explicit config lost: %v", env)
		}
	}
}

func TestSecurityContext(t *testing.T) {
	objs := render(t, scenarios["shop-cross-namespace-edge"])
	var workloads []metav1.ObjectMeta
	var pods []corev1.PodSpec
	for _, d := range byKind[*appsv1.Deployment](objs) {
		workloads, pods = append(workloads, d.ObjectMeta), append(pods, d.Spec.Template.Spec)
	}
	for _, d := range byKind[*appsv1.DaemonSet](objs) { // the edge host, with the registry Secret mounted
		workloads, pods = append(workloads, d.ObjectMeta), append(pods, d.Spec.Template.Spec)
	}
	if len(pods) != 2 {
		t.Fatalf("%d workloads", len(pods))
	}
	for i, ps := range pods {
		d := workloads[i]
		if *ps.SecurityContext.RunAsUser != 65532 || !*ps.SecurityContext.RunAsNonRoot || ps.SecurityContext.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
			t.Errorf("%s: pod security %v", d.Name, ps.SecurityContext)
		}
		if *ps.AutomountServiceAccountToken || ps.ServiceAccountName != d.Name {
			t.Errorf("%s: service account %s, automount %v", d.Name, ps.ServiceAccountName, *ps.AutomountServiceAccountToken)
		}
		// Volumes the restricted Pod Security Standard admits; Secrets
		// mounted read-only.
		secrets := map[string]bool{}
		for _, v := range ps.Volumes {
			if v.Secret != nil || v.Projected != nil {
				secrets[v.Name] = true
			} else if v.EmptyDir == nil {
				t.Errorf("%s: volume %s is neither an emptyDir nor Secrets", d.Name, v.Name)
			}
		}
		for _, c := range append(ps.InitContainers, ps.Containers...) {
			s := c.SecurityContext
			if *s.RunAsUser != 65532 || !*s.ReadOnlyRootFilesystem || *s.AllowPrivilegeEscalation || !reflect.DeepEqual(s.Capabilities.Drop, []corev1.Capability{"ALL"}) {
				t.Errorf("%s/%s: security %v", d.Name, c.Name, s)
			}
			for _, m := range c.VolumeMounts {
				if secrets[m.Name] && !m.ReadOnly {
					t.Errorf("%s/%s: Secret %s mounted writable", d.Name, c.Name, m.Name)
				}
			}
		}
	}
}

func TestValidation(t *testing.T) {
	cases := []struct {
		name string
		app  *v1alpha1.RoamApp
		want string
	}{
		{"bad app id", app("orders", "shop", func(a *v1alpha1.RoamApp) { a.Spec.Dapr.AppID = "Orders_1" }), `spec.dapr.appId "Orders_1"`},
		{"bad name", app("Orders", "shop"), `metadata.name "Orders"`},
		{"no namespace", app("orders", ""), "metadata.namespace"},
		{"edge without digest", app("orders", "shop", edge(nil), func(a *v1alpha1.RoamApp) { a.Spec.Image = "ghcr.io/acme/orders-wasm:v1" }), "pinned by digest"},
		{"edge without image", app("orders", "shop", edge(nil), func(a *v1alpha1.RoamApp) { a.Spec.Image = "" }), "pinned by digest"},
		{"edge short digest", app("orders", "shop", edge(nil), func(a *v1alpha1.RoamApp) { a.Spec.Image = "ghcr.io/acme/orders-wasm@sha256:abc" }), "pinned by digest"},
		{"edge spec on native", app("orders", "shop", func(a *v1alpha1.RoamApp) { a.Spec.Edge = &v1alpha1.EdgeSpec{} }), "spec.edge applies only to mode edge"},
		{"bad mode", app("orders", "shop", func(a *v1alpha1.RoamApp) { a.Spec.Mode = "cloud" }), `spec.mode "cloud"`},
		{"no image", app("orders", "shop", func(a *v1alpha1.RoamApp) { a.Spec.Image = "" }), "spec.image is required"},
		{"bad image", app("orders", "shop", func(a *v1alpha1.RoamApp) { a.Spec.Image = "ghcr.io/Acme/orders:v1" }), `spec.image "ghcr.io/Acme/orders:v1"`},
		{"sidecar port", app("orders", "shop", func(a *v1alpha1.RoamApp) { a.Spec.Dapr.AppPort = 50002 }), "Dapr sidecar's internal gRPC port"},
		{"bad protocol", app("orders", "shop", func(a *v1alpha1.RoamApp) { a.Spec.Dapr.AppProtocol = "https" }), "appProtocol"},
		{"bad caller", app("orders", "shop", allowFrom("inventory.Shop")), `caller "inventory.Shop"`},
		{"bad toleration", app("orders", "shop", edge(nil, corev1.Toleration{Key: "edge", Operator: corev1.TolerationOpExists, Value: "x"})), "Exists takes no value"},
		{"replicas", app("orders", "shop", func(a *v1alpha1.RoamApp) { r := int32(-1); a.Spec.Replicas = &r }), "spec.replicas -1"},
		{"bad pull secret", app("orders", "shop", pullSecrets("regcred", "Reg_Cred")), `spec.imagePullSecrets[1].name "Reg_Cred"`},
		{"empty pull secret", app("orders", "shop", pullSecrets("")), `spec.imagePullSecrets[0].name ""`},
		{"pull secret twice", app("orders", "shop", pullSecrets("regcred", "regcred")), "spec.imagePullSecrets[1].name: regcred is given twice"},
	}
	for _, c := range cases {
		_, err := kube.App(c.app, opts)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want it to say %q", c.name, err, c.want)
		}
	}
	// Every problem at once.
	_, err := kube.App(app("orders", "shop", func(a *v1alpha1.RoamApp) { a.Spec.Dapr.AppPort = 3500; a.Spec.Image = "" }), opts)
	if err == nil || !strings.Contains(err.Error(), "HTTP API port") || !strings.Contains(err.Error(), "spec.image is required") {
		t.Errorf("err = %v, want both problems", err)
	}
	// No edge host image anywhere.
	_, err = kube.App(app("orders", "shop", edge(nil)), kube.Options{})
	if err == nil || !strings.Contains(err.Error(), "edge host's image") {
		t.Errorf("err = %v", err)
	}
	// Two keys for one variable.
	o := opts
	o.AppConfig = map[string]map[string]string{scenarios["shop-no-dapr"][0].Name: {"a-b": "1", "a.b": "2"}}
	_, err = kube.App(scenarios["shop-no-dapr"][0], o)
	if err == nil || !strings.Contains(err.Error(), "are both set by ROAM_CONFIG_A_B") {
		t.Errorf("err = %v", err)
	}
	// Two apps with one id in a namespace.
	_, err = kube.Render([]*v1alpha1.RoamApp{app("orders", "shop"), app("orders2", "shop", func(a *v1alpha1.RoamApp) { a.Spec.Dapr.AppID = "orders" })}, opts, dapr)
	if err == nil || !strings.Contains(err.Error(), "two apps have the app id orders") {
		t.Errorf("err = %v", err)
	}
}

func TestDefaulted(t *testing.T) {
	in := &v1alpha1.RoamApp{ObjectMeta: metav1.ObjectMeta{Name: "orders", Namespace: "shop"}, Spec: v1alpha1.RoamAppSpec{Image: "x/orders:v1"}}
	a := kube.Defaulted(in)
	s := a.Spec
	if s.Mode != v1alpha1.ModeNative || s.Dapr.AppID != "orders" || s.Dapr.AppPort != 8080 || s.Dapr.AppProtocol != "http" ||
		!*s.Dapr.Enabled || *s.Replicas != 1 || s.Resources == nil || s.Resources.Limits.Memory().String() != "256Mi" {
		t.Errorf("defaulted: %+v", s)
	}
	if in.Spec.Mode != "" || in.Spec.Replicas != nil {
		t.Error("Defaulted changed its argument")
	}
	// Replicas 0 is kept: a stopped app.
	zero := int32(0)
	in.Spec.Replicas = &zero
	if *kube.Defaulted(in).Spec.Replicas != 0 {
		t.Error("replicas 0 was defaulted")
	}
}

// TestDaprCRDs validates the Dapr resources against the CRDs of Dapr's
// module, and shows that the check sees a bad field.
func TestDaprCRDs(t *testing.T) {
	crds := daprCRDs(t)
	res, err := kube.DaprResources(kube.Dapr{Namespace: "shop", AppIDs: []string{"orders", "inventory"}, Redis: redis,
		Tracing: kube.Tracing{OTLPEndpoint: "collector:4317"}})
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]*unstructured.Unstructured{}
	for _, r := range res {
		if err := crds.Validate(r); err != nil {
			t.Errorf("%v", err)
		}
		kinds[r.GetKind()+"/"+r.GetName()] = r
	}
	for _, k := range []string{"Component/statestore", "Component/pubsub", "Component/configstore", "Configuration/roam", "Resiliency/roam"} {
		if kinds[k] == nil {
			t.Errorf("no %s in %v", k, kinds)
		}
	}
	for _, u := range res {
		if u.GetKind() != "Component" {
			continue
		}
		if s, _, _ := unstructured.NestedString(u.Object, "auth", "secretStore"); s != "kubernetes" {
			t.Errorf("%s: auth.secretStore %q", u.GetName(), s)
		}
		md, _, _ := unstructured.NestedSlice(u.Object, "spec", "metadata")
		found := false
		for _, m := range md {
			m := m.(map[string]any)
			if m["name"] == "redisPassword" {
				found = reflect.DeepEqual(m["secretKeyRef"], map[string]any{"name": "redis", "key": "redis-password"}) && m["value"] == nil
			}
		}
		if !found {
			t.Errorf("%s: redisPassword is not a secretKeyRef: %v", u.GetName(), md)
		}
	}
	mtls, _, _ := unstructured.NestedBool(kinds["Configuration/roam"].Object, "spec", "mtls", "enabled")
	rate, _, _ := unstructured.NestedString(kinds["Configuration/roam"].Object, "spec", "tracing", "samplingRate")
	otel, _, _ := unstructured.NestedString(kinds["Configuration/roam"].Object, "spec", "tracing", "otel", "endpointAddress")
	if !mtls || rate != "1" || otel != "collector:4317" {
		t.Errorf("Configuration: mtls %v, sampling %q, otel %q", mtls, rate, otel)
	}

	bad := []struct {
		name   string
		obj    *unstructured.Unstructured
		change func(map[string]any)
		want   string
	}{
		// Self-hosted Dapr reads it; the CRD has no such field.
		{"unknown retry field", kinds["Resiliency/roam"], func(m map[string]any) {
			unstructured.SetNestedField(m, "200ms", "spec", "policies", "retries", "events", "initialInterval")
		}, "spec.policies.retries.events.initialInterval"},
		{"wrong type", kinds["Resiliency/roam"], func(m map[string]any) {
			unstructured.SetNestedField(m, "three", "spec", "policies", "retries", "invoke", "maxRetries")
		}, "maxRetries"},
		{"missing required", kinds["Component/statestore"], func(m map[string]any) {
			unstructured.RemoveNestedField(m, "spec", "version")
		}, "spec.version"},
		{"unknown top-level field", kinds["Configuration/roam"], func(m map[string]any) {
			m["specs"] = map[string]any{}
		}, "specs"},
		{"unknown metadata field", kinds["Component/pubsub"], func(m map[string]any) {
			unstructured.SetNestedField(m, "x", "metadata", "nmae")
		}, "metadata.nmae"},
		{"bad name", kinds["Component/pubsub"], func(m map[string]any) {
			unstructured.SetNestedField(m, "Pub_Sub", "metadata", "name")
		}, "metadata.name"},
		{"otel without protocol", kinds["Configuration/roam"], func(m map[string]any) {
			unstructured.RemoveNestedField(m, "spec", "tracing", "otel", "protocol")
		}, "spec.tracing.otel.protocol"},
	}
	for _, b := range bad {
		u := b.obj.DeepCopy()
		b.change(u.Object)
		err := crds.Validate(u)
		if err == nil || !strings.Contains(err.Error(), b.want) {
			t.Errorf("%s: err = %v, want it to name %s", b.name, err, b.want)
		}
	}
	if err := crds.Validate(&unstructured.Unstructured{Object: map[string]any{"apiVersion": "dapr.io/v9", "kind": "Component"}}); err == nil {
		t.Error("a kind without CRD validated")
	}
}

func TestDaprErrors(t *testing.T) {
	for _, c := range []struct {
		d    kube.Dapr
		want string
	}{
		{kube.Dapr{Namespace: "shop"}, "redis host"},
		{kube.Dapr{Namespace: "Shop", Redis: redis}, `namespace "Shop"`},
		{kube.Dapr{Namespace: "shop", Redis: redis, Tracing: kube.Tracing{SamplingRate: "2"}}, "sampling rate"},
		{kube.Dapr{Namespace: "shop", Redis: redis, Tracing: kube.Tracing{OTLPEndpoint: "collector"}}, "OTLP endpoint"},
		{kube.Dapr{Namespace: "shop", Redis: redis, AppIDs: []string{"Orders"}}, `app id "Orders"`},
	} {
		if _, err := kube.DaprResources(c.d); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: err = %v, want %q", c.d, err, c.want)
		}
	}
}

func TestKustomization(t *testing.T) {
	objs := render(t, scenarios["shop-cross-namespace-edge"])
	files, err := kube.Kustomization(objs)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != len(objs)+1 {
		t.Fatalf("%d files for %d objects", len(files), len(objs))
	}
	k := files[len(files)-1]
	if k.Path != "kustomization.yaml" {
		t.Fatalf("last file %s", k.Path)
	}
	for _, f := range files[:len(files)-1] {
		if !bytes.Contains(k.Data, []byte("\n- "+f.Path+"\n")) {
			t.Errorf("kustomization.yaml does not list %s", f.Path)
		}
		if docs := k8scheck.Documents(f.Data); len(docs) != 1 {
			t.Errorf("%s holds %d documents", f.Path, len(docs))
		}
	}
	for _, p := range []string{"namespace-shop.yaml", "shop/deployment-orders.yaml", "shop-inventory/daemonset-inventory.yaml", "shop-inventory/networkpolicy-inventory.yaml"} {
		found := false
		for _, f := range files {
			found = found || f.Path == p
		}
		if !found {
			t.Errorf("no file %s", p)
		}
	}
	dir := t.TempDir()
	if err := kube.WriteFiles(dir, files); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "shop", "deployment-orders.yaml")); err != nil || !bytes.HasPrefix(b, []byte(kube.Header)) {
		t.Errorf("written file: %v %.80s", err, b)
	}
	if err := kube.WriteFiles(dir, []kube.File{{Path: "../x.yaml"}}); err == nil {
		t.Error("a file outside the directory was written")
	}
	if _, err := kube.Kustomization(append(objs, objs[0])); err == nil {
		t.Error("two objects in one file")
	}
	// Untyped objects need their kind.
	if _, err := kube.Marshal(&corev1.Service{}); err == nil {
		t.Error("an object without kind marshaled")
	}
	var _ runtime.Object = objs[0]
}

// TestMetricsPort: every host container serves /metrics on a port of its
// own (--metrics-port, the container port "metrics"), which the
// NetworkPolicy admits the scraper to in place of the app's port; an app
// port that is the metrics port is refused.
func TestMetricsPort(t *testing.T) {
	for name, apps := range scenarios {
		objs := render(t, apps)
		var cs []corev1.Container
		for _, d := range byKind[*appsv1.Deployment](objs) {
			cs = append(cs, d.Spec.Template.Spec.Containers...)
		}
		for _, d := range byKind[*appsv1.DaemonSet](objs) {
			cs = append(cs, d.Spec.Template.Spec.Containers...)
		}
		if len(cs) != len(apps) {
			t.Fatalf("%s: %d containers for %d apps", name, len(cs), len(apps))
		}
		for _, c := range cs {
			if !contains(c.Args, "--metrics-port=9464") {
				t.Errorf("%s/%s: args %v lack --metrics-port=9464", name, c.Name, c.Args)
			}
			var got []string
			for _, p := range c.Ports {
				got = append(got, fmt.Sprintf("%s=%d", p.Name, p.ContainerPort))
			}
			if want := []string{"http=8080", "metrics=9464"}; !reflect.DeepEqual(got, want) {
				t.Errorf("%s/%s: container ports %v, want %v", name, c.Name, got, want)
			}
		}
		for _, np := range byKind[*networkingv1.NetworkPolicy](objs) {
			for _, p := range admitted(t, np) {
				if p.ns == "monitoring" && p.port == 8080 {
					t.Errorf("%s/%s: the scraper is admitted on the app port", name, np.Name)
				}
			}
		}
	}
	a := app("orders", "shop", func(a *v1alpha1.RoamApp) { a.Spec.Dapr.AppPort = kube.HostMetricsPort })
	if _, err := kube.App(a, opts); err == nil || !strings.Contains(err.Error(), "spec.dapr.appPort 9464 is the host's metrics port") {
		t.Errorf("appPort 9464: %v", err)
	}
}
