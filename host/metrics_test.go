package host_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/roam-dev/roam/backend"
	"github.com/roam-dev/roam/backend/embedded"
	"github.com/roam-dev/roam/host"
	"github.com/roam-dev/roam/sdk"
)

// metricValue returns the value of family's series with labels, and
// whether it exists.
func metricValue(t *testing.T, m *host.Metrics, family string, labels map[string]string) (float64, bool) {
	t.Helper()
	fams, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != family {
			continue
		}
	series:
		for _, s := range f.GetMetric() {
			if len(s.GetLabel()) != len(labels) {
				continue
			}
			for _, l := range s.GetLabel() {
				if labels[l.GetName()] != l.GetValue() {
					continue series
				}
			}
			switch {
			case s.Gauge != nil:
				return s.Gauge.GetValue(), true
			case s.Counter != nil:
				return s.Counter.GetValue(), true
			}
		}
	}
	return 0, false
}

// The unrouted families follow the embedded backend's unrouted logs
// through the OnDeliver hook: parked, dropped at the limit, found at open,
// drained to a subscription.
func TestMetricsUnrouted(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	topic := map[string]string{"app": "pub", "pubsub": "ps", "topic": "t"}
	check := func(m *host.Metrics, parked, dropped float64) {
		t.Helper()
		if v, ok := metricValue(t, m, "roam_pubsub_unrouted_events", topic); !ok || v != parked {
			t.Errorf("roam_pubsub_unrouted_events = %v (present %v), want %v", v, ok, parked)
		}
		if v, ok := metricValue(t, m, "roam_pubsub_unrouted_dropped_total", topic); !ok || v != dropped {
			t.Errorf("roam_pubsub_unrouted_dropped_total = %v (present %v), want %v", v, ok, dropped)
		}
	}
	publish := func(b *embedded.Backend, n int) {
		t.Helper()
		for range n {
			if err := b.Publisher("pub").Publish(ctx, sdk.Message{PubSub: "ps", Topic: "t", Data: []byte(`1`)}); err != nil {
				t.Fatal(err)
			}
		}
	}

	m := host.NewMetrics(nil)
	b, err := embedded.Open(embedded.Options{Dir: dir, UnroutedLimit: 3, OnDeliver: m.OnDeliver, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	publish(b, 1)
	check(m, 1, 0) // the counter exists before the first drop
	publish(b, 4)
	check(m, 3, 2)
	// The publisher's series are the unrouted ones only.
	if _, ok := metricValue(t, m, "roam_pubsub_retries_pending", topic); ok {
		t.Errorf("an unrouted event set roam_pubsub_retries_pending of its publisher")
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}

	// A new process finds three parked, then a subscriber drains them.
	m = host.NewMetrics(nil)
	b, err = embedded.Open(embedded.Options{Dir: dir, UnroutedLimit: 3, OnDeliver: m.OnDeliver, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.OpenApps("pub"); err != nil {
		t.Fatal(err)
	}
	check(m, 3, 0)
	err = b.Subscribe([]backend.Subscription{{AppID: "sub", PubSub: "ps", Topic: "t"}},
		func(context.Context, backend.Subscription, *sdk.Event) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	check(m, 0, 0)
	// The drained events reach the subscriber.
	deadline := time.Now().Add(10 * time.Second)
	for {
		// The backend reports an acknowledged delivery by setting this.
		if v, ok := metricValue(t, m, "roam_pubsub_retries_pending", map[string]string{"app": "sub", "pubsub": "ps", "topic": "t"}); ok && v == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the drained events were not delivered")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// The unrouted families keep series for an app's first MaxUnroutedTopics
// topics and count the rest under one: an app that published to a topic
// per order made two series per order, without bound.
func TestMetricsUnroutedTopicsBounded(t *testing.T) {
	ctx := context.Background()
	m := host.NewMetrics(nil)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	b, err := embedded.Open(embedded.Options{Dir: t.TempDir(), OnDeliver: m.OnDeliver, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	const extra = 5
	for i := range host.MaxUnroutedTopics + extra {
		if err := b.Publisher("pub").Publish(ctx, sdk.Message{PubSub: "ps", Topic: fmt.Sprintf("order-%d", i), Data: []byte(`1`)}); err != nil {
			t.Fatal(err)
		}
	}
	families, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if n := len(f.GetMetric()); strings.HasPrefix(f.GetName(), "roam_pubsub_unrouted_") && n != host.MaxUnroutedTopics+1 {
			t.Errorf("%s has %d series, want %d", f.GetName(), n, host.MaxUnroutedTopics+1)
		}
	}
	other := map[string]string{"app": "pub", "pubsub": "ps", "topic": host.OtherTopics}
	if v, ok := metricValue(t, m, "roam_pubsub_unrouted_events", other); !ok || v != extra {
		t.Errorf("unrouted events of the other topics = %v (present %v), want %d", v, ok, extra)
	}
	// A subscriber to one of them drains it from the same series.
	err = b.Subscribe([]backend.Subscription{{AppID: "sub", PubSub: "ps", Topic: fmt.Sprintf("order-%d", host.MaxUnroutedTopics)}},
		func(context.Context, backend.Subscription, *sdk.Event) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := metricValue(t, m, "roam_pubsub_unrouted_events", other); v != extra-1 {
		t.Errorf("after one topic was routed: %v, want %d", v, extra-1)
	}
	if v, _ := metricValue(t, m, "roam_pubsub_unrouted_events", map[string]string{"app": "pub", "pubsub": "ps", "topic": "order-0"}); v != 1 {
		t.Errorf("the first topic's own series = %v, want 1", v)
	}
}
