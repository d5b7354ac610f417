// Package emptyapp exists for the end-to-end tests in package e2e: it
// declares a Roam app whose setup registers no handlers, so that the tests
// can check that `roam run ./e2e/internal/emptyapp` refuses to start with a
// message saying so. It is a real package (not under testdata/) because the
// go command ignores testdata directories when building.
package emptyapp

import "github.com/roam-dev/roam/sdk"

// App is an app that forgets to call sdk.Handle or sdk.Subscribe.
var App = sdk.NewApp("emptyapp", func(env sdk.Env, r *sdk.Router) error {
	return nil
})
