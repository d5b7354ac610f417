package controller

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/roam-dev/roam/internal/envtestbin"
	"github.com/roam-dev/roam/internal/manifests"
	"github.com/roam-dev/roam/operator/api/v1alpha1"
	"github.com/roam-dev/roam/operator/config"
	"github.com/roam-dev/roam/operator/operatortest"
)

// The package's tests and benchmarks share one envtest: a real etcd and
// kube-apiserver (built by tools/envtest, found by internal/envtestbin), with
// the committed CRD and RBAC installed, and one manager running the
// controller. Starting it takes seconds; each test works in a namespace of
// its own.
//
// The controller runs as the operator's ServiceAccount: its client
// impersonates system:serviceaccount:roam-system:roam-operator, so the API
// server authorizes every request against the ClusterRole and Role
// controller-gen generated from the +kubebuilder:rbac markers. A permission
// missing from them fails these tests.
//
// envtest runs no kube-controller-manager: no Deployment or DaemonSet
// controller (tests that need a rollout write the workload's status
// themselves) and no garbage collector (tests assert owner references, which
// is what the collector acts on, rather than cascading deletion).

const (
	operatorUser  = "system:serviceaccount:" + config.DefaultNamespace + ":roam-operator"
	testEdgeImage = "ghcr.io/roam-dev/roam-edge:test"
	// wait bounds how long a test waits for the controller.
	wait = operatortest.Wait
)

var testOptions = manifests.Options{EdgeHostImage: testEdgeImage}

var suite struct {
	once   sync.Once
	err    error
	env    *envtest.Environment
	cfg    *rest.Config // cluster-admin
	admin  client.Client
	mgr    ctrl.Manager
	cancel context.CancelFunc
	done   chan error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if suite.cancel != nil {
		suite.cancel()
		if err := <-suite.done; err != nil {
			fmt.Fprintln(os.Stderr, "manager:", err)
		}
	}
	if suite.env != nil {
		if err := suite.env.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stopping envtest:", err)
		}
	}
	os.Exit(code)
}

// setup starts the shared environment on first use and returns a
// cluster-admin client that reads the API server directly (no cache).
func setup(t testing.TB) client.Client {
	t.Helper()
	assets := envtestbin.Assets(t) // fails t, never skips, when there are none
	suite.once.Do(func() { suite.err = start(assets) })
	if suite.err != nil {
		t.Fatalf("starting envtest: %v", suite.err)
	}
	return suite.admin
}

func start(assets string) error {
	logger := logr.FromSlogHandler(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	ctrl.SetLogger(logger)
	suite.env = &envtest.Environment{
		BinaryAssetsDirectory: assets,
		CRDDirectoryPaths:     []string{filepath.Join("..", "config", "crd")},
		ErrorIfCRDPathMissing: true,
	}
	// Room for the benchmarks' Services: envtest's default range is a /24.
	suite.env.ControlPlane.GetAPIServer().Configure().Set("service-cluster-ip-range", "10.0.0.0/16")
	cfg, err := suite.env.Start()
	if err != nil {
		return err
	}
	suite.cfg = cfg
	scheme, err := NewScheme()
	if err != nil {
		return err
	}
	// The tests' own client is not rate limited (client-go's default is 5
	// requests a second): the benchmarks create hundreds of RoamApps.
	adminCfg := rest.CopyConfig(cfg)
	adminCfg.QPS = -1
	if suite.admin, err = client.New(adminCfg, client.Options{Scheme: scheme}); err != nil {
		return err
	}
	ctx := context.Background()
	// The namespace and RBAC exactly as roam operator install renders them.
	if _, err := operatortest.Install(ctx, suite.admin, config.Options{Image: "roam-operator:test", EdgeHostImage: testEdgeImage},
		"0-namespace.yaml", "2-rbac.yaml"); err != nil {
		return err
	}
	opCfg := rest.CopyConfig(cfg)
	opCfg.Impersonate = rest.ImpersonationConfig{UserName: operatorUser}
	opCfg.QPS, opCfg.Burst = DefaultQPS, DefaultBurst
	suite.mgr, err = ctrl.NewManager(opCfg, ctrl.Options{
		Scheme:                 scheme,
		Logger:                 logger,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
	})
	if err != nil {
		return err
	}
	mctx, cancel := context.WithCancel(ctx)
	if err := Setup(mctx, suite.mgr, testOptions, controller.Options{}); err != nil {
		cancel()
		return err
	}
	suite.cancel, suite.done = cancel, make(chan error, 1)
	go func() { suite.done <- suite.mgr.Start(mctx) }()
	sctx, scancel := context.WithTimeout(ctx, wait)
	defer scancel()
	if !suite.mgr.GetCache().WaitForCacheSync(sctx) {
		return errors.New("the manager's caches did not sync")
	}
	return nil
}

// namespace creates a namespace of the test's own.
func namespace(t testing.TB, c client.Client) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "t-"}}
	if err := c.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	return ns.Name
}

// digest is a syntactically valid sha256 digest.
func digest(s string) string {
	h := sha256.Sum256([]byte(s))
	return "sha256:" + hex.EncodeToString(h[:])
}

func nativeApp(ns, name string) *v1alpha1.RoamApp {
	two := int32(2)
	return &v1alpha1.RoamApp{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: v1alpha1.RoamAppSpec{
			Mode:     v1alpha1.ModeNative,
			Image:    "ghcr.io/acme/shop/" + name + ":v1",
			Dapr:     v1alpha1.DaprSpec{AppID: name, AppPort: 8080, AppProtocol: "http", Config: "shop-config"},
			Replicas: &two,
		},
	}
}

func edgeApp(ns, name string) *v1alpha1.RoamApp {
	return &v1alpha1.RoamApp{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: v1alpha1.RoamAppSpec{
			Mode:  v1alpha1.ModeEdge,
			Image: "ghcr.io/acme/shop/" + name + "-wasm@" + digest(name),
			Dapr:  v1alpha1.DaprSpec{AppID: name},
			Edge: &v1alpha1.EdgeSpec{
				NodeSelector: map[string]string{"apps.openyurt.io/nodepool": "edge-hangzhou"},
				Tolerations: []corev1.Toleration{{
					Key: "node-role.kubernetes.io/edge", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule,
				}},
			},
		},
	}
}

// update applies change to the live RoamApp, retrying on conflicts (the
// controller writes its status concurrently).
func update(t testing.TB, c client.Client, app *v1alpha1.RoamApp, change func(*v1alpha1.RoamApp)) *v1alpha1.RoamApp {
	t.Helper()
	ctx := context.Background()
	for i := 0; ; i++ {
		live := &v1alpha1.RoamApp{}
		if err := c.Get(ctx, client.ObjectKeyFromObject(app), live); err != nil {
			t.Fatal(err)
		}
		change(live)
		err := c.Update(ctx, live)
		if err == nil {
			return live
		}
		if i > 20 || !isConflict(err) {
			t.Fatalf("updating RoamApp %s: %v", app.Name, err)
		}
	}
}
