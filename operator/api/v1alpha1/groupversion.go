// Package v1alpha1 is the RoamApp API: one Roam app, run natively beside a
// Dapr sidecar or as a wasm module on edge nodes.
//
// The same types are the input of `roam manifests` and of the operator, so
// both render a RoamApp through one function (internal/manifests).
//
// +kubebuilder:object:generate=true
// +groupName=roam.dev
package v1alpha1

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/scheme"
)

var (
	// GroupVersion is the API group and version of RoamApp.
	GroupVersion = schema.GroupVersion{Group: "roam.dev", Version: "v1alpha1"}

	// SchemeBuilder registers the types of this package.
	SchemeBuilder = &scheme.Builder{GroupVersion: GroupVersion}

	// AddToScheme adds the types of this package to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)
