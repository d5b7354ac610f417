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
	"syscall"

	"github.com/roam-dev/roam/host"
)

func main() {
	// SIGTERM drains a host before it stops; a second signal exits at once.
	ctx, stop := host.NotifyContext(context.Background())
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

// exitCode is roam's status for err: 128 plus the signal's number when a
// signal stopped the command (130 for SIGINT, 143 for SIGTERM: a build cut
// short returns an error wrapping host.NotifyContext's cause), as shells
// report a process killed by it; 1 otherwise.
func exitCode(err error) int {
	var s *host.ShutdownSignal
	if errors.As(err, &s) {
		if n, ok := s.Signal.(syscall.Signal); ok {
			return 128 + int(n)
		}
	}
	return 1
}
