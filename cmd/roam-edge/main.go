// Command roam-edge is the edge host alone: `roam edge` without the rest of
// the roam command (build, dist, manifests), which needs a Go toolchain and
// links Kubernetes' types. It is the binary of the roam-edge image.
//
//	roam-edge --addr 0.0.0.0 oci://registry.example/shop/orders-wasm@sha256:...
package main

import (
	"context"
	"fmt"
	"os"
	"runtime"

	"github.com/roam-dev/roam/host"
	"github.com/roam-dev/roam/internal/cli"
)

// version is stamped by roam dist (-X main.version=...).
var version = ""

func main() {
	// SIGTERM drains before the host stops; a second signal exits at once.
	ctx, stop := host.NotifyContext(context.Background())
	cmd := cli.EdgeCommand("roam-edge", os.Stdout, os.Stderr)
	cmd.Version = fmt.Sprintf("%s %s %s/%s", cli.Version(version), runtime.Version(), runtime.GOOS, runtime.GOARCH)
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	err := cmd.ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "roam-edge:", err)
		os.Exit(1)
	}
}
