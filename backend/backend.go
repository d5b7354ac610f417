// Package backend is the service-provider interface between Roam hosts and
// the engines behind an app's capabilities. A host (native, edge, browser glue)
// binds each app's sdk.Env to one Backend; the app never sees which.
//
// Implementations live in subpackages: embedded (bbolt on local disk, the
// durable default), memory (for unit tests), and dapr (a real sidecar). Every
// implementation passes the same suites in package conformance.
package backend

import (
	"context"
	"net/http"
	"time"

	"github.com/roam-dev/roam/sdk"
)

// Backend provides the capabilities of the apps a host runs. Every method that
// takes an appID returns a capability scoped to that app: state keys of one
// app are invisible to another, as with Dapr's key prefix.
type Backend interface {
	// State returns the named state store of appID.
	State(appID, store string) sdk.State
	// Publisher returns a publisher whose events carry appID as their source.
	Publisher(appID string) sdk.Publisher
	// Subscribe starts durable delivery of subs to d. It returns once the
	// subscriptions are registered; deliveries run until Close.
	Subscribe(subs []Subscription, d Deliverer) error
	// Invoker reaches apps that do not run in this host's process. The host
	// calls its own apps directly and uses this for everything else.
	Invoker(appID string) sdk.Invoker
	Config(appID string) sdk.Config
	Secrets(appID string) sdk.Secrets
	// Name is a short label for logs and metrics ("embedded", "dapr", ...).
	Name() string
	// Close stops deliveries, waiting for those in flight, and releases
	// resources. Undelivered events stay queued for the next start.
	Close() error
}

// Subscription is one app's durable interest in a topic.
type Subscription struct {
	AppID  string
	PubSub string
	Topic  string
	// DeadLetterTopic overrides the backend's default dead-letter topic.
	DeadLetterTopic string
}

// Deliverer hands an event to the subscribing app. A nil error acknowledges
// it; any other error asks for a retry, except code InvalidArgument, which
// dead-letters the event at once.
type Deliverer func(ctx context.Context, sub Subscription, e *sdk.Event) error

// Announcer is implemented by backends whose apps in other processes find
// each other through the backend (the embedded backend's local registry).
// A host announces the apps it serves and the base URL that reaches them.
type Announcer interface {
	Announce(appIDs []string, baseURL string) (withdraw func(), err error)
}

// AppChannel is implemented by backends whose engine calls into the host:
// a Dapr sidecar invokes methods and delivers events over the host's port.
// The host serves its routes through AppHandler, which adds the engine's
// routes (and its authentication) in front of the host's own, and accepts
// HTTP/2 without TLS (h2c) beside HTTP/1.1, for engines that call over gRPC.
type AppChannel interface {
	AppHandler(next http.Handler) http.Handler
}

// RetryPolicy governs redelivery of events whose handler fails.
type RetryPolicy struct {
	// MaxAttempts is the number of deliveries, the first included, before an
	// event is dead-lettered.
	MaxAttempts int
	// InitialBackoff is the wait after the first failure; it doubles after
	// each further one, up to MaxBackoff.
	InitialBackoff time.Duration
	MaxBackoff     time.Duration
}

// DefaultRetryPolicy: 5 attempts over about 3 seconds.
var DefaultRetryPolicy = RetryPolicy{MaxAttempts: 5, InitialBackoff: 200 * time.Millisecond, MaxBackoff: 2 * time.Second}

// Backoff returns the wait before delivery attempt n+1 after n failures.
func (p RetryPolicy) Backoff(failures int) time.Duration {
	d := p.InitialBackoff
	for i := 1; i < failures && d < p.MaxBackoff; i++ {
		d *= 2
	}
	if d > p.MaxBackoff {
		d = p.MaxBackoff
	}
	return d
}

// DefaultDeadLetterTopic is where events go when their subscription names no
// dead-letter topic of its own.
const DefaultDeadLetterTopic = "deadletter"
