package lit

import "github.com/roam-dev/roam/sdk"

var App = sdk.NewApp("literal", func(sdk.Env, *sdk.Router) error { return nil })
