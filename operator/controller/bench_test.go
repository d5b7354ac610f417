package controller

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/roam-dev/roam/operator/api/v1alpha1"
)

// The benchmarks run against the package's envtest (a real kube-apiserver
// and etcd on this machine) with the controller as shipped: the default
// concurrency and API rate limits of cmd/roam-operator, impersonating the
// operator's ServiceAccount.
//
//	go test ./operator/controller -run '^$' -bench . -benchtime 20x
//
// Times are taken from watch events, not polls: an app counts as done when
// the watch has delivered its Deployment, Service, ServiceAccount and
// NetworkPolicy (and, for "reconciled", its status for generation 1).

// observer watches a namespace and records when each app's objects and
// status were first seen.
type observer struct {
	mu      sync.Mutex
	cond    *sync.Cond
	seen    map[string]map[string]time.Time // app name -> kind -> first seen
	status  map[string]time.Time            // app name -> status of its generation seen
	cancel  context.CancelFunc
	stopped sync.WaitGroup
}

var ownedKinds = []string{"Deployment", "Service", "ServiceAccount", "NetworkPolicy"}

func observe(b *testing.B, ns string) *observer {
	b.Helper()
	cfg := rest.CopyConfig(suite.cfg)
	cfg.QPS = -1
	wc, err := client.NewWithWatch(cfg, client.Options{Scheme: suite.mgr.GetScheme()})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	o := &observer{seen: map[string]map[string]time.Time{}, status: map[string]time.Time{}, cancel: cancel}
	o.cond = sync.NewCond(&o.mu)
	for _, l := range []client.ObjectList{&appsv1.DeploymentList{}, &corev1.ServiceList{}, &corev1.ServiceAccountList{},
		&networkingv1.NetworkPolicyList{}, &v1alpha1.RoamAppList{}} {
		w, err := wc.Watch(ctx, l, client.InNamespace(ns))
		if err != nil {
			b.Fatal(err)
		}
		o.stopped.Add(1)
		go func() {
			defer o.stopped.Done()
			defer w.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case ev, ok := <-w.ResultChan():
					if !ok {
						return
					}
					if ev.Type == watch.Added || ev.Type == watch.Modified {
						o.record(ev.Object.(client.Object), time.Now())
					}
				}
			}
		}()
	}
	return o
}

func (o *observer) record(obj client.Object, at time.Time) {
	o.mu.Lock()
	defer o.mu.Unlock()
	name := obj.GetName()
	if app, ok := obj.(*v1alpha1.RoamApp); ok {
		if _, done := o.status[name]; !done && app.Generation > 0 && app.Status.ObservedGeneration == app.Generation && len(app.Status.Conditions) == 3 {
			o.status[name] = at
			o.cond.Broadcast()
		}
		return
	}
	var kind string
	switch obj.(type) {
	case *appsv1.Deployment:
		kind = "Deployment"
	case *corev1.Service:
		kind = "Service"
	case *corev1.ServiceAccount:
		kind = "ServiceAccount"
	case *networkingv1.NetworkPolicy:
		kind = "NetworkPolicy"
	}
	if o.seen[name] == nil {
		o.seen[name] = map[string]time.Time{}
	}
	if _, ok := o.seen[name][kind]; !ok {
		o.seen[name][kind] = at
		o.cond.Broadcast()
	}
}

// objectsAt is when the last of name's objects was seen, if all were.
func (o *observer) objectsAt(name string) (time.Time, bool) {
	var last time.Time
	for _, k := range ownedKinds {
		at, ok := o.seen[name][k]
		if !ok {
			return time.Time{}, false
		}
		if at.After(last) {
			last = at
		}
	}
	return last, true
}

// wait blocks until every app in names has its objects and, with status,
// its status, or fails b after the wait bound.
func (o *observer) wait(b *testing.B, names []string, status bool) {
	b.Helper()
	deadline := time.AfterFunc(wait, func() { o.mu.Lock(); o.cond.Broadcast(); o.mu.Unlock() })
	defer deadline.Stop()
	start := time.Now()
	o.mu.Lock()
	defer o.mu.Unlock()
	for {
		missing := 0
		for _, n := range names {
			_, ok := o.objectsAt(n)
			_, st := o.status[n]
			if !ok || (status && !st) {
				missing++
			}
		}
		if missing == 0 {
			return
		}
		if time.Since(start) > wait {
			b.Fatalf("%d of %d apps not done after %s", missing, len(names), wait)
		}
		o.cond.Wait()
	}
}

func (o *observer) stop() {
	o.cancel()
	o.stopped.Wait()
}

// reconciles is the controller's reconcile count so far, from its
// Prometheus metrics.
func reconciles(b *testing.B) float64 {
	b.Helper()
	mfs, err := metrics.Registry.Gather()
	if err != nil {
		b.Fatal(err)
	}
	var n float64
	for _, mf := range mfs {
		if mf.GetName() != "controller_runtime_reconcile_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "controller" && l.GetValue() == "roamapp" {
					n += m.GetCounter().GetValue()
				}
			}
		}
	}
	return n
}

// BenchmarkCreateToObjects is the time from creating one RoamApp (native
// mode) to its four objects being on the API server, one app at a time.
func BenchmarkCreateToObjects(b *testing.B) {
	c := setup(b)
	ctx := context.Background()
	ns := namespace(b, c)
	o := observe(b, ns)
	defer o.stop()
	var lat []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		name := fmt.Sprintf("app-%d", i)
		start := time.Now()
		if err := c.Create(ctx, nativeApp(ns, name)); err != nil {
			b.Fatal(err)
		}
		o.wait(b, []string{name}, false)
		o.mu.Lock()
		at, _ := o.objectsAt(name)
		o.mu.Unlock()
		lat = append(lat, at.Sub(start))
	}
	b.StopTimer()
	reportLatency(b, lat)
}

// BenchmarkReconcile200 creates 200 RoamApps at once (16 writers) and
// measures until every one has its objects and a status for its
// generation: the controller's throughput under a burst, and each app's
// create-to-objects time within it.
func BenchmarkReconcile200(b *testing.B) {
	const apps = 200
	c := setup(b)
	ctx := context.Background()
	var total time.Duration
	var lat []time.Duration
	var recs float64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		ns := namespace(b, c)
		o := observe(b, ns)
		names := make([]string, apps)
		for j := range names {
			names[j] = fmt.Sprintf("app-%03d", j)
		}
		before := reconciles(b)
		created := make([]time.Time, apps)
		b.StartTimer()

		start := time.Now()
		var wg sync.WaitGroup
		errs := make(chan error, apps)
		for w := 0; w < 16; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for j := w; j < apps; j += 16 {
					created[j] = time.Now()
					if err := c.Create(ctx, nativeApp(ns, names[j])); err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		if err := <-errs; err != nil {
			b.Fatal(err)
		}
		o.wait(b, names, true)
		total += time.Since(start)

		b.StopTimer()
		o.mu.Lock()
		for j, n := range names {
			at, _ := o.objectsAt(n)
			lat = append(lat, at.Sub(created[j]))
		}
		o.mu.Unlock()
		o.stop()
		// Let the status writes' own events drain before counting.
		time.Sleep(500 * time.Millisecond)
		recs += reconciles(b) - before
		b.StartTimer()
	}
	b.StopTimer()
	b.ReportMetric(float64(apps*b.N)/total.Seconds(), "apps/s")
	b.ReportMetric(recs/float64(apps*b.N), "reconciles/app")
	reportLatency(b, lat)
}

func reportLatency(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	q := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000 }
	b.ReportMetric(q(0.5), "p50-ms")
	b.ReportMetric(q(0.99), "p99-ms")
}
