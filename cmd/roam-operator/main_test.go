package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/roam-dev/roam/internal/envtestbin"
	"github.com/roam-dev/roam/internal/syncbuf"
	"github.com/roam-dev/roam/operator/api/v1alpha1"
	"github.com/roam-dev/roam/operator/config"
	"github.com/roam-dev/roam/operator/controller"
	"github.com/roam-dev/roam/operator/operatortest"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestInstalledOperator installs the operator as `roam operator install`
// renders it into a real API server (envtest: etcd and kube-apiserver, no
// kubelet, so the operator's Deployment runs no pod) and runs the binary's
// run() in process as the installed ServiceAccount (impersonated): so the
// install's RBAC is what authorizes it. It checks the probes, the metrics,
// leader election through the Lease, a RoamApp reconciled, and a clean
// stop that releases the Lease.
func TestInstalledOperator(t *testing.T) {
	env := &envtest.Environment{BinaryAssetsDirectory: envtestbin.Assets(t)}
	cfg, err := env.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer env.Stop()
	scheme, err := controller.NewScheme()
	if err != nil {
		t.Fatal(err)
	}
	admin, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	const ns = "roam-ops"
	objs, err := operatortest.Install(ctx, admin, config.Options{Namespace: ns, Image: "ghcr.io/acme/roam-operator:v1", EdgeHostImage: "ghcr.io/acme/roam-edge:v1"})
	if err != nil {
		t.Fatal(err)
	}
	var template *corev1.PodTemplateSpec
	for _, u := range objs {
		if u.GetKind() == "Deployment" {
			var dep appsv1.Deployment
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &dep); err != nil {
				t.Fatal(err)
			}
			template = &dep.Spec.Template
		}
	}
	if template == nil {
		t.Fatal("the install has no Deployment")
	}

	// The namespace enforces the restricted Pod Security Standard: the API
	// server admits a pod of the operator's template, and refuses one that
	// runs as root, which shows the check is live.
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "roam-operator-psa", Namespace: ns}, Spec: template.Spec}
	if err := admin.Create(ctx, pod, client.DryRunAll); err != nil {
		t.Errorf("a pod of the operator's template is refused in a restricted namespace: %v", err)
	}
	bad := pod.DeepCopy()
	bad.Spec.SecurityContext = nil
	bad.Spec.Containers[0].SecurityContext = nil
	if err := admin.Create(ctx, bad, client.DryRunAll); !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "restricted") {
		t.Errorf("a pod without security contexts: %v, want Forbidden by PodSecurity restricted", err)
	}

	metricsAddr, probeAddr := freeAddr(t), freeAddr(t)
	opCfg := rest.CopyConfig(cfg)
	opCfg.Impersonate = rest.ImpersonationConfig{UserName: "system:serviceaccount:" + ns + ":roam-operator"}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	logs := &syncbuf.Buffer{}
	done := make(chan error, 1)
	go func() {
		done <- run(runCtx, []string{
			"--leader-elect", "--leader-election-namespace=" + ns,
			"--metrics-bind-address=" + metricsAddr, "--health-probe-bind-address=" + probeAddr,
			"--edge-host-image=ghcr.io/acme/roam-edge:v1", "--log-level=debug",
		}, opCfg, io.Discard, logs)
	}()
	defer func() {
		if t.Failed() {
			t.Logf("operator log:\n%s", logs.String())
		}
	}()

	httpGet := func(url string) (string, error) {
		resp, err := http.Get(url)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			return "", fmt.Errorf("%s: %s: %s", url, resp.Status, b)
		}
		return string(b), nil
	}
	for _, p := range []string{"/healthz", "/readyz"} {
		operatortest.Eventually(t, p, func() error { _, err := httpGet("http://" + probeAddr + p); return err })
	}

	lease := &coordinationv1.Lease{}
	operatortest.Eventually(t, "the leader election Lease is held", func() error {
		if err := admin.Get(ctx, client.ObjectKey{Namespace: ns, Name: leaderElectionID}, lease); err != nil {
			return err
		}
		if lease.Spec.HolderIdentity == nil || *lease.Spec.HolderIdentity == "" {
			return fmt.Errorf("no holder")
		}
		return nil
	})

	appNS := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}}
	if err := admin.Create(ctx, appNS); err != nil {
		t.Fatal(err)
	}
	app := &v1alpha1.RoamApp{ObjectMeta: metav1.ObjectMeta{Name: "orders", Namespace: "shop"},
		Spec: v1alpha1.RoamAppSpec{Image: "ghcr.io/acme/shop/orders:v1", Dapr: v1alpha1.DaprSpec{Config: "shop-config"}}}
	if err := admin.Create(ctx, app); err != nil {
		t.Fatal(err)
	}
	operatortest.Eventually(t, "the Deployment of RoamApp orders", func() error {
		return admin.Get(ctx, client.ObjectKey{Namespace: "shop", Name: "orders"}, &appsv1.Deployment{})
	})
	// The reconcile has written its status: stopping while it still
	// wrote would have client-go log the canceled request at error level,
	// which the check of the logs below would take for the operator's.
	operatortest.Eventually(t, "the status of RoamApp orders", func() error {
		var got v1alpha1.RoamApp
		if err := admin.Get(ctx, client.ObjectKeyFromObject(app), &got); err != nil {
			return err
		}
		if got.Status.ObservedGeneration != got.Generation {
			return fmt.Errorf("observedGeneration %d, generation %d", got.Status.ObservedGeneration, got.Generation)
		}
		return nil
	})
	operatortest.Eventually(t, "the reconcile metrics", func() error {
		body, err := httpGet("http://" + metricsAddr + "/metrics")
		if err != nil {
			return err
		}
		for _, want := range []string{`controller_runtime_reconcile_total{controller="roamapp",result="success"}`, `workqueue_depth{controller="roamapp"`, "leader_election_master_status"} {
			if !strings.Contains(body, want) {
				return fmt.Errorf("/metrics lacks %s", want)
			}
		}
		return nil
	})

	stop()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("run after cancel: %v", err)
		}
	case <-time.After(operatortest.Wait):
		t.Fatal("the operator did not stop")
	}
	// LeaderElectionReleaseOnCancel: a successor need not wait out the
	// lease.
	if err := admin.Get(ctx, client.ObjectKey{Namespace: ns, Name: leaderElectionID}, lease); err != nil {
		t.Fatal(err)
	}
	if h := lease.Spec.HolderIdentity; h != nil && *h != "" {
		t.Errorf("the Lease is still held by %s after the stop", *h)
	}
	for _, l := range strings.Split(logs.String(), "\n") {
		// controller-runtime reports the lease it just released on
		// purpose as "leader election lost", at error level.
		if strings.Contains(l, `"level":"ERROR"`) && !strings.Contains(l, `"err":"leader election lost"`) {
			t.Errorf("error logged: %s", l)
		}
	}
}

func TestFlags(t *testing.T) {
	var out, errs bytes.Buffer
	if err := run(context.Background(), []string{"--version"}, nil, &out, &errs); err != nil || out.String() != "roam-operator dev\n" {
		t.Errorf("--version: %v %q", err, out.String())
	}
	for _, args := range [][]string{{"--no-such-flag"}, {"--log-level=loud"}, {"--log-format=xml"}, {"extra"}} {
		if err := run(context.Background(), args, nil, io.Discard, io.Discard); err == nil {
			t.Errorf("%q: no error", args)
		}
	}
}
