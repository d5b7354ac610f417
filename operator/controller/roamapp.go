// Package controller is the RoamApp controller: it renders each RoamApp
// with internal/manifests, the very function `roam manifests` writes YAML
// with, server-side-applies the objects under the RoamApp's controller
// reference, deletes the ones the spec no longer asks for, and reports the
// rollout in the RoamApp's status.
//
// The operator never builds an object of its own. Whatever `roam manifests`
// prints for a RoamApp is what the operator applies for it, so the two
// cannot drift apart (a test compares them on a real API server).
package controller

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/record"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/roam-dev/roam/internal/manifests"
	"github.com/roam-dev/roam/operator/api/v1alpha1"
)

// The operator's permissions, from which controller-gen writes
// operator/config/rbac/role.yaml. No wildcards; no update on the objects it
// owns (server-side apply is a patch, and a patch that creates needs
// create); nothing on a RoamApp but reading it and updating its status; and
// leader election's Lease only in the operator's own namespace (roam
// operator install renames roam-system).
//
// +kubebuilder:rbac:groups=roam.dev,resources=roamapps,verbs=get;list;watch
// +kubebuilder:rbac:groups=roam.dev,resources=roamapps/status,verbs=update
// +kubebuilder:rbac:groups=apps,resources=deployments;daemonsets,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups="",resources=services;serviceaccounts,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups=networking.k8s.io,resources=networkpolicies,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups="",resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=coordination.k8s.io,resources=leases,verbs=get;create;update,namespace=roam-system

// Name is the controller's name, its field manager for server-side apply and
// the source of its Events.
const Name = "roam-operator"

// Defaults of the operator's tuning flags, shared by cmd/roam-operator, the
// tests and the benchmarks so that the figures describe the shipped binary.
const (
	// DefaultMaxConcurrentReconciles is how many RoamApps reconcile at once.
	DefaultMaxConcurrentReconciles = 4
	// DefaultQPS and DefaultBurst bound the operator's requests to the API
	// server, per resource type (controller-runtime keeps a REST client,
	// and so a rate limiter, per type). client-go's default of 5 a second
	// would make a burst of new RoamApps wait on the client rather than on
	// the server: each one takes four applies and a status write.
	DefaultQPS   = 50
	DefaultBurst = 100
)

// conflictRequeue is how soon a reconcile that lost an optimistic-concurrency
// race runs again. The newer object's watch event usually gets there first.
const conflictRequeue = 250 * time.Millisecond

// notOwnedRequeue is how often a RoamApp whose object names are taken by
// objects it does not control looks again.
const notOwnedRequeue = 30 * time.Second

// Owned are the kinds of object a RoamApp may own. The controller watches
// each (so an edit or deletion by hand is repaired) and deletes the ones its
// RoamApp no longer renders (a mode switch from native to edge drops the
// Deployment). The RBAC markers above must cover each one.
func Owned() []client.Object {
	return []client.Object{
		&appsv1.Deployment{},
		&appsv1.DaemonSet{},
		&corev1.Service{},
		&corev1.ServiceAccount{},
		&networkingv1.NetworkPolicy{},
	}
}

// ownerIndex indexes owned objects by the name of the RoamApp controlling
// them, so pruning lists a RoamApp's objects without scanning the namespace.
const ownerIndex = ".metadata.controller.roamapp"

// appIDIndex indexes RoamApps by their app id (appID), so a reconcile
// finds the other RoamApps of its namespace with the same id.
const appIDIndex = ".spec.dapr.appId.defaulted"

// appID is a RoamApp's app id after defaulting (manifests.Defaulted):
// spec.dapr.appId, or else its name.
func appID(app *v1alpha1.RoamApp) string {
	if app.Spec.Dapr.AppID != "" {
		return app.Spec.Dapr.AppID
	}
	return app.Name
}

// Render is the signature of manifests.App.
type Render func(*v1alpha1.RoamApp, manifests.Options) ([]client.Object, error)

// Reconciler reconciles RoamApps.
type Reconciler struct {
	Client   client.Client
	Scheme   *runtime.Scheme
	Recorder record.EventRecorder
	// Options are passed to Render: the default edge host image.
	Options manifests.Options
	// Render renders a RoamApp's objects; nil means manifests.App.
	Render Render

	applied appliedCache
}

// Setup registers a Reconciler with mgr: the field index pruning uses and
// the controller with its watches.
func Setup(ctx context.Context, mgr ctrl.Manager, opts manifests.Options, copts controller.Options) error {
	r := &Reconciler{
		Client:   mgr.GetClient(),
		Scheme:   mgr.GetScheme(),
		Recorder: mgr.GetEventRecorderFor(Name),
		Options:  opts,
	}
	return r.SetupWithManager(ctx, mgr, copts)
}

// SetupWithManager registers r with mgr. With copts.SkipNameValidation
// unset, one RoamApp controller may run in the process at a time, and a
// manager set up after another stopped runs its own; true lets several run
// at once, and false is controller-runtime's check, which refuses every
// RoamApp controller after the process's first, stopped or not.
func (r *Reconciler) SetupWithManager(ctx context.Context, mgr ctrl.Manager, copts controller.Options) error {
	for _, o := range Owned() {
		if err := mgr.GetFieldIndexer().IndexField(ctx, o, ownerIndex, controllerName); err != nil {
			return err
		}
	}
	if err := mgr.GetFieldIndexer().IndexField(ctx, &v1alpha1.RoamApp{}, appIDIndex, func(o client.Object) []string {
		return []string{appID(o.(*v1alpha1.RoamApp))}
	}); err != nil {
		return err
	}
	if copts.MaxConcurrentReconciles == 0 {
		copts.MaxConcurrentReconciles = DefaultMaxConcurrentReconciles
	}
	// controller-runtime's check that a controller name is unique in the
	// process never forgets a name, so it would refuse the controller of a
	// manager that follows a stopped one (run again in one process).
	// Unless the caller decides, runningGuard checks instead, for as long
	// as the controller runs.
	guard := copts.SkipNameValidation == nil
	if guard {
		skip := true
		copts.SkipNameValidation = &skip
	}
	b := ctrl.NewControllerManagedBy(mgr).
		Named(reconcilerName).
		// The status the controller writes is not a reason to reconcile
		// again; a new spec, labels or annotations (which the rendered
		// objects may carry) are.
		For(&v1alpha1.RoamApp{}, builder.WithPredicates(predicate.Or(
			predicate.GenerationChangedPredicate{}, predicate.LabelChangedPredicate{}, predicate.AnnotationChangedPredicate{}))).
		// A RoamApp refused because an older one has its app id runs
		// when that one goes or takes another id.
		Watches(&v1alpha1.RoamApp{}, handler.EnqueueRequestsFromMapFunc(r.sameAppID),
			builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		WithOptions(copts)
	for _, o := range Owned() {
		b = b.Owns(o)
	}
	c, err := b.Build(r)
	if err != nil || !guard {
		return err
	}
	// The guard starts and stops with the controller: in the same group of
	// the manager's runnables (the one that waits for the Lease, unless the
	// controller runs without leader election).
	le, ok := c.(manager.LeaderElectionRunnable)
	return mgr.Add(runningGuard{needLeaderElection: !ok || le.NeedLeaderElection()})
}

// reconcilerName names the RoamApp controller in metrics and logs.
const reconcilerName = "roamapp"

// running is whether a RoamApp controller runs in the process. It is a
// process-wide variable because what it protects is: controller-runtime's
// metrics (controller_runtime_reconcile_total, workqueue_depth, ...) live in
// one registry per process and tell controllers apart by their name only,
// so two RoamApp controllers running at once, of two managers, would count
// into the same series.
var running atomic.Bool

// runningGuard holds running while its manager runs the controller and
// fails the manager if another RoamApp controller runs in the process.
// Unlike controller-runtime's name check, which it replaces, it lets a
// RoamApp controller start once the previous one has stopped: a second
// operator in one process (a test, a program that embeds it and restarts
// it) comes up.
type runningGuard struct{ needLeaderElection bool }

func (g runningGuard) NeedLeaderElection() bool { return g.needLeaderElection }

func (g runningGuard) Start(ctx context.Context) error {
	if !running.CompareAndSwap(false, true) {
		return fmt.Errorf("controller %q: another manager of this process runs one; the metrics of controller-runtime would mix them (set controller.Options.SkipNameValidation to allow it)", reconcilerName)
	}
	defer running.Store(false)
	<-ctx.Done()
	return nil
}

// controllerName is the ownerIndex of an object: the RoamApp controlling it.
func controllerName(o client.Object) []string {
	ref := metav1.GetControllerOf(o)
	if ref == nil || ref.Kind != "RoamApp" || !strings.HasPrefix(ref.APIVersion, v1alpha1.GroupVersion.Group+"/") {
		return nil
	}
	return []string{ref.Name}
}

// Reconcile brings one RoamApp's objects to what its spec renders to.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	lg := log.FromContext(ctx)
	app := &v1alpha1.RoamApp{}
	if err := r.Client.Get(ctx, req.NamespacedName, app); err != nil {
		// Deleted: the garbage collector deletes what it owned, through the
		// owner references.
		if apierrors.IsNotFound(err) {
			r.applied.forget(req.NamespacedName)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !app.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil
	}
	render := r.Render
	if render == nil {
		render = manifests.App
	}
	objs, err := render(app, r.Options)
	if err == nil {
		err = r.own(app, objs)
	}
	if err != nil {
		// A spec the renderer refuses stays refused until the spec
		// changes, which reconciles again: no retry.
		r.Recorder.Eventf(app, corev1.EventTypeWarning, "RenderFailed", "%v", err)
		return r.writeStatus(ctx, app, outcome{failure: "RenderFailed", err: err})
	}
	// The apply order: the ServiceAccount the pods need, then the
	// workload, then what points at its pods. What the API server refuses
	// is almost always in the workload, and then the Service and
	// NetworkPolicy are left as they were, still matching the running pods.
	sort.SliceStable(objs, func(i, j int) bool { return applyRank(objs[i]) < applyRank(objs[j]) })

	// Two apps with one app id would share one Dapr identity (the
	// sidecars, the APPID-dapr Service that Dapr's operator keeps, the
	// NetworkPolicies' callers): roam manifests refuses that, and so does
	// the operator, for every RoamApp but the oldest.
	if first, err := r.appIDTakenBy(ctx, app); err != nil {
		return stopping(ctx, err)
	} else if first != nil {
		err := fmt.Errorf("app id %s is taken by RoamApp %s, created earlier in this namespace; two apps with one app id would share one Dapr identity: set another spec.dapr.appId", appID(app), first.Name)
		r.Recorder.Eventf(app, corev1.EventTypeWarning, "AppIDTaken", "%v", err)
		// The watch on RoamApps wakes this one when the other goes or
		// changes its id.
		return r.writeStatus(ctx, app, outcome{failure: "AppIDTaken", err: err})
	}

	live, err := r.lookup(ctx, objs)
	if err != nil {
		return stopping(ctx, err)
	}
	if taken := r.taken(app, objs, live); taken != "" {
		err := fmt.Errorf("%s already exists and is not controlled by this RoamApp; delete or rename it", taken)
		r.Recorder.Eventf(app, corev1.EventTypeWarning, "NotOwned", "%v", err)
		res, werr := r.writeStatus(ctx, app, outcome{failure: "NotOwned", err: err})
		if werr != nil || res.RequeueAfter > 0 {
			return res, werr
		}
		return ctrl.Result{RequeueAfter: notOwnedRequeue}, nil
	}

	var workload client.Object
	var names []string
	for i, o := range objs {
		names = append(names, describe(o))
		sum, err := digestOf(o)
		if err != nil {
			return ctrl.Result{}, err
		}
		if r.applied.unchanged(req.NamespacedName, o, sum, live[i]) {
			// Nobody has written the object since this operator applied
			// exactly this: applying it again would change nothing.
			if isWorkload(o) {
				workload = live[i]
			}
			continue
		}
		if live[i] != nil && isWorkload(o) && !equality.Semantic.DeepEqual(selectorOf(live[i]), selectorOf(o)) {
			// A workload's selector is immutable, and it changes with
			// spec.dapr.appId: the apply would be refused for ever.
			// Replace the workload, as kubectl replace --force would.
			if err := r.replace(ctx, app, live[i], o); err != nil {
				if ctx.Err() != nil {
					return stopping(ctx, err)
				}
				r.Recorder.Eventf(app, corev1.EventTypeWarning, "DeleteFailed", "%v", err)
				if _, werr := r.writeStatus(ctx, app, outcome{failure: "DeleteFailed", err: err}); werr != nil {
					lg.Error(werr, "writing status")
				}
				return ctrl.Result{}, err
			}
		}
		// Server-side apply: the operator owns exactly the fields it sets;
		// ForceOwnership takes them back from whoever edited them by hand
		// (drift), and leaves fields others set (an HPA's replicas if the
		// spec omits them, another controller's annotations) alone.
		if err := r.Client.Patch(ctx, o, client.Apply, client.FieldOwner(Name), client.ForceOwnership); err != nil {
			if ctx.Err() != nil {
				return stopping(ctx, err)
			}
			if apierrors.IsConflict(err) {
				lg.V(1).Info("conflict applying, requeueing", "object", describe(o), "error", err.Error())
				return ctrl.Result{RequeueAfter: conflictRequeue}, nil
			}
			if terminating(err) {
				// The namespace is being deleted, and this RoamApp with
				// it: nothing to repair, no event to write there.
				lg.V(1).Info("namespace terminating, not applying", "object", describe(o))
				return ctrl.Result{}, nil
			}
			err = fmt.Errorf("applying %s: %w", describe(o), err)
			r.Recorder.Eventf(app, corev1.EventTypeWarning, "ApplyFailed", "%v", err)
			res, werr := r.writeStatus(ctx, app, outcome{failure: "ApplyFailed", err: err})
			if apierrors.IsInvalid(err) {
				// The server refuses the object itself: retrying the same
				// rendering cannot help. A change to the RoamApp or to
				// the object (someone else's fields) reconciles again.
				return res, werr
			}
			if werr != nil {
				lg.Error(werr, "writing status")
			}
			return ctrl.Result{}, err
		}
		r.applied.remember(req.NamespacedName, o, sum)
		if isWorkload(o) {
			workload = o
		}
	}
	if err := r.prune(ctx, app, objs); err != nil {
		if ctx.Err() != nil {
			return stopping(ctx, err)
		}
		if apierrors.IsConflict(err) {
			return ctrl.Result{RequeueAfter: conflictRequeue}, nil
		}
		r.Recorder.Eventf(app, corev1.EventTypeWarning, "DeleteFailed", "%v", err)
		if _, werr := r.writeStatus(ctx, app, outcome{failure: "DeleteFailed", err: err}); werr != nil {
			lg.Error(werr, "writing status")
		}
		return ctrl.Result{}, err
	}
	if app.Status.ObservedGeneration != app.Generation {
		r.Recorder.Eventf(app, corev1.EventTypeNormal, "Applied", "applied generation %d: %s", app.Generation, strings.Join(names, ", "))
	}
	return r.writeStatus(ctx, app, outcome{workload: workload})
}

// stopping ends a reconcile that failed with err: quietly when the
// operator is shutting down (its context is done; the next leader lists
// every RoamApp when it starts), else with err, for the work queue to retry
// with backoff.
func stopping(ctx context.Context, err error) (ctrl.Result, error) {
	if ctx.Err() != nil {
		return ctrl.Result{}, nil
	}
	return ctrl.Result{}, err
}

// own checks that objs belong in app's namespace, fills in their kinds (the
// apply request needs apiVersion and kind) and makes app their controller.
func (r *Reconciler) own(app *v1alpha1.RoamApp, objs []client.Object) error {
	for _, o := range objs {
		gvk, err := apiutil.GVKForObject(o, r.Scheme)
		if err != nil {
			return err
		}
		o.GetObjectKind().SetGroupVersionKind(gvk)
		if o.GetNamespace() == "" {
			o.SetNamespace(app.Namespace)
		}
		if o.GetNamespace() != app.Namespace {
			// Owner references cannot cross namespaces.
			return fmt.Errorf("%s is rendered into namespace %q, not the RoamApp's", describe(o), o.GetNamespace())
		}
		if !isOwned(gvk) {
			return fmt.Errorf("%s: the operator does not manage %s objects", describe(o), gvk.Kind)
		}
		if err := controllerutil.SetControllerReference(app, o, r.Scheme); err != nil {
			return err
		}
	}
	return nil
}

func isOwned(gvk schema.GroupVersionKind) bool {
	for _, o := range Owned() {
		if g, err := apiutil.GVKForObject(o, clientScheme); err == nil && g == gvk {
			return true
		}
	}
	return false
}

// lookup reads objs' live versions from the cache: nil where there is none.
func (r *Reconciler) lookup(ctx context.Context, objs []client.Object) ([]client.Object, error) {
	live := make([]client.Object, len(objs))
	for i, o := range objs {
		n, err := r.Scheme.New(o.GetObjectKind().GroupVersionKind())
		if err != nil {
			return nil, err
		}
		lo := n.(client.Object)
		if err := r.Client.Get(ctx, client.ObjectKeyFromObject(o), lo); apierrors.IsNotFound(err) {
			continue
		} else if err != nil {
			return nil, err
		}
		live[i] = lo
	}
	return live, nil
}

// taken names the first of objs that exists and is controlled by something
// other than app, or "". Server-side apply with force would quietly take
// over a Deployment a user made by hand; the operator refuses instead.
func (r *Reconciler) taken(app *v1alpha1.RoamApp, objs, live []client.Object) string {
	for i, o := range objs {
		if live[i] != nil && !metav1.IsControlledBy(live[i], app) {
			return describe(o)
		}
	}
	return ""
}

// applyRank orders the apply: ServiceAccount, workload, the rest.
func applyRank(o client.Object) int {
	switch o.(type) {
	case *corev1.ServiceAccount:
		return 0
	case *appsv1.Deployment, *appsv1.DaemonSet:
		return 1
	}
	return 2
}

// selectorOf is a workload's pod selector.
func selectorOf(o client.Object) *metav1.LabelSelector {
	switch w := o.(type) {
	case *appsv1.Deployment:
		return w.Spec.Selector
	case *appsv1.DaemonSet:
		return w.Spec.Selector
	}
	return nil
}

// replace deletes live, app's workload whose selector is not want's, so
// that the apply creates want anew. Background propagation: the old pods
// go once the new workload exists, not before.
func (r *Reconciler) replace(ctx context.Context, app *v1alpha1.RoamApp, live, want client.Object) error {
	uid := live.GetUID()
	err := r.Client.Delete(ctx, live, client.Preconditions{UID: &uid}, client.PropagationPolicy(metav1.DeletePropagationBackground))
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("deleting %s to change its selector: %w", describe(want), err)
	}
	r.Recorder.Eventf(app, corev1.EventTypeNormal, "Replaced", "deleted %s to create it anew: its pod selector %v cannot change to %v (spec.dapr.appId changed)",
		describe(want), metav1.FormatLabelSelector(selectorOf(live)), metav1.FormatLabelSelector(selectorOf(want)))
	return nil
}

// terminating says whether err is the API server's refusal to create
// anything in a namespace being deleted.
func terminating(err error) bool {
	return apierrors.IsForbidden(err) && apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause)
}

// appIDTakenBy returns the RoamApp that has app's app id in its namespace
// and was created before it (the earlier name breaks a tie), or nil.
func (r *Reconciler) appIDTakenBy(ctx context.Context, app *v1alpha1.RoamApp) (*v1alpha1.RoamApp, error) {
	var same v1alpha1.RoamAppList
	if err := r.Client.List(ctx, &same, client.InNamespace(app.Namespace), client.MatchingFields{appIDIndex: appID(app)}); err != nil {
		return nil, err
	}
	var first *v1alpha1.RoamApp
	for i := range same.Items {
		o := &same.Items[i]
		if o.UID == app.UID || !o.DeletionTimestamp.IsZero() || !before(o, app) {
			continue
		}
		if first == nil || before(o, first) {
			first = o
		}
	}
	return first, nil
}

func before(a, b *v1alpha1.RoamApp) bool {
	if !a.CreationTimestamp.Equal(&b.CreationTimestamp) {
		return a.CreationTimestamp.Before(&b.CreationTimestamp)
	}
	return a.Name < b.Name
}

// sameAppID maps a RoamApp to the others of its namespace with its app id.
func (r *Reconciler) sameAppID(ctx context.Context, o client.Object) []reconcile.Request {
	app, ok := o.(*v1alpha1.RoamApp)
	if !ok {
		return nil
	}
	var same v1alpha1.RoamAppList
	if err := r.Client.List(ctx, &same, client.InNamespace(app.Namespace), client.MatchingFields{appIDIndex: appID(app)}); err != nil {
		log.FromContext(ctx).Error(err, "listing RoamApps by app id")
		return nil
	}
	var reqs []reconcile.Request
	for _, s := range same.Items {
		if s.UID != app.UID {
			reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&s)})
		}
	}
	return reqs
}

func isWorkload(o client.Object) bool {
	switch o.(type) {
	case *appsv1.Deployment, *appsv1.DaemonSet:
		return true
	}
	return false
}

// prune deletes what app controls but no longer renders.
func (r *Reconciler) prune(ctx context.Context, app *v1alpha1.RoamApp, want []client.Object) error {
	keep := map[string]bool{}
	for _, o := range want {
		keep[describe(o)] = true
	}
	for _, o := range Owned() {
		gvk, err := apiutil.GVKForObject(o, r.Scheme)
		if err != nil {
			return err
		}
		// Typed lists read the informers the watches already keep.
		typed, err := r.Scheme.New(gvk.GroupVersion().WithKind(gvk.Kind + "List"))
		if err != nil {
			return err
		}
		tl := typed.(client.ObjectList)
		if err := r.Client.List(ctx, tl, client.InNamespace(app.Namespace), client.MatchingFields{ownerIndex: app.Name}); err != nil {
			return err
		}
		items, err := meta.ExtractList(tl)
		if err != nil {
			return err
		}
		for _, it := range items {
			obj := it.(client.Object)
			obj.GetObjectKind().SetGroupVersionKind(gvk)
			if !metav1.IsControlledBy(obj, app) || keep[describe(obj)] {
				continue
			}
			uid := obj.GetUID()
			err := r.Client.Delete(ctx, obj, client.Preconditions{UID: &uid}, client.PropagationPolicy(metav1.DeletePropagationBackground))
			if apierrors.IsNotFound(err) {
				continue
			} else if err != nil {
				return fmt.Errorf("deleting %s: %w", describe(obj), err)
			}
			r.Recorder.Eventf(app, corev1.EventTypeNormal, "Deleted", "deleted %s: generation %d (mode %s) no longer has it", describe(obj), app.Generation, app.Spec.Mode)
		}
	}
	return nil
}

// writeStatus writes the status an outcome implies, if it changed. A
// conflict (the cached RoamApp is older than the server's) requeues rather
// than fails: the next attempt reads the newer object.
func (r *Reconciler) writeStatus(ctx context.Context, app *v1alpha1.RoamApp, o outcome) (ctrl.Result, error) {
	next := computeStatus(app, o)
	wasReady := meta.IsStatusConditionTrue(app.Status.Conditions, v1alpha1.ConditionReady)
	if equality.Semantic.DeepEqual(app.Status, next) {
		return ctrl.Result{}, nil
	}
	updated := app.DeepCopy()
	updated.Status = next
	if err := r.Client.Status().Update(ctx, updated); err != nil {
		if ctx.Err() != nil {
			return stopping(ctx, err)
		}
		if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
			log.FromContext(ctx).V(1).Info("status not written, requeueing", "error", err.Error())
			return ctrl.Result{RequeueAfter: conflictRequeue}, nil
		}
		return ctrl.Result{}, err
	}
	ready := meta.FindStatusCondition(next.Conditions, v1alpha1.ConditionReady)
	if ready != nil && (ready.Status == metav1.ConditionTrue) != wasReady {
		typ := corev1.EventTypeNormal
		if ready.Status != metav1.ConditionTrue && wasReady {
			typ = corev1.EventTypeWarning
		}
		r.Recorder.Eventf(app, typ, ready.Reason, "Ready=%s: %s", ready.Status, ready.Message)
	}
	return ctrl.Result{}, nil
}

// describe is "Kind/name", the way events and errors name an object.
func describe(o client.Object) string {
	kind := o.GetObjectKind().GroupVersionKind().Kind
	if kind == "" {
		if gvk, err := apiutil.GVKForObject(o, clientScheme); err == nil {
			kind = gvk.Kind
		}
	}
	return kind + "/" + o.GetName()
}

// NewScheme is the scheme the operator reads and writes with: Kubernetes'
// built-in types and RoamApp.
func NewScheme() (*runtime.Scheme, error) {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		return nil, err
	}
	if err := v1alpha1.AddToScheme(s); err != nil {
		return nil, err
	}
	return s, nil
}

var clientScheme = func() *runtime.Scheme {
	s, err := NewScheme()
	if err != nil {
		panic(err)
	}
	return s
}()
