package main

import (
	"bytes"
	"context"
	"flag"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"

	"github.com/roam-dev/roam/internal/manifests/k8scheck"
)

var updateManifests = flag.Bool("update", false, "rewrite examples/shop/deploy, the golden output of roam manifests")

// shopDeployArgs make examples/shop/deploy, the shop's manifests; its
// README shows the same command.
var shopDeployArgs = []string{"manifests", "../../examples/shop", "--namespace", "shop",
	"--image-repo", "ghcr.io/acme/shop", "--tag", "v0.1.0", "--allow-from", "inventory=orders"}

const digest = "sha256:0f3c5d52c3ab1e9ec9b1a3a4b5d0e0f7c1f4c5c0d7b0a2e4c9d8e7f6a5b4c3d2"

func runRoam(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), args, &stdout, &stderr)
	return stdout.String(), err
}

// readTree reads every file below dir, by slash-separated relative path.
func readTree(t *testing.T, dir string) map[string]string {
	t.Helper()
	files := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || filepath.Ext(p) != ".yaml" {
			return err
		}
		b, err := os.ReadFile(p)
		rel, _ := filepath.Rel(dir, p)
		files[filepath.ToSlash(rel)] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// TestManifestsShop writes the shop's manifests and compares them with
// examples/shop/deploy, file by file; -update rewrites that directory.
func TestManifestsShop(t *testing.T) {
	golden := filepath.Join("..", "..", "examples", "shop", "deploy")
	out := t.TempDir()
	if *updateManifests {
		os.RemoveAll(golden)
		out = golden
	}
	msg, err := runRoam(t, append(shopDeployArgs, "-o", out)...)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(msg, "wrote 14 objects of inventory, orders to "+out) {
		t.Errorf("stdout: %s", msg)
	}
	got, want := readTree(t, out), readTree(t, golden)
	var names []string
	for n := range want {
		names = append(names, n)
	}
	for n := range got {
		if _, ok := want[n]; !ok {
			t.Errorf("%s is written but not in %s (go test ./cmd/roam -run TestManifestsShop -update)", n, golden)
		}
	}
	sort.Strings(names)
	for _, n := range names {
		if got[n] != want[n] {
			t.Errorf("%s differs from %s (go test ./cmd/roam -run TestManifestsShop -update rewrites it):\n%s", n, golden, got[n])
		}
	}
	if len(want) == 0 {
		t.Fatalf("no golden files in %s", golden)
	}
}

// TestManifestsStdout checks every object of a cross-namespace edge
// deployment on stdout: strictly typed, or valid against Dapr's CRDs.
func TestManifestsStdout(t *testing.T) {
	dir, err := k8scheck.DaprCRDDir("")
	if err != nil {
		t.Fatal(err)
	}
	crds, err := k8scheck.LoadCRDDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out, err := runRoam(t, "manifests", "../../examples/shop", "--namespace", "shop", "--image-repo", "ghcr.io/acme/shop", "--tag", "v1",
		"--allow-from", "inventory=orders,audit.finance", "--app-namespace", "inventory=shop-inventory",
		"--mode", "inventory=edge", "--module", "inventory=ghcr.io/acme/shop/inventory-wasm@"+digest,
		"--edge-node-selector", "apps.openyurt.io/nodepool=hangzhou", "--edge-toleration", "edge=true:NoSchedule",
		"--replicas", "2", "--replicas", "orders=3", "--config", "orders:greeting=hello", "--http-from", "ingress-nginx",
		"--pull-secret", "regcred,mirror-creds", "--pull-secret", "edge-modules")
	if err != nil {
		t.Fatal(err)
	}
	var ordersDeploy *appsv1.Deployment
	var inventoryDS *appsv1.DaemonSet
	var inventoryNP *networkingv1.NetworkPolicy
	n := 0
	for _, doc := range k8scheck.Documents([]byte(out)) {
		obj, err := k8scheck.Check(doc, crds)
		if err != nil {
			t.Fatalf("%v\n%s", err, doc)
		}
		n++
		switch o := obj.(type) {
		case *appsv1.Deployment:
			ordersDeploy = o
		case *appsv1.DaemonSet:
			inventoryDS = o
		case *networkingv1.NetworkPolicy:
			if o.Name == "inventory" {
				inventoryNP = o
			}
		}
	}
	if n != 20 || ordersDeploy == nil || inventoryDS == nil || inventoryNP == nil {
		t.Fatalf("%d objects; orders Deployment %v, inventory DaemonSet %v", n, ordersDeploy != nil, inventoryDS != nil)
	}
	if ordersDeploy.Namespace != "shop" || *ordersDeploy.Spec.Replicas != 3 {
		t.Errorf("orders: namespace %s, replicas %d", ordersDeploy.Namespace, *ordersDeploy.Spec.Replicas)
	}
	var env []string
	for _, e := range ordersDeploy.Spec.Template.Spec.Containers[0].Env {
		env = append(env, e.Name+"="+e.Value)
	}
	if got := strings.Join(env, " "); got != "ROAM_CONFIG_GREETING=hello ROAM_CONFIG_INVENTORY_APP_ID=inventory.shop-inventory" {
		t.Errorf("orders' configuration: %s", got)
	}
	ds := inventoryDS.Spec.Template.Spec
	if inventoryDS.Namespace != "shop-inventory" || ds.NodeSelector["apps.openyurt.io/nodepool"] != "hangzhou" ||
		len(ds.Tolerations) != 1 || ds.Tolerations[0].Key != "edge" || ds.Tolerations[0].Effect != "NoSchedule" {
		t.Errorf("inventory DaemonSet: namespace %s, node selector %v, tolerations %v", inventoryDS.Namespace, ds.NodeSelector, ds.Tolerations)
	}
	args := ds.Containers[0].Args
	if args[len(args)-1] != "oci://ghcr.io/acme/shop/inventory-wasm@"+digest || ds.Containers[0].Image != "ghcr.io/acme/shop/roam-edge:v1" {
		t.Errorf("edge host %s %v", ds.Containers[0].Image, args)
	}
	// Pull secrets in flag order, comma lists and repeats alike; the edge
	// host reads all of them, listed in ROAM_DOCKER_CONFIGS (DOCKER_CONFIG
	// names the first, for edge hosts that read only it).
	for _, ps := range [][]corev1.LocalObjectReference{ordersDeploy.Spec.Template.Spec.ImagePullSecrets, ds.ImagePullSecrets} {
		if want := []corev1.LocalObjectReference{{Name: "regcred"}, {Name: "mirror-creds"}, {Name: "edge-modules"}}; !reflect.DeepEqual(ps, want) {
			t.Errorf("imagePullSecrets %v, want %v", ps, want)
		}
	}
	if env, dir := ds.Containers[0].Env, "/var/run/roam/registry/"; len(env) != 2 ||
		env[0] != (corev1.EnvVar{Name: "DOCKER_CONFIG", Value: dir + "regcred"}) ||
		env[1] != (corev1.EnvVar{Name: "ROAM_DOCKER_CONFIGS", Value: dir + "regcred:" + dir + "mirror-creds:" + dir + "edge-modules"}) {
		t.Errorf("edge host env %v", env)
	}
	var callers []string
	for _, r := range inventoryNP.Spec.Ingress {
		for _, p := range r.From {
			if p.PodSelector != nil {
				ns := ""
				if p.NamespaceSelector != nil {
					ns = p.NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"]
				}
				callers = append(callers, p.PodSelector.MatchLabels["dapr.io/app-id"]+"."+ns+":"+r.Ports[0].Port.String())
			}
		}
	}
	if strings.Join(callers, " ") != "audit.finance:50002 orders.shop:50002" {
		t.Errorf("inventory admits %v", callers)
	}
}

func TestManifestsFlagErrors(t *testing.T) {
	// with copies, so that no case shares another's backing array.
	with := func(a []string, more ...string) []string { return append(append([]string{}, a...), more...) }
	base := []string{"manifests", "../../examples/shop", "--namespace", "shop", "--image-repo", "ghcr.io/acme/shop"}
	edge := with(base, "--mode", "inventory=edge", "--module", "inventory=ghcr.io/acme/shop/inventory-wasm@"+digest)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"manifests", "../../examples/shop", "--image-repo", "r"}, "--namespace is required"},
		{[]string{"manifests", "../../examples/shop", "--namespace", "Shop_1", "--image-repo", "r"}, `--namespace "Shop_1"`},
		{with(base, "--namespce", "x"), "unknown flag: --namespce"},
		{with(base, "--mode", "invntory=edge"), `--mode "invntory=edge": no app "invntory" here; the apps are inventory, orders`},
		{with(base, "--mode", "inventory"), `--mode "inventory": want APP=VALUE`},
		{with(base, "--mode", "inventory=cloud"), "--mode inventory=cloud: use native or edge"},
		{with(base, "--mode", "inventory=edge"), "--mode inventory=edge needs --module inventory=REF@sha256:DIGEST"},
		{with(base, "--mode", "inventory=edge", "--module", "inventory=ghcr.io/acme/shop/inventory-wasm:v1"), "pinned by digest"},
		{with(base, "--module", "inventory=ghcr.io/acme/shop/inventory-wasm@"+digest), "--module inventory: inventory runs natively; add --mode inventory=edge"},
		{with(base, "--mode", "orders=edge", "--mode", "orders=native"), "--mode: app orders is given twice"},
		{with(base, "--allow-from", "inventory=ordres"), `--allow-from inventory=ordres: no app "ordres" here`},
		{with(base, "--allow-from", "inventory=orders.Shop"), `caller "orders.Shop"`},
		{with(base, "--allow-from", "inventory=inventory"), "an app reaches itself"},
		{with(base, "--app-namespace", "inventory=Other"), "--app-namespace inventory=Other"},
		{with(base, "--replicas", "many"), `--replicas "many": want N for every app (once), or APP=N`},
		{with(base, "--replicas", "orders=x"), "--replicas orders=x: not a number"},
		{with(base, "--replicas", "orders=-1"), "spec.replicas -1"},
		{with(base, "--edge-node-selector", "a=b"), "apply to edge apps, and there are none"},
		{with(edge, "--edge-node-selector", "nodepool"), `--edge-node-selector "nodepool": want KEY=VALUE`},
		{with(edge, "--edge-toleration", "edge=true:Never"), `effect "Never"`},
		{with(edge, "--edge-toleration", ":NoSchedule"), "want KEY[=VALUE][:EFFECT]"},
		{with(base, "--config", "orders=x"), "--config \"orders=x\": want APP:KEY=VALUE"},
		{with(base, "--config", "billing:k=v"), `no app "billing" here`},
		{with(base, "--redis-host", "redis"), `redis host "redis": want host:port`},
		{with(base, "--trace-sampling-rate", "all"), `sampling rate "all"`},
		{with(base, "--tag", "v 1"), `spec.image "ghcr.io/acme/shop/inventory:v 1"`},
		{with(base, "-o", ""), "-o: give a directory"},
		{with(base, "--pull-secret", "Reg_Cred"), `--pull-secret "Reg_Cred": not a Secret name: a lowercase RFC 1123 subdomain`},
		{with(base, "--pull-secret", "regcred,"), `--pull-secret "": not a Secret name`},
		{with(base, "--pull-secret", "regcred", "--pull-secret", "mirror,regcred"), "--pull-secret: regcred is given twice"},
		{[]string{"manifests", "../../sdk", "--namespace", "shop", "--image-repo", "r"}, "no Roam apps"},
	} {
		_, err := runRoam(t, c.args...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("roam %s:\n err = %v\nwant it to say %q", strings.Join(c.args, " "), err, c.want)
		}
	}
}

// TestRoamStaysLean: roam manifests must not link client-go or
// controller-runtime's client, about 25 MB; the operator's binary has them.
func TestRoamStaysLean(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, dep := range strings.Fields(string(out)) {
		if strings.HasPrefix(dep, "k8s.io/client-go/") || strings.HasPrefix(dep, "sigs.k8s.io/controller-runtime/pkg/client") {
			t.Errorf("roam imports %s", dep)
		}
	}
}
