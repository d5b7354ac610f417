package embedded

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/roam-dev/roam/backend"
	"github.com/roam-dev/roam/backend/internal/core"
	"github.com/roam-dev/roam/sdk"
)

// BenchmarkDelivery measures one delivery (read the head, hand it to a
// handler that succeeds, acknowledge it with a committed, fsynced removal)
// with and without the attempt record written before the handler
// (attempts.go). The queue is filled in one transaction beforehand.
//
//	go test ./backend/embedded -run '^$' -bench 'Delivery|AttemptWrite' -benchtime 2000x -count 5
func BenchmarkDelivery(b *testing.B) {
	for _, on := range []bool{false, true} {
		b.Run("attempts="+strconv.FormatBool(on), func(b *testing.B) { benchDelivery(b, on) })
	}
}

func benchDelivery(b *testing.B, attempts bool) {
	be, err := Open(Options{Dir: b.TempDir(), Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	defer be.Close()
	be.noAttempts = !attempts
	sub := backend.Subscription{AppID: "sink", PubSub: "pubsub", Topic: "bench"}
	a, err := be.app(sub.AppID)
	if err != nil {
		b.Fatal(err)
	}
	if (a.attempts != nil) != attempts {
		b.Fatalf("attempts file open = %v, want %v", a.attempts != nil, attempts)
	}
	recs := make([][]byte, b.N)
	for i := range recs {
		m := sdk.Message{PubSub: sub.PubSub, Topic: sub.Topic, Data: []byte(`{"n":` + strconv.Itoa(i) + `}`)}
		if recs[i], err = json.Marshal(core.NewRecord(context.Background(), "src", m)); err != nil {
			b.Fatal(err)
		}
	}
	if err := appendTo(a, bucketQueues, [][]byte{routeKey{sub.PubSub, sub.Topic}.bucket()}, recs); err != nil {
		b.Fatal(err)
	}
	var n atomic.Int64
	done := make(chan struct{})
	b.ReportAllocs()
	b.ResetTimer()
	err = be.Subscribe([]backend.Subscription{sub}, func(ctx context.Context, s backend.Subscription, e *sdk.Event) error {
		if n.Add(1) == int64(b.N) {
			close(done)
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	<-done
	b.StopTimer()
}

// BenchmarkAttemptWrite is the record alone: one 64-byte pwrite.
func BenchmarkAttemptWrite(b *testing.B) {
	be, err := Open(Options{Dir: b.TempDir(), Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	defer be.Close()
	a, err := be.app("sink")
	if err != nil {
		b.Fatal(err)
	}
	s := a.attempts.slot([]byte("pubsub\x00bench"))
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		s.write(attemptInFlight, uint64(i), 42, 1)
	}
	b.StopTimer()
	if filepath.Base(a.attempts.path) != attemptsFileName {
		b.Fatal(a.attempts.path)
	}
}
