package sdk

import (
	"context"
	"sync"
	"time"
)

// lazyDeadline is a context with a deadline whose timer is created only if
// someone waits on Done. context.WithDeadline arms a runtime timer at once,
// which in a wasm guest costs more than a small request's whole handling
// (about 19 µs of a 32 µs echo, measured under wazero); most handlers never
// select on Done, and the host enforces the deadline regardless.
type lazyDeadline struct {
	context.Context // the parent: values and cancellation
	deadline        time.Time

	mu      sync.Mutex
	timed   context.Context // armed by the first Done
	cancel  context.CancelFunc
	stopped bool
}

func withLazyDeadline(parent context.Context, d time.Time) (context.Context, context.CancelFunc) {
	c := &lazyDeadline{Context: parent, deadline: d}
	return c, c.stop
}

var closedChan = func() chan struct{} { ch := make(chan struct{}); close(ch); return ch }()

func (c *lazyDeadline) stop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stopped = true // nobody may arm a timer after the call returned
	if c.cancel != nil {
		c.cancel()
	}
}

func (c *lazyDeadline) Deadline() (time.Time, bool) { return c.deadline, true }

func (c *lazyDeadline) Done() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.timed == nil {
		if c.stopped {
			return closedChan
		}
		c.timed, c.cancel = context.WithDeadline(c.Context, c.deadline)
	}
	return c.timed.Done()
}

func (c *lazyDeadline) Err() error {
	c.mu.Lock()
	timed := c.timed
	c.mu.Unlock()
	if timed != nil {
		return timed.Err()
	}
	if err := c.Context.Err(); err != nil {
		return err
	}
	if !time.Now().Before(c.deadline) {
		return context.DeadlineExceeded
	}
	return nil
}

// callContext is a wasm guest call's context: its request id, its trace
// context and its lazy deadline in one allocation, where WithRequestID,
// WithTrace and withLazyDeadline would make five (each value boxed, each
// layer its own). It behaves as those layers would.
type callContext struct {
	lazyDeadline
	requestID  string
	trace      TraceContext
	noDeadline bool
}

// newCallContext returns the context of a guest call. A zero deadline means
// none. Call stop when the call returns.
func newCallContext(requestID string, tc TraceContext, deadline time.Time) *callContext {
	c := &callContext{requestID: requestID, trace: tc, noDeadline: deadline.IsZero()}
	c.Context, c.deadline = context.Background(), deadline
	return c
}

func (c *callContext) Deadline() (time.Time, bool) {
	if c.noDeadline {
		return time.Time{}, false
	}
	return c.deadline, true
}

func (c *callContext) Done() <-chan struct{} {
	if c.noDeadline {
		return c.Context.Done()
	}
	return c.lazyDeadline.Done()
}

func (c *callContext) Err() error {
	if c.noDeadline {
		return c.Context.Err()
	}
	return c.lazyDeadline.Err()
}

func (c *callContext) Value(key any) any {
	switch key.(type) {
	case requestIDKey:
		if c.requestID != "" {
			return c.requestID
		}
	case traceKey:
		if c.trace != (TraceContext{}) {
			return c.trace
		}
	}
	return c.Context.Value(key)
}
