// Package dup1 declares app "same", as dup2 does, for TestCLIAuditAppIDs.
package dup1

import "github.com/roam-dev/roam/sdk"

var App = sdk.NewApp("same", func(sdk.Env, *sdk.Router) error { return nil })
