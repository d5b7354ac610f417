package kube

import (
	"errors"
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/validation"
)

// DaprAPIVersion is the API version of Dapr's resources.
const DaprAPIVersion = "dapr.io/v1alpha1"

// Defaults of Dapr.
const (
	// DefaultDaprConfig names the Configuration (the apps' dapr.io/config)
	// and the Resiliency.
	DefaultDaprConfig = "roam"
	// Component names apps use by convention (the shop's contract.Store and
	// contract.PubSub) and the configuration store sdk.Config reads on
	// Dapr (backend/dapr's Options.ConfigStore default).
	DefaultStateStore  = "statestore"
	DefaultPubSub      = "pubsub"
	DefaultConfigStore = "configstore"
)

// Dapr describes the Dapr resources the Roam apps of one namespace share.
type Dapr struct {
	Namespace string
	// AppIDs are the apps of Namespace: the scopes of the components and
	// of the Resiliency (empty: every app of the namespace).
	AppIDs []string
	// Targets are the app ids whose invocation the Resiliency governs (its
	// policies apply in the calling sidecar, so callees in other
	// namespaces belong here too); default AppIDs.
	Targets []string
	// Config names the Configuration and the Resiliency; default
	// DefaultDaprConfig.
	Config string
	// Component names; defaults DefaultStateStore, DefaultPubSub and
	// DefaultConfigStore.
	StateStore, PubSub, ConfigStore string
	// Redis backs the three components; Host is required.
	Redis   Redis
	Tracing Tracing
	// ControlPlaneNamespace is where Dapr's control plane runs; default
	// "dapr-system". TrustDomain is its mTLS trust domain; default
	// "cluster.local". Both are the Dapr Helm chart's defaults.
	ControlPlaneNamespace, TrustDomain string
}

// Tracing is the Configuration's distributed tracing.
type Tracing struct {
	// SamplingRate is the share of traces kept, "0" to "1"; default "1".
	SamplingRate string
	// OTLPEndpoint is the collector, host:port; empty: no exporter.
	OTLPEndpoint string
	// OTLPProtocol is grpc (default) or http.
	OTLPProtocol string
	// OTLPSecure dials the collector over TLS.
	OTLPSecure bool
}

func (d Dapr) withDefaults() Dapr {
	if d.Config == "" {
		d.Config = DefaultDaprConfig
	}
	if d.StateStore == "" {
		d.StateStore = DefaultStateStore
	}
	if d.PubSub == "" {
		d.PubSub = DefaultPubSub
	}
	if d.ConfigStore == "" {
		d.ConfigStore = DefaultConfigStore
	}
	if d.Targets == nil {
		d.Targets = d.AppIDs
	}
	if d.ControlPlaneNamespace == "" {
		d.ControlPlaneNamespace = "dapr-system"
	}
	if d.TrustDomain == "" {
		d.TrustDomain = "cluster.local"
	}
	if d.Tracing.SamplingRate == "" {
		d.Tracing.SamplingRate = "1"
	}
	if d.Tracing.OTLPProtocol == "" {
		d.Tracing.OTLPProtocol = "grpc"
	}
	d.Redis = d.Redis.withDefaults()
	d.AppIDs, d.Targets = sortedSet(d.AppIDs), sortedSet(d.Targets)
	return d
}

func (d Dapr) validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	for _, ns := range []string{d.Namespace, d.ControlPlaneNamespace} {
		if msgs := validation.IsDNS1123Label(ns); len(msgs) > 0 {
			bad("namespace %q: %s", ns, strings.Join(msgs, "; "))
		}
	}
	if msgs := validation.IsDNS1123Subdomain(d.TrustDomain); len(msgs) > 0 {
		bad("trust domain %q: %s", d.TrustDomain, strings.Join(msgs, "; "))
	}
	for _, n := range []string{d.Config, d.StateStore, d.PubSub, d.ConfigStore, d.Redis.SecretName} {
		if msgs := validation.IsDNS1123Subdomain(n); len(msgs) > 0 {
			bad("name %q: %s", n, strings.Join(msgs, "; "))
		}
	}
	for _, id := range append(append([]string{}, d.AppIDs...), d.Targets...) {
		if msgs := validation.IsDNS1123Label(id); len(msgs) > 0 {
			bad("app id %q: %s", id, strings.Join(msgs, "; "))
		}
	}
	if _, _, err := net.SplitHostPort(d.Redis.Host); err != nil {
		bad("redis host %q: want host:port", d.Redis.Host)
	}
	if f, err := strconv.ParseFloat(d.Tracing.SamplingRate, 64); err != nil || f < 0 || f > 1 {
		bad("tracing sampling rate %q: want a number from 0 to 1", d.Tracing.SamplingRate)
	}
	if e := d.Tracing.OTLPEndpoint; e != "" {
		if _, _, err := net.SplitHostPort(e); err != nil {
			bad("OTLP endpoint %q: want host:port", e)
		}
	}
	if p := d.Tracing.OTLPProtocol; p != "grpc" && p != "http" {
		bad("OTLP protocol %q: use grpc or http", p)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("dapr resources of namespace %s: %w", d.Namespace, err)
	}
	return nil
}

// DaprResources returns DaprComponents, DaprConfiguration and
// DaprResiliency, in that order.
func DaprResources(d Dapr) ([]*unstructured.Unstructured, error) {
	out, err := DaprComponents(d)
	if err != nil {
		return nil, err
	}
	c, err := DaprConfiguration(d)
	if err != nil {
		return nil, err
	}
	r, err := DaprResiliency(d)
	if err != nil {
		return nil, err
	}
	return append(out, c, r), nil
}

// DaprComponents returns the state store (state.redis), the pub/sub
// (pubsub.redis) and the configuration store (configuration.redis) of a
// namespace. Redis's password comes from a Secret of that namespace
// (Redis.SecretName, key Redis.SecretKey), read through Dapr's Kubernetes
// secret store; the Secret is not rendered, so that none is ever written to
// a file.
func DaprComponents(d Dapr) ([]*unstructured.Unstructured, error) {
	d = d.withDefaults()
	if err := d.validate(); err != nil {
		return nil, err
	}
	redis := func(extra ...map[string]any) []any {
		md := []any{
			map[string]any{"name": "redisHost", "value": d.Redis.Host},
			map[string]any{"name": "redisPassword", "secretKeyRef": map[string]any{"name": d.Redis.SecretName, "key": d.Redis.SecretKey}},
		}
		for _, e := range extra {
			md = append(md, e)
		}
		return md
	}
	nv := func(n, v string) map[string]any { return map[string]any{"name": n, "value": v} }
	component := func(name, typ string, md []any) *unstructured.Unstructured {
		u := d.object("Component", name)
		u.Object["spec"] = map[string]any{"type": typ, "version": "v1", "metadata": md}
		u.Object["auth"] = map[string]any{"secretStore": "kubernetes"}
		if len(d.AppIDs) > 0 {
			u.Object["scopes"] = strs(d.AppIDs)
		}
		return u
	}
	return []*unstructured.Unstructured{
		// Each app's keys are prefixed with its app id by Dapr.
		component(d.StateStore, "state.redis", redis()),
		// One delivery at a time keeps Roam's order per subscription; an
		// event a sidecar took and did not acknowledge (it died) is
		// delivered again after processingTimeout.
		component(d.PubSub, "pubsub.redis", redis(nv("concurrency", "1"), nv("processingTimeout", "60s"), nv("redeliverInterval", "10s"))),
		// sdk.Config: values are "value||version" keys of this Redis.
		component(d.ConfigStore, "configuration.redis", redis()),
	}, nil
}

// DaprConfiguration returns the Configuration the apps' sidecars use
// (dapr.io/config): tracing to an OTLP collector, metrics, and mTLS.
// Dapr takes the mTLS settings of Kubernetes sidecars from the control
// plane's own Configuration (daprsystem), where mTLS is on by default; the
// mtls block here states the requirement beside the apps, with the control
// plane's address and trust domain that Dapr's schema requires of it.
func DaprConfiguration(d Dapr) (*unstructured.Unstructured, error) {
	d = d.withDefaults()
	if err := d.validate(); err != nil {
		return nil, err
	}
	tracing := map[string]any{"samplingRate": d.Tracing.SamplingRate}
	if d.Tracing.OTLPEndpoint != "" {
		tracing["otel"] = map[string]any{
			"endpointAddress": d.Tracing.OTLPEndpoint,
			"isSecure":        d.Tracing.OTLPSecure,
			"protocol":        d.Tracing.OTLPProtocol,
		}
	}
	u := d.object("Configuration", d.Config)
	u.Object["spec"] = map[string]any{
		"tracing": tracing,
		"metric":  map[string]any{"enabled": true},
		"mtls": map[string]any{
			"enabled":                 true,
			"controlPlaneTrustDomain": d.TrustDomain,
			"sentryAddress":           "dapr-sentry." + d.ControlPlaneNamespace + ".svc:443",
		},
	}
	return u, nil
}

// DaprResiliency returns the Resiliency of the namespace's sidecars:
// invocations of Targets get a timeout, retries of transient failures
// only (503 Unavailable, 504 DeadlineExceeded, 502; gRPC UNAVAILABLE), so
// that a call refused for a reason is not repeated, and a circuit breaker;
// event deliveries are retried as Roam's embedded backend retries them
// (5 deliveries, backing off to 2s), then dead-lettered. State operations
// get a timeout but no retries: a write that failed after Redis applied it
// would, retried, fail its ETag check.
func DaprResiliency(d Dapr) (*unstructured.Unstructured, error) {
	d = d.withDefaults()
	if err := d.validate(); err != nil {
		return nil, err
	}
	apps := map[string]any{}
	for _, id := range d.Targets {
		apps[id] = map[string]any{"timeout": "invoke", "retry": "invoke", "circuitBreaker": "invoke"}
	}
	u := d.object("Resiliency", d.Config)
	u.Object["spec"] = map[string]any{
		"policies": map[string]any{
			"timeouts": map[string]any{"invoke": "30s", "state": "10s"},
			"retries": map[string]any{
				"invoke": map[string]any{
					"policy": "exponential", "maxInterval": "2s", "maxRetries": int64(3),
					"matching": map[string]any{"httpStatusCodes": "502,503,504", "gRPCStatusCodes": "14"},
				},
				"events": map[string]any{"policy": "exponential", "maxInterval": "2s", "maxRetries": int64(4)},
				// Daprd reads an app's subscriptions once, as soon as the
				// app's port accepts, and by default gives up after about
				// 3s (four tries): an edge host still loading its modules,
				// over the gRPC app channel above all, would then get no
				// events at all (dapr/dapr#9034). Keep reading for 60s.
				"DaprBuiltInInitializationRetries": map[string]any{"policy": "constant", "duration": "500ms", "maxRetries": int64(120)},
			},
			"circuitBreakers": map[string]any{
				"invoke": map[string]any{"maxRequests": int64(1), "interval": "30s", "timeout": "30s", "trip": "consecutiveFailures > 5"},
			},
		},
		"targets": map[string]any{
			"apps": apps,
			"components": map[string]any{
				d.PubSub:     map[string]any{"inbound": map[string]any{"retry": "events"}},
				d.StateStore: map[string]any{"outbound": map[string]any{"timeout": "state"}},
			},
		},
	}
	if len(d.AppIDs) > 0 {
		u.Object["scopes"] = strs(d.AppIDs)
	}
	return u, nil
}

func (d Dapr) object(kind, name string) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{}}
	u.SetAPIVersion(DaprAPIVersion)
	u.SetKind(kind)
	u.SetName(name)
	u.SetNamespace(d.Namespace)
	u.SetLabels(map[string]string{LabelManagedBy: ManagedBy})
	return u
}

func strs(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	sort.Slice(out, func(i, j int) bool { return out[i].(string) < out[j].(string) })
	return out
}
