// Package badid declares an app whose id is not a DNS label, for
// TestCLIAuditAppIDs.
package badid

import "github.com/roam-dev/roam/sdk"

var App = sdk.NewApp("Orders_v2", func(sdk.Env, *sdk.Router) error { return nil })
