package host

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// AsyncHandler is a bounded, non-blocking slog pipeline. Handle copies the
// record into a queue of at most capacity records and returns; one goroutine
// writes the queue, in order, to the underlying handler. When the queue is
// full the record is dropped and counted, so a slow log sink never stalls a
// request.
//
// The queue grows with what it holds and gives its memory back once it has
// drained (asyncIdle): a queue of 4,096 records allocated up front was 1.2 MB, resident on
// every host once that many records had gone through it (BENCHMARKS.md,
// "Native idle RSS, session 9").
type AsyncHandler struct {
	next    slog.Handler
	q       *asyncQueue
	dropped *atomic.Uint64
}

// Queue sizes, in records (an asyncRecord is about 300 bytes).
const (
	// asyncMinSlots is the queue's first allocation, made at the first
	// record.
	asyncMinSlots = 16
	// asyncKeep is the largest backing array kept once the queue is empty;
	// a larger one, left by a burst, is dropped once the queue has been
	// empty for asyncIdle.
	asyncKeep = 64
)

// asyncIdle is how long the queue stays empty before a large backing array
// is dropped.
const asyncIdle = time.Second

// asyncQueue is a FIFO ring of records that grows by doubling up to max.
type asyncQueue struct {
	mu     sync.Mutex
	buf    []asyncRecord // the ring: n records from head, wrapping around
	head   int
	n      int
	max    int
	closed bool

	wake chan struct{} // capacity 1: the queue became non-empty, or closed
	done chan struct{} // closed when the writer has returned
	once sync.Once
}

type asyncRecord struct {
	h slog.Handler
	r slog.Record
}

// NewAsyncHandler starts a pipeline of the given capacity in front of next.
func NewAsyncHandler(next slog.Handler, capacity int) *AsyncHandler {
	if capacity <= 0 {
		capacity = 1024
	}
	q := &asyncQueue{max: capacity, wake: make(chan struct{}, 1), done: make(chan struct{})}
	go q.run()
	return &AsyncHandler{next: next, q: q, dropped: new(atomic.Uint64)}
}

// push queues r for h, and reports false when the queue is full or closed.
func (q *asyncQueue) push(h slog.Handler, r slog.Record) bool {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return false
	}
	if q.n == len(q.buf) {
		if q.n >= q.max {
			q.mu.Unlock()
			return false
		}
		q.grow()
	}
	i := q.head + q.n
	if i >= len(q.buf) {
		i -= len(q.buf)
	}
	q.buf[i] = asyncRecord{h: h, r: r.Clone()}
	q.n++
	wasEmpty := q.n == 1
	q.mu.Unlock()
	if wasEmpty {
		// The writer waits only after seeing the queue empty, so a wake
		// at each empty-to-non-empty change is enough; a stale one makes
		// it look once more.
		select {
		case q.wake <- struct{}{}:
		default:
		}
	}
	return true
}

// grow doubles the ring (from asyncMinSlots, up to max), its records
// moved to the front in order. The caller holds mu.
func (q *asyncQueue) grow() {
	size := min(max(2*len(q.buf), asyncMinSlots), q.max)
	buf := make([]asyncRecord, size)
	k := copy(buf, q.buf[q.head:])
	copy(buf[k:], q.buf[:q.head])
	q.buf, q.head = buf, 0
}

// pop takes the oldest record. When the queue is empty it returns false,
// with closed true once Close has been called, and large true when its
// backing array is larger than asyncKeep.
func (q *asyncQueue) pop() (ar asyncRecord, ok, closed, large bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.n == 0 {
		return asyncRecord{}, false, q.closed, len(q.buf) > asyncKeep
	}
	ar = q.buf[q.head]
	q.buf[q.head] = asyncRecord{} // let the record's values go
	q.head++
	if q.head == len(q.buf) {
		q.head = 0
	}
	q.n--
	if q.n == 0 {
		q.head = 0
	}
	return ar, true, false, false
}

// shrink drops a backing array larger than asyncKeep if the queue is
// (still) empty; the next record allocates asyncMinSlots again.
func (q *asyncQueue) shrink() {
	q.mu.Lock()
	if q.n == 0 && len(q.buf) > asyncKeep {
		q.buf, q.head = nil, 0
	}
	q.mu.Unlock()
}

// run is the writer: it writes the queue to the records' handlers until the
// queue is closed and empty. A backing array left large by a burst is
// dropped once the queue has stayed empty for asyncIdle; dropping it at
// every drain instead made a queue that a busy host empties and refills
// reallocate it (up to 1.2 MB, and the copies of its growth) each time.
func (q *asyncQueue) run() {
	defer close(q.done)
	var idle *time.Timer
	defer func() {
		if idle != nil {
			idle.Stop()
		}
	}()
	for {
		ar, ok, closed, large := q.pop()
		switch {
		case ok:
			_ = ar.h.Handle(context.Background(), ar.r)
		case closed:
			return
		case !large:
			<-q.wake
		default:
			if idle == nil {
				idle = time.NewTimer(asyncIdle)
			} else {
				idle.Reset(asyncIdle)
			}
			select {
			case <-q.wake:
			case <-idle.C:
				q.shrink()
			}
		}
	}
}

// Enabled reports whether the underlying handler wants the level.
func (h *AsyncHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.next.Enabled(ctx, l)
}

// Handle queues the record, or drops and counts it when the queue is full
// or the pipeline closed.
func (h *AsyncHandler) Handle(_ context.Context, r slog.Record) error {
	if !h.q.push(h.next, r) {
		h.dropped.Add(1)
	}
	return nil
}

// WithAttrs returns a handler sharing this pipeline.
func (h *AsyncHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &AsyncHandler{next: h.next.WithAttrs(as), q: h.q, dropped: h.dropped}
}

// WithGroup returns a handler sharing this pipeline.
func (h *AsyncHandler) WithGroup(name string) slog.Handler {
	return &AsyncHandler{next: h.next.WithGroup(name), q: h.q, dropped: h.dropped}
}

// Dropped returns how many records were dropped under back-pressure.
func (h *AsyncHandler) Dropped() uint64 { return h.dropped.Load() }

// Close flushes queued records and stops the pipeline, waiting for the
// writer. Later records are dropped and counted.
func (h *AsyncHandler) Close() {
	h.q.once.Do(func() {
		h.q.mu.Lock()
		h.q.closed = true
		h.q.mu.Unlock()
		select {
		case h.q.wake <- struct{}{}:
		default:
		}
		<-h.q.done
	})
}
