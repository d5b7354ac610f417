// Package factory calls sdk.NewApp with one id in two places that need
// not both run: TestCLIAuditAppIDs checks that roam does not refuse it.
package factory

import (
	"os"

	"github.com/roam-dev/roam/sdk"
)

var App = sdk.NewApp("factory", setup)

func setup(sdk.Env, *sdk.Router) error { return nil }

// Other would register the id again: a caller chooses.
func Other() *sdk.App {
	if os.Getenv("NEVER") != "" {
		return sdk.NewApp("factory", setup)
	}
	return nil
}
