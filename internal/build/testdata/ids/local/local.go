package local

import "github.com/roam-dev/roam/sdk"

const id = ("local")

var App = sdk.NewApp(id, func(sdk.Env, *sdk.Router) error { return nil })
