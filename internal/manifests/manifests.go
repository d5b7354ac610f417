// Package manifests renders the Kubernetes objects of Roam apps. It is the
// one source of truth for both `roam manifests` (which writes them as YAML)
// and the operator (which server-side-applies them for each RoamApp).
package manifests

import (
	"errors"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/roam-dev/roam/operator/api/v1alpha1"
)

// Options are the settings that are not part of a RoamApp's spec.
type Options struct {
	// EdgeHostImage is the edge host's image, used when a RoamApp in edge
	// mode names none.
	EdgeHostImage string
}

// App renders the objects one RoamApp owns: in native mode a Deployment,
// Service, ServiceAccount and NetworkPolicy; in edge mode a DaemonSet of the
// edge host in place of the Deployment. Objects carry the RoamApp's
// namespace and labels but no owner reference: the operator adds it.
func App(app *v1alpha1.RoamApp, opts Options) ([]client.Object, error) {
	return nil, errors.New("manifests.App: not implemented yet")
}
