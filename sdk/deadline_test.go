package sdk

import (
	"context"
	"testing"
	"time"
)

func TestLazyDeadline(t *testing.T) {
	d := time.Now().Add(30 * time.Millisecond)
	ctx, cancel := withLazyDeadline(context.Background(), d)
	defer cancel()
	if got, ok := ctx.Deadline(); !ok || !got.Equal(d) {
		t.Fatalf("Deadline() = %v %v", got, ok)
	}
	if ctx.Err() != nil {
		t.Fatal("expired early")
	}
	select {
	case <-ctx.Done():
	case <-time.After(2 * time.Second):
		t.Fatal("Done never closed")
	}
	if ctx.Err() != context.DeadlineExceeded {
		t.Fatalf("Err() = %v", ctx.Err())
	}

	// Without a waiter no timer runs, but Err still reports expiry.
	ctx2, cancel2 := withLazyDeadline(context.Background(), time.Now().Add(-time.Millisecond))
	if ctx2.Err() != context.DeadlineExceeded {
		t.Fatalf("past deadline: Err() = %v", ctx2.Err())
	}
	cancel2()
	<-ctx2.Done() // closed after stop, never blocks

	// Parent cancellation shows through.
	parent, pc := context.WithCancel(context.Background())
	ctx3, cancel3 := withLazyDeadline(parent, time.Now().Add(time.Hour))
	defer cancel3()
	pc()
	if ctx3.Err() != context.Canceled {
		t.Fatalf("parent cancel: Err() = %v", ctx3.Err())
	}
	<-ctx3.Done()
}
