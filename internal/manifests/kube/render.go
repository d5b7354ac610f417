package kube

import (
	"errors"
	"fmt"
	"sort"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/roam-dev/roam/operator/api/v1alpha1"
)

// AppIDConfigKey is the configuration key under which an app that calls
// callee reads the id to call it by: the shop's orders reads
// "inventory-app-id". Render sets it for a caller whose callee runs in
// another namespace, to "callee.namespace".
func AppIDConfigKey(callee string) string { return callee + "-app-id" }

// Namespace is a namespace object, labeled as managed by roam.
func Namespace(name string) *corev1.Namespace {
	return &corev1.Namespace{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Namespace"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{LabelManagedBy: ManagedBy}},
	}
}

// Render renders a set of apps deployed together, as `roam manifests`
// does: their namespaces, each app's objects (App), and in every namespace
// with an app on Dapr the shared Dapr resources (DaprResources, from the
// template dapr with Namespace, AppIDs and Targets filled in).
//
// Apps in different namespaces find each other through configuration: when
// a callee lets a caller of the set in from another namespace (allowFrom
// "caller.namespace"), the caller gets AppIDConfigKey(callee) =
// "callee.namespace" in opts.AppConfig, unless opts sets that key itself.
// opts.Redis defaults to dapr.Redis.
func Render(apps []*v1alpha1.RoamApp, opts Options, dapr Dapr) ([]Object, error) {
	type key struct{ ns, id string }
	byKey := map[key]*v1alpha1.RoamApp{}
	byID := map[string][]*v1alpha1.RoamApp{}
	var defaulted []*v1alpha1.RoamApp
	for _, app := range apps {
		a := Defaulted(app)
		k := key{a.Namespace, a.Spec.Dapr.AppID}
		if byKey[k] != nil {
			return nil, fmt.Errorf("two apps have the app id %s in namespace %s", k.id, k.ns)
		}
		byKey[k] = a
		byID[k.id] = append(byID[k.id], a)
		defaulted = append(defaulted, a)
	}
	// The configuration that points callers at callees elsewhere.
	cfg := map[string]map[string]string{}
	for id, kv := range opts.AppConfig {
		cfg[id] = map[string]string{}
		for k, v := range kv {
			cfg[id][k] = v
		}
	}
	var errs []error
	for _, callee := range defaulted {
		for _, c := range callee.Spec.AllowFrom {
			id, ns, err := ParseCaller(c)
			if err != nil || ns == "" || ns == callee.Namespace {
				continue // App reports the error; a caller beside its callee needs nothing
			}
			caller := byKey[key{ns, id}]
			if caller == nil {
				continue // not rendered here
			}
			k, v := AppIDConfigKey(callee.Spec.Dapr.AppID), callee.Spec.Dapr.AppID+"."+callee.Namespace
			if len(byID[id]) > 1 {
				errs = append(errs, fmt.Errorf("app id %s is in more than one namespace, and configuration is set by app id: %s cannot be set for the one in %s only", id, k, ns))
				continue
			}
			if cfg[id] == nil {
				cfg[id] = map[string]string{}
			}
			if _, set := opts.AppConfig[id][k]; !set {
				cfg[id][k] = v
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	opts.AppConfig = cfg
	if opts.Redis.Host == "" {
		opts.Redis = dapr.Redis
	}

	var objs []Object
	nsApps := map[string][]string{}
	var allIDs []string
	for i, a := range defaulted {
		// App defaults the app itself, from the spec as written: an unset
		// replicas stays unset in the output (see App).
		o, err := App(apps[i], opts)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		objs = append(objs, o...)
		if _, ok := nsApps[a.Namespace]; !ok {
			nsApps[a.Namespace] = nil
		}
		if daprEnabled(a) {
			nsApps[a.Namespace] = append(nsApps[a.Namespace], a.Spec.Dapr.AppID)
			allIDs = append(allIDs, a.Spec.Dapr.AppID)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	var namespaces []string
	for ns := range nsApps {
		namespaces = append(namespaces, ns)
	}
	sort.Strings(namespaces)
	for _, ns := range namespaces {
		objs = append(objs, Namespace(ns))
		if len(nsApps[ns]) == 0 {
			continue
		}
		d := dapr
		d.Namespace, d.AppIDs = ns, nsApps[ns]
		if d.Targets == nil {
			d.Targets = allIDs
		}
		res, err := DaprResources(d)
		if err != nil {
			return nil, err
		}
		for _, r := range res {
			objs = append(objs, r)
		}
	}
	Sort(objs)
	return objs, nil
}
