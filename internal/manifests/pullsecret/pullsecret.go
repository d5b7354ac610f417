// Package pullsecret checks the names of image pull secrets, one way for
// every place that takes them: roam manifests --pull-secret (cmd/roam),
// roam operator install --pull-secret (operator/config) and a RoamApp's
// spec.imagePullSecrets (internal/manifests/kube). It is the Go side of the
// rules the API server applies to spec.imagePullSecrets (the CEL rule on
// v1alpha1.PullSecret's name, and the list's map key), for the inputs that
// no API server sees first.
//
// It imports nothing but apimachinery's validation: operator/config, which
// keeps controller-runtime out of the roam binary, uses it too.
package pullsecret

import (
	"errors"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
)

// CheckNames reports every name that cannot name a Secret (a DNS
// subdomain) and every name given twice, each error naming its entry by
// field(i), as the caller's user wrote it: "--pull-secret",
// "spec.imagePullSecrets[1].name".
func CheckNames(names []string, field func(i int) string) error {
	var errs []error
	seen := map[string]bool{}
	for i, n := range names {
		if msgs := validation.IsDNS1123Subdomain(n); len(msgs) > 0 {
			errs = append(errs, fmt.Errorf("%s %q: not a Secret name: %s (a pull secret names a kubernetes.io/dockerconfigjson Secret, "+
				"such as kubectl create secret docker-registry makes)", field(i), n, strings.Join(msgs, "; ")))
		} else if seen[n] {
			errs = append(errs, fmt.Errorf("%s: %s is given twice", field(i), n))
		}
		seen[n] = true
	}
	return errors.Join(errs...)
}
