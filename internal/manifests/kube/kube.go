// Package kube renders the Kubernetes objects of Roam apps. It is the one
// source of truth for both `roam manifests` (which writes them as YAML) and
// the operator (which server-side-applies them for each RoamApp, through
// the parent package manifests).
//
// The input of every app is a *v1alpha1.RoamApp; App turns one into typed
// k8s.io/api objects (a Deployment, or in edge mode a DaemonSet of the edge
// host, with its Service, ServiceAccount and NetworkPolicy). The Dapr
// resources the apps of a namespace share (components, a Configuration, a
// Resiliency) have no Go types in k8s.io/api and come out of DaprResources
// as unstructured objects. Kustomization and Stream turn any mix of them
// into deterministic YAML.
//
// The package imports neither client-go nor controller-runtime's client:
// the roam binary links it. (The roam-edge image carries cmd/roam-edge, the
// edge host alone, so k8s.io/api's 9 MB stay out of it; controller-runtime's
// client would add 25 MB more to roam.) Object is
// controller-runtime's client.Object under another name; the parent
// package converts.
package kube

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/roam-dev/roam/host"
	"github.com/roam-dev/roam/internal/manifests/pullsecret"
	"github.com/roam-dev/roam/internal/oci"
	"github.com/roam-dev/roam/operator/api/v1alpha1"
)

// Object is a Kubernetes object with metadata: the method set of
// controller-runtime's client.Object, which every Object satisfies.
type Object interface {
	metav1.Object
	runtime.Object
}

// Labels on every object of an app. The selector of its pods is LabelName
// and LabelInstance.
const (
	LabelName      = "app.kubernetes.io/name"      // the app id
	LabelInstance  = "app.kubernetes.io/instance"  // the RoamApp's name
	LabelComponent = "app.kubernetes.io/component" // "app" or "edge-host"
	LabelManagedBy = "app.kubernetes.io/managed-by"
	ManagedBy      = "roam"

	// LabelDaprAppID is the label Dapr's sidecar injector puts on every
	// pod it gives a sidecar, with the sidecar's app id. NetworkPolicies
	// pick callers by it: calls between apps come from their sidecars.
	LabelDaprAppID = "dapr.io/app-id"
	// LabelNamespaceName is the label Kubernetes puts on every namespace,
	// with its name.
	LabelNamespaceName = "kubernetes.io/metadata.name"
)

// Ports of the app and of the Dapr sidecar that NetworkPolicies open.
const (
	// DefaultAppPort is the port of the images `roam dist` builds.
	DefaultAppPort = 8080
	// DaprInternalGRPCPort is where a sidecar receives invocations from
	// other sidecars (dapr.io/internal-grpc-port's default).
	DaprInternalGRPCPort = 50002
	// DaprMetricsPort is the sidecar's Prometheus port (dapr.io/metrics-port).
	DaprMetricsPort = 9090
	// HostMetricsPort is where the host serves /metrics, and nothing
	// else (--metrics-port; the container's port "metrics"): the
	// NetworkPolicy admits the scraper there, not on the app's port,
	// which serves the app's methods and the state sync API. 9464 is the
	// OpenTelemetry Prometheus exporter's port; the sidecar has 9090.
	HostMetricsPort = 9464
)

// RegistryConfigDir is where an edge host mounts its RoamApp's image pull
// secrets, each in a directory named after the Secret: the Secret's
// .dockerconfigjson is DIR/config.json, the layout docker and
// go-containerregistry's default keychain read from DOCKER_CONFIG. The
// edge host pulls its wasm module with these credentials (internal/oci),
// and an error about them names the file, so the Secret.
const RegistryConfigDir = "/var/run/roam/registry"

// DefaultEdgeNodeSelector places the edge host when a RoamApp in edge mode
// selects no nodes: OpenYurt's label of edge nodes. A DaemonSet selecting
// nothing would run the edge host on every node, cloud ones included.
var DefaultEdgeNodeSelector = map[string]string{"openyurt.io/is-edge-worker": "true"}

// DefaultResources are an app container's resources when its spec has none:
// a Roam host idles at a few MiB; the limit bounds a leak. The edge host
// gets DefaultEdgeResources: each wasm instance may grow to 64 MiB and a
// module has a pool of them.
var (
	DefaultResources = corev1.ResourceRequirements{
		Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("50m"), corev1.ResourceMemory: resource.MustParse("64Mi")},
		Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("256Mi")},
	}
	DefaultEdgeResources = corev1.ResourceRequirements{
		Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("128Mi")},
		Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("1Gi")},
	}
)

// Options are the settings that are not part of a RoamApp's spec.
type Options struct {
	// EdgeHostImage is the edge host's image, used when a RoamApp in edge
	// mode names none.
	EdgeHostImage string

	// MetricsNamespace is the namespace of the Prometheus that scrapes the
	// sidecar (DaprMetricsPort) and the host (/metrics on HostMetricsPort).
	// It is admitted to those ports only, not to the app's port.
	// Empty: the NetworkPolicy admits no scraper.
	MetricsNamespace string
	// HTTPFrom are namespaces whose pods may call the app's port directly
	// (an ingress controller's). Empty: only the app's own sidecar, over
	// localhost, reaches it.
	HTTPFrom []string

	// AppConfig holds, by app id, values the app reads through sdk.Config.
	// They become ROAM_CONFIG_* environment variables of the app's
	// container (host.EnvConfig), which both hosts layer over the
	// backend's configuration, on Dapr and on the embedded backend alike.
	AppConfig map[string]map[string]string
	// Redis is the Redis the Dapr components use.
	Redis Redis
}

// Redis locates the Redis that Dapr's components use, and the Secret of
// its password.
type Redis struct {
	Host       string // host:port
	SecretName string // default "redis"
	SecretKey  string // default "redis-password"
}

func (o Options) validate() error {
	var errs []error
	for _, ns := range append([]string{o.MetricsNamespace}, o.HTTPFrom...) {
		if msgs := validation.IsDNS1123Label(ns); ns != "" && len(msgs) > 0 {
			errs = append(errs, fmt.Errorf("namespace %q in Options: %s", ns, strings.Join(msgs, "; ")))
		}
	}
	return errors.Join(errs...)
}

func (r Redis) withDefaults() Redis {
	if r.SecretName == "" {
		r.SecretName = "redis"
	}
	if r.SecretKey == "" {
		r.SecretKey = "redis-password"
	}
	return r
}

// Defaulted returns a copy of app with every default filled in: mode
// native, app id the RoamApp's name, app port 8080, protocol http, Dapr
// enabled, one replica (native mode), DefaultResources (DefaultEdgeResources
// in edge mode) and, in edge mode, DefaultEdgeNodeSelector. It does not
// validate; App does.
func Defaulted(app *v1alpha1.RoamApp) *v1alpha1.RoamApp {
	a := app.DeepCopy()
	s := &a.Spec
	if s.Mode == "" {
		s.Mode = v1alpha1.ModeNative
	}
	if s.Dapr.Enabled == nil {
		t := true
		s.Dapr.Enabled = &t
	}
	if s.Dapr.AppID == "" {
		s.Dapr.AppID = a.Name
	}
	if s.Dapr.AppPort == 0 {
		s.Dapr.AppPort = DefaultAppPort
	}
	if s.Dapr.AppProtocol == "" {
		s.Dapr.AppProtocol = "http"
	}
	if s.Replicas == nil && s.Mode == v1alpha1.ModeNative {
		one := int32(1)
		s.Replicas = &one
	}
	if s.Resources == nil {
		r := DefaultResources.DeepCopy()
		if s.Mode == v1alpha1.ModeEdge {
			r = DefaultEdgeResources.DeepCopy()
		}
		s.Resources = r
	}
	if s.Mode == v1alpha1.ModeEdge {
		if s.Edge == nil {
			s.Edge = &v1alpha1.EdgeSpec{}
		}
		if len(s.Edge.NodeSelector) == 0 {
			s.Edge.NodeSelector = map[string]string{}
			for k, v := range DefaultEdgeNodeSelector {
				s.Edge.NodeSelector[k] = v
			}
		}
	}
	return a
}

// MaxDaprAppID is the longest app id Dapr accepts on Kubernetes: its
// sidecar injector and operator refuse an app id whose Service,
// APPID-dapr, is not a DNS label (dapr/pkg/validation's
// ValidateKubernetesAppID), so the pod would not be created.
const MaxDaprAppID = validation.DNS1123LabelMaxLength - len("-dapr")

// sidecarPorts are the ports Dapr's sidecar takes in the pod, which the app
// cannot listen on.
var sidecarPorts = map[int32]string{3500: "HTTP API", 3501: "health", 50001: "gRPC API", DaprInternalGRPCPort: "internal gRPC", DaprMetricsPort: "metrics"}

// Validate reports what is wrong with a defaulted RoamApp (see Defaulted),
// every problem at once, each naming its field.
func Validate(app *v1alpha1.RoamApp) error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	s := app.Spec
	// The objects are named after the RoamApp, and a Service's name must
	// be a DNS-1035 label: it starts with a letter.
	if msgs := validation.IsDNS1035Label(app.Name); len(msgs) > 0 {
		bad("metadata.name %q: %s (it names the Deployment, Service and app id)", app.Name, strings.Join(msgs, "; "))
	}
	if msgs := validation.IsDNS1123Label(app.Namespace); app.Namespace == "" || len(msgs) > 0 {
		bad("metadata.namespace %q: a namespace (DNS label) is required", app.Namespace)
	}
	if msgs := validation.IsDNS1123Label(s.Dapr.AppID); len(msgs) > 0 {
		bad("spec.dapr.appId %q: %s", s.Dapr.AppID, strings.Join(msgs, "; "))
	} else if len(s.Dapr.AppID) > MaxDaprAppID && daprEnabled(app) {
		bad("spec.dapr.appId %q: %d characters, but Dapr allows at most %d on Kubernetes (it names a Service %s-dapr, a DNS label); set a shorter spec.dapr.appId", s.Dapr.AppID, len(s.Dapr.AppID), MaxDaprAppID, s.Dapr.AppID)
	}
	if s.Dapr.AppPort < 1 || s.Dapr.AppPort > 65535 {
		bad("spec.dapr.appPort %d: want 1 to 65535", s.Dapr.AppPort)
	} else if what := sidecarPorts[s.Dapr.AppPort]; what != "" && daprEnabled(app) {
		bad("spec.dapr.appPort %d is the Dapr sidecar's %s port", s.Dapr.AppPort, what)
	} else if s.Dapr.AppPort == HostMetricsPort {
		bad("spec.dapr.appPort %d is the host's metrics port (--metrics-port)", s.Dapr.AppPort)
	}
	if s.Dapr.AppProtocol != "http" && s.Dapr.AppProtocol != "grpc" {
		bad("spec.dapr.appProtocol %q: use http or grpc", s.Dapr.AppProtocol)
	}
	if c := s.Dapr.Config; c != "" {
		if msgs := validation.IsDNS1123Subdomain(c); len(msgs) > 0 {
			bad("spec.dapr.config %q: %s", c, strings.Join(msgs, "; "))
		}
	}
	if s.Replicas != nil && (*s.Replicas < 0 || *s.Replicas > 1000) {
		bad("spec.replicas %d: want 0 to 1000", *s.Replicas)
	}
	if s.Resources != nil {
		errs = append(errs, checkResources(*s.Resources)...)
	}
	switch s.Mode {
	case v1alpha1.ModeNative:
		if s.Edge != nil {
			bad("spec.edge applies only to mode edge")
		}
		if s.Image == "" {
			bad("spec.image is required: the app's container image (roam dist pushes REPO/APP:TAG)")
		} else if _, err := name.ParseReference(s.Image, name.WeakValidation); err != nil {
			bad("spec.image %q: %v", s.Image, err)
		}
	case v1alpha1.ModeEdge:
		if _, err := ModuleRef(s.Image); err != nil {
			bad("spec.image: %v", err)
		}
		if s.Edge != nil {
			if h := s.Edge.HostImage; h != "" {
				if _, err := name.ParseReference(h, name.WeakValidation); err != nil {
					bad("spec.edge.hostImage %q: %v", h, err)
				}
			}
			for k, v := range s.Edge.NodeSelector {
				if msgs := validation.IsQualifiedName(k); len(msgs) > 0 {
					bad("spec.edge.nodeSelector key %q: %s", k, strings.Join(msgs, "; "))
				}
				if msgs := validation.IsValidLabelValue(v); len(msgs) > 0 {
					bad("spec.edge.nodeSelector %s=%q: %s", k, v, strings.Join(msgs, "; "))
				}
			}
			for i, t := range s.Edge.Tolerations {
				if err := checkToleration(t); err != nil {
					bad("spec.edge.tolerations[%d]: %v", i, err)
				}
			}
		}
	default:
		bad("spec.mode %q: use native or edge", s.Mode)
	}
	for _, c := range s.AllowFrom {
		if _, _, err := ParseCaller(c); err != nil {
			bad("spec.allowFrom: %v", err)
		}
	}
	errs = append(errs, pullsecret.CheckNames(pullSecretNames(app), func(i int) string { return fmt.Sprintf("spec.imagePullSecrets[%d].name", i) }))
	return errors.Join(errs...)
}

func checkToleration(t corev1.Toleration) error {
	if t.Key != "" {
		if msgs := validation.IsQualifiedName(t.Key); len(msgs) > 0 {
			return fmt.Errorf("key %q: %s", t.Key, strings.Join(msgs, "; "))
		}
	}
	switch t.Operator {
	case corev1.TolerationOpExists:
		if t.Value != "" {
			return fmt.Errorf("operator Exists takes no value (got %q)", t.Value)
		}
	case corev1.TolerationOpEqual, "":
		if t.Key == "" {
			return errors.New("operator Equal needs a key")
		}
		if msgs := validation.IsValidLabelValue(t.Value); len(msgs) > 0 {
			return fmt.Errorf("value %q: %s", t.Value, strings.Join(msgs, "; "))
		}
	default:
		return fmt.Errorf("operator %q: use Exists or Equal", t.Operator)
	}
	switch t.Effect {
	case "", corev1.TaintEffectNoSchedule, corev1.TaintEffectPreferNoSchedule, corev1.TaintEffectNoExecute:
	default:
		return fmt.Errorf("effect %q: use NoSchedule, PreferNoSchedule or NoExecute", t.Effect)
	}
	if t.TolerationSeconds != nil && t.Effect != corev1.TaintEffectNoExecute {
		return fmt.Errorf("tolerationSeconds applies only to effect NoExecute (effect is %q)", t.Effect)
	}
	return nil
}

// ModuleRef checks that ref names a wasm module as an OCI artifact pinned by
// digest (REF@sha256:<64 hex>, with or without the oci:// scheme) and
// returns it without the scheme. Edge nodes must all load the same bytes,
// which a tag does not promise.
func ModuleRef(ref string) (string, error) {
	r := strings.TrimPrefix(ref, oci.Scheme)
	if r == "" {
		return "", errors.New("edge mode needs the wasm module's OCI reference pinned by digest (REF@sha256:...)")
	}
	if _, err := name.NewDigest(r, name.StrictValidation); err != nil {
		return "", fmt.Errorf("%q is not a module reference pinned by digest (REF@sha256:<64 hex digits>), as edge mode needs: %v", ref, err)
	}
	return r, nil
}

// ParseCaller splits an allowFrom entry, "appid" or "appid.namespace".
// The namespace is empty for the first form.
func ParseCaller(c string) (appID, namespace string, err error) {
	appID, namespace, qualified := strings.Cut(c, ".")
	if msgs := validation.IsDNS1123Label(appID); len(msgs) > 0 {
		return "", "", fmt.Errorf("caller %q: the app id %q is not a DNS label: %s", c, appID, strings.Join(msgs, "; "))
	}
	if qualified {
		if msgs := validation.IsDNS1123Label(namespace); len(msgs) > 0 {
			return "", "", fmt.Errorf("caller %q: the namespace %q is not a DNS label: %s (write appid or appid.namespace)", c, namespace, strings.Join(msgs, "; "))
		}
	}
	return appID, namespace, nil
}

func daprEnabled(app *v1alpha1.RoamApp) bool {
	return app.Spec.Dapr.Enabled == nil || *app.Spec.Dapr.Enabled
}

// Selector is the label selector of an app's pods.
func Selector(app *v1alpha1.RoamApp) map[string]string {
	a := Defaulted(app)
	return map[string]string{LabelName: a.Spec.Dapr.AppID, LabelInstance: a.Name}
}

// App renders the objects one RoamApp owns: in native mode a Deployment,
// Service, ServiceAccount and NetworkPolicy; in edge mode a DaemonSet of the
// edge host in place of the Deployment. Objects carry the RoamApp's
// namespace and labels but no owner reference: the operator adds it. The
// app is defaulted (Defaulted) and validated first.
func App(app *v1alpha1.RoamApp, opts Options) ([]Object, error) {
	a := Defaulted(app)
	if err := errors.Join(Validate(a), opts.validate()); err != nil {
		return nil, fmt.Errorf("RoamApp %s/%s: %w", app.Namespace, app.Name, err)
	}
	r := renderer{app: a, opts: opts, id: a.Spec.Dapr.AppID}
	pod, err := r.podTemplate()
	if err != nil {
		return nil, fmt.Errorf("RoamApp %s/%s: %w", app.Namespace, app.Name, err)
	}
	workload := Object(&appsv1.Deployment{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: r.meta(),
		Spec: appsv1.DeploymentSpec{
			// Unset when the spec leaves it unset (the API server then
			// defaults it to 1, as Defaulted says): whoever scales the
			// Deployment, an HPA, owns it, and neither the operator's
			// apply nor a kubectl apply of this output scales it back.
			Replicas: app.Spec.Replicas,
			Selector: &metav1.LabelSelector{MatchLabels: Selector(a)},
			Template: pod,
		},
	})
	if a.Spec.Mode == v1alpha1.ModeEdge {
		workload = &appsv1.DaemonSet{
			TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "DaemonSet"},
			ObjectMeta: r.meta(),
			Spec: appsv1.DaemonSetSpec{
				Selector: &metav1.LabelSelector{MatchLabels: Selector(a)},
				Template: pod,
			},
		}
	}
	no := false
	return []Object{
		&corev1.ServiceAccount{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ServiceAccount"},
			ObjectMeta: r.meta(),
			// The app talks to no Kubernetes API; Dapr's injector mounts
			// the sidecar's own projected token.
			AutomountServiceAccountToken: &no,
		},
		r.service(),
		workload,
		r.networkPolicy(),
	}, nil
}

type renderer struct {
	app  *v1alpha1.RoamApp
	opts Options
	id   string
}

func (r renderer) edge() bool { return r.app.Spec.Mode == v1alpha1.ModeEdge }

func (r renderer) labels() map[string]string {
	l := Selector(r.app)
	l[LabelManagedBy] = ManagedBy
	l[LabelComponent] = "app"
	if r.edge() {
		l[LabelComponent] = "edge-host"
	}
	return l
}

func (r renderer) meta() metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: r.app.Name, Namespace: r.app.Namespace, Labels: r.labels()}
}

func (r renderer) port() int32 { return r.app.Spec.Dapr.AppPort }

// annotations are the sidecar's wiring: Dapr's injector reads them.
func (r renderer) annotations() map[string]string {
	d := r.app.Spec.Dapr
	if !daprEnabled(r.app) {
		return nil
	}
	a := map[string]string{
		"dapr.io/enabled":      "true",
		"dapr.io/app-id":       d.AppID,
		"dapr.io/app-port":     strconv.Itoa(int(d.AppPort)),
		"dapr.io/app-protocol": d.AppProtocol,
		"dapr.io/metrics-port": strconv.Itoa(DaprMetricsPort),
	}
	if d.Config != "" {
		a["dapr.io/config"] = d.Config
	}
	return a
}

func (r renderer) podTemplate() (corev1.PodTemplateSpec, error) {
	s := r.app.Spec
	backend := "embedded"
	if daprEnabled(r.app) {
		backend = "dapr" // fail loudly when no sidecar was injected
	}
	// The images' entrypoints are `/APP --addr=0.0.0.0` and `/roam-edge
	// --addr=0.0.0.0` (internal/dist); args replace only their Cmd.
	args := []string{"--port=" + strconv.Itoa(int(r.port())), "--metrics-port=" + strconv.Itoa(HostMetricsPort), "--backend=" + backend, "--log-format=json"}
	image := s.Image
	if r.edge() {
		image = r.opts.EdgeHostImage
		if s.Edge != nil && s.Edge.HostImage != "" {
			image = s.Edge.HostImage
		}
		if image == "" {
			return corev1.PodTemplateSpec{}, errors.New("edge mode needs the edge host's image: spec.edge.hostImage or Options.EdgeHostImage (roam dist pushes REPO/roam-edge:TAG)")
		}
		if _, err := name.ParseReference(image, name.WeakValidation); err != nil {
			return corev1.PodTemplateSpec{}, fmt.Errorf("edge host image %q: %v", image, err)
		}
		mod, _ := ModuleRef(s.Image) // validated
		// Cached by digest below /data/.cache: a restarted pod pulls it again.
		args = append(args, oci.Scheme+mod)
	}
	no, yes := false, true
	uid := int64(oci.NonRoot)
	container := corev1.Container{
		Name:  "app",
		Image: image,
		Args:  args,
		Ports: []corev1.ContainerPort{
			{Name: "http", ContainerPort: r.port(), Protocol: corev1.ProtocolTCP},
			{Name: "metrics", ContainerPort: HostMetricsPort, Protocol: corev1.ProtocolTCP},
		},
		// The host listens once its backend answers: beside Dapr it waits
		// up to 60 s for the sidecar (Kubernetes starts the containers
		// side by side), and an edge host may compile its module first.
		// The startup probe holds the liveness probe off meanwhile, for
		// up to 90 s, rather than restarting a host that is only waiting.
		StartupProbe: &corev1.Probe{
			ProbeHandler:     corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromString("http")}},
			PeriodSeconds:    2,
			FailureThreshold: 45,
		},
		LivenessProbe: &corev1.Probe{
			ProbeHandler:     corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromString("http")}},
			PeriodSeconds:    10,
			FailureThreshold: 3,
		},
		ReadinessProbe: &corev1.Probe{
			ProbeHandler:     corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/readyz", Port: intstr.FromString("http")}},
			PeriodSeconds:    5,
			FailureThreshold: 2,
		},
		Resources:       *s.Resources,
		SecurityContext: containerSecurity(),
		// The images run in /data (oci.DataDir), their HOME: the native
		// host's data directory (.roam), the edge host's module and
		// compile caches (.cache) live there; the root is read-only.
		VolumeMounts: []corev1.VolumeMount{
			{Name: "data", MountPath: oci.DataDir},
			{Name: "tmp", MountPath: "/tmp"},
		},
	}
	spec := corev1.PodSpec{
		ServiceAccountName:           r.app.Name,
		AutomountServiceAccountToken: &no,
		EnableServiceLinks:           &no,
		SecurityContext: &corev1.PodSecurityContext{
			RunAsNonRoot:   &yes,
			RunAsUser:      &uid,
			RunAsGroup:     &uid,
			FSGroup:        &uid,
			SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
		},
		Containers: []corev1.Container{container},
		Volumes: []corev1.Volume{
			{Name: "data", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
			{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
		},
	}
	if r.edge() {
		spec.NodeSelector = s.Edge.NodeSelector
		spec.Tolerations = s.Edge.Tolerations
	}
	secrets := pullSecretNames(r.app)
	for _, p := range secrets {
		spec.ImagePullSecrets = append(spec.ImagePullSecrets, corev1.LocalObjectReference{Name: p})
	}
	if r.edge() && len(secrets) > 0 {
		registryConfig(&spec, secrets)
	}
	if cfg := r.opts.AppConfig[r.id]; len(cfg) > 0 {
		env, err := r.configEnv(cfg)
		if err != nil {
			return corev1.PodTemplateSpec{}, err
		}
		c := &spec.Containers[0]
		c.Env = append(c.Env, env...)
		sort.Slice(c.Env, func(i, j int) bool { return c.Env[i].Name < c.Env[j].Name })
	}
	return corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: r.labels(), Annotations: r.annotations()},
		Spec:       spec,
	}, nil
}

// registryConfig mounts every pull secret into the edge host, read-only,
// each as the config.json of its own directory below RegistryConfigDir:
// the edge host's own pull of its wasm module authenticates as the
// kubelet's pull of its image does, with any of them. One projected volume
// holds them all; the files are readable by the pod's group (fsGroup)
// only. The Secrets are not optional: one that is missing, or has no
// .dockerconfigjson, keeps the pod from starting with an event that names
// it, where an optional one would surface as a 401 at the pull.
//
// DOCKER_CONFIG names the first directory, which is all one secret needs
// and all an edge host older than $ROAM_DOCKER_CONFIGS reads; with more
// than one, $ROAM_DOCKER_CONFIGS (oci.EnvDockerConfigs) lists every
// directory in spec order, separated by the container's (Linux) ':', and
// the edge host takes a registry's credentials from the first file that
// has any.
func registryConfig(spec *corev1.PodSpec, secrets []string) {
	mode := int32(0o440)
	proj := &corev1.ProjectedVolumeSource{DefaultMode: &mode}
	dirs := make([]string, len(secrets))
	for i, s := range secrets {
		dirs[i] = RegistryConfigDir + "/" + s
		proj.Sources = append(proj.Sources, corev1.VolumeProjection{Secret: &corev1.SecretProjection{
			LocalObjectReference: corev1.LocalObjectReference{Name: s},
			Items:                []corev1.KeyToPath{{Key: corev1.DockerConfigJsonKey, Path: s + "/config.json"}},
		}})
	}
	spec.Volumes = append(spec.Volumes, corev1.Volume{Name: "registry", VolumeSource: corev1.VolumeSource{Projected: proj}})
	c := &spec.Containers[0]
	c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: "registry", MountPath: RegistryConfigDir, ReadOnly: true})
	c.Env = append(c.Env, corev1.EnvVar{Name: "DOCKER_CONFIG", Value: dirs[0]})
	if len(dirs) > 1 {
		c.Env = append(c.Env, corev1.EnvVar{Name: oci.EnvDockerConfigs, Value: strings.Join(dirs, ":")})
	}
}

// pullSecretNames are the names in spec.imagePullSecrets, in order.
func pullSecretNames(app *v1alpha1.RoamApp) []string {
	names := make([]string, len(app.Spec.ImagePullSecrets))
	for i, p := range app.Spec.ImagePullSecrets {
		names[i] = p.Name
	}
	return names
}

func containerSecurity() *corev1.SecurityContext {
	no, yes := false, true
	uid := int64(oci.NonRoot)
	return &corev1.SecurityContext{
		RunAsNonRoot:             &yes,
		RunAsUser:                &uid,
		RunAsGroup:               &uid,
		ReadOnlyRootFilesystem:   &yes,
		AllowPrivilegeEscalation: &no,
		Privileged:               &no,
		Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
		SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
	}
}

// configEnv sets an app's configuration values as ROAM_CONFIG_*
// environment variables (host.ConfigEnvName), sorted by name.
func (r renderer) configEnv(cfg map[string]string) ([]corev1.EnvVar, error) {
	env := make([]corev1.EnvVar, 0, len(cfg))
	seen := map[string]string{}
	for k, v := range cfg {
		if k == "" {
			return nil, fmt.Errorf("app %s: an empty configuration key", r.id)
		}
		name := host.ConfigEnvName(k)
		if other, dup := seen[name]; dup {
			return nil, fmt.Errorf("app %s: configuration keys %q and %q are both set by %s", r.id, other, k, name)
		}
		seen[name] = k
		env = append(env, corev1.EnvVar{Name: name, Value: v})
	}
	sort.Slice(env, func(i, j int) bool { return env[i].Name < env[j].Name })
	return env, nil
}

func (r renderer) service() *corev1.Service {
	s := &corev1.Service{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: r.meta(),
		Spec: corev1.ServiceSpec{
			Selector: Selector(r.app),
			Ports: []corev1.ServicePort{{
				Name: "http", Port: r.port(), TargetPort: intstr.FromString("http"), Protocol: corev1.ProtocolTCP,
			}},
		},
	}
	if r.edge() {
		// A client on an edge node reaches the edge host of its own node,
		// which keeps working while the node is cut off from the others.
		local := corev1.ServiceInternalTrafficPolicyLocal
		s.Spec.InternalTrafficPolicy = &local
	}
	return s
}

// networkPolicy denies every ingress to the app's pods but: the sidecars of
// the callers in spec.allowFrom, on the sidecar's internal gRPC port (calls
// between Dapr apps go sidecar to sidecar; the app's port is reached by
// its own sidecar over localhost, which no NetworkPolicy governs); the
// metrics scraper, on the host's and the sidecar's metrics ports only;
// and Options.HTTPFrom on the app's port. Egress is left
// open: the sidecar needs Redis, the control plane and the other sidecars.
func (r renderer) networkPolicy() *networkingv1.NetworkPolicy {
	tcp := corev1.ProtocolTCP
	port := func(n int32) networkingv1.NetworkPolicyPort {
		p := intstr.FromInt32(n)
		return networkingv1.NetworkPolicyPort{Protocol: &tcp, Port: &p}
	}
	nsPeer := func(ns string) networkingv1.NetworkPolicyPeer {
		return networkingv1.NetworkPolicyPeer{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{LabelNamespaceName: ns}}}
	}
	// Callers come from their sidecars, which Dapr's injector labels with
	// their app id. Without Dapr they call the app's port directly, from
	// pods this package labels with their app id.
	callerLabel, callerPort := LabelDaprAppID, port(DaprInternalGRPCPort)
	if !daprEnabled(r.app) {
		callerLabel, callerPort = LabelName, port(r.port())
	}
	var ingress []networkingv1.NetworkPolicyIngressRule
	if peers := r.callers(callerLabel, nsPeer); len(peers) > 0 {
		ingress = append(ingress, networkingv1.NetworkPolicyIngressRule{From: peers, Ports: []networkingv1.NetworkPolicyPort{callerPort}})
	}
	if ns := r.opts.MetricsNamespace; ns != "" {
		ports := []networkingv1.NetworkPolicyPort{port(HostMetricsPort)}
		if daprEnabled(r.app) {
			ports = append(ports, port(DaprMetricsPort))
		}
		ingress = append(ingress, networkingv1.NetworkPolicyIngressRule{From: []networkingv1.NetworkPolicyPeer{nsPeer(ns)}, Ports: ports})
	}
	if len(r.opts.HTTPFrom) > 0 {
		var peers []networkingv1.NetworkPolicyPeer
		for _, ns := range sortedSet(r.opts.HTTPFrom) {
			peers = append(peers, nsPeer(ns))
		}
		ingress = append(ingress, networkingv1.NetworkPolicyIngressRule{From: peers, Ports: []networkingv1.NetworkPolicyPort{port(r.port())}})
	}
	return &networkingv1.NetworkPolicy{
		TypeMeta:   metav1.TypeMeta{APIVersion: "networking.k8s.io/v1", Kind: "NetworkPolicy"},
		ObjectMeta: r.meta(),
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: Selector(r.app)},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
			Ingress:     ingress,
		},
	}
}

// callers are the peers of spec.allowFrom, sorted: a caller in the app's
// own namespace by its pod label alone, one elsewhere by its namespace's
// name label too.
func (r renderer) callers(label string, nsPeer func(string) networkingv1.NetworkPolicyPeer) []networkingv1.NetworkPolicyPeer {
	type caller struct{ id, ns string }
	seen := map[caller]bool{}
	var cs []caller
	for _, c := range r.app.Spec.AllowFrom {
		id, ns, _ := ParseCaller(c) // validated
		if ns == r.app.Namespace {
			ns = ""
		}
		if k := (caller{id, ns}); !seen[k] {
			seen[k] = true
			cs = append(cs, k)
		}
	}
	sort.Slice(cs, func(i, j int) bool {
		if cs[i].ns != cs[j].ns {
			return cs[i].ns < cs[j].ns
		}
		return cs[i].id < cs[j].id
	})
	var peers []networkingv1.NetworkPolicyPeer
	for _, c := range cs {
		p := networkingv1.NetworkPolicyPeer{}
		if c.ns != "" {
			p = nsPeer(c.ns)
		}
		p.PodSelector = &metav1.LabelSelector{MatchLabels: map[string]string{label: c.id}}
		peers = append(peers, p)
	}
	return peers
}

func sortedSet(ss []string) []string {
	m := map[string]bool{}
	var out []string
	for _, s := range ss {
		if !m[s] {
			m[s] = true
			out = append(out, s)
		}
	}
	sort.Strings(out)
	return out
}
