// Package manifests renders the Kubernetes objects of Roam apps. It is the
// one source of truth for both `roam manifests` (which writes them as YAML)
// and the operator (which server-side-applies them for each RoamApp).
//
// The rendering lives in the subpackage kube, which the roam binary links;
// this package hands it to the operator as controller-runtime's
// client.Object. Importing controller-runtime's client package adds about
// 25 MB to a binary, and roam is also the edge host of the roam-edge image,
// so only the operator imports this package.
package manifests

import (
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/roam-dev/roam/internal/manifests/kube"
	"github.com/roam-dev/roam/operator/api/v1alpha1"
)

// Options are the settings that are not part of a RoamApp's spec; see
// kube.Options.
type (
	Options = kube.Options
	Redis   = kube.Redis
)

// App renders the objects one RoamApp owns: in native mode a Deployment,
// Service, ServiceAccount and NetworkPolicy; in edge mode a DaemonSet of the
// edge host in place of the Deployment. Objects carry the RoamApp's
// namespace and labels but no owner reference: the operator adds it. The
// app is defaulted (Defaulted) and validated first; see kube.App.
func App(app *v1alpha1.RoamApp, opts Options) ([]client.Object, error) {
	objs, err := kube.App(app, opts)
	if err != nil {
		return nil, err
	}
	return Objects(objs), nil
}

// Objects converts kube's objects to controller-runtime's: the same
// values, whose interface has the same methods.
func Objects[O kube.Object](objs []O) []client.Object {
	out := make([]client.Object, len(objs))
	for i, o := range objs {
		out[i] = o
	}
	return out
}

// Defaulted returns a copy of app with every default filled in; see
// kube.Defaulted.
func Defaulted(app *v1alpha1.RoamApp) *v1alpha1.RoamApp { return kube.Defaulted(app) }

// Validate reports what is wrong with a defaulted RoamApp; see kube.Validate.
func Validate(app *v1alpha1.RoamApp) error { return kube.Validate(app) }

// Selector is the label selector of an app's pods.
func Selector(app *v1alpha1.RoamApp) map[string]string { return kube.Selector(app) }
