//go:build unix

package host

// The shutdown audit's test of real signals (syscall.Kill is Unix's).

import (
	"context"
	"errors"
	"os"
	"os/signal"
	"syscall"
	"testing"
)

// TestShutdownAuditSignals: a real SIGTERM through os/signal.NotifyContext
// (as roam and roam-edge receive it) and a real SIGINT through
// NotifyContext are both recognised, which pins os/signal's cause text.
func TestShutdownAuditSignals(t *testing.T) {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	syscall.Kill(os.Getpid(), syscall.SIGTERM)
	<-ctx.Done()
	stop()
	if sig, ok := shutdownSignal(ctx); !ok || sig != syscall.SIGTERM {
		t.Errorf("os/signal.NotifyContext after SIGTERM: %v %v (cause %v), want SIGTERM", sig, ok, context.Cause(ctx))
	}

	ctx, stop = NotifyContext(context.Background())
	syscall.Kill(os.Getpid(), syscall.SIGINT)
	<-ctx.Done()
	stop() // before any second signal, which would end the test binary
	if sig, ok := shutdownSignal(ctx); !ok || sig != os.Interrupt {
		t.Errorf("NotifyContext after SIGINT: %v %v (cause %v), want SIGINT", sig, ok, context.Cause(ctx))
	}
	if !errors.Is(context.Cause(ctx), context.Canceled) {
		t.Errorf("the cause %v does not match context.Canceled", context.Cause(ctx))
	}

	ctx, stop = NotifyContext(context.Background())
	stop()
	if _, ok := shutdownSignal(ctx); ok {
		t.Errorf("NotifyContext stopped without a signal reports one")
	}
}
