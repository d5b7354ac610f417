// Package dup2 declares app "same", as dup1 does, for TestCLIAuditAppIDs.
package dup2

import "github.com/roam-dev/roam/sdk"

const id = "sa" + "me"

var App = sdk.NewApp(id, func(sdk.Env, *sdk.Router) error { return nil })
