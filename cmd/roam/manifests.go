package main

import (
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/roam-dev/roam/internal/build"
	"github.com/roam-dev/roam/internal/dist"
	"github.com/roam-dev/roam/internal/manifests/kube"
	"github.com/roam-dev/roam/internal/manifests/pullsecret"
	"github.com/roam-dev/roam/operator/api/v1alpha1"
)

// manifestsFlags are roam manifests' flags. Those naming an app take
// APP=VALUE and repeat, one app per flag.
type manifestsFlags struct {
	namespace, out, imageRepo, tag, edgeImage, daprConfig string
	redisHost, redisSecret, redisSecretKey                string
	otlpEndpoint, samplingRate, metricsNamespace          string
	otlpSecure                                            bool
	modes, modules, nodeSelector, tolerations             []string
	allowFrom, appNamespaces, replicas, config, httpFrom  []string
	pullSecrets                                           []string
}

func newManifestsCmd(stdout, stderr io.Writer) *cobra.Command {
	var f manifestsFlags
	c := &cobra.Command{
		Use:   "manifests [packages or directories] --namespace NS",
		Short: "Write Kubernetes manifests of the apps: Deployments (or edge DaemonSets) beside Dapr sidecars, Services, NetworkPolicies and the Dapr resources, kustomize-ready",
		Long: `manifests finds the apps in the given packages as roam run and roam dist do,
and writes, for each app, a Deployment with Dapr's dapr.io/* annotations (or, in
edge mode, a DaemonSet of the edge host loading the app's wasm module by
digest), a Service, a ServiceAccount and a NetworkPolicy; and, for each
namespace, Dapr's components (state.redis, pubsub.redis, configuration.redis,
the password from a Secret), a Configuration (tracing, metrics, mTLS) and a
Resiliency. Images are the ones roam dist --push REPO pushes: REPO/APP:TAG
and REPO/roam-edge:TAG.

With -o DIR, each object goes to DIR/NAMESPACE/KIND-NAME.yaml, listed in
DIR/kustomization.yaml (kubectl apply -k DIR); with -o - (the default) they
go to stdout as one YAML stream. The output is deterministic.

The NetworkPolicy of an app admits only the sidecars of the callers named by
--allow-from (and the metrics scraper): name every caller, e.g.
--allow-from inventory=orders. An app moved with --app-namespace is still
reached by its callers: each gets the configuration key APP-app-id set to
APP.NAMESPACE (the shop's orders reads inventory-app-id).

The Redis password is read from the Secret --redis-secret (key
--redis-secret-key) in each namespace; create it there, e.g.
  kubectl -n NS create secret generic redis --from-literal=redis-password=...

Images and modules in a private registry: --pull-secret names a Secret of
type kubernetes.io/dockerconfigjson in each namespace, e.g.
  kubectl -n NS create secret docker-registry regcred --docker-server=ghcr.io \
    --docker-username=USER --docker-password=TOKEN
Every pod gets the named Secrets as imagePullSecrets. An edge app's host
also mounts each read-only as /var/run/roam/registry/NAME/config.json and
pulls its wasm module with them: for each registry, it tries the credentials
of every Secret that has any, in flag order, as the kubelet does, until the
registry accepts one. Every Secret named must exist
in the namespace, or the edge host's pod does not start.`,
		Example: `  roam manifests ./examples/shop --namespace shop --image-repo ghcr.io/acme/shop --tag v1 \
    --allow-from inventory=orders -o deploy
  roam manifests ./examples/shop --namespace shop --image-repo ghcr.io/acme/shop --tag v1 \
    --allow-from inventory=orders --app-namespace inventory=shop-inventory \
    --mode inventory=edge --module inventory=ghcr.io/acme/shop/inventory-wasm@sha256:... \
    --edge-node-selector apps.openyurt.io/nodepool=hangzhou --edge-toleration edge=true:NoSchedule`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				args = []string{"."}
			}
			if err := f.check(); err != nil {
				return err
			}
			pkgs, _, err := build.FindApps(cmd.Context(), ".", args)
			if err != nil {
				return err
			}
			var names []string
			for _, p := range pkgs {
				names = append(names, dist.AppName(p))
			}
			objs, err := f.render(names)
			if err != nil {
				return err
			}
			if f.out == "-" {
				y, err := kube.Stream(objs)
				if err != nil {
					return err
				}
				_, err = stdout.Write(y)
				return err
			}
			files, err := kube.Kustomization(objs)
			if err != nil {
				return err
			}
			if err := kube.WriteFiles(f.out, files); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "wrote %d objects of %s to %s (kubectl apply -k %s)\n", len(objs), strings.Join(names, ", "), f.out, f.out)
			return nil
		},
	}
	fl := c.Flags()
	fl.StringVar(&f.namespace, "namespace", "", "namespace of the apps and their Dapr resources (required)")
	fl.StringVarP(&f.out, "output", "o", "-", "directory to write one file per object and a kustomization.yaml to, or - for one YAML stream on stdout")
	fl.StringVar(&f.imageRepo, "image-repo", "", "repository prefix of the images, as given to roam dist --push: REPO/APP:TAG (default none: APP:TAG, for a kustomize images: entry to rewrite)")
	fl.StringVar(&f.tag, "tag", "", "tag of the images (default: roam's version, as roam dist --push tags them)")
	fl.StringArrayVar(&f.modes, "mode", nil, "APP=native|edge: where the app runs (default native; repeat per app)")
	fl.StringArrayVar(&f.modules, "module", nil, "APP=REF@sha256:DIGEST: the wasm module of an edge app, an OCI artifact pinned by digest (roam dist --push REPO pushes REPO/APP-wasm)")
	fl.StringVar(&f.edgeImage, "edge-image", "", "the edge host's image (default: REPO/roam-edge:TAG)")
	fl.StringArrayVar(&f.nodeSelector, "edge-node-selector", nil, "KEY=VALUE: a label of the nodes edge apps run on, e.g. apps.openyurt.io/nodepool=hangzhou (default openyurt.io/is-edge-worker=true)")
	fl.StringArrayVar(&f.tolerations, "edge-toleration", nil, "KEY[=VALUE][:EFFECT]: a taint of edge nodes that edge apps tolerate, e.g. edge=true:NoSchedule")
	fl.StringArrayVar(&f.allowFrom, "allow-from", nil, "APP=CALLER[,CALLER]: apps whose sidecars may call APP; a caller outside this set of apps is written ID.NAMESPACE")
	fl.StringArrayVar(&f.appNamespaces, "app-namespace", nil, "APP=NAMESPACE: put APP in another namespace than --namespace")
	fl.StringArrayVar(&f.replicas, "replicas", nil, "N, or APP=N: replicas of every native app, or of one")
	fl.StringArrayVar(&f.config, "config", nil, "APP:KEY=VALUE: a configuration value APP reads (sdk.Config), set as ROAM_CONFIG_KEY in its container's environment")
	fl.StringVar(&f.daprConfig, "dapr-config", kube.DefaultDaprConfig, "name of the Dapr Configuration (dapr.io/config) and Resiliency")
	fl.StringVar(&f.redisHost, "redis-host", "", "Redis of Dapr's components, host:port (default redis-master.NAMESPACE.svc.cluster.local:6379)")
	fl.StringVar(&f.redisSecret, "redis-secret", "redis", "Secret holding Redis's password, in every namespace of the apps")
	fl.StringVar(&f.redisSecretKey, "redis-secret-key", "redis-password", "key of the password in --redis-secret")
	fl.StringVar(&f.otlpEndpoint, "otlp-endpoint", "otel-collector.monitoring.svc.cluster.local:4317", "OpenTelemetry collector the sidecars send traces to, host:port (empty: none)")
	fl.BoolVar(&f.otlpSecure, "otlp-secure", false, "send traces over TLS")
	fl.StringVar(&f.samplingRate, "trace-sampling-rate", "1", "share of requests traced, 0 to 1")
	fl.StringVar(&f.metricsNamespace, "metrics-namespace", "monitoring", "namespace of the Prometheus that scrapes the apps and sidecars (empty: none)")
	fl.StringArrayVar(&f.httpFrom, "http-from", nil, "NAMESPACE whose pods may call the apps' HTTP port directly, e.g. an ingress controller's")
	fl.StringSliceVar(&f.pullSecrets, "pull-secret", nil, "NAME[,NAME]: a kubernetes.io/dockerconfigjson Secret in every namespace of the apps, for a private registry: the pods' imagePullSecrets; an edge app's host pulls its module with all of them (per registry, the first that has credentials for it)")
	return c
}

// check checks the flags that need no app list.
func (f *manifestsFlags) check() error {
	if f.namespace == "" {
		return errors.New("--namespace is required: the namespace to deploy the apps to")
	}
	if msgs := validation.IsDNS1123Label(f.namespace); len(msgs) > 0 {
		return fmt.Errorf("--namespace %q: %s", f.namespace, strings.Join(msgs, "; "))
	}
	if f.out == "" {
		return errors.New("-o: give a directory, or - for stdout")
	}
	if err := pullsecret.CheckNames(f.pullSecrets, func(int) string { return "--pull-secret" }); err != nil {
		return err
	}
	if f.tag == "" {
		f.tag = dist.Tag(versionString())
	}
	return nil
}

// pairs parses a repeated APP=VALUE flag; every APP must be one of apps.
func pairs(flag string, vals []string, apps map[string]bool, sep string) (map[string]string, error) {
	out := map[string]string{}
	for _, v := range vals {
		app, val, ok := strings.Cut(v, sep)
		if !ok || app == "" || val == "" {
			return nil, fmt.Errorf("--%s %q: want APP%sVALUE", flag, v, sep)
		}
		if !apps[app] {
			return nil, fmt.Errorf("--%s %q: no app %q here; the apps are %s", flag, v, app, keys(apps))
		}
		if _, dup := out[app]; dup {
			return nil, fmt.Errorf("--%s: app %s is given twice", flag, app)
		}
		out[app] = val
	}
	return out, nil
}

func keys[V any](m map[string]V) string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return strings.Join(ks, ", ")
}

// render turns the flags and the apps found into objects.
func (f *manifestsFlags) render(names []string) ([]kube.Object, error) {
	apps := map[string]bool{}
	for _, n := range names {
		if apps[n] {
			return nil, fmt.Errorf("two app packages are named %s: rename one", n)
		}
		apps[n] = true
	}
	modes, err := pairs("mode", f.modes, apps, "=")
	if err != nil {
		return nil, err
	}
	for app, m := range modes {
		if m != string(v1alpha1.ModeNative) && m != string(v1alpha1.ModeEdge) {
			return nil, fmt.Errorf("--mode %s=%s: use native or edge", app, m)
		}
	}
	modules, err := pairs("module", f.modules, apps, "=")
	if err != nil {
		return nil, err
	}
	for app := range modules {
		if modes[app] != string(v1alpha1.ModeEdge) {
			return nil, fmt.Errorf("--module %s: %s runs natively; add --mode %s=edge to run its module at the edge", app, app, app)
		}
	}
	namespaces, err := pairs("app-namespace", f.appNamespaces, apps, "=")
	if err != nil {
		return nil, err
	}
	for app, ns := range namespaces {
		if msgs := validation.IsDNS1123Label(ns); len(msgs) > 0 {
			return nil, fmt.Errorf("--app-namespace %s=%s: %s", app, ns, strings.Join(msgs, "; "))
		}
	}
	nsOf := func(app string) string {
		if ns, ok := namespaces[app]; ok {
			return ns
		}
		return f.namespace
	}
	allow, err := pairs("allow-from", f.allowFrom, apps, "=")
	if err != nil {
		return nil, err
	}
	var all int32 = -1
	var perApp []string
	for _, r := range f.replicas {
		if !strings.Contains(r, "=") {
			n, err := strconv.ParseInt(r, 10, 32)
			if err != nil || all >= 0 {
				return nil, fmt.Errorf("--replicas %q: want N for every app (once), or APP=N", r)
			}
			all = int32(n)
			continue
		}
		perApp = append(perApp, r)
	}
	replicas, err := pairs("replicas", perApp, apps, "=")
	if err != nil {
		return nil, err
	}
	cfgFlags, err := f.parseConfig(apps)
	if err != nil {
		return nil, err
	}
	nodeSelector := map[string]string{}
	for _, kv := range f.nodeSelector {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("--edge-node-selector %q: want KEY=VALUE, e.g. apps.openyurt.io/nodepool=hangzhou", kv)
		}
		nodeSelector[k] = v
	}
	var tolerations []corev1.Toleration
	for _, t := range f.tolerations {
		tol, err := parseToleration(t)
		if err != nil {
			return nil, err
		}
		tolerations = append(tolerations, tol)
	}
	hasEdge := false
	for _, m := range modes {
		hasEdge = hasEdge || m == string(v1alpha1.ModeEdge)
	}
	if !hasEdge && (len(nodeSelector) > 0 || len(tolerations) > 0 || f.edgeImage != "") {
		return nil, errors.New("--edge-node-selector, --edge-toleration and --edge-image apply to edge apps, and there are none: add --mode APP=edge")
	}

	repo := strings.TrimSuffix(f.imageRepo, "/")
	image := func(name string) string { // REPO/NAME:TAG, or NAME:TAG
		if repo == "" {
			return name + ":" + f.tag
		}
		return repo + "/" + name + ":" + f.tag
	}
	var roamApps []*v1alpha1.RoamApp
	for _, n := range names {
		a := &v1alpha1.RoamApp{
			TypeMeta:   metav1.TypeMeta{APIVersion: v1alpha1.GroupVersion.String(), Kind: "RoamApp"},
			ObjectMeta: metav1.ObjectMeta{Name: n, Namespace: nsOf(n)},
			Spec: v1alpha1.RoamAppSpec{
				Mode:  v1alpha1.Mode(modes[n]),
				Image: image(n),
				Dapr:  v1alpha1.DaprSpec{AppID: n, Config: f.daprConfig},
			},
		}
		for _, s := range f.pullSecrets {
			a.Spec.ImagePullSecrets = append(a.Spec.ImagePullSecrets, v1alpha1.PullSecret{Name: s})
		}
		if r, ok := replicas[n]; ok {
			v, err := strconv.ParseInt(r, 10, 32)
			if err != nil {
				return nil, fmt.Errorf("--replicas %s=%s: not a number", n, r)
			}
			v32 := int32(v)
			a.Spec.Replicas = &v32
		} else if all >= 0 {
			a.Spec.Replicas = &all
		}
		if a.Spec.Mode == v1alpha1.ModeEdge {
			mod, ok := modules[n]
			if !ok {
				pushed := repo
				if pushed == "" { // no --image-repo: the sentence needs a name
					pushed = "REPO"
				}
				return nil, fmt.Errorf("--mode %s=edge needs --module %s=REF@sha256:DIGEST: the app's wasm module pinned by digest (roam dist --push %s pushes %s/%s-wasm and prints its digest)", n, n, pushed, pushed, n)
			}
			a.Spec.Image = mod
			a.Spec.Edge = &v1alpha1.EdgeSpec{NodeSelector: nodeSelector, Tolerations: tolerations}
		}
		if callers, ok := allow[n]; ok {
			for _, c := range strings.Split(callers, ",") {
				c = strings.TrimSpace(c)
				if strings.Contains(c, ".") {
					a.Spec.AllowFrom = append(a.Spec.AllowFrom, c) // ID.NAMESPACE, as given
					continue
				}
				if !apps[c] {
					return nil, fmt.Errorf("--allow-from %s=%s: no app %q here (the apps are %s); name an app deployed otherwise as ID.NAMESPACE", n, callers, c, keys(apps))
				}
				if c == n {
					return nil, fmt.Errorf("--allow-from %s=%s: an app reaches itself without a NetworkPolicy rule", n, callers)
				}
				if nsOf(c) != a.Namespace {
					c += "." + nsOf(c)
				}
				a.Spec.AllowFrom = append(a.Spec.AllowFrom, c)
			}
		}
		roamApps = append(roamApps, a)
	}

	redisHost := f.redisHost
	if redisHost == "" {
		redisHost = "redis-master." + f.namespace + ".svc.cluster.local:6379"
	}
	redis := kube.Redis{Host: redisHost, SecretName: f.redisSecret, SecretKey: f.redisSecretKey}
	edgeImage := f.edgeImage
	if edgeImage == "" {
		edgeImage = image(dist.EdgeName)
	}
	var httpFrom []string
	for _, ns := range f.httpFrom {
		httpFrom = append(httpFrom, strings.Split(ns, ",")...)
	}
	opts := kube.Options{
		EdgeHostImage:    edgeImage,
		MetricsNamespace: f.metricsNamespace,
		HTTPFrom:         httpFrom,
		AppConfig:        cfgFlags,
		Redis:            redis,
	}
	dapr := kube.Dapr{
		Config: f.daprConfig,
		Redis:  redis,
		Tracing: kube.Tracing{
			SamplingRate: f.samplingRate,
			OTLPEndpoint: f.otlpEndpoint,
			OTLPSecure:   f.otlpSecure,
		},
	}
	return kube.Render(roamApps, opts, dapr)
}

// parseConfig parses --config APP:KEY=VALUE flags.
func (f *manifestsFlags) parseConfig(apps map[string]bool) (map[string]map[string]string, error) {
	out := map[string]map[string]string{}
	for _, c := range f.config {
		app, kv, ok1 := strings.Cut(c, ":")
		k, v, ok2 := strings.Cut(kv, "=")
		if !ok1 || !ok2 || app == "" || k == "" {
			return nil, fmt.Errorf("--config %q: want APP:KEY=VALUE, e.g. orders:inventory-app-id=inventory.shop", c)
		}
		if !apps[app] {
			return nil, fmt.Errorf("--config %q: no app %q here; the apps are %s", c, app, keys(apps))
		}
		if out[app] == nil {
			out[app] = map[string]string{}
		}
		out[app][k] = v
	}
	return out, nil
}

// parseToleration parses KEY[=VALUE][:EFFECT], as kubectl taint writes
// taints: without a value the toleration matches any (Exists), without an
// effect every effect.
func parseToleration(s string) (corev1.Toleration, error) {
	kv, effect, _ := strings.Cut(s, ":")
	k, v, hasValue := strings.Cut(kv, "=")
	t := corev1.Toleration{Key: k, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffect(effect)}
	if hasValue {
		t.Operator, t.Value = corev1.TolerationOpEqual, v
	}
	switch t.Effect {
	case "", corev1.TaintEffectNoSchedule, corev1.TaintEffectPreferNoSchedule, corev1.TaintEffectNoExecute:
	default:
		return t, fmt.Errorf("--edge-toleration %q: effect %q: use NoSchedule, PreferNoSchedule or NoExecute", s, effect)
	}
	if k == "" {
		return t, fmt.Errorf("--edge-toleration %q: want KEY[=VALUE][:EFFECT], e.g. edge=true:NoSchedule", s)
	}
	if msgs := validation.IsQualifiedName(k); len(msgs) > 0 {
		return t, fmt.Errorf("--edge-toleration %q: key %q: %s", s, k, strings.Join(msgs, "; "))
	}
	return t, nil
}
