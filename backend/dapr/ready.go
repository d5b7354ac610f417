package dapr

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/roam-dev/roam/sdk"
)

// Readiness beside a sidecar.
//
// A host whose sidecar is gone (killed, restarting) or hung (stopped, out
// of CPU) can serve nothing that touches state, events or other apps: every
// such call fails with 503, or with 504 at its deadline. Its /readyz says so
// (503, naming the sidecar), so that Kubernetes takes the pod out of its
// Services until the sidecar answers again, and puts it back by itself
// then: no restart of the host is needed, as its gRPC connection to the
// sidecar reconnects on its own. /healthz (liveness) is left alone:
// restarting the host would not bring its sidecar back, and would lose
// the deliveries in flight.
//
// The check runs when /readyz is asked, and is cached for readyCacheFor, so
// that many probes cost one call to the sidecar. It is a call to the
// sidecar's metadata API over the protocol the backend uses (the same
// connection as state and pub/sub), bounded by readyProbeTimeout: under a
// probe's usual one-second timeout, so that a hung sidecar shows as not
// ready rather than as a probe that timed out. The host's own readiness
// (503 while it shuts down) still applies: the check only adds to it.
//
// A Redis (or other component) behind a live sidecar that is down does not
// make the host unready: it is shared by every replica, and failing them all
// would turn clear 503s into a Service with no endpoints. Its failures are
// the calls' own 503s ("the component behind the sidecar is unreachable").

const (
	readyProbeTimeout = 800 * time.Millisecond
	readyCacheFor     = time.Second
)

type readiness struct {
	mu      sync.Mutex
	at      time.Time     // of the last result
	err     error         // the last result
	probing chan struct{} // closed when the probe in flight ends; nil: none
	down    bool          // the last result logged was a failure
}

// SidecarReady reports whether the sidecar answers now: nil, or an
// Unavailable (or DeadlineExceeded) error that names it. It serves the
// host's /readyz (see AppHandler).
func (b *Backend) SidecarReady(ctx context.Context) error {
	r := &b.ready
	for {
		r.mu.Lock()
		if !r.at.IsZero() && time.Since(r.at) < readyCacheFor {
			err := r.err
			r.mu.Unlock()
			return err
		}
		if r.probing == nil {
			done := make(chan struct{})
			r.probing = done
			r.mu.Unlock()
			err := b.probeReady()
			r.mu.Lock()
			r.at, r.err, r.probing = time.Now(), err, nil
			b.logReadiness(err)
			r.mu.Unlock()
			close(done)
			return err
		}
		wait := r.probing
		r.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			return sdk.Errorf(sdk.Unavailable, "readiness of the sidecar: %v", ctx.Err())
		}
	}
}

// probeReady asks the sidecar for its metadata, once.
func (b *Backend) probeReady() error {
	if b.isClosed() {
		return closedErr()
	}
	ctx, cancel := context.WithTimeout(context.Background(), readyProbeTimeout)
	defer cancel()
	_, err := b.sc.metadata(ctx)
	return err
}

// logReadiness logs a change of the sidecar's readiness. r.mu is held.
func (b *Backend) logReadiness(err error) {
	r := &b.ready
	switch {
	case err != nil && !r.down:
		r.down = true
		b.log.Warn("dapr: the sidecar does not answer; /readyz answers 503 until it does", "sidecar", b.sidecarAddr(), "err", err)
	case err == nil && r.down:
		r.down = false
		b.log.Info("dapr: the sidecar answers again; /readyz is back to the host's own readiness", "sidecar", b.sidecarAddr())
	}
}

// sidecarAddr is the address of the API the backend calls.
func (b *Backend) sidecarAddr() string {
	if b.sc != nil && b.sc.protocol() == "grpc" {
		return b.grpcAddr
	}
	return b.httpBase
}

// serveReady answers GET /readyz: 503 while the sidecar does not answer,
// else whatever the host answers.
func (h *appChannel) serveReady(w http.ResponseWriter, r *http.Request) {
	if err := h.b.SidecarReady(r.Context()); err != nil {
		writeJSON(w, http.StatusServiceUnavailable, errorBody(sdk.Unavailable, "not ready: "+err.Error()))
		return
	}
	h.next.ServeHTTP(w, r)
}
