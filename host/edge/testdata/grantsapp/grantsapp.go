// Package grantsapp is a test app for the edge host's grants: it reports
// the environment and files its instance can see, which is nothing unless a
// manifest grants it. It lives under testdata so that ./... never builds it.
package grantsapp

import (
	"context"
	"os"

	"github.com/roam-dev/roam/sdk"
)

// App registers the grants app.
var App = sdk.NewApp("grants", func(env sdk.Env, r *sdk.Router) error {
	sdk.Handle(r, "Getenv", func(ctx context.Context, q struct{ Key string }) (struct{ Value string }, error) {
		return struct{ Value string }{os.Getenv(q.Key)}, nil
	})
	sdk.Handle(r, "ReadFile", func(ctx context.Context, q struct{ Path string }) (struct{ Data string }, error) {
		b, err := os.ReadFile(q.Path)
		if err != nil {
			return struct{ Data string }{}, sdk.NewError(sdk.NotFound, err.Error())
		}
		return struct{ Data string }{string(b)}, nil
	})
	sdk.Handle(r, "WriteFile", func(ctx context.Context, q struct{ Path, Data string }) (struct{}, error) {
		if err := os.WriteFile(q.Path, []byte(q.Data), 0o644); err != nil {
			return struct{}{}, sdk.NewError(sdk.FailedPrecondition, err.Error())
		}
		return struct{}{}, nil
	})
	return nil
})
