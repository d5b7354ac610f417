package controller

import (
	"fmt"
	"unicode/utf8"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/roam-dev/roam/operator/api/v1alpha1"
)

// outcome is what one reconcile came to: the workload as the API server
// returned it from the apply, or the failure that stopped it.
type outcome struct {
	workload client.Object // *appsv1.Deployment or *appsv1.DaemonSet
	failure  string        // a condition reason: RenderFailed, ApplyFailed, NotOwned
	err      error
}

// rollout is a Deployment's or DaemonSet's progress, in one shape.
type rollout struct {
	kind                    string
	desired, updated, total int32
	ready, available        int32
	observed                bool   // its controller has seen its latest spec
	failed, failedMsg       string // ProgressDeadlineExceeded or ReplicaFailure, and why
}

func (r rollout) complete() bool {
	return r.observed && r.updated == r.desired && r.total == r.desired && r.available == r.desired && r.ready >= r.desired
}

func summarize(w client.Object) (rollout, bool) {
	switch w := w.(type) {
	case *appsv1.Deployment:
		r := rollout{kind: "Deployment", desired: 1,
			updated: w.Status.UpdatedReplicas, total: w.Status.Replicas,
			ready: w.Status.ReadyReplicas, available: w.Status.AvailableReplicas,
			observed: w.Status.ObservedGeneration >= w.Generation}
		if w.Spec.Replicas != nil {
			r.desired = *w.Spec.Replicas
		}
		for _, c := range w.Status.Conditions {
			switch {
			case c.Type == appsv1.DeploymentProgressing && c.Status == corev1.ConditionFalse && c.Reason == "ProgressDeadlineExceeded":
				r.failed, r.failedMsg = "ProgressDeadlineExceeded", c.Message
			case c.Type == appsv1.DeploymentReplicaFailure && c.Status == corev1.ConditionTrue:
				r.failed, r.failedMsg = "ReplicaFailure", c.Message
			}
		}
		return r, true
	case *appsv1.DaemonSet:
		return rollout{kind: "DaemonSet",
			desired: w.Status.DesiredNumberScheduled, updated: w.Status.UpdatedNumberScheduled,
			total: w.Status.CurrentNumberScheduled, ready: w.Status.NumberReady, available: w.Status.NumberAvailable,
			observed: w.Status.ObservedGeneration >= w.Generation}, true
	}
	return rollout{}, false
}

// computeStatus is the status app should have after outcome o. Conditions
// keep their last transition time while their status stays the same
// (meta.SetStatusCondition), so an unchanged rollout writes nothing.
//
//   - Ready: the workload runs the current spec on every replica it wants
//     (kstatus's "Current"; `kubectl wait --for=condition=Ready` after an
//     apply waits for the new spec, not the old pods). An edge app whose node
//     selector matches no node is not Ready.
//   - Progressing: a rollout is under way.
//   - Degraded: something needs a human: the spec does not render, an apply
//     failed, an object's name is taken, or the Deployment gave up
//     (ProgressDeadlineExceeded, ReplicaFailure).
func computeStatus(app *v1alpha1.RoamApp, o outcome) v1alpha1.RoamAppStatus {
	st := *app.Status.DeepCopy()
	st.ObservedGeneration = app.Generation
	set := func(typ string, status metav1.ConditionStatus, reason, msg string) {
		meta.SetStatusCondition(&st.Conditions, metav1.Condition{
			Type: typ, Status: status, Reason: reason, Message: truncate(msg), ObservedGeneration: app.Generation})
	}
	if o.failure != "" {
		set(v1alpha1.ConditionDegraded, metav1.ConditionTrue, o.failure, o.err.Error())
		set(v1alpha1.ConditionProgressing, metav1.ConditionFalse, o.failure, "not rolling out generation "+fmt.Sprint(app.Generation)+": "+o.failure)
		// What ran before keeps running; Ready says so until it changes.
		if meta.FindStatusCondition(st.Conditions, v1alpha1.ConditionReady) == nil {
			set(v1alpha1.ConditionReady, metav1.ConditionFalse, o.failure, "nothing applied")
		}
		return st
	}
	r, ok := summarize(o.workload)
	if !ok {
		set(v1alpha1.ConditionDegraded, metav1.ConditionTrue, "NoWorkload", "the rendered objects hold no Deployment or DaemonSet")
		set(v1alpha1.ConditionProgressing, metav1.ConditionFalse, "NoWorkload", "nothing to roll out")
		set(v1alpha1.ConditionReady, metav1.ConditionFalse, "NoWorkload", "nothing runs the app")
		st.Replicas, st.ReadyReplicas = 0, 0
		return st
	}
	st.Replicas, st.ReadyReplicas = r.desired, r.ready
	counts := fmt.Sprintf("%s %s: %d of %d replicas ready, %d updated", r.kind, o.workload.GetName(), r.ready, r.desired, r.updated)

	if r.failed != "" {
		set(v1alpha1.ConditionDegraded, metav1.ConditionTrue, r.failed, r.failedMsg)
	} else {
		set(v1alpha1.ConditionDegraded, metav1.ConditionFalse, "AsExpected", "")
	}

	switch {
	case r.failed != "":
		set(v1alpha1.ConditionProgressing, metav1.ConditionFalse, r.failed, counts)
	case !r.observed:
		set(v1alpha1.ConditionProgressing, metav1.ConditionTrue, "RollingOut",
			fmt.Sprintf("%s %s: waiting for its controller to observe generation %d", r.kind, o.workload.GetName(), o.workload.GetGeneration()))
	case !r.complete():
		set(v1alpha1.ConditionProgressing, metav1.ConditionTrue, "RollingOut", counts)
	default:
		set(v1alpha1.ConditionProgressing, metav1.ConditionFalse, "RolloutComplete", counts)
	}

	switch {
	case r.kind == "DaemonSet" && r.observed && r.desired == 0:
		set(v1alpha1.ConditionReady, metav1.ConditionFalse, "NoMatchingNodes",
			"no node matches spec.edge.nodeSelector and tolerates its taints, so no edge host runs the app")
	case r.complete():
		set(v1alpha1.ConditionReady, metav1.ConditionTrue, "Available", counts)
	case r.failed != "":
		set(v1alpha1.ConditionReady, metav1.ConditionFalse, r.failed, counts)
	default:
		set(v1alpha1.ConditionReady, metav1.ConditionFalse, "RollingOut", counts)
	}
	return st
}

// maxMessage is the longest condition message the API server accepts
// (metav1.Condition's message, in bytes). A spec with hundreds of bad
// entries renders an error longer than that, and a status carrying it
// would be refused, for ever.
const maxMessage = 32768

// truncate cuts msg to maxMessage bytes, on a rune boundary, saying how
// much it left out; the Event with the same error has all of it.
func truncate(msg string) string {
	if len(msg) <= maxMessage {
		return msg
	}
	suffix := fmt.Sprintf(" … (%d bytes more; see the RoamApp's events)", len(msg))
	cut := maxMessage - len(suffix)
	for cut > 0 && !utf8.RuneStart(msg[cut]) {
		cut--
	}
	return msg[:cut] + fmt.Sprintf(" … (%d bytes more; see the RoamApp's events)", len(msg)-cut)
}
