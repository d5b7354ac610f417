package host

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/roam-dev/roam/abi"
	"github.com/roam-dev/roam/backend"
)

// Metrics are the host's Prometheus collectors, on a registry of their own so
// that two hosts in one process (tests) never collide. The native and the
// edge host register exactly these, under the same names and labels (the
// edge host adds its pool's roam_edge_* families): a dashboard of one works
// for the other.
type Metrics struct {
	Registry   *prometheus.Registry
	requests   *prometheus.CounterVec
	latency    *prometheus.HistogramVec
	deliveries *prometheus.CounterVec
	inFlight   *prometheus.GaugeVec
	retrying   *prometheus.GaugeVec
	unrouted   *prometheus.GaugeVec
	unDropped  *prometheus.CounterVec

	// unroutedTopics are the topics each (app, pubsub) has a series of its
	// own in the unrouted families, and unroutedPubSubs how many pubsubs of
	// each app have them; see unroutedLabels.
	mu              sync.Mutex
	unroutedTopics  map[[2]string]map[string]bool
	unroutedPubSubs map[string]int
}

// MaxUnroutedTopics is how many topics of one app and pub/sub get series of
// their own in the unrouted families; the events of the topics after them
// are counted under the topic OtherTopics.
const MaxUnroutedTopics = 100

// MaxUnroutedPubSubs is how many pub/sub names of one app get series of
// their own in the unrouted families; the events published to the names
// after them are counted under pubsub and topic OtherTopics.
const MaxUnroutedPubSubs = 10

// OtherTopics is the topic label of the unrouted events of an app's topics
// beyond MaxUnroutedTopics, and the pubsub and topic labels of those of its
// pub/sub names beyond MaxUnroutedPubSubs.
const OtherTopics = "(other)"

// unroutedLabels returns the pubsub and topic labels of sub's unrouted
// events. Those topics are whatever an app publishes to with no subscriber
// here, not the subscriptions it declares: an app that published to a
// topic per order made two series per order, without bound, in every
// scrape. The pub/sub names are bounded too: the embedded backend takes any
// name, and the state sync API's publish takes it from the URL, so that a
// client posting to /v1/apps/A/publish/{random}/t made series, and an entry
// here, per request. Once a pubsub or topic has a label it keeps it, so
// that the gauge's decrements meet its increments.
func (m *Metrics) unroutedLabels(sub backend.Subscription) (pubsub, topic string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := [2]string{sub.AppID, sub.PubSub}
	topics, ok := m.unroutedTopics[k]
	if !ok {
		if m.unroutedPubSubs[sub.AppID] >= MaxUnroutedPubSubs {
			return OtherTopics, OtherTopics
		}
		if m.unroutedTopics == nil {
			m.unroutedTopics = map[[2]string]map[string]bool{}
			m.unroutedPubSubs = map[string]int{}
		}
		topics = map[string]bool{}
		m.unroutedTopics[k] = topics
		m.unroutedPubSubs[sub.AppID]++
	}
	switch {
	case topics[sub.Topic]:
	case len(topics) < MaxUnroutedTopics:
		topics[sub.Topic] = true
	default:
		return sub.PubSub, OtherTopics
	}
	return sub.PubSub, sub.Topic
}

// NewMetrics registers the host collectors plus the Go and process ones.
// logDropped reports the log pipeline's drop count.
func NewMetrics(logDropped func() uint64) *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "roam_requests_total", Help: "Method calls by app, method and result code.",
		}, []string{"app", "method", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "roam_request_duration_seconds", Help: "Method call latency by app and method.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 10},
		}, []string{"app", "method"}),
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "roam_pubsub_deliveries_total", Help: "Event deliveries by app, pubsub, topic and outcome: ok, failed (will be retried), rejected (InvalidArgument: dead-lettered at once), deadletter (moved to the dead-letter topic).",
		}, []string{"app", "pubsub", "topic", "outcome"}),
		inFlight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "roam_pubsub_deliveries_in_flight", Help: "Event deliveries running in an app's handler, by app, pubsub and topic.",
		}, []string{"app", "pubsub", "topic"}),
		retrying: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "roam_pubsub_retries_pending", Help: "Events whose last delivery failed and that wait to be delivered again, by app, pubsub and topic. In-process backends deliver a subscription in order, so it is 0 or 1 there; on Dapr it stays at 1 after retries that the sidecar exhausts, until the subscription's next event is acknowledged.",
		}, []string{"app", "pubsub", "topic"}),
		unrouted: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "roam_pubsub_unrouted_events", Help: "Events an app published while no subscription in this process took their topic, kept in the publishing app's unrouted log until a subscriber for the topic starts in this process, by publishing app, pubsub and topic (the topics of an app and pubsub beyond the first 100 as topic=\"(other)\", and an app's pubsubs beyond the first 10 as pubsub=\"(other)\"; embedded backend). Routing is per process: a subscriber in another process sharing the data directory (--apps) does not receive them.",
		}, []string{"app", "pubsub", "topic"}),
		unDropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "roam_pubsub_unrouted_dropped_total", Help: "Unrouted events dropped, oldest first, to keep a topic's unrouted log within its limit (10,000 by default), by publishing app, pubsub and topic (beyond 100 topics, topic=\"(other)\"; beyond 10 pubsubs, pubsub=\"(other)\"; embedded backend).",
		}, []string{"app", "pubsub", "topic"}),
	}
	m.Registry.MustRegister(m.requests, m.latency, m.deliveries, m.inFlight, m.retrying, m.unrouted, m.unDropped,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if logDropped != nil {
		m.Registry.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "roam_log_records_dropped_total", Help: "Log records dropped because the log pipeline was full.",
		}, func() float64 { return float64(logDropped()) }))
	}
	return m
}

// methodMetrics caches the label lookups of one (app, method) so that the hot
// path does no map work beyond a slice index.
type methodMetrics struct {
	latency prometheus.Observer
	byCode  [8]prometheus.Counter
}

func (m *Metrics) forMethod(app, method string) *methodMetrics {
	mm := &methodMetrics{latency: m.latency.WithLabelValues(app, method)}
	for c := range mm.byCode {
		mm.byCode[c] = m.requests.WithLabelValues(app, method, abi.Code(c).String())
	}
	return mm
}

func (mm *methodMetrics) observe(start time.Time, c abi.Code) {
	mm.latency.Observe(time.Since(start).Seconds())
	if int(c) >= len(mm.byCode) {
		c = abi.Internal
	}
	mm.byCode[c].Inc()
}

// Delivered counts one delivery outcome.
func (m *Metrics) Delivered(sub backend.Subscription, outcome string) {
	m.deliveries.WithLabelValues(sub.AppID, sub.PubSub, sub.Topic, outcome).Inc()
}

// OnDeliver is the backend's delivery hook (hostbackend.Config.OnDeliver)
// of both hosts: the server counts what its handlers return; this counts
// what only the backend knows, the events it moved to a dead-letter topic,
// and tracks the retries it has pending ("ok", "retry", "deadletter").
//
// It also tracks the embedded backend's unrouted logs, one call per event,
// with sub naming the publishing app: "unrouted" (parked, or found parked
// at start), "unrouted-routed" (moved to subscriptions), "unrouted-dropped"
// (dropped at the log's limit); see embedded.OutcomeUnrouted. They pass
// through this hook, which both hosts already hand their backend, so that
// the families are the same on both.
func (m *Metrics) OnDeliver(sub backend.Subscription, outcome string) {
	switch outcome {
	case "unrouted":
		pubsub, topic := m.unroutedLabels(sub)
		m.unrouted.WithLabelValues(sub.AppID, pubsub, topic).Inc()
		// The counter starts at 0 with its topic's first parked event,
		// so that rate() and alerts see it before the first drop.
		m.unDropped.WithLabelValues(sub.AppID, pubsub, topic)
		return
	case "unrouted-routed":
		pubsub, topic := m.unroutedLabels(sub)
		m.unrouted.WithLabelValues(sub.AppID, pubsub, topic).Dec()
		return
	case "unrouted-dropped":
		pubsub, topic := m.unroutedLabels(sub)
		m.unrouted.WithLabelValues(sub.AppID, pubsub, topic).Dec()
		m.unDropped.WithLabelValues(sub.AppID, pubsub, topic).Inc()
		return
	}
	g := m.retrying.WithLabelValues(sub.AppID, sub.PubSub, sub.Topic)
	switch outcome {
	case "retry":
		g.Set(1)
	case "deadletter":
		g.Set(0)
		m.Delivered(sub, outcome)
	default:
		g.Set(0)
	}
}
