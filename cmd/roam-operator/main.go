// Command roam-operator is Roam's Kubernetes operator: it reconciles RoamApp
// resources (operator/api/v1alpha1) into Deployments or edge-host
// DaemonSets, with their Services, ServiceAccounts and NetworkPolicies,
// rendered by the same code as `roam manifests` (internal/manifests).
//
// It is a binary of its own, shipped as the roam-operator image that roam
// dist builds, because it links client-go and controller-runtime, which the
// roam command (also the edge host binary) must not carry. `roam operator
// install` prints the manifests that run it.
//
//	roam-operator --leader-elect --edge-host-image=ghcr.io/acme/roam-edge:v1
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	ctrl "sigs.k8s.io/controller-runtime"
	crcontroller "sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/roam-dev/roam/internal/manifests"
	"github.com/roam-dev/roam/operator/controller"
)

// version is stamped by roam dist (-X main.version).
var version = "dev"

// LeaderElectionID names the Lease the replicas compete for.
const leaderElectionID = "roam-operator.roam.dev"

func main() {
	ctx := ctrl.SetupSignalHandler()
	if err := run(ctx, os.Args[1:], nil, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "roam-operator:", err)
		os.Exit(1)
	}
}

// run runs the operator until ctx ends. cfg is the cluster to run against;
// nil means --kubeconfig, else $KUBECONFIG, ~/.kube/config or the pod's
// service account, as kubectl finds them.
func run(ctx context.Context, args []string, cfg *rest.Config, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("roam-operator", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		metricsAddr, probeAddr, kubeconfig, leNamespace string
		edgeHostImage, metricsNamespace, httpFrom       string
		logLevel, logFormat                             string
		leaderElect, showVersion                        bool
		qps                                             float64
		burst, workers                                  int
	)
	fs.StringVar(&metricsAddr, "metrics-bind-address", ":8080", "address of the Prometheus /metrics endpoint (0 turns it off)")
	fs.StringVar(&probeAddr, "health-probe-bind-address", ":8081", "address of the /healthz and /readyz probes")
	fs.BoolVar(&leaderElect, "leader-elect", false, "elect a leader through a Lease, so that only one of several replicas reconciles")
	fs.StringVar(&leNamespace, "leader-election-namespace", "", "namespace of the leader election Lease (default: the pod's own)")
	fs.StringVar(&edgeHostImage, "edge-host-image", "", "edge host image (roam dist's roam-edge) for RoamApps in edge mode that name none")
	fs.StringVar(&metricsNamespace, "metrics-namespace", "", "namespace of the Prometheus that scrapes the apps; their NetworkPolicies admit it (empty: none)")
	fs.StringVar(&httpFrom, "http-from", "", "comma-separated namespaces whose pods may call the apps' ports directly, such as an ingress controller's")
	fs.StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig file (default: $KUBECONFIG, ~/.kube/config, or in-cluster)")
	fs.Float64Var(&qps, "kube-api-qps", controller.DefaultQPS, "requests per second to the API server")
	fs.IntVar(&burst, "kube-api-burst", controller.DefaultBurst, "burst of requests to the API server")
	fs.IntVar(&workers, "max-concurrent-reconciles", controller.DefaultMaxConcurrentReconciles, "RoamApps reconciled at once")
	fs.BoolVar(&showVersion, "version", false, "print the version and exit")
	fs.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&logFormat, "log-format", "json", "json or text")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if showVersion {
		_, err := fmt.Fprintf(stdout, "roam-operator %s\n", version)
		return err
	}
	logger, err := newLogger(stderr, logLevel, logFormat)
	if err != nil {
		return err
	}
	ctrl.SetLogger(logger)

	if cfg == nil {
		if kubeconfig != "" {
			cfg, err = clientcmd.BuildConfigFromFlags("", kubeconfig)
		} else {
			cfg, err = ctrl.GetConfig()
		}
		if err != nil {
			return err
		}
	}
	cfg = rest.CopyConfig(cfg)
	cfg.QPS, cfg.Burst = float32(qps), burst
	cfg.UserAgent = "roam-operator/" + version

	scheme, err := controller.NewScheme()
	if err != nil {
		return err
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                        scheme,
		Logger:                        logger,
		Metrics:                       metricsserver.Options{BindAddress: metricsAddr},
		HealthProbeBindAddress:        probeAddr,
		LeaderElection:                leaderElect,
		LeaderElectionID:              leaderElectionID,
		LeaderElectionNamespace:       leNamespace,
		LeaderElectionReleaseOnCancel: true, // a rolling update hands over at once
	})
	if err != nil {
		return err
	}
	opts := manifests.Options{EdgeHostImage: edgeHostImage, MetricsNamespace: metricsNamespace}
	for _, ns := range strings.Split(httpFrom, ",") {
		if ns = strings.TrimSpace(ns); ns != "" {
			opts.HTTPFrom = append(opts.HTTPFrom, ns)
		}
	}
	if err := controller.Setup(ctx, mgr, opts, crcontroller.Options{MaxConcurrentReconciles: workers}); err != nil {
		return err
	}
	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return err
	}
	// Ready once the informers hold the cluster's objects; a standby
	// replica is ready too (its caches run without the lease).
	if err := mgr.AddReadyzCheck("informers", func(r *http.Request) error {
		ctx, cancel := context.WithTimeout(r.Context(), time.Second)
		defer cancel()
		if !mgr.GetCache().WaitForCacheSync(ctx) {
			return errors.New("informer caches not synced")
		}
		return nil
	}); err != nil {
		return err
	}
	logger.Info("starting", "version", version, "leaderElect", leaderElect, "edgeHostImage", edgeHostImage)
	return mgr.Start(ctx)
}

// newLogger logs through log/slog, as the roam hosts do, rather than zap:
// one logging stack in the project. logr's V(n) is slog level -n, so debug
// shows the controller's V(1) lines.
func newLogger(w io.Writer, level, format string) (logr.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return logr.Logger{}, fmt.Errorf("--log-level %q: use debug, info, warn or error", level)
	}
	o := &slog.HandlerOptions{Level: l}
	switch format {
	case "json":
		return logr.FromSlogHandler(slog.NewJSONHandler(w, o)), nil
	case "text":
		return logr.FromSlogHandler(slog.NewTextHandler(w, o)), nil
	}
	return logr.Logger{}, fmt.Errorf("--log-format %q: use json or text", format)
}
