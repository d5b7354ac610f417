package core

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
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
	// Ack removes the event at pos. Removing an event already removed
	// succeeds: the loop acknowledges an event again when the first
	// removal failed, and after Park and DeadLetter.
	Ack(pos uint64) error
	// DeadLetter publishes r (as r.DeadLettered(topic) makes it) to topic,
	// on the same pub/sub, committed when it returns nil. It need not
	// remove the event at pos: the loop acknowledges it afterwards, so a
	// crash in between duplicates the event rather than losing it, and a
	// removal that fails does not publish the dead letter again.
	DeadLetter(pos uint64, r *Record, topic string) error
	// Park keeps r out of delivery for good (an operator's to inspect), and
	// removes the event at pos, in one step if the storage allows. The loop
	// parks an event whose dead-letter topic would send it back to a topic
	// it already failed on.
	Park(pos uint64, r *Record) error
}

// Loop delivers one subscription's queue, head first. It is the whole retry
// policy of the in-process backends:
//
//   - a nil error from Deliver acknowledges and removes the event;
//   - any other error retries it after Policy.Backoff(failures);
//   - after Policy.MaxAttempts deliveries, or at once for an error with code
//     InvalidArgument, the event moves to DeadLetterTopic, unless that is a
//     topic the event already failed on (the subscription's own, or one
//     that dead-lettered it here: two topics naming each other as dead-letter
//     topics passed an event back and forth for ever); it is parked then.
//
// A handled event whose removal from the queue fails (a full disk) is not
// delivered again: the loop retries the removal alone, with a growing wait.
// Redelivering it would call the handler again every storageRetry for as
// long as the disk stays full.
//
// Delivery is strictly in queue order: a failing event holds back the ones
// behind it (head-of-line blocking) until it succeeds or is dead-lettered.
// That is the price of per-subscription ordering; the retry budget bounds it.
// Failure counts live in memory; a queue that can tell the failures of an
// earlier process (attempts it did not survive) gives them as Prior.
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
	// Prior, if set, returns the failed attempts of the event at pos
	// before this process (nil: none, so a restart grants a fresh budget).
	// They count towards Policy.MaxAttempts as this process's do; an event
	// that has used them all is dead-lettered without another attempt.
	Prior func(pos uint64, rec *Record) int
}

// storageRetry is the first wait before retrying a failed storage
// operation; it doubles after each further failure, up to maxStorageRetry.
const (
	storageRetry    = 200 * time.Millisecond
	maxStorageRetry = 5 * time.Second
)

// storageWait returns the wait after the n-th consecutive storage failure
// (n from 1).
func storageWait(n int) time.Duration {
	d := storageRetry
	for i := 1; i < n && d < maxStorageRetry; i++ {
		d *= 2
	}
	return min(d, maxStorageRetry)
}

// Run delivers until Stop is closed.
func (l *Loop) Run() {
	fails := 0
	for !l.stopped() {
		pos, rec, ok, err := l.Queue.Head()
		if err != nil {
			if l.stopped() {
				return
			}
			fails++
			l.Log.Error("pubsub: reading subscription queue failed", "app", l.Sub.AppID, "pubsub", l.Sub.PubSub, "topic", l.Sub.Topic, "err", err)
			if !l.wait(storageWait(fails)) {
				return
			}
			continue
		}
		fails = 0
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

// handle delivers the event at pos until it is acknowledged, dead-lettered
// or parked. It returns false when the loop must stop.
func (l *Loop) handle(pos uint64, rec *Record) bool {
	failures := 0
	if l.Prior != nil {
		if failures = l.Prior(pos, rec); failures >= l.Policy.MaxAttempts {
			return l.deadLetter(pos, rec, failures, fmt.Errorf("the process ended while the event was being handled, in %d attempts (the subscription allows %d): not attempted again", failures, l.Policy.MaxAttempts))
		}
	}
	for {
		err := l.call(rec)
		if err == nil {
			if !l.retryStorage("acknowledging event", rec, func() error { return l.Queue.Ack(pos) }) {
				// Stopping: the event stays queued and is delivered
				// again at the next start, which at-least-once allows.
				return false
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
			return l.deadLetter(pos, rec, failures, err)
		}
		l.report(OutcomeRetry)
		l.Log.Debug("pubsub: handler failed, will retry", "app", l.Sub.AppID, "topic", l.Sub.Topic, "id", rec.ID, "attempt", failures, "err", err)
		if !l.wait(l.Policy.Backoff(failures)) {
			return false
		}
	}
}

// deadLetter moves the event at pos, which failed for the last time with
// err, to the dead-letter topic, or parks it when that would loop. It
// returns false when the loop must stop.
func (l *Loop) deadLetter(pos uint64, rec *Record, attempts int, err error) bool {
	if l.DeadLetterTopic == l.Sub.Topic || rec.Loops(l.DeadLetterTopic) {
		l.Log.Error("pubsub: event failed on a topic whose dead-letter topic it already failed on; parked, not delivered again",
			"app", l.Sub.AppID, "pubsub", l.Sub.PubSub, "topic", l.Sub.Topic, "id", rec.ID, "attempts", attempts,
			"deadletter", l.DeadLetterTopic, "failed_on", strings.Join(append(slices.Clone(rec.DeadLetters), rec.Topic), " -> "), "err", err)
		if !l.retryStorage("parking event", rec, func() error { return l.Queue.Park(pos, rec) }) {
			return false
		}
	} else {
		l.Log.Warn("pubsub: dead-lettering event", "app", l.Sub.AppID, "pubsub", l.Sub.PubSub, "topic", l.Sub.Topic,
			"id", rec.ID, "attempts", attempts, "deadletter", l.DeadLetterTopic, "err", err)
		if !l.retryStorage("dead-lettering event", rec, func() error { return l.Queue.DeadLetter(pos, rec, l.DeadLetterTopic) }) {
			return false
		}
	}
	// Published (or parked): only the removal is left, and it is retried
	// alone, so a failing removal does not publish the dead letter again.
	if !l.retryStorage("removing dead-lettered event", rec, func() error { return l.Queue.Ack(pos) }) {
		return false
	}
	l.report(OutcomeDeadLetter)
	return true
}

// retryStorage runs op until it succeeds, waiting storageWait between
// failures. It returns false if the loop must stop first.
func (l *Loop) retryStorage(what string, rec *Record, op func() error) bool {
	for n := 1; ; n++ {
		err := op()
		if err == nil {
			return true
		}
		if l.stopped() {
			return false
		}
		wait := storageWait(n)
		l.Log.Error("pubsub: "+what+" failed; retrying", "app", l.Sub.AppID, "pubsub", l.Sub.PubSub, "topic", l.Sub.Topic,
			"id", rec.ID, "failures", n, "retry_in", wait, "err", err)
		if !l.wait(wait) {
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
// cancels their context and waits for them up to grace again. Every
// backend's Close ends its deliveries this way. A handler that ignores its
// context is left running after that, rather than holding Close, and with
// it the host's shutdown, for ever: its event was not acknowledged, so a
// durable backend delivers it again at its next start. It reports whether
// every delivery returned.
func DrainOrCancel(wg *sync.WaitGroup, grace time.Duration, cancel func(), log *slog.Logger, backendName string) bool {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-t.C:
	}
	if log != nil {
		log.Warn(backendName+": deliveries still running after close grace period; cancelling them", "grace", grace)
	}
	cancel()
	t.Reset(grace)
	select {
	case <-done:
		return true
	case <-t.C:
	}
	if log != nil {
		log.Error(backendName+": deliveries ignored their cancelled context; closing without them (their events are not acknowledged)", "waited", 2*grace)
	}
	return false
}
