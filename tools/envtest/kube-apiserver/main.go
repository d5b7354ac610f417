// Command kube-apiserver is Kubernetes' API server, built from the
// k8s.io/kubernetes Go module for Roam's operator tests: controller-runtime's
// envtest runs it against etcd (see tools/envtest/build.sh). There is no
// download site to fetch a release from here.
//
// It is upstream's cmd/kube-apiserver/apiserver.go as is. build.sh stamps
// the version (k8s.io/component-base/version) with -ldflags, as Kubernetes'
// own build does, so clients see v1.34.4 rather than v0.0.0-master.
package main

import (
	"os"
	_ "time/tzdata" // for timeZone support in CronJob

	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"          // for JSON log format registration
	_ "k8s.io/component-base/metrics/prometheus/clientgo" // load all the prometheus client-go plugins
	_ "k8s.io/component-base/metrics/prometheus/version"  // for version metric registration
	"k8s.io/kubernetes/cmd/kube-apiserver/app"
)

func main() {
	command := app.NewAPIServerCommand()
	code := cli.Run(command)
	os.Exit(code)
}
