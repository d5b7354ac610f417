//go:build unix

package host

// The shutdown audit's test of real signals (syscall.Kill is Unix's).

import (
	"context"
	"errors"
	"os"
	"syscall"
	"testing"
)

// TestShutdownAuditSignals: a real SIGINT through NotifyContext (as roam,
// roam-edge and the native host receive it) is recognised as the signal
// that stopped the host, and its cause matches context.Canceled.
func TestShutdownAuditSignals(t *testing.T) {
	ctx, stop := NotifyContext(context.Background())
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
