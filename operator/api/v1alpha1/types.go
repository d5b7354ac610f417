package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Mode says where an app's code runs.
// +kubebuilder:validation:Enum=native;edge
type Mode string

const (
	// ModeNative runs the app's static binary in a Deployment, beside a Dapr sidecar.
	ModeNative Mode = "native"
	// ModeEdge runs the app's wasm module in the edge host, as a DaemonSet on edge nodes.
	ModeEdge Mode = "edge"
)

// RoamAppSpec is what a user asks for.
//
// +kubebuilder:validation:XValidation:rule="self.mode != 'edge' || self.image.matches('@sha256:[0-9a-f]{64}$')",message="mode edge needs spec.image to be the wasm module's OCI reference pinned by digest (REF@sha256:<64 hex digits>), so every edge node loads the same bytes"
// +kubebuilder:validation:XValidation:rule="self.mode == 'edge' || !has(self.edge)",message="spec.edge applies only to mode edge"
type RoamAppSpec struct {
	// Mode is native (a Deployment of the app image) or edge (a DaemonSet
	// of the edge host loading the wasm module).
	// +kubebuilder:default=native
	// +optional
	Mode Mode `json:"mode,omitempty"`

	// Image is, in native mode, the app's container image; in edge mode,
	// the wasm module as an OCI artifact, pinned by digest.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=512
	Image string `json:"image"`

	// Dapr wires the app to its sidecar.
	// +optional
	Dapr DaprSpec `json:"dapr,omitempty"`

	// Replicas of the Deployment in native mode. Edge mode runs one edge
	// host per selected node.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=1000
	// +optional
	Replicas *int32 `json:"replicas,omitempty"`

	// Edge places the edge host, in edge mode.
	// +optional
	Edge *EdgeSpec `json:"edge,omitempty"`

	// AllowFrom names the app ids whose sidecars may call this app. Each is
	// an app id, or appid.namespace for a caller in another namespace. The
	// NetworkPolicy admits nothing else but the app's own sidecar and the
	// metrics scraper.
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=127
	// +kubebuilder:validation:items:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)?$`
	// +listType=set
	// +optional
	AllowFrom []string `json:"allowFrom,omitempty"`

	// Resources of the app container. Defaults suit a small Roam app.
	// +optional
	Resources *corev1.ResourceRequirements `json:"resources,omitempty"`

	// ImagePullSecrets name Secrets of type kubernetes.io/dockerconfigjson
	// in the RoamApp's namespace (kubectl create secret docker-registry),
	// for a private registry. They become the pod's imagePullSecrets, with
	// which the kubelet pulls the app's image (native mode) or the edge
	// host's (edge mode). In edge mode every one is also mounted read-only
	// into the edge host, as /var/run/roam/registry/NAME/config.json, and
	// the edge host pulls the wasm module with them: for each registry, it
	// tries the credentials of every Secret in this list that has any, in
	// turn, as the kubelet does, until the registry accepts one. Every
	// Secret named must exist and hold .dockerconfigjson, or the edge host's
	// pod does not start.
	// +kubebuilder:validation:MaxItems=16
	// +listType=map
	// +listMapKey=name
	// +optional
	ImagePullSecrets []PullSecret `json:"imagePullSecrets,omitempty"`
}

// The CEL rule on PullSecret's Name is the API server's copy of
// internal/manifests/pullsecret's check, which roam manifests and the
// operator apply. (Not in the doc comment: the CRD would publish it.)

// PullSecret names a Secret of type kubernetes.io/dockerconfigjson in the
// RoamApp's namespace, as a pod's imagePullSecrets do.
type PullSecret struct {
	// Name of the Secret.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')",message="an imagePullSecrets name must be a Secret's name: a DNS subdomain of lowercase letters, digits, '-' and '.', starting and ending with a letter or digit"
	Name string `json:"name"`
}

// DaprSpec is the sidecar wiring, written as dapr.io/* annotations.
type DaprSpec struct {
	// Enabled injects the Dapr sidecar. Default true.
	// +optional
	Enabled *bool `json:"enabled,omitempty"`

	// AppID is the Dapr app id. Default: the RoamApp's name.
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')",message="dapr.appId must be a DNS label: lowercase letters, digits and '-', starting and ending with a letter or digit, at most 63 characters (Dapr resolves app ids as DNS names)"
	// +optional
	AppID string `json:"appId,omitempty"`

	// AppPort is the port the app listens on. Default 8080.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	// +optional
	AppPort int32 `json:"appPort,omitempty"`

	// AppProtocol is how the sidecar calls the app. Default http.
	// +kubebuilder:validation:Enum=http;grpc
	// +optional
	AppProtocol string `json:"appProtocol,omitempty"`

	// Config names the Dapr Configuration the sidecar uses.
	// +kubebuilder:validation:MaxLength=253
	// +optional
	Config string `json:"config,omitempty"`
}

// EdgeSpec places the edge host on edge nodes.
type EdgeSpec struct {
	// NodeSelector picks the edge nodes, for example an OpenYurt node pool
	// label such as apps.openyurt.io/nodepool: edge-hangzhou.
	// +kubebuilder:validation:MaxProperties=64
	// +optional
	NodeSelector map[string]string `json:"nodeSelector,omitempty"`

	// Tolerations let the edge host onto tainted edge nodes.
	// +kubebuilder:validation:MaxItems=64
	// +optional
	Tolerations []corev1.Toleration `json:"tolerations,omitempty"`

	// HostImage is the edge host's image. Default: the operator's.
	// +kubebuilder:validation:MaxLength=512
	// +optional
	HostImage string `json:"hostImage,omitempty"`
}

// Condition types of a RoamApp.
const (
	ConditionReady       = "Ready"
	ConditionProgressing = "Progressing"
	ConditionDegraded    = "Degraded"
)

// RoamAppStatus is what the operator observed.
type RoamAppStatus struct {
	// ObservedGeneration is the spec generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Replicas is the number of pods wanted: the Deployment's replicas, or
	// the DaemonSet's desired count.
	// +optional
	Replicas int32 `json:"replicas,omitempty"`

	// ReadyReplicas is the number of those pods that are ready.
	// +optional
	ReadyReplicas int32 `json:"readyReplicas,omitempty"`

	// Conditions are Ready, Progressing and Degraded.
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// RoamApp is one Roam app on Kubernetes.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=ra,categories=roam
// +kubebuilder:validation:XValidation:rule="self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$') && size(self.metadata.name) <= 63",message="metadata.name must be a DNS label starting with a letter (lowercase letters, digits and '-', at most 63): it names the Deployment, Service and app id, and a Service's name starts with a letter"
// +kubebuilder:validation:XValidation:rule="(has(self.spec.dapr) && has(self.spec.dapr.enabled) && !self.spec.dapr.enabled) || size(has(self.spec.dapr) && has(self.spec.dapr.appId) ? self.spec.dapr.appId : self.metadata.name) <= 58",message="the app id (spec.dapr.appId, or metadata.name when it is not set) must be at most 58 characters with Dapr enabled: Dapr names a Service APPID-dapr, a DNS label"
// +kubebuilder:printcolumn:name="Mode",type=string,JSONPath=`.spec.mode`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Replicas",type=integer,JSONPath=`.status.readyReplicas`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type RoamApp struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   RoamAppSpec   `json:"spec"`
	Status RoamAppStatus `json:"status,omitempty"`
}

// RoamAppList is a list of RoamApps.
//
// +kubebuilder:object:root=true
type RoamAppList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []RoamApp `json:"items"`
}

func init() {
	SchemeBuilder.Register(&RoamApp{}, &RoamAppList{})
}
