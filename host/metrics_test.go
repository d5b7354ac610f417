package host_test

import (
	"context"
	"io"
	"log/slog"
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
