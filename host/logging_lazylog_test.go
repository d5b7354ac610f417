package host

import (
	"context"
	"io"
	"log/slog"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"
)

// seqSink records the "g" and "i" attributes of every record it handles, in
// order. When gate is set, the first Handle signals entered and waits on
// gate, so a test can hold the writer goroutine with one record in hand.
type seqSink struct {
	mu      sync.Mutex
	got     [][2]int64
	gate    chan struct{}
	entered chan struct{}
	once    sync.Once
}

func (s *seqSink) Enabled(context.Context, slog.Level) bool { return true }
func (s *seqSink) WithAttrs([]slog.Attr) slog.Handler       { return s }
func (s *seqSink) WithGroup(string) slog.Handler            { return s }
func (s *seqSink) Handle(_ context.Context, r slog.Record) error {
	if s.gate != nil {
		s.once.Do(func() { close(s.entered); <-s.gate })
	}
	var g, i int64
	r.Attrs(func(a slog.Attr) bool {
		switch a.Key {
		case "g":
			g = a.Value.Int64()
		case "i":
			i = a.Value.Int64()
		}
		return true
	})
	s.mu.Lock()
	s.got = append(s.got, [2]int64{g, i})
	s.mu.Unlock()
	return nil
}

func seqRecord(g, i int) slog.Record {
	r := slog.NewRecord(time.Time{}, slog.LevelInfo, "m", 0)
	r.AddAttrs(slog.Int("g", g), slog.Int("i", i))
	return r
}

// A new handler must not allocate its whole queue up front: 4,096 records
// of ~300 bytes each were 1.2 MB on every host, resident once records had
// cycled through them (BENCHMARKS.md, "Native idle RSS, session 9").
func TestAsyncHandlerLazyQueueAllocs(t *testing.T) {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	h := NewAsyncHandler(slog.NewTextHandler(io.Discard, nil), 4096)
	runtime.ReadMemStats(&after)
	h.Close()
	n := after.TotalAlloc - before.TotalAlloc
	t.Logf("NewAsyncHandler(_, 4096) allocated %d bytes", n)
	if n > 64<<10 {
		t.Fatalf("NewAsyncHandler(_, 4096) allocated %d bytes, want far less than the 1.2 MB of a full queue", n)
	}
}

// After a burst the queue's backing array is given back once it drains.
func TestAsyncHandlerQueueShrinksWhenDrained(t *testing.T) {
	s := &seqSink{gate: make(chan struct{}), entered: make(chan struct{})}
	h := NewAsyncHandler(s, 4096)
	defer h.Close()
	_ = h.Handle(context.Background(), seqRecord(0, 0))
	<-s.entered
	for i := 1; i <= 3000; i++ {
		_ = h.Handle(context.Background(), seqRecord(0, i))
	}
	h.q.mu.Lock()
	grown := cap(h.q.buf)
	h.q.mu.Unlock()
	if grown < 3000 {
		t.Fatalf("queue holds %d slots with 3,000 records queued", grown)
	}
	close(s.gate)
	deadline := time.Now().Add(30 * time.Second)
	for {
		h.q.mu.Lock()
		n, c := h.q.n, cap(h.q.buf)
		h.q.mu.Unlock()
		if n == 0 && c <= asyncKeep {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("drained queue still holds %d slots (%d records)", c, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// With the writer held on the first record, exactly capacity more records
// are queued and the rest dropped and counted, as with the channel before;
// once released, everything queued is written in order, and Close waits
// for it.
func TestAsyncHandlerFullQueueDropsAndCounts(t *testing.T) {
	const capacity = 100
	s := &seqSink{gate: make(chan struct{}), entered: make(chan struct{})}
	h := NewAsyncHandler(s, capacity)
	_ = h.Handle(context.Background(), seqRecord(0, 0))
	<-s.entered
	for i := 1; i <= capacity+7; i++ {
		_ = h.Handle(context.Background(), seqRecord(0, i))
	}
	if d := h.Dropped(); d != 7 {
		t.Fatalf("Dropped() = %d, want 7", d)
	}
	close(s.gate)
	h.Close()
	if len(s.got) != capacity+1 {
		t.Fatalf("%d records written, want %d", len(s.got), capacity+1)
	}
	for i, r := range s.got {
		if r[1] != int64(i) {
			t.Fatalf("record %d is %d: out of order", i, r[1])
		}
	}
	// After Close: dropped and counted, never written, never a panic.
	_ = h.Handle(context.Background(), seqRecord(0, -1))
	h.Close()
	if d := h.Dropped(); d != 8 {
		t.Fatalf("Dropped() after Close = %d, want 8", d)
	}
	if len(s.got) != capacity+1 {
		t.Fatalf("a record handled after Close was written")
	}
}

// Concurrent Handle and Close (run with -race): every record is either
// written or counted as dropped, each goroutine's records are written in
// the order it handled them, and nothing is written after Close returns.
func TestAsyncHandlerConcurrentHandleClose(t *testing.T) {
	for round := range 20 {
		s := &seqSink{}
		h := NewAsyncHandler(s, 64)
		const goroutines, per = 8, 500
		var wg sync.WaitGroup
		start := make(chan struct{})
		for g := range goroutines {
			wg.Add(1)
			go func() {
				defer wg.Done()
				hh := h.WithAttrs([]slog.Attr{slog.String("round", strconv.Itoa(round))})
				<-start
				for i := range per {
					_ = hh.Handle(context.Background(), seqRecord(g, i))
				}
			}()
		}
		close(start)
		if round%2 == 1 {
			time.Sleep(time.Duration(round) * 50 * time.Microsecond)
		}
		h.Close()
		s.mu.Lock()
		written := len(s.got)
		s.mu.Unlock()
		wg.Wait()
		s.mu.Lock()
		if len(s.got) != written {
			t.Fatalf("round %d: %d records written after Close returned", round, len(s.got)-written)
		}
		last := make([]int64, goroutines)
		for i := range last {
			last[i] = -1
		}
		for _, r := range s.got {
			if r[1] <= last[r[0]] {
				t.Fatalf("round %d: goroutine %d's record %d written after its record %d", round, r[0], r[1], last[r[0]])
			}
			last[r[0]] = r[1]
		}
		s.mu.Unlock()
		if got := uint64(written) + h.Dropped(); got != goroutines*per {
			t.Fatalf("round %d: %d written + %d dropped = %d, want %d", round, written, h.Dropped(), got, goroutines*per)
		}
	}
}

// go test ./host -run '^$' -bench AsyncHandler -benchmem
func BenchmarkAsyncHandler(b *testing.B) {
	r := slog.NewRecord(time.Now(), slog.LevelInfo, "request", 0)
	r.AddAttrs(slog.String("method", "GET"), slog.String("path", "/v1/apps/orders/state"), slog.Int("status", 200))
	// The sink writes nothing, so that the writer keeps up as far as it
	// can: what is measured is the queue.
	b.Run("Handle", func(b *testing.B) {
		h := NewAsyncHandler(slog.DiscardHandler, 4096)
		defer h.Close()
		b.ReportAllocs()
		for b.Loop() {
			_ = h.Handle(context.Background(), r)
		}
		b.ReportMetric(float64(h.Dropped())/float64(b.N), "dropped/op")
	})
	b.Run("HandleParallel", func(b *testing.B) {
		h := NewAsyncHandler(slog.DiscardHandler, 4096)
		defer h.Close()
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				_ = h.Handle(context.Background(), r)
			}
		})
		b.ReportMetric(float64(h.Dropped())/float64(b.N), "dropped/op")
	})
	// A text sink, slower than the queue fills: most records drop.
	b.Run("HandleText", func(b *testing.B) {
		h := NewAsyncHandler(slog.NewTextHandler(io.Discard, nil), 4096)
		defer h.Close()
		b.ReportAllocs()
		for b.Loop() {
			_ = h.Handle(context.Background(), r)
		}
		b.ReportMetric(float64(h.Dropped())/float64(b.N), "dropped/op")
	})
	// The queue full: every Handle drops.
	b.Run("HandleFull", func(b *testing.B) {
		s := &seqSink{gate: make(chan struct{}), entered: make(chan struct{})}
		h := NewAsyncHandler(s, 4096)
		_ = h.Handle(context.Background(), r)
		<-s.entered
		for range 4096 {
			_ = h.Handle(context.Background(), r)
		}
		b.ReportAllocs()
		b.ResetTimer()
		for range b.N {
			_ = h.Handle(context.Background(), r)
		}
		b.StopTimer()
		close(s.gate)
		h.Close()
	})
}
