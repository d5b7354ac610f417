package controller

import (
	"context"
	"errors"
	"strings"
	"testing"

	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/roam-dev/roam/operator/operatortest"
)

// TestSecondManagerWhileOneRuns sets the controller up in a second manager
// while the suite's runs. Setup succeeds, where controller-runtime's name
// check, which never forgets a name, refused the controller of any later
// manager in the process, even once the first had stopped (so a second
// run of cmd/roam-operator in one process never came up). Starting it
// fails, because the suite's controller still runs and both would count
// into the same metric series; and the failed start leaves the suite's
// hold on running in place.
//
// That a manager started after the previous one stopped comes up is
// cmd/roam-operator's TestInstalledOperator run with -count=2: here the
// suite's manager runs throughout.
func TestSecondManagerWhileOneRuns(t *testing.T) {
	admin := setup(t)
	// Its cache watches an empty namespace of its own, so that in the
	// moment before the manager stops its controller reconciles nothing of
	// the other tests.
	ns := namespace(t, admin)
	opCfg := rest.CopyConfig(suite.cfg)
	opCfg.Impersonate = rest.ImpersonationConfig{UserName: operatorUser}
	mgr, err := ctrl.NewManager(opCfg, ctrl.Options{
		Scheme:                 suite.mgr.GetScheme(),
		Logger:                 suite.mgr.GetLogger(),
		Cache:                  cache.Options{DefaultNamespaces: map[string]cache.Config{ns: {}}},
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := Setup(ctx, mgr, testOptions, controller.Options{}); err != nil {
		t.Fatalf("Setup in a second manager: %v", err)
	}
	// The guard starts with the controller, just after the caches sync.
	operatortest.Eventually(t, "the suite's controller holds running", func() error {
		if !running.Load() {
			return errors.New("it does not")
		}
		return nil
	})
	err = mgr.Start(ctx)
	if err == nil || !strings.Contains(err.Error(), "another manager of this process runs one") {
		t.Fatalf("starting a second manager while the suite's runs: %v, want the controller refused", err)
	}
	if ctx.Err() != nil {
		t.Fatalf("the second manager stopped only at the deadline: %v", err)
	}
	if !running.Load() {
		t.Error("the refused controller released the suite's hold on running")
	}
}
