package host

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
)

// AsyncHandler is a bounded, non-blocking slog pipeline. Handle copies the
// record into a fixed-size queue and returns; one goroutine writes the queue
// to the underlying handler. When the queue is full the record is dropped and
// counted, so a slow log sink never stalls a request.
type AsyncHandler struct {
	next    slog.Handler
	q       *asyncQueue
	dropped *atomic.Uint64
}

type asyncQueue struct {
	ch     chan asyncRecord
	done   chan struct{}
	closed atomic.Bool
	once   sync.Once
	mu     sync.RWMutex // held for reading while sending, for writing at close
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
	q := &asyncQueue{ch: make(chan asyncRecord, capacity), done: make(chan struct{})}
	go func() {
		defer close(q.done)
		for ar := range q.ch {
			_ = ar.h.Handle(context.Background(), ar.r)
		}
	}()
	return &AsyncHandler{next: next, q: q, dropped: new(atomic.Uint64)}
}

// Enabled reports whether the underlying handler wants the level.
func (h *AsyncHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.next.Enabled(ctx, l)
}

// Handle queues the record, or drops and counts it when the queue is full.
func (h *AsyncHandler) Handle(_ context.Context, r slog.Record) error {
	h.q.mu.RLock()
	defer h.q.mu.RUnlock()
	if h.q.closed.Load() {
		h.dropped.Add(1)
		return nil
	}
	select {
	case h.q.ch <- asyncRecord{h: h.next, r: r.Clone()}:
	default:
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

// Close flushes queued records and stops the pipeline. Later records are
// dropped and counted.
func (h *AsyncHandler) Close() {
	h.q.once.Do(func() {
		h.q.mu.Lock()
		h.q.closed.Store(true)
		close(h.q.ch)
		h.q.mu.Unlock()
		<-h.q.done
	})
}
