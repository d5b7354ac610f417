// Command roam builds and runs Roam apps.
//
//	roam run ./examples/shop      # both apps, embedded backend, 127.0.0.1:8080
//	roam build -o shop ./examples/shop
//	roam version
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signalContext(os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "roam:", err)
		os.Exit(exitCode(err))
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cmd := newRootCmd(stdout, stderr)
	cmd.SetArgs(args)
	return cmd.ExecuteContext(ctx)
}

// signalled is the cause of the context of a command that a signal
// stopped: a build cut short returns an error wrapping it ("interrupt
// signal received while building"). Its text is os/signal.NotifyContext's,
// which the hosts read the signal from (roam edge runs in this process).
type signalled struct{ sig os.Signal }

func (s signalled) Error() string { return s.sig.String() + " signal received" }

// signalContext is signal.NotifyContext with the signal as the context's
// cause, so that main can exit as a shell expects of a command stopped by
// one (130 for Ctrl-C). After the first signal the handler is removed: a
// second Ctrl-C ends roam at once, as it would any command.
func signalContext(sigs ...os.Signal) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(context.Background())
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, sigs...)
	go func() {
		select {
		case s := <-ch:
			signal.Stop(ch)
			cancel(signalled{s})
		case <-ctx.Done():
		}
	}()
	return ctx, func() { signal.Stop(ch); cancel(nil) }
}

// exitCode is roam's status for err: 128 plus the signal's number when a
// signal stopped the command (130 for SIGINT, 143 for SIGTERM), as shells
// report a process killed by it; 1 otherwise.
func exitCode(err error) int {
	var s signalled
	if errors.As(err, &s) {
		if n, ok := s.sig.(syscall.Signal); ok {
			return 128 + int(n)
		}
	}
	return 1
}
