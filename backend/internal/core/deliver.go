package core

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/roam-dev/roam/backend"
	"github.com/roam-dev/roam/sdk"
)

// Queue is one subscription's FIFO of pending events, as the delivery loop
// sees it. Positions identify queued events and increase in publish order.
type Queue interface {
	// Head returns the oldest pending event and its position; ok is false
	// when the queue is empty.
	Head() (pos uint64, r *Record, ok bool, err error)
	// Ack removes the event at pos.
	Ack(pos uint64) error
	// DeadLetter publishes r to topic (same pub/sub) and then removes the
	// event at pos. The publish must be committed before the removal, so a
	// crash in between duplicates the event rather than losing it.
	DeadLetter(pos uint64, r *Record, topic string) error
}

// Loop delivers one subscription's queue, head first. It is the whole retry
// policy of the in-process backends:
//
//   - a nil error from Deliver acknowledges and removes the event;
//   - any other error retries it after Policy.Backoff(failures);
//   - after Policy.MaxAttempts deliveries, or at once for an error with code
//     InvalidArgument, the event moves to DeadLetterTopic.
//
// Delivery is strictly in queue order: a failing event holds back the ones
// behind it (head-of-line blocking) until it succeeds or is dead-lettered.
// That is the price of per-subscription ordering; the retry budget bounds it.
// Failure counts live in memory, so a restart grants a fresh budget.
type Loop struct {
	Sub             backend.Subscription
	DeadLetterTopic string // effective dead-letter topic of Sub
	Queue           Queue
	Deliver         backend.Deliverer
	Policy          backend.RetryPolicy
	// Wake receives a value whenever events may have been appended.
	Wake <-chan struct{}
	// Stop is closed when the backend closes; the loop returns as soon as no
	// delivery is in flight, leaving unacknowledged events queued.
	Stop <-chan struct{}
	// Ctx is handed to Deliver.
	Ctx       context.Context
	OnDeliver func(sub backend.Subscription, outcome string)
	Log       *slog.Logger
}

// storageRetry is the wait before retrying a failed storage operation.
const storageRetry = 200 * time.Millisecond

// Run delivers until Stop is closed.
func (l *Loop) Run() {
	for !l.stopped() {
		pos, rec, ok, err := l.Queue.Head()
		if err != nil {
			if l.stopped() {
				return
			}
			l.Log.Error("pubsub: reading subscription queue failed", "app", l.Sub.AppID, "pubsub", l.Sub.PubSub, "topic", l.Sub.Topic, "err", err)
			if !l.wait(storageRetry) {
				return
			}
			continue
		}
		if !ok {
			select {
			case <-l.Wake:
				continue
			case <-l.Stop:
				return
			}
		}
		if !l.handle(pos, rec) {
			return
		}
	}
}

// handle delivers the event at pos until it is acknowledged or
// dead-lettered. It returns false when the loop must stop.
func (l *Loop) handle(pos uint64, rec *Record) bool {
	failures := 0
	for {
		err := l.call(rec)
		if err == nil {
			if aerr := l.Queue.Ack(pos); aerr != nil {
				// The event stays queued and is delivered again: a
				// duplicate, which at-least-once allows.
				if l.stopped() {
					return false
				}
				l.Log.Error("pubsub: acknowledging event failed", "app", l.Sub.AppID, "topic", l.Sub.Topic, "id", rec.ID, "err", aerr)
				return l.wait(storageRetry)
			}
			l.report(OutcomeOK)
			return true
		}
		if l.stopped() {
			// Shutting down: the failure may be our own cancellation.
			// Leave the event queued for the next start.
			return false
		}
		failures++
		if sdk.IsCode(err, sdk.InvalidArgument) || failures >= l.Policy.MaxAttempts {
			l.Log.Warn("pubsub: dead-lettering event", "app", l.Sub.AppID, "pubsub", l.Sub.PubSub, "topic", l.Sub.Topic,
				"id", rec.ID, "attempts", failures, "deadletter", l.DeadLetterTopic, "err", err)
			for {
				derr := l.Queue.DeadLetter(pos, rec, l.DeadLetterTopic)
				if derr == nil {
					break
				}
				if l.stopped() {
					return false
				}
				l.Log.Error("pubsub: dead-lettering event failed", "app", l.Sub.AppID, "topic", l.Sub.Topic, "id", rec.ID, "err", derr)
				if !l.wait(storageRetry) {
					return false
				}
			}
			l.report(OutcomeDeadLetter)
			return true
		}
		l.report(OutcomeRetry)
		l.Log.Debug("pubsub: handler failed, will retry", "app", l.Sub.AppID, "topic", l.Sub.Topic, "id", rec.ID, "attempt", failures, "err", err)
		if !l.wait(l.Policy.Backoff(failures)) {
			return false
		}
	}
}

func (l *Loop) call(rec *Record) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = sdk.Errorf(sdk.Internal, "event handler panicked: %v", p)
		}
	}()
	return l.Deliver(l.Ctx, l.Sub, rec.Event())
}

func (l *Loop) report(outcome string) {
	if l.OnDeliver != nil {
		l.OnDeliver(l.Sub, outcome)
	}
}

func (l *Loop) stopped() bool {
	select {
	case <-l.Stop:
		return true
	default:
		return false
	}
}

// wait sleeps for d; it returns false if Stop closed first.
func (l *Loop) wait(d time.Duration) bool {
	if d <= 0 {
		return !l.stopped()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-l.Stop:
		return false
	}
}

// Wake does a non-blocking send on a wake channel of capacity one.
func Wake(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// DeadLetterTopic returns the effective dead-letter topic of sub.
func DeadLetterTopic(sub backend.Subscription, def string) string {
	if sub.DeadLetterTopic != "" {
		return sub.DeadLetterTopic
	}
	if def != "" {
		return def
	}
	return backend.DefaultDeadLetterTopic
}

// CheckSubscriptions validates a Subscribe call: well-formed subscriptions,
// no duplicates within subs, and none already registered (as reported by
// registered).
func CheckSubscriptions(subs []backend.Subscription, d backend.Deliverer, registered func(backend.Subscription) bool) error {
	if d == nil {
		return sdk.NewError(sdk.InvalidArgument, "subscribe: nil deliverer")
	}
	seen := map[[3]string]bool{}
	for _, s := range subs {
		if err := sdk.ValidAppID(s.AppID); err != nil {
			return err
		}
		if s.PubSub == "" || s.Topic == "" {
			return sdk.Errorf(sdk.InvalidArgument, "subscribe %s: pubsub and topic are required", s.AppID)
		}
		if err := CheckUTF8Names("subscribe "+s.AppID, s.PubSub, s.Topic, s.DeadLetterTopic); err != nil {
			return err
		}
		if err := CheckPubSubName(s.PubSub); err != nil {
			return err
		}
		k := [3]string{s.AppID, s.PubSub, s.Topic}
		if seen[k] || registered(s) {
			return sdk.Errorf(sdk.FailedPrecondition, "app %s already subscribes to %s/%s", s.AppID, s.PubSub, s.Topic)
		}
		seen[k] = true
	}
	return nil
}

// DrainOrCancel waits for in-flight deliveries (wg) for up to grace, then
// cancels their context and waits for them to return. Every backend's Close
// ends its deliveries this way.
func DrainOrCancel(wg *sync.WaitGroup, grace time.Duration, cancel func(), log *slog.Logger, backendName string) {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		if log != nil {
			log.Warn(backendName+": deliveries still running after close grace period; cancelling them", "grace", grace)
		}
		cancel()
		<-done
	}
}
