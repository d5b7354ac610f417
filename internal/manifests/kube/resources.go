package kube

import (
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation"
)

// checkResources refuses the container resources the API server would
// refuse in the workload's pod template (k8s.io/kubernetes'
// ValidateContainerResourceRequirements, which nothing we link exports):
// the CRD admits any quantity under any name, and an apply of a Deployment
// the server rejects would leave the app half-applied. Each error names
// the field.
func checkResources(r corev1.ResourceRequirements) []error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if len(r.Claims) > 0 {
		bad("spec.resources.claims: the app's pod declares no resourceClaims for its container to use")
	}
	hugePages, cpuOrMemory := false, false
	for _, l := range []struct {
		field string
		list  corev1.ResourceList
	}{{"limits", r.Limits}, {"requests", r.Requests}} {
		for _, n := range sortedNames(l.list) {
			q := l.list[n]
			field := fmt.Sprintf("spec.resources.%s[%s]", l.field, n)
			if err := checkResourceName(n); err != nil {
				bad("%s: %v", field, err)
				continue
			}
			if q.Sign() < 0 {
				bad("%s %s: must not be negative", field, q.String())
			}
			if isExtended(n) && q.MilliValue()%1000 != 0 {
				bad("%s %s: an extended resource must be a whole number", field, q.String())
			}
			if isHugePages(n) {
				hugePages = true
				if size := resource.MustParse(strings.TrimPrefix(string(n), corev1.ResourceHugePagesPrefix)); q.Value()%size.Value() != 0 {
					bad("%s %s: not a multiple of the page size %s", field, q.String(), size.String())
				}
			}
			if n == corev1.ResourceCPU || n == corev1.ResourceMemory {
				cpuOrMemory = true
			}
		}
	}
	for _, n := range sortedNames(r.Requests) {
		if checkResourceName(n) != nil {
			continue
		}
		req := r.Requests[n]
		lim, ok := r.Limits[n]
		overcommit := !isExtended(n) && !isHugePages(n)
		switch {
		case !ok && !overcommit:
			bad("spec.resources.requests[%s]: %s needs a limit too, equal to the request", n, n)
		case ok && !overcommit && req.Cmp(lim) != 0:
			bad("spec.resources.requests[%s] %s: must equal the limit of %s", n, req.String(), lim.String())
		case ok && req.Cmp(lim) > 0:
			bad("spec.resources.requests[%s] %s: more than the limit of %s", n, req.String(), lim.String())
		}
	}
	if hugePages && !cpuOrMemory {
		bad("spec.resources: hugepages need a cpu or memory request or limit too")
	}
	return errs
}

// checkResourceName admits the resources a container may ask for: cpu,
// memory, ephemeral-storage, hugepages-SIZE, and extended resources named
// DOMAIN/NAME outside kubernetes.io.
func checkResourceName(n corev1.ResourceName) error {
	s := string(n)
	switch {
	case n == corev1.ResourceCPU, n == corev1.ResourceMemory, n == corev1.ResourceEphemeralStorage:
		return nil
	case isHugePages(n):
		size, err := resource.ParseQuantity(strings.TrimPrefix(s, corev1.ResourceHugePagesPrefix))
		if err != nil || size.Sign() <= 0 {
			return fmt.Errorf("%q: a huge page size such as hugepages-2Mi", s)
		}
		return nil
	case !strings.Contains(s, "/"):
		return fmt.Errorf("%q is not a container resource: use cpu, memory, ephemeral-storage, hugepages-SIZE or an extended resource DOMAIN/NAME", s)
	case !isExtended(n):
		return fmt.Errorf("%q: kubernetes.io resources other than the standard ones cannot be requested", s)
	}
	if msgs := validation.IsQualifiedName("requests." + s); len(msgs) > 0 || strings.HasPrefix(s, "requests.") {
		return fmt.Errorf("%q is not an extended resource name (DOMAIN/NAME): %s", s, strings.Join(msgs, "; "))
	}
	return nil
}

func isHugePages(n corev1.ResourceName) bool {
	return strings.HasPrefix(string(n), corev1.ResourceHugePagesPrefix)
}

// isExtended: a resource named DOMAIN/NAME outside kubernetes.io.
func isExtended(n corev1.ResourceName) bool {
	domain, _, ok := strings.Cut(string(n), "/")
	return ok && domain != "kubernetes.io" && !strings.HasSuffix(domain, ".kubernetes.io")
}

func sortedNames(l corev1.ResourceList) []corev1.ResourceName {
	names := make([]corev1.ResourceName, 0, len(l))
	for n := range l {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool { return names[i] < names[j] })
	return names
}
