// Package register links the Dapr backend into a host binary: importing it
// (for its side effect) registers "dapr" with package hostbackend. `roam
// build` adds the import unless told --backends embedded; a binary without
// it is about 5 MB smaller (the shop: 12.4 MB instead of 17.6 MB, stripped)
// and refuses --backend dapr with a message naming the rebuild flag.
package register

import (
	"context"

	"github.com/roam-dev/roam/backend"
	"github.com/roam-dev/roam/backend/dapr"
	"github.com/roam-dev/roam/host/hostbackend"
	// gRPC is linked with Dapr anyway, and so is the OTLP/gRPC exporter.
	_ "github.com/roam-dev/roam/host/telemetry/otlpgrpc"
)

func init() {
	hostbackend.Register("dapr", open)
}

func open(ctx context.Context, c hostbackend.Config) (backend.Backend, string, error) {
	o := dapr.OptionsFromEnv(c.Getenv)
	o.Logger, o.OnDeliver, o.Tracing = c.Logger, c.OnDeliver, c.Tracing
	b, err := dapr.Open(ctx, o)
	if err != nil {
		return nil, "", err
	}
	return b, b.Describe(), nil
}
