// Package twice declares app "twice" twice, for TestCLIAuditAppIDs.
package twice

import "github.com/roam-dev/roam/sdk"

var (
	App   = sdk.NewApp("twice", func(sdk.Env, *sdk.Router) error { return nil })
	Again = sdk.NewApp("twice", func(sdk.Env, *sdk.Router) error { return nil })
)
